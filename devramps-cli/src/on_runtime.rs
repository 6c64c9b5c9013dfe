//! [`OnRuntime`]: a store or lease service whose calls run on a tokio runtime of its own, so
//! that backends built on tokio (the AWS SDK) work from any executor: the simulator's
//! `futures` executor, or another runtime.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{
    AppendOptions, DeploymentLock, EventStore, Lease, Snapshot, StoredEvent,
};
use devramps_core::{Error, Result};
use jiff::Timestamp;

/// The runtime the wrapped backends run on: started once, on threads of its own.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("devramps-backends")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::backend("tokio", "start the backends' runtime", e.clone()))
}

/// Runs `future` to its end on the backends' runtime, from any thread (also from inside
/// another runtime).
pub(crate) fn block_on<F>(future: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime()?.handle().clone();
    std::thread::spawn(move || handle.block_on(future))
        .join()
        .map_err(|_| Error::backend("tokio", "run a backend call", "the call panicked"))
}

/// `T`, each call spawned on the backends' runtime and awaited from wherever it was made.
#[derive(Debug)]
pub(crate) struct OnRuntime<T> {
    inner: Arc<T>,
}

impl<T> OnRuntime<T> {
    pub(crate) fn new(inner: T) -> Self {
        OnRuntime {
            inner: Arc::new(inner),
        }
    }

    async fn call<R, F, Fut>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<T>) -> Fut,
        Fut: std::future::Future<Output = Result<R>> + Send + 'static,
    {
        let task = runtime()?.spawn(f(self.inner.clone()));
        task.await
            .map_err(|e| Error::backend("tokio", "run a backend call", e.to_string()))?
    }
}

#[async_trait]
impl<T: EventStore> EventStore for OnRuntime<T> {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        let stream = stream.to_owned();
        self.call(move |s| async move { s.append(&stream, expected_last, events, options).await })
            .await
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let stream = stream.to_owned();
        self.call(move |s| async move { s.read(&stream, after, limit).await })
            .await
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        let stream = stream.to_owned();
        self.call(move |s| async move { s.last_seq(&stream).await })
            .await
    }

    async fn streams(&self) -> Result<Vec<String>> {
        self.call(|s| async move { s.streams().await }).await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        let stream = stream.to_owned();
        self.call(move |s| async move { s.save_snapshot(&stream, snapshot).await })
            .await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        let stream = stream.to_owned();
        self.call(move |s| async move { s.load_snapshot(&stream).await })
            .await
    }
}

#[async_trait]
impl<T: DeploymentLock> DeploymentLock for OnRuntime<T> {
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.call(move |l| async move { l.acquire(&key, &holder, ttl, now).await })
            .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
        let lease = lease.clone();
        self.call(move |l| async move { l.renew(&lease, ttl, now).await })
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        self.call(move |l| async move { l.release(&lease).await })
            .await
    }

    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
        let key = key.to_owned();
        self.call(move |l| async move { l.current(&key, now).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devramps_core::backend::EventStoreExt;

    #[test]
    fn calls_run_on_the_backends_runtime_from_a_futures_executor() {
        let store = OnRuntime::new(devramps_memory::InMemoryEventStore::new());
        let events = futures::executor::block_on(async {
            store
                .append("p", 0, vec![serde_json::json!(1)], AppendOptions::default())
                .await?;
            store.read_all("p").await
        })
        .expect("the calls ran");
        assert_eq!(events.len(), 1);
        let answer = block_on(async { 40 + 2 }).expect("ran");
        assert_eq!(answer, 42);
    }
}

//! [`OnRuntime`]: a store or lease service whose calls run on a tokio runtime of its own, so
//! that backends built on tokio (the AWS SDK) work from any executor: a `futures` executor
//! (the simulator's), a test's `LocalPool`, or another runtime.
//!
//! ```no_run
//! # async fn example() -> devramps_core::Result<()> {
//! use std::sync::Arc;
//! use devramps_aws::runtime::{OnRuntime, block_on};
//! use devramps_aws::{S3EventStore, S3Location};
//!
//! let location = block_on(S3Location::from_env("my-bucket", "devramps"))?;
//! let store = Arc::new(OnRuntime::new(S3EventStore::new(location)));
//! // `store` is an `EventStore` any executor can drive.
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{
    AppendOptions, DeploymentLock, EventStore, Lease, Snapshot, StoredEvent,
};
use devramps_core::{Error, Result};
use jiff::Timestamp;

/// The runtime the wrapped backends run on: started once per process, on two threads of its
/// own (named `devramps-backends`).
///
/// # Errors
///
/// [`Error::Backend`] when the runtime cannot start (the OS refused threads).
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
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
/// another runtime, as it waits on a thread of its own).
///
/// # Errors
///
/// [`Error::Backend`] when the runtime cannot start or the future panicked.
pub fn block_on<F>(future: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime()?.handle().clone();
    std::thread::spawn(move || handle.block_on(future))
        .join()
        .map_err(|_| Error::backend("tokio", "run a backend call", "the call panicked"))
}

/// `T` (an [`EventStore`] or a [`DeploymentLock`]), each call spawned on the backends'
/// [`runtime`] and awaited from wherever it was made.
///
/// Clones share the inner value and the count of calls in flight.
#[derive(Debug)]
pub struct OnRuntime<T> {
    inner: Arc<T>,
    in_flight: CallsInFlight,
}

/// A count of calls made through [`OnRuntime`] wrappers and not yet answered to their callers;
/// clones share it, and so do the wrappers made with [`OnRuntime::counted`] on it.
#[derive(Clone, Debug, Default)]
pub struct CallsInFlight(Arc<AtomicUsize>);

impl CallsInFlight {
    /// A count at 0.
    pub fn new() -> Self {
        CallsInFlight::default()
    }

    /// The calls in flight now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl<T> Clone for OnRuntime<T> {
    fn clone(&self) -> Self {
        OnRuntime {
            inner: self.inner.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

/// Counts a call from its start until its caller has its answer (or gave up on it).
struct InFlight(CallsInFlight);

impl InFlight {
    fn start(count: &CallsInFlight) -> Self {
        count.0.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T> OnRuntime<T> {
    /// Wraps `inner`, with a count of its own.
    pub fn new(inner: T) -> Self {
        OnRuntime::counted(inner, &CallsInFlight::new())
    }

    /// Wraps `inner`, counting its calls in `in_flight` (shared with other wrappers).
    pub fn counted(inner: T, in_flight: &CallsInFlight) -> Self {
        OnRuntime {
            inner: Arc::new(inner),
            in_flight: in_flight.clone(),
        }
    }

    /// The wrapped value.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Calls made and not yet answered to their callers. A test driving engines on a
    /// single-threaded executor waits for 0 (with nothing else to run) before it calls the
    /// engines quiet: a call in flight on the runtime does not show as work to that executor.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    async fn call<R, F, Fut>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Arc<T>) -> Fut,
        Fut: std::future::Future<Output = Result<R>> + Send + 'static,
    {
        let _counted = InFlight::start(&self.in_flight);
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

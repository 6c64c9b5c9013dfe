//! The event store and lease service a simulation runs on: any [`EventStore`] and
//! [`DeploymentLock`], each call finished before the simulator goes on.
//!
//! The simulator decides that the engine has settled when its executor has nothing left to
//! poll. A store that does its work on other threads (the local SQLite store runs its calls on
//! a blocking thread pool) would look settled while a call is in flight, and what happens next
//! would depend on thread timing. [`Inline`] waits for each call on the simulator's thread, so
//! a call is over by the time the executor is polled again, as with the in-memory store: the
//! same scenario gives the same report on every store.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{
    AppendOptions, DeploymentLock, DynDeploymentLock, DynEventStore, EventStore, Lease, Snapshot,
    StoredEvent,
};
use devramps_core::lifecycle::Record;
use jiff::Timestamp;

/// Why a simulation cannot run on the store it was given.
#[derive(Debug)]
pub enum StoreError {
    /// The store already holds events: a simulation starts from an empty log (and the engine
    /// would drive every pipeline it finds there).
    InUse {
        /// The pipelines (streams) that have events, sorted.
        pipelines: Vec<String>,
    },
    /// The store could not be asked what it holds.
    Unreadable(devramps_core::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InUse { pipelines } => {
                let names: Vec<String> = pipelines.iter().map(|p| format!("`{p}`")).collect();
                write!(
                    f,
                    "the store already holds events (pipeline{} {}): a simulation starts from \
                     an empty log",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
            StoreError::Unreadable(e) => write!(f, "cannot read the store: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::InUse { .. } => None,
            StoreError::Unreadable(e) => Some(e),
        }
    }
}

/// Checks that `store` holds no events.
pub(crate) fn check_empty(store: &InlineStore) -> std::result::Result<(), StoreError> {
    let mut pipelines = wait(store.0.streams()).map_err(StoreError::Unreadable)?;
    if pipelines.is_empty() {
        return Ok(());
    }
    pipelines.sort();
    Err(StoreError::InUse { pipelines })
}

/// Wakes the thread that waits for a call.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on this thread. It works inside an executor (unlike
/// `futures::executor::block_on`, which refuses to nest): the executor's other tasks wait.
fn wait<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake-up before the park makes it return at once; a spurious one polls again.
        std::thread::park();
    }
}

/// A store or lease service whose every call is over when it returns to the executor (see the
/// [module docs](self)).
#[derive(Clone)]
pub(crate) struct Inline<T>(pub(crate) T);

impl<T: fmt::Debug> fmt::Debug for Inline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Inline").field(&self.0).finish()
    }
}

/// The simulation's store.
pub(crate) type InlineStore = Inline<DynEventStore>;

#[async_trait]
impl EventStore for Inline<DynEventStore> {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        wait(self.0.append(stream, expected_last, events, options))
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        wait(self.0.read(stream, after, limit))
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        wait(self.0.last_seq(stream))
    }

    async fn streams(&self) -> Result<Vec<String>> {
        wait(self.0.streams())
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        wait(self.0.save_snapshot(stream, snapshot))
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        wait(self.0.load_snapshot(stream))
    }
}

#[async_trait]
impl DeploymentLock for Inline<DynDeploymentLock> {
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        wait(self.0.acquire(key, holder, ttl, now))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
        wait(self.0.renew(lease, ttl, now))
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        wait(self.0.release(lease))
    }

    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
        wait(self.0.current(key, now))
    }
}

/// The simulator's own reader of the logs, behind the injected faults: its fold, the report,
/// the scripted runners and the simulated resources read the same records, so each record is
/// read from the store and decoded once, then kept (a log only grows: record `n` never
/// changes once written).
#[derive(Clone, Debug)]
pub(crate) struct LogReader {
    store: InlineStore,
    decoded: Arc<Mutex<BTreeMap<String, Vec<Record>>>>,
}

impl LogReader {
    pub(crate) fn new(store: InlineStore) -> Self {
        LogReader {
            store,
            decoded: Arc::default(),
        }
    }

    /// The records of `pipeline` after sequence number `after`, at most `limit`: those not
    /// read before are read from the store (the call is over when it returns, see [`Inline`])
    /// and decoded.
    pub(crate) fn records(
        &self,
        pipeline: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Record>> {
        let lock = || self.decoded.lock().unwrap_or_else(PoisonError::into_inner);
        let known = lock().get(pipeline).map_or(0, Vec::len);
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let end = limit.map(|l| start.saturating_add(l));
        if end.is_none_or(|end| end > known) {
            let from = u64::try_from(known).unwrap_or(u64::MAX);
            let events = wait(self.store.0.read(pipeline, from, None))?;
            let mut fresh = Vec::with_capacity(events.len());
            for (expected, event) in (from + 1..).zip(events) {
                if event.seq != expected {
                    // Not numbered 1, 2, 3...: nothing to keep by position; read it plainly.
                    return self.read_plainly(pipeline, after, limit);
                }
                fresh.push(Record::from_stored(pipeline, event)?);
            }
            let mut decoded = lock();
            let log = decoded.entry(pipeline.to_owned()).or_default();
            if log.len() == known {
                log.extend(fresh);
            }
        }
        let decoded = lock();
        let log = decoded.get(pipeline).map_or(&[][..], Vec::as_slice);
        let end = end.map_or(log.len(), |end| end.min(log.len()));
        Ok(log.get(start..end).unwrap_or_default().to_vec())
    }

    fn read_plainly(
        &self,
        pipeline: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Record>> {
        wait(self.store.0.read(pipeline, after, limit))?
            .into_iter()
            .map(|event| Record::from_stored(pipeline, event))
            .collect()
    }
}

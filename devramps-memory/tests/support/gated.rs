//! A store whose appends can be held at a gate: a writer paused mid-append, as by a long GC
//! pause or a slow network, or an append kept in flight while more requests queue behind it.
//! It remembers how every append ended. Shared by `many_engines.rs` and `group_commit.rs`,
//! which include this file by path.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_memory::InMemoryEventStore;

/// The in-memory store behind a gate.
#[derive(Clone, Debug, Default)]
pub(crate) struct GatedStore {
    inner: InMemoryEventStore,
    gate: Arc<Mutex<Gate>>,
}

/// The gate, and what went through it.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed: bool,
    /// Appends waiting at the closed gate now.
    pub(crate) waiting: usize,
    wakers: Vec<Waker>,
    /// Every append that went through, in order.
    pub(crate) appends: Vec<Append>,
}

/// One append that went through the gate.
#[derive(Clone, Debug)]
pub(crate) struct Append {
    /// The fencing token presented.
    pub(crate) token: Option<u64>,
    /// How many events it carried.
    pub(crate) events: usize,
    /// The store's answer (an error as text).
    pub(crate) outcome: Result<u64, String>,
}

impl GatedStore {
    /// `inner` behind an open gate.
    pub(crate) fn new(inner: InMemoryEventStore) -> Self {
        GatedStore {
            inner,
            gate: Arc::default(),
        }
    }

    pub(crate) fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the gate (appends wait at it) or opens it (the waiting ones go on).
    pub(crate) fn set_closed(&self, closed: bool) {
        let wakers = {
            let mut gate = self.gate();
            gate.closed = closed;
            std::mem::take(&mut gate.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// How many events each append that wrote carried, in order.
    pub(crate) fn written(&self) -> Vec<usize> {
        self.gate()
            .appends
            .iter()
            .filter(|a| a.outcome.is_ok() && a.events > 0)
            .map(|a| a.events)
            .collect()
    }
}

#[async_trait]
impl EventStore for GatedStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> devramps_core::Result<u64> {
        let mut counted = false;
        futures::future::poll_fn(|cx| {
            let mut gate = self.gate();
            if !gate.closed {
                if counted {
                    gate.waiting -= 1;
                }
                return Poll::Ready(());
            }
            if !counted {
                counted = true;
                gate.waiting += 1;
            }
            gate.wakers.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let (token, n) = (options.fencing_token, events.len());
        let result = self
            .inner
            .append(stream, expected_last, events, options)
            .await;
        self.gate().appends.push(Append {
            token,
            events: n,
            outcome: result.as_ref().map(|s| *s).map_err(|e| e.to_string()),
        });
        result
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> devramps_core::Result<Vec<StoredEvent>> {
        self.inner.read(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &str) -> devramps_core::Result<u64> {
        self.inner.last_seq(stream).await
    }

    async fn streams(&self) -> devramps_core::Result<Vec<String>> {
        self.inner.streams().await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> devramps_core::Result<()> {
        self.inner.save_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &str) -> devramps_core::Result<Option<Snapshot>> {
        self.inner.load_snapshot(stream).await
    }
}

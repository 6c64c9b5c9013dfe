//! [`FaultyStore`]: an [`EventStore`] decorator that injects faults.

use std::sync::Arc;

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_core::{Error, Result};

use super::{CallKind, Fault, FaultOptions, Faults, InjectedFault};

/// Wraps an [`EventStore`] and injects faults per its [`FaultOptions`]; see the
/// [module docs](crate::fault) for what each [`Fault`] does.
///
/// On `append`: [`Fault::Unavailable`] fails with [`Error::Unavailable`] and
/// [`Fault::Conflict`] with [`Error::Conflict`], both writing nothing;
/// [`Fault::AckLost`] appends, then fails with [`Error::Unavailable`]. With
/// [`FaultSchedule::Never`](super::FaultSchedule::Never) it behaves exactly as the inner store
/// and passes the conformance kit. Clones share the inner store and the fault state.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: Arc<S>,
    faults: Faults,
}

impl<S> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        FaultyStore {
            inner: self.inner.clone(),
            faults: self.faults.clone(),
        }
    }
}

impl<S: EventStore> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, options: FaultOptions) -> Self {
        FaultyStore {
            inner: Arc::new(inner),
            faults: Faults::new("faulty store", options),
        }
    }

    /// The wrapped store (to inspect what was really written).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Replaces the fault options (and reseeds a random schedule); the call count goes on.
    pub fn set_options(&self, options: FaultOptions) {
        self.faults.set_options(options);
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.faults.injected()
    }

    /// How many calls were made so far.
    pub fn calls(&self) -> u64 {
        self.faults.calls()
    }

    /// Makes the next `times` calls of `kind` fail with [`Error::Unavailable`] without reaching
    /// the inner store (as S3 answering `503 SlowDown`), before any scheduled fault. The calls
    /// still count.
    pub fn fail_next(&self, kind: CallKind, times: u32) {
        self.faults.fail_next(kind, times);
    }

    /// Decides the fault of a read: any fault fails it.
    async fn read_fault(&self, operation: String) -> Result<()> {
        match self
            .faults
            .before_kind(operation.clone(), false, Some(CallKind::Read))
            .await
        {
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl<S: EventStore> EventStore for FaultyStore<S> {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        let operation = format!("append to `{stream}`");
        match self
            .faults
            .before_kind(operation.clone(), true, Some(CallKind::Append))
            .await
        {
            None => {
                self.inner
                    .append(stream, expected_last, events, options)
                    .await
            }
            Some((call, Fault::Conflict)) => Err(Error::Conflict {
                what: format!("{operation} (injected at call {call}): re-read and decide again"),
            }),
            Some((call, Fault::AckLost)) => {
                self.inner
                    .append(stream, expected_last, events, options)
                    .await?;
                Err(self.faults.error(&operation, call, Fault::AckLost))
            }
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
        }
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        self.read_fault(format!("read `{stream}`")).await?;
        self.inner.read(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        self.read_fault(format!("read the last seq of `{stream}`"))
            .await?;
        self.inner.last_seq(stream).await
    }

    async fn streams(&self) -> Result<Vec<String>> {
        self.read_fault("list streams".to_owned()).await?;
        self.inner.streams().await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        let operation = format!("save a snapshot of `{stream}`");
        match self.faults.before(operation.clone(), true).await {
            None => self.inner.save_snapshot(stream, snapshot).await,
            Some((call, Fault::AckLost)) => {
                self.inner.save_snapshot(stream, snapshot).await?;
                Err(self.faults.error(&operation, call, Fault::AckLost))
            }
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
        }
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        self.read_fault(format!("load the snapshot of `{stream}`"))
            .await?;
        self.inner.load_snapshot(stream).await
    }
}

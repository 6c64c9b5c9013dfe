//! [`FaultyLock`]: a [`DeploymentLock`] decorator that injects faults.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{DeploymentLock, Lease};
use devramps_core::{Error, Result};
use jiff::Timestamp;

use super::{Fault, FaultOptions, Faults, InjectedFault};

/// Wraps a [`DeploymentLock`] and injects faults per its [`FaultOptions`]; see the
/// [module docs](crate::fault) for what each [`Fault`] does.
///
/// [`Fault::Unavailable`] fails any call with [`Error::Unavailable`] without reaching the inner
/// service. [`Fault::Conflict`] makes `acquire` return `Ok(None)` and `renew` fail with
/// [`Error::Conflict`] (the lease looks lost), without reaching the inner service.
/// [`Fault::AckLost`] lets `acquire`, `renew` or `release` happen and then fails with
/// [`Error::Unavailable`]: the caller may hold a lease it does not know about, which lapses at its
/// expiry. With [`FaultSchedule::Never`](super::FaultSchedule::Never) it behaves exactly as
/// the inner service. Clones share the inner service and the fault state.
#[derive(Debug)]
pub struct FaultyLock<L> {
    inner: Arc<L>,
    faults: Faults,
}

impl<L> Clone for FaultyLock<L> {
    fn clone(&self) -> Self {
        FaultyLock {
            inner: self.inner.clone(),
            faults: self.faults.clone(),
        }
    }
}

impl<L: DeploymentLock> FaultyLock<L> {
    /// Wraps `inner`.
    pub fn new(inner: L, options: FaultOptions) -> Self {
        FaultyLock {
            inner: Arc::new(inner),
            faults: Faults::new("faulty lock", options),
        }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &L {
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
}

#[async_trait]
impl<L: DeploymentLock> DeploymentLock for FaultyLock<L> {
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let operation = format!("acquire `{key}` for `{holder}`");
        match self.faults.before(operation.clone(), true).await {
            None => self.inner.acquire(key, holder, ttl, now).await,
            Some((_, Fault::Conflict)) => Ok(None),
            Some((call, Fault::AckLost)) => {
                self.inner.acquire(key, holder, ttl, now).await?;
                Err(self.faults.error(&operation, call, Fault::AckLost))
            }
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
        let operation = format!("renew `{}` (token {})", lease.key, lease.token);
        match self.faults.before(operation.clone(), true).await {
            None => self.inner.renew(lease, ttl, now).await,
            Some((call, Fault::Conflict)) => Err(Error::Conflict {
                what: format!("{operation} (injected at call {call}): the lease looks lost"),
            }),
            Some((call, Fault::AckLost)) => {
                self.inner.renew(lease, ttl, now).await?;
                Err(self.faults.error(&operation, call, Fault::AckLost))
            }
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let operation = format!("release `{}` (token {})", lease.key, lease.token);
        match self.faults.before(operation.clone(), true).await {
            None => self.inner.release(lease).await,
            Some((call, Fault::AckLost)) => {
                self.inner.release(lease).await?;
                Err(self.faults.error(&operation, call, Fault::AckLost))
            }
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
        }
    }

    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
        let operation = format!("read the lease of `{key}`");
        match self.faults.before(operation.clone(), false).await {
            None => self.inner.current(key, now).await,
            Some((call, fault)) => Err(self.faults.error(&operation, call, fault)),
        }
    }
}

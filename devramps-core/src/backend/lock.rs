//! Leases with fencing tokens: who drives the work of a stage or pipeline (L5, L21).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A held lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// What is locked, for example `api/prod`.
    pub key: String,
    /// Who holds it, for example an engine instance id.
    pub holder: String,
    /// Strictly increasing per key across acquisitions; presented to the store as a fencing
    /// token.
    pub token: u64,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

/// A lease service.
///
/// # Contract
///
/// - `acquire(key, holder, ttl, now)` returns a lease when the key is free, expired at `now`,
///   or already held by `holder` (then it is extended); `Ok(None)` when another holder's lease
///   is live at `now`. A new acquisition (not an extension) gets a token greater than every
///   token issued for the key before.
/// - `renew(lease, ttl, now)` extends a live lease of the same holder and token, or fails with
///   [`Error::Conflict`](crate::Error::Conflict) when the lease was lost (expired and taken,
///   or released).
/// - `release(lease)` frees the key if `lease` is still the current one; releasing a lease that
///   is no longer current does nothing.
/// - `current(key, now)` returns the live lease, if any.
/// - Time is what the caller passes as `now`; the service reads no clock.
#[async_trait]
pub trait DeploymentLock: Send + Sync + Debug + 'static {
    /// Takes or extends the lease of `key`.
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>>;
    /// Extends a held lease.
    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease>;
    /// Frees a held lease.
    async fn release(&self, lease: &Lease) -> Result<()>;
    /// The live lease of `key`.
    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>>;
}

/// A shared [`DeploymentLock`].
pub type DynDeploymentLock = Arc<dyn DeploymentLock>;

/// Forwards every method, so `Arc<L>` and `Box<L>` (including `Arc<dyn DeploymentLock>`) are
/// lease services too.
macro_rules! forward_deployment_lock {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: DeploymentLock + ?Sized> DeploymentLock for $pointer<T> {
            async fn acquire(
                &self,
                key: &str,
                holder: &str,
                ttl: Duration,
                now: Timestamp,
            ) -> Result<Option<Lease>> {
                (**self).acquire(key, holder, ttl, now).await
            }

            async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
                (**self).renew(lease, ttl, now).await
            }

            async fn release(&self, lease: &Lease) -> Result<()> {
                (**self).release(lease).await
            }

            async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
                (**self).current(key, now).await
            }
        }
    )*};
}

forward_deployment_lock!(Arc, Box);

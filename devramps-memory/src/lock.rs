//! [`InMemoryLock`]: leases with fencing tokens held in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{DeploymentLock, Lease};
use devramps_core::{Error, Result};
use jiff::Timestamp;

use crate::clock::add;

#[derive(Debug, Default)]
struct Key {
    /// The lease last granted, until released (it may have expired).
    lease: Option<Lease>,
    /// The highest token ever issued for the key.
    last_token: u64,
}

/// A [`DeploymentLock`] held in memory.
///
/// Guarantees:
///
/// - a lease is live while `now < expires_at`; expiry is judged only by the `now` passed in;
/// - every new acquisition of a key (after it was free, released or expired) gets a token one
///   greater than the last token issued for that key, starting at 1, so tokens strictly
///   increase per key for the life of the service;
/// - re-acquiring a live lease by its holder, and `renew`, keep the token and set
///   `expires_at = now + ttl`;
/// - `renew` succeeds while the lease is still the key's last grant (same holder and token, not
///   released and not taken over, even if it expired in between: no one else can have written
///   with a greater token) and fails with [`Error::Conflict`] otherwise;
/// - `release` of a lease that is not the current grant does nothing.
///
/// Clones share the same leases.
#[derive(Clone, Debug, Default)]
pub struct InMemoryLock {
    keys: Arc<Mutex<BTreeMap<String, Key>>>,
}

impl InMemoryLock {
    /// A lock service with every key free.
    pub fn new() -> Self {
        InMemoryLock::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Key>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last token issued for `key` (0 when never acquired).
    pub fn last_token(&self, key: &str) -> u64 {
        self.lock().get(key).map_or(0, |k| k.last_token)
    }

    /// Every key with an unreleased grant (live or expired), sorted, with its lease.
    pub fn leases(&self) -> Vec<Lease> {
        self.lock()
            .values()
            .filter_map(|k| k.lease.clone())
            .collect()
    }
}

fn live(lease: &Lease, now: Timestamp) -> bool {
    now < lease.expires_at
}

#[async_trait]
impl DeploymentLock for InMemoryLock {
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let mut keys = self.lock();
        let entry = keys.entry(key.to_owned()).or_default();
        let expires_at = add(now, ttl);
        if let Some(lease) = entry.lease.as_mut().filter(|l| live(l, now)) {
            if lease.holder != holder {
                return Ok(None);
            }
            lease.expires_at = expires_at.max(lease.expires_at);
            return Ok(Some(lease.clone()));
        }
        entry.last_token += 1;
        let lease = Lease {
            key: key.to_owned(),
            holder: holder.to_owned(),
            token: entry.last_token,
            expires_at,
        };
        entry.lease = Some(lease.clone());
        Ok(Some(lease))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
        let mut keys = self.lock();
        let current = keys
            .get_mut(&lease.key)
            .and_then(|k| k.lease.as_mut())
            .filter(|c| c.token == lease.token && c.holder == lease.holder);
        match current {
            Some(current) => {
                current.expires_at = add(now, ttl).max(current.expires_at);
                Ok(current.clone())
            }
            None => Err(Error::Conflict {
                what: format!(
                    "lease of `{}` with token {} held by `{}` was lost (released or taken \
                     over); stop writing and re-acquire",
                    lease.key, lease.token, lease.holder
                ),
            }),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let mut keys = self.lock();
        if let Some(key) = keys.get_mut(&lease.key)
            && key
                .lease
                .as_ref()
                .is_some_and(|c| c.token == lease.token && c.holder == lease.holder)
        {
            key.lease = None;
        }
        Ok(())
    }

    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
        Ok(self
            .lock()
            .get(key)
            .and_then(|k| k.lease.clone())
            .filter(|l| live(l, now)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::executor::block_on;

    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn at(s: i64) -> Timestamp {
        Timestamp::constant(1_767_632_400 + s, 0)
    }

    #[test]
    fn expired_lease_can_still_be_renewed_if_nobody_took_it() {
        let lock = InMemoryLock::new();
        block_on(async {
            let a = lock.acquire("k", "a", TTL, at(0)).await.unwrap().unwrap();
            let renewed = lock.renew(&a, TTL, at(100)).await.unwrap();
            assert_eq!((renewed.token, renewed.expires_at), (a.token, at(160)));
        });
    }

    #[test]
    fn holder_reacquiring_after_expiry_gets_a_new_token() {
        let lock = InMemoryLock::new();
        block_on(async {
            let a = lock.acquire("k", "a", TTL, at(0)).await.unwrap().unwrap();
            let again = lock.acquire("k", "a", TTL, at(61)).await.unwrap().unwrap();
            assert_eq!((a.token, again.token), (1, 2));
            assert_eq!(lock.last_token("k"), 2);
            assert_eq!(lock.leases(), [again]);
        });
    }

    #[test]
    fn exactly_at_expiry_the_lease_is_no_longer_live() {
        let lock = InMemoryLock::new();
        block_on(async {
            lock.acquire("k", "a", TTL, at(0)).await.unwrap().unwrap();
            assert!(lock.current("k", at(59)).await.unwrap().is_some());
            assert!(lock.current("k", at(60)).await.unwrap().is_none());
            assert!(lock.acquire("k", "b", TTL, at(60)).await.unwrap().is_some());
        });
    }
}

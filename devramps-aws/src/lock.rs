//! [`S3Lock`]: leases as one object per key, replaced only with conditional writes.
//!
//! `leases/<key>.json` holds the key's last grant: holder, token, expiry and whether it was
//! released. It is created with `If-None-Match: *` and replaced with `If-Match: <etag>` of the
//! version read, so of two racers that read the same version exactly one replaces it (the
//! other gets 412, re-reads and decides again): at most one live holder per key. Releasing
//! keeps the object (marked released) so the token never goes back: a new acquisition gets the
//! stored token + 1, whatever process makes it.
//!
//! # Clock assumptions
//!
//! The service reads no clock: a lease is live while `now < expires_at`, with `now` what the
//! caller passes. Engines sharing a bucket must therefore have clocks that agree to well within
//! the lease TTL; a clock running ahead can take a lease that another engine still believes
//! live. Safety does not rest on clocks: the fencing token of the new grant is higher, and
//! the event store refuses the old holder's appends once the new holder fenced the stream
//! (see [`crate::store`]).

use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{DeploymentLock, Lease};
use devramps_core::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::s3::{Condition, Put};
use crate::{S3Location, encode_segment};

/// A [`DeploymentLock`] on S3; see the [module](self) docs. Semantics as the in-memory lock:
/// re-acquiring a live lease by its holder and `renew` keep the token and set
/// `expires_at = now + ttl` (never earlier than it was); `renew` succeeds while the lease is
/// still the key's last grant.
#[derive(Clone, Debug)]
pub struct S3Lock {
    location: S3Location,
}

/// The body of a lease object.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Grant {
    holder: String,
    token: u64,
    expires_at: Timestamp,
    released: bool,
}

impl Grant {
    fn live(&self, now: Timestamp) -> bool {
        !self.released && now < self.expires_at
    }

    fn lease(&self, key: &str) -> Lease {
        Lease {
            key: key.to_owned(),
            holder: self.holder.clone(),
            token: self.token,
            expires_at: self.expires_at,
        }
    }
}

/// How many lost races a call re-reads after before it answers [`Error::Conflict`].
const ROUNDS: usize = 32;

fn later(now: Timestamp, ttl: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

impl S3Lock {
    /// A lease service at `location`.
    pub fn new(location: S3Location) -> Self {
        S3Lock { location }
    }

    fn object(&self, key: &str) -> String {
        self.location
            .key(&format!("leases/{}.json", encode_segment(key)))
    }

    async fn read(&self, key: &str) -> Result<Option<(Grant, String)>> {
        let object = self.object(key);
        let Some((bytes, etag)) = self.location.get(&object).await? else {
            return Ok(None);
        };
        let grant = serde_json::from_slice(&bytes).map_err(|e| {
            Error::backend(
                "s3",
                format!("read the lease of `{key}`"),
                format!(
                    "object `{}` is not a lease this service wrote: {e}",
                    self.location.url(&object)
                ),
            )
        })?;
        Ok(Some((grant, etag)))
    }

    /// Writes `grant` if the object is still at `etag` (absent when `None`).
    async fn write(&self, key: &str, grant: &Grant, etag: Option<String>) -> Result<bool> {
        let body = serde_json::to_vec(grant)
            .map_err(|e| Error::backend_from("s3", format!("encode the lease of `{key}`"), e))?;
        let condition = etag.map_or(Condition::Absent, Condition::Matches);
        Ok(matches!(
            self.location
                .put_if(&self.object(key), body, condition)
                .await?,
            Put::Written(_)
        ))
    }

    fn busy(key: &str) -> Error {
        Error::Conflict {
            what: format!(
                "the lease of `{key}` changed {ROUNDS} times while being written; try again"
            ),
        }
    }
}

#[async_trait]
impl DeploymentLock for S3Lock {
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        for _ in 0..ROUNDS {
            let current = self.read(key).await?;
            let grant = match &current {
                Some((g, _)) if g.live(now) && g.holder != holder => return Ok(None),
                Some((g, _)) if g.live(now) => Grant {
                    expires_at: later(now, ttl).max(g.expires_at),
                    ..g.clone()
                },
                other => Grant {
                    holder: holder.to_owned(),
                    token: other.as_ref().map_or(0, |(g, _)| g.token) + 1,
                    expires_at: later(now, ttl),
                    released: false,
                },
            };
            if self
                .write(key, &grant, current.map(|(_, etag)| etag))
                .await?
            {
                return Ok(Some(grant.lease(key)));
            }
        }
        Err(Self::busy(key))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
        for _ in 0..ROUNDS {
            let current = self.read(&lease.key).await?;
            let Some((grant, etag)) = current
                .filter(|(g, _)| !g.released && g.holder == lease.holder && g.token == lease.token)
            else {
                return Err(Error::Conflict {
                    what: format!(
                        "lease of `{}` with token {} held by `{}` was lost (released or taken \
                         over); stop writing and re-acquire",
                        lease.key, lease.token, lease.holder
                    ),
                });
            };
            let renewed = Grant {
                expires_at: later(now, ttl).max(grant.expires_at),
                ..grant
            };
            if self.write(&lease.key, &renewed, Some(etag)).await? {
                return Ok(renewed.lease(&lease.key));
            }
        }
        Err(Self::busy(&lease.key))
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        for _ in 0..ROUNDS {
            let current = self.read(&lease.key).await?;
            let Some((grant, etag)) = current
                .filter(|(g, _)| !g.released && g.holder == lease.holder && g.token == lease.token)
            else {
                return Ok(());
            };
            let released = Grant {
                released: true,
                ..grant
            };
            if self.write(&lease.key, &released, Some(etag)).await? {
                return Ok(());
            }
        }
        Err(Self::busy(&lease.key))
    }

    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
        Ok(self
            .read(key)
            .await?
            .filter(|(g, _)| g.live(now))
            .map(|(g, _)| g.lease(key)))
    }
}

//! [`DeploymentLock`] on the `leases` table.
//!
//! Per key, `last_token` is the last token ever issued and only grows; the current grant is
//! `holder`, `token` and the expiry (`expires_s`, `expires_ns`: jiff's seconds and nanoseconds),
//! or NULLs once released. A lease is live while `now < expires_at`, judged by the `now` the
//! caller passes. Re-acquiring a live lease by its holder, and `renew`, keep the token and set
//! the expiry to `now + ttl` (never earlier than it was). `renew` succeeds while the lease is
//! still the key's current grant, even if it expired meanwhile (no one else can have written
//! with a greater token then).

use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{DeploymentLock, Lease};
use devramps_core::{Error, Result};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Failure, LocalStore, corrupt};

/// The row of a key: its last token and its current grant.
struct Row {
    last_token: u64,
    grant: Option<Lease>,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

fn row(conn: &Connection, key: &str) -> Result<Option<Row>, Failure> {
    type Raw = (u64, Option<String>, Option<u64>, Option<i64>, Option<i32>);
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT last_token, holder, token, expires_s, expires_ns FROM leases WHERE key = ?1",
        )?
        .query_row([key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((last_token, holder, token, seconds, nanos)) = raw else {
        return Ok(None);
    };
    let grant = match (holder, token, seconds, nanos) {
        (Some(holder), Some(token), Some(s), Some(ns)) => {
            let expires_at = Timestamp::new(s, ns).map_err(|e| {
                corrupt(format!(
                    "the lease of `{key}` has an impossible expiry ({s}s {ns}ns: {e})"
                ))
            })?;
            Some(Lease {
                key: key.to_owned(),
                holder,
                token,
                expires_at,
            })
        }
        (None, None, None, None) => None,
        _ => return Err(corrupt(format!("the lease of `{key}` is half-written"))),
    };
    Ok(Some(Row { last_token, grant }))
}

/// Writes the key's row: its last token and its grant (NULLs for none).
fn write(
    conn: &Connection,
    key: &str,
    last_token: u64,
    grant: Option<&Lease>,
) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO leases (key, last_token, holder, token, expires_s, expires_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key) DO UPDATE SET last_token = ?2, holder = ?3, token = ?4,
             expires_s = ?5, expires_ns = ?6",
    )?
    .execute(params![
        key,
        last_token,
        grant.map(|g| g.holder.as_str()),
        grant.map(|g| g.token),
        grant.map(|g| g.expires_at.as_second()),
        grant.map(|g| g.expires_at.subsec_nanosecond()),
    ])?;
    Ok(())
}

fn same(a: &Lease, b: &Lease) -> bool {
    a.holder == b.holder && a.token == b.token
}

fn lost(lease: &Lease) -> Failure {
    Failure::Said(Error::Conflict {
        what: format!(
            "lease of `{}` with token {} held by `{}` was lost (released or taken over); stop \
             writing and re-acquire",
            lease.key, lease.token, lease.holder
        ),
    })
}

fn acquire(
    conn: &mut Connection,
    key: &str,
    holder: &str,
    ttl: Duration,
    now: Timestamp,
) -> Result<Option<Lease>, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row = row(&tx, key)?.unwrap_or(Row {
        last_token: 0,
        grant: None,
    });
    let expires_at = add(now, ttl);
    let lease = match row.grant.filter(|g| now < g.expires_at) {
        Some(live) if live.holder != holder => return Ok(None),
        Some(live) => Lease {
            expires_at: expires_at.max(live.expires_at),
            ..live
        },
        None => {
            let token = row
                .last_token
                .checked_add(1)
                .filter(|t| i64::try_from(*t).is_ok());
            let Some(token) = token else {
                return Err(Failure::Message(format!(
                    "the tokens of `{key}` are exhausted (last token {})",
                    row.last_token
                )));
            };
            Lease {
                key: key.to_owned(),
                holder: holder.to_owned(),
                token,
                expires_at,
            }
        }
    };
    write(&tx, key, row.last_token.max(lease.token), Some(&lease))?;
    tx.commit()?;
    Ok(Some(lease))
}

fn renew(
    conn: &mut Connection,
    lease: &Lease,
    ttl: Duration,
    now: Timestamp,
) -> Result<Lease, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(Row {
        last_token,
        grant: Some(current),
    }) = row(&tx, &lease.key)?
    else {
        return Err(lost(lease));
    };
    if !same(&current, lease) {
        return Err(lost(lease));
    }
    let renewed = Lease {
        expires_at: add(now, ttl).max(current.expires_at),
        ..current
    };
    write(&tx, &lease.key, last_token, Some(&renewed))?;
    tx.commit()?;
    Ok(renewed)
}

fn release(conn: &mut Connection, lease: &Lease) -> Result<(), Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(Row {
        last_token,
        grant: Some(current),
    }) = row(&tx, &lease.key)?
        && same(&current, lease)
    {
        write(&tx, &lease.key, last_token, None)?;
        tx.commit()?;
    }
    Ok(())
}

#[async_trait]
impl DeploymentLock for LocalStore {
    async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let (k, h) = (key.to_owned(), holder.to_owned());
        self.call(
            format!("acquire the lease of `{key}` for `{holder}`"),
            move |conn| acquire(conn, &k, &h, ttl, now),
        )
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, now: Timestamp) -> Result<Lease> {
        let l = lease.clone();
        self.call(format!("renew the lease of `{}`", lease.key), move |conn| {
            renew(conn, &l, ttl, now)
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let l = lease.clone();
        self.call(
            format!("release the lease of `{}`", lease.key),
            move |conn| release(conn, &l),
        )
        .await
    }

    async fn current(&self, key: &str, now: Timestamp) -> Result<Option<Lease>> {
        let k = key.to_owned();
        self.call(format!("read the lease of `{key}`"), move |conn| {
            Ok(row(conn, &k)?
                .and_then(|r| r.grant)
                .filter(|g| now < g.expires_at))
        })
        .await
    }
}

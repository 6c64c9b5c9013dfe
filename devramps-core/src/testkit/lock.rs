//! Conformance cases of [`DeploymentLock`]: each checks one clause of its `# Contract`.
//!
//! Run them all with [`lock_conformance_tests!`](crate::lock_conformance_tests). Every case
//! expects a fresh lock service and panics with a message naming the violated clause. Time is
//! passed in as `now`, starting at 2026-01-05T17:00:00Z.

use std::time::Duration;

use jiff::Timestamp;

use crate::Error;
use crate::backend::{DeploymentLock, Lease};

use super::{Capabilities, ok};

const TTL: Duration = Duration::from_secs(30);
const KEY: &str = "conformance/prod";

fn at(seconds: u64) -> Timestamp {
    Timestamp::constant(1_767_632_400 + seconds as i64, 0)
}

async fn acquire(lock: &dyn DeploymentLock, holder: &str, now: Timestamp) -> Option<Lease> {
    ok(
        lock.acquire(KEY, holder, TTL, now).await,
        &format!("acquire by {holder} at {now}"),
    )
}

async fn must_acquire(lock: &dyn DeploymentLock, holder: &str, now: Timestamp) -> Lease {
    match acquire(lock, holder, now).await {
        Some(lease) => lease,
        None => panic!("{holder} must get the lease of {KEY} at {now}"),
    }
}

/// A free key is acquired: the lease names the key and holder and expires `ttl` after `now`.
pub async fn acquire_free_key(lock: &dyn DeploymentLock, _: &Capabilities) {
    assert_eq!(
        ok(lock.current(KEY, at(0)).await, "current"),
        None,
        "a fresh key is free"
    );
    let lease = must_acquire(lock, "engine-a", at(0)).await;
    assert_eq!(lease.key, KEY, "lease key");
    assert_eq!(lease.holder, "engine-a", "lease holder");
    assert_eq!(lease.expires_at, at(30), "a lease expires ttl after now");
    assert_eq!(
        ok(lock.current(KEY, at(1)).await, "current"),
        Some(lease),
        "current returns the live lease"
    );
}

/// While a lease is live, another holder gets `Ok(None)` and the lease is unchanged.
pub async fn second_holder_refused_while_live(lock: &dyn DeploymentLock, _: &Capabilities) {
    let lease = must_acquire(lock, "engine-a", at(0)).await;
    assert_eq!(
        acquire(lock, "engine-b", at(10)).await,
        None,
        "b while a's lease is live"
    );
    assert_eq!(
        acquire(lock, "engine-b", at(29)).await,
        None,
        "b just before expiry"
    );
    assert_eq!(
        ok(lock.current(KEY, at(10)).await, "current"),
        Some(lease),
        "a refused acquisition leaves the lease unchanged"
    );
    let other = ok(
        lock.acquire("conformance/other", "engine-b", TTL, at(10))
            .await,
        "other",
    );
    assert!(other.is_some(), "keys are independent: b gets another key");
}

/// Re-acquiring by the holder of a live lease extends it and keeps its token.
pub async fn reacquire_by_holder_extends(lock: &dyn DeploymentLock, _: &Capabilities) {
    let first = must_acquire(lock, "engine-a", at(0)).await;
    let again = must_acquire(lock, "engine-a", at(20)).await;
    assert_eq!(again.token, first.token, "an extension keeps the token");
    assert_eq!(
        again.expires_at,
        at(50),
        "an extension expires ttl after the new now"
    );
    assert_eq!(
        acquire(lock, "engine-b", at(40)).await,
        None,
        "the extension holds at 40"
    );
}

/// An expired lease is taken by another holder with a greater token.
pub async fn expired_lease_taken_with_greater_token(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    assert_eq!(
        ok(lock.current(KEY, at(31)).await, "current"),
        None,
        "expired is not live"
    );
    let b = must_acquire(lock, "engine-b", at(31)).await;
    assert!(
        b.token > a.token,
        "new acquisition token {} must exceed {}",
        b.token,
        a.token
    );
    assert_eq!(
        ok(lock.current(KEY, at(32)).await, "current"),
        Some(b),
        "b is current"
    );
}

/// `renew` extends a live lease with the same token.
pub async fn renew_extends_live_lease(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    let renewed = ok(lock.renew(&a, TTL, at(25)).await, "renew at 25");
    assert_eq!(renewed.token, a.token, "renewal keeps the token");
    assert_eq!(renewed.holder, a.holder, "renewal keeps the holder");
    assert_eq!(renewed.expires_at, at(55), "renewal expires ttl after now");
    assert_eq!(
        acquire(lock, "engine-b", at(40)).await,
        None,
        "the renewal holds at 40"
    );
}

/// `renew` of a lost lease (expired and taken, or released) fails with [`Error::Conflict`].
pub async fn renew_after_loss_conflicts(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    let b = must_acquire(lock, "engine-b", at(40)).await;
    match lock.renew(&a, TTL, at(41)).await {
        Err(Error::Conflict { .. }) => {}
        other => panic!("renewing a lease taken by another: expected Conflict, got {other:?}"),
    }
    assert_eq!(
        ok(lock.current(KEY, at(41)).await, "current"),
        Some(b.clone()),
        "b kept it"
    );
    ok(lock.release(&b).await, "release b");
    match lock.renew(&b, TTL, at(42)).await {
        Err(Error::Conflict { .. }) => {}
        other => panic!("renewing a released lease: expected Conflict, got {other:?}"),
    }
}

/// Releasing the current lease frees the key at once.
pub async fn release_frees_key(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    ok(lock.release(&a).await, "release");
    assert_eq!(
        ok(lock.current(KEY, at(1)).await, "current"),
        None,
        "released key is free"
    );
    let b = must_acquire(lock, "engine-b", at(1)).await;
    assert!(
        b.token > a.token,
        "acquisition after release gets a greater token"
    );
}

/// Releasing a lease that is no longer current does nothing.
pub async fn release_stale_lease_does_nothing(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    let b = must_acquire(lock, "engine-b", at(31)).await;
    ok(lock.release(&a).await, "releasing a stale lease succeeds");
    assert_eq!(
        ok(lock.current(KEY, at(32)).await, "current"),
        Some(b.clone()),
        "releasing a stale lease must not free the current one"
    );
    ok(lock.release(&b).await, "release b");
    ok(lock.release(&b).await, "releasing twice does nothing");
    assert_eq!(
        ok(lock.current(KEY, at(33)).await, "current"),
        None,
        "free after release"
    );
}

/// Tokens strictly increase across many acquisitions by changing holders (after expiry and
/// after release).
pub async fn tokens_strictly_increase(lock: &dyn DeploymentLock, _: &Capabilities) {
    let mut last: Option<u64> = None;
    let mut now = 0;
    for round in 0..20u64 {
        let holder = if round % 3 == 0 {
            "engine-a"
        } else {
            "engine-b"
        };
        let lease = must_acquire(lock, holder, at(now)).await;
        if let Some(previous) = last {
            assert!(
                lease.token > previous,
                "round {round}: token {} must exceed {previous}",
                lease.token
            );
        }
        last = Some(lease.token);
        if round % 2 == 0 {
            ok(lock.release(&lease).await, "release");
            now += 1;
        } else {
            now += 31;
        }
    }
}

/// `renew` of a lease by someone who is not its holder (a forged or confused lease) fails with
/// [`Error::Conflict`] and leaves the real lease alone.
pub async fn renew_by_another_holder_conflicts(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    let forged = Lease {
        holder: "engine-b".to_owned(),
        ..a.clone()
    };
    match lock.renew(&forged, TTL, at(5)).await {
        Err(Error::Conflict { .. }) => {}
        other => panic!("renewing another holder's lease: expected Conflict, got {other:?}"),
    }
    ok(
        lock.release(&forged).await,
        "releasing another holder's lease",
    );
    assert_eq!(
        ok(lock.current(KEY, at(6)).await, "current"),
        Some(a),
        "a forged renew or release leaves the real lease alone"
    );
}

/// Keys are independent: leases of different keys are held at once by different holders,
/// and releasing one leaves the other.
pub async fn keys_are_independent(lock: &dyn DeploymentLock, _: &Capabilities) {
    let a = must_acquire(lock, "engine-a", at(0)).await;
    let other = ok(
        lock.acquire("conformance/staging", "engine-b", TTL, at(1))
            .await,
        "acquire another key",
    );
    let Some(other) = other else {
        panic!("another key is free while {KEY} is held");
    };
    assert_eq!(other.key, "conformance/staging", "lease key");
    ok(lock.release(&a).await, "release a");
    assert_eq!(
        ok(lock.current("conformance/staging", at(2)).await, "current"),
        Some(other),
        "releasing one key leaves another"
    );
}

/// The lease service a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject<B: DeploymentLock>(backend: &B) -> &dyn DeploymentLock {
    backend
}

//! Many engines on one bucket (L21 for real): the harness of `devramps_memory::many_engines`
//! (three engine instances, a seeded random history of pushes, repeated deliveries, people's
//! actions, clock jumps past the lease's TTL, crashes and restarts) with every instance on
//! the same moto bucket, each through its own S3 client, event store and lease service (its own
//! connection pool and caches, as separate processes would have).
//!
//! - Plain: the instances talk to moto directly.
//! - Faulty: every request goes through a [`FaultProxy`] that answers a fifth of them with
//!   500/503/SlowDown, drops the answer of a tenth of the writes after they landed, and delays
//!   each by up to 5 ms.
//!
//! Either way the harness checks the merged log at every prefix (L1, L5, L6, the transition
//! table), that every instance reports its fold, that replaying the inputs the instances
//! observed through one machine gives the log record for record (what one engine produces
//! from the same inputs), and that no instance started work while another held the lease.
//! The engines run on one single-threaded executor with a manual clock; the S3 calls run on
//! the backends' own tokio runtime ([`OnRuntime`]), counted so the harness knows when the
//! instances are quiet.
//!
//! More seeds: `MANY_ENGINES_S3_SEEDS=5 scripts/test -p devramps-aws --test many_engines`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use devramps_aws::runtime::{CallsInFlight, OnRuntime, block_on};
use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::backend::{DynDeploymentLock, DynEventStore};
use devramps_memory::many_engines::{History, Shared, run_history};
use devramps_s3_faults::{FaultPlan, FaultProxy};

fn seeds(default: u64) -> u64 {
    std::env::var("MANY_ENGINES_S3_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs the history of `seed` on a fresh bucket, each instance reaching S3 at `endpoint`.
fn run_on_s3(seed: u64, endpoint: &str) -> History {
    let bucket = block_on(support::fresh_bucket()).unwrap();
    let in_flight = CallsInFlight::new();
    let counted = in_flight.clone();
    let endpoint = endpoint.to_owned();
    run_history(seed, move |_| Shared {
        connect: Box::new(move |_instance| {
            let (endpoint, bucket) = (endpoint.clone(), bucket.clone());
            let client = block_on(async move { support::client_at(&endpoint).await }).unwrap();
            let location = S3Location::new(client, bucket, "many-engines");
            let store: DynEventStore = Arc::new(OnRuntime::counted(
                S3EventStore::new(location.clone()),
                &counted,
            ));
            let lock: DynDeploymentLock =
                Arc::new(OnRuntime::counted(S3Lock::new(location), &counted));
            (store, lock)
        }),
        in_flight: Some(Box::new(move || in_flight.get())),
    })
}

fn report(seed: u64, what: &str, history: &History) {
    eprintln!(
        "{what} seed {seed}: {} records, {} deployments, {} appends, {} tokens, errors {:?}",
        history.log.len(),
        history.deployments,
        history.appends.len(),
        history.tokens,
        history.errors
    );
}

#[test]
fn l21_three_engines_on_one_bucket_keep_every_invariant_and_replay_from_their_inputs() {
    for seed in 1..=seeds(1) {
        let history = run_on_s3(seed, &support::endpoint());
        report(seed, "plain", &history);
        // Without faults the only error a caller may see is a race lost after every retry.
        let unexpected: Vec<&String> = history
            .errors
            .iter()
            .filter(|e| !e.contains("kept changing"))
            .collect();
        assert!(unexpected.is_empty(), "seed {seed}: errors {unexpected:?}");
    }
}

#[test]
fn l21_three_engines_on_one_bucket_through_injected_faults_keep_every_invariant() {
    for seed in 1..=seeds(1) {
        let proxy = FaultProxy::start(
            &support::endpoint(),
            FaultPlan {
                error_share: 0.2,
                drop_after_write_share: 0.1,
                delay: Some((Duration::ZERO, Duration::from_millis(5))),
                seed,
            },
        )
        .unwrap_or_else(|e| panic!("starting the fault proxy: {e}"));
        let history = run_on_s3(seed + 100, proxy.endpoint());
        report(seed, "faulty", &history);
        let counts = proxy.counts();
        eprintln!("faulty seed {seed}: {counts:?}");
        assert!(
            counts.faults() > 100 && counts.dropped_after_write > 10,
            "seed {seed}: the proxy injected faults: {counts:?}"
        );
        // A call may still fail after every retry (the store said `unavailable`): the
        // caller sees the error, and the log stays whole (checked by the harness).
        let unexpected: Vec<&String> = history
            .errors
            .iter()
            .filter(|e| !e.contains("kept changing") && !e.contains("unavailable"))
            .collect();
        assert!(unexpected.is_empty(), "seed {seed}: errors {unexpected:?}");
    }
}

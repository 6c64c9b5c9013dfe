//! The conformance kit of `devramps_core::testkit`, run against the in-memory store and lock,
//! and against their fault-injecting decorators with no faults scheduled; then tests that
//! injected faults are reported and never half-applied.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use devramps_core::Error;
use devramps_core::backend::{AppendOptions, DeploymentLock, DynEventStore, EventStore};
use devramps_memory::{
    DEFAULT_START, Fault, FaultOptions, FaultSchedule, FaultyLock, FaultyStore, InMemoryEventStore,
    InMemoryLock,
};
use futures::executor::block_on;
use serde_json::json;

mod in_memory_store {
    devramps_core::store_conformance_tests!(devramps_memory::InMemoryEventStore::new());
}

mod in_memory_store_as_dyn {
    devramps_core::store_conformance_tests!(std::sync::Arc::new(
        devramps_memory::InMemoryEventStore::new()
    ) as devramps_core::backend::DynEventStore);
}

mod in_memory_lock {
    devramps_core::lock_conformance_tests!(devramps_memory::InMemoryLock::new());
}

mod faulty_store_without_faults {
    devramps_core::store_conformance_tests!(devramps_memory::FaultyStore::new(
        devramps_memory::InMemoryEventStore::new(),
        devramps_memory::FaultOptions::default(),
    ));
}

mod faulty_store_with_latency {
    // Yields between calls let the concurrent-append case interleave its two writers.
    devramps_core::store_conformance_tests!(devramps_memory::FaultyStore::new(
        devramps_memory::InMemoryEventStore::new(),
        devramps_memory::FaultOptions {
            latency_yields: 3,
            ..Default::default()
        },
    ));
}

mod faulty_lock_without_faults {
    devramps_core::lock_conformance_tests!(devramps_memory::FaultyLock::new(
        devramps_memory::InMemoryLock::new(),
        devramps_memory::FaultOptions::default(),
    ));
}

fn at_calls(calls: impl IntoIterator<Item = (u64, Fault)>) -> FaultOptions {
    FaultOptions {
        schedule: FaultSchedule::at_calls(calls),
        latency_yields: 0,
    }
}

fn append(store: &dyn EventStore, expected: u64) -> devramps_core::Result<u64> {
    block_on(store.append(
        "api",
        expected,
        vec![json!({"n": expected + 1})],
        AppendOptions::default(),
    ))
}

#[test]
fn injected_unavailable_and_conflict_write_nothing() {
    let store = FaultyStore::new(
        InMemoryEventStore::new(),
        at_calls([(2, Fault::Unavailable), (3, Fault::Conflict)]),
    );
    assert_eq!(append(&store, 0).unwrap(), 1);
    let err = append(&store, 1).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains("call 2"),
        "the message names the call: {err}"
    );
    assert_eq!(
        block_on(store.inner().last_seq("api")).unwrap(),
        1,
        "nothing written"
    );
    let err = append(&store, 1).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        block_on(store.inner().last_seq("api")).unwrap(),
        1,
        "nothing written"
    );
    assert_eq!(append(&store, 1).unwrap(), 2, "the retry goes through");
    let faults: Vec<(u64, Fault)> = store.injected().iter().map(|f| (f.call, f.fault)).collect();
    assert_eq!(faults, [(2, Fault::Unavailable), (3, Fault::Conflict)]);
}

#[test]
fn ack_lost_applies_the_append_and_a_re_read_finds_it() {
    let store = FaultyStore::new(InMemoryEventStore::new(), at_calls([(1, Fault::AckLost)]));
    let err = append(&store, 0).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains("acknowledgement was lost"),
        "{err}"
    );
    // The engine re-reads: the append happened, so retrying blindly would conflict.
    assert_eq!(block_on(store.last_seq("api")).unwrap(), 1);
    assert!(matches!(append(&store, 0), Err(Error::Conflict { .. })));
}

#[test]
fn injected_read_faults_fail_reads_only() {
    let store = FaultyStore::new(
        InMemoryEventStore::new(),
        at_calls([
            (2, Fault::Conflict),
            (3, Fault::AckLost),
            (4, Fault::Unavailable),
        ]),
    );
    append(&store, 0).unwrap();
    for _ in 0..2 {
        let err = block_on(store.read("api", 0, None)).unwrap_err();
        assert!(
            matches!(err, Error::Unavailable { .. }),
            "reads fail as unavailable: {err}"
        );
    }
    assert!(block_on(store.streams()).is_err());
    assert_eq!(block_on(store.read("api", 0, None)).unwrap().len(), 1);
}

#[test]
fn random_faults_never_half_apply() {
    let store = FaultyStore::new(
        InMemoryEventStore::new(),
        FaultOptions {
            schedule: FaultSchedule::Random {
                seed: 42,
                one_in: 3,
                faults: vec![Fault::Unavailable, Fault::Conflict, Fault::AckLost],
            },
            latency_yields: 1,
        },
    );
    // A writer that appends batches of 3, re-reading the true state after every failure.
    let mut last = 0;
    let mut acked_lost = 0;
    for _ in 0..200 {
        let batch = vec![json!("e"); 3];
        match block_on(store.append("api", last, batch, AppendOptions::default())) {
            Ok(new_last) => last = new_last,
            Err(_) => {
                let before = last;
                last = block_on(store.inner().last_seq("api")).unwrap();
                if last != before {
                    acked_lost += 1;
                }
            }
        }
        assert_eq!(last % 3, 0, "batches are whole: last seq {last}");
    }
    let injected = store.injected();
    let ack_lost_faults = injected
        .iter()
        .filter(|f| f.fault == Fault::AckLost)
        .count();
    assert_eq!(
        acked_lost, ack_lost_faults,
        "only ack-lost faults change the log"
    );
    assert!(
        injected.len() > 20,
        "faults were injected: {}",
        injected.len()
    );
    let seqs: Vec<u64> = block_on(store.inner().read("api", 0, None))
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "no gaps, nothing torn"
    );
}

#[test]
fn injected_lock_faults_are_reported_and_never_half_applied() {
    let lock = FaultyLock::new(
        InMemoryLock::new(),
        at_calls([
            (1, Fault::Unavailable),
            (2, Fault::Conflict),
            (4, Fault::Conflict),
            (5, Fault::AckLost),
        ]),
    );
    let ttl = Duration::from_secs(30);
    let now = DEFAULT_START;
    let acquire = || block_on(lock.acquire("api/prod", "a", ttl, now));
    assert!(matches!(acquire(), Err(Error::Unavailable { .. })));
    assert_eq!(
        acquire().unwrap(),
        None,
        "an injected conflict looks like a held key"
    );
    assert_eq!(
        lock.inner().last_token("api/prod"),
        0,
        "no lease was granted"
    );
    let lease = acquire().unwrap().unwrap();
    let err = block_on(lock.renew(&lease, ttl, now)).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        block_on(lock.inner().current("api/prod", now)).unwrap(),
        Some(lease.clone()),
        "an injected renew conflict changes nothing"
    );
    assert!(block_on(lock.release(&lease)).is_err(), "ack lost");
    assert_eq!(
        block_on(lock.current("api/prod", now)).unwrap(),
        None,
        "an ack-lost release did release"
    );
}

#[test]
fn decorators_work_behind_trait_objects() {
    let store: DynEventStore = Arc::new(FaultyStore::new(
        InMemoryEventStore::new(),
        FaultOptions::default(),
    ));
    assert_eq!(append(store.as_ref(), 0).unwrap(), 1);
}

//! Restart time of a pipeline with a 10,000-record log (issue "Contracts v2", item 6): what
//! loading its machine costs with a full replay of the log (as every load did before
//! snapshots) against the latest snapshot plus the records after it.
//!
//! The log: a pipeline of 3 stages x 5 instant steps (`lifecycle_pipeline`), pushed and run to
//! completion again and again by the engine (default `snapshot_every`, 1,000) on the in-memory
//! backends until it has 10,000 records. Measured:
//!
//! - `load: full replay`: read the log, decode the records, replay them (synthesizing every
//!   deployment's plan);
//! - `load: snapshot + tail`: read and decode the latest snapshot (plans are synthesized on
//!   first use), read and apply the records after it;
//! - `load: snapshot + tail, every plan used`: the same, then every plan synthesized (the
//!   worst case of later use);
//! - `engine restart: ...`: a new engine on the store (with and without the snapshot) until it
//!   answers its first `state` request.
//!
//! Run with `cargo bench -p devramps-benches --bench restart`; `cargo test --benches` runs it
//! once at 1/10 of the size.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use devramps_core::backend::{AppendOptions, Backends, EventStore, EventStoreExt};
use devramps_core::lifecycle::{Machine, PipelineState, Record, StageState};
use devramps_memory::InMemoryEventStore;
use futures::executor::block_on;

/// Records of the log in a measuring run.
const RECORDS: usize = 10_000;
/// The pipeline's slug.
const SLUG: &str = "app";

/// Whether this run measures (`cargo bench`) rather than smoke-tests (`cargo test --benches`).
static FULL: AtomicBool = AtomicBool::new(false);

/// The records to build: [`RECORDS`], or a tenth in a smoke test.
fn records_wanted() -> usize {
    if FULL.load(Ordering::Relaxed) {
        RECORDS
    } else {
        RECORDS / 10
    }
}

/// Every deployment's stages succeeded: the log is what it should be.
fn check(state: &PipelineState) {
    assert!(
        state.deployments.len() > 10,
        "deployments: {}",
        state.deployments.len()
    );
    for d in state.deployments.values() {
        for s in &d.stages {
            assert_eq!(
                s.state,
                StageState::Succeeded,
                "revision {} {}",
                d.revision,
                s.name
            );
        }
    }
}

/// Loads with a full replay, as every load did before snapshots.
fn full_replay(store: &InMemoryEventStore) -> Machine {
    let events = block_on(store.read_all(SLUG)).expect("reads");
    let records: Vec<Record> = events
        .into_iter()
        .map(|e| Record::from_stored(SLUG, e).expect("a record"))
        .collect();
    Machine::replay(SLUG, &records)
}

/// Loads the latest snapshot and the records after it, as the engine does.
fn snapshot_and_tail(store: &InMemoryEventStore) -> Machine {
    let snapshot = block_on(store.load_snapshot(SLUG))
        .expect("loads")
        .expect("the engine saved a snapshot");
    let mut machine = Machine::from_snapshot(SLUG, &snapshot.state).expect("decodes");
    let events = block_on(store.read(SLUG, machine.state().applied, None)).expect("reads");
    let records: Vec<Record> = events
        .into_iter()
        .map(|e| Record::from_stored(SLUG, e).expect("a record"))
        .collect();
    machine.apply(&records);
    machine
}

/// Forces every plan of `machine` (as later use of every deployment would).
fn use_every_plan(machine: &Machine) -> usize {
    machine
        .state()
        .deployments
        .values()
        .filter(|d| d.plan().is_some())
        .count()
}

/// A new engine on `backends` until it answers its first `state` request.
fn restart(backends: &Backends) -> PipelineState {
    let (mut pool, engine) = devramps_benches::start_engine(backends);
    let state = pool.run_until(engine.state(SLUG)).expect("state");
    pool.run_until(engine.stop()).expect("stops");
    state
}

fn bench(c: &mut Criterion) {
    let (backends, handles) = devramps_benches::completed_deployments(SLUG, records_wanted());
    let store = handles.store.clone();
    // The same log in a store without snapshots.
    let bare = InMemoryEventStore::new();
    let payloads = block_on(store.read_all(SLUG))
        .expect("reads")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    block_on(bare.append(SLUG, 0, payloads, AppendOptions::default())).expect("copied");
    let bare_backends = Backends {
        store: Arc::new(bare),
        ..backends.clone()
    };
    let last = block_on(store.last_seq(SLUG)).expect("last seq");
    let snapshot = block_on(store.load_snapshot(SLUG))
        .expect("loads")
        .expect("a snapshot");
    let replayed = full_replay(&store);
    check(replayed.state());
    assert_eq!(snapshot_and_tail(&store).state(), replayed.state());
    assert_eq!(&restart(&backends), replayed.state());
    assert_eq!(&restart(&bare_backends), replayed.state());
    println!(
        "restart: {last} records, {} deployments, snapshot at seq {} ({} bytes of JSON), tail of {}",
        replayed.state().deployments.len(),
        snapshot.seq,
        serde_json::to_vec(&snapshot.state).map_or(0, |v| v.len()),
        last - snapshot.seq
    );

    let mut group = c.benchmark_group("restart");
    group.bench_function(format!("load: full replay ({last} records)"), |b| {
        b.iter(|| black_box(full_replay(&store)))
    });
    group.bench_function(format!("load: snapshot + tail ({last} records)"), |b| {
        b.iter(|| black_box(snapshot_and_tail(&store)))
    });
    group.bench_function(
        format!("load: snapshot + tail, every plan used ({last} records)"),
        |b| b.iter(|| black_box(use_every_plan(&snapshot_and_tail(&store)))),
    );
    group.bench_function(
        format!("engine restart: full replay ({last} records)"),
        |b| b.iter(|| black_box(restart(&bare_backends))),
    );
    group.bench_function(
        format!("engine restart: snapshot + tail ({last} records)"),
        |b| b.iter(|| black_box(restart(&backends))),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}

fn main() {
    FULL.store(devramps_benches::measuring(), Ordering::Relaxed);
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! The local store (issue 13, item 1): appends per second, one event per append with
//! compare-and-swap, and the time to load (`read_all`) a 10,000-event stream; on a file in a
//! temporary directory, with durability on (`synchronous=FULL`: every append is fsynced before
//! it returns). Each event is a JSON record of about 250 bytes, like the lifecycle's.
//!
//! Run with `cargo bench -p devramps-benches --bench local_store`; `cargo test --benches` runs
//! it once at 1/10 of the size. Besides criterion's lines, it prints one summary line for each
//! figure (`local store: ...`), measured over a fixed run.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use devramps_core::backend::{AppendOptions, EventStore, EventStoreExt};
use devramps_local::store::LocalStore;
use futures::executor::block_on;
use serde_json::{Value, json};

/// Events of the stream that is loaded, in a measuring run.
const EVENTS: u64 = 10_000;
/// Appends of the summary line's fixed run, in a measuring run.
const APPENDS: u64 = 500;

/// Whether this run measures (`cargo bench`) rather than smoke-tests (`cargo test --benches`).
static FULL: AtomicBool = AtomicBool::new(false);

fn scaled(n: u64) -> u64 {
    if FULL.load(Ordering::Relaxed) {
        n
    } else {
        n / 10
    }
}

/// A record of about 250 bytes of JSON.
fn event(n: u64) -> Value {
    json!({
        "type": "step_succeeded",
        "pipeline": "app",
        "stage": "prod",
        "step": format!("deploy-{}", n % 5),
        "revision": n / 15,
        "attempt": 1,
        "at": "2026-01-05T17:00:00Z",
        "outputs": {"url": format!("https://app.example.invalid/releases/{n}"), "version": n},
        "execution": format!("app/prod/{}/deploy-{}/1", n / 15, n % 5),
    })
}

/// Appends one event after `*last`, and counts it.
fn append_one(store: &LocalStore, last: &mut u64) {
    *last = block_on(store.append(
        "appends",
        *last,
        vec![event(*last + 1)],
        AppendOptions::default(),
    ))
    .expect("appends");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = LocalStore::open(dir.path().join("state.db")).expect("opens");

    // Appends: a fixed run for the summary line, then criterion's.
    let mut last = 0;
    let appends = scaled(APPENDS);
    let started = Instant::now();
    for _ in 0..appends {
        append_one(&store, &mut last);
    }
    let took = started.elapsed();
    println!(
        "local store: {:.0} appends/s (one event per append, CAS, synchronous=FULL; {appends} \
         appends in {:.3} s, {:.2} ms each)",
        appends as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / appends as f64
    );

    // A stream of EVENTS events, written in batches of 100.
    let events = scaled(EVENTS);
    let mut written = 0;
    while written < events {
        let batch = (written + 1..=(written + 100).min(events))
            .map(event)
            .collect();
        written = block_on(store.append("load", written, batch, AppendOptions::default()))
            .expect("appends");
    }
    let bytes: usize = (1..=events)
        .map(|n| serde_json::to_vec(&event(n)).map_or(0, |v| v.len()))
        .sum();
    let started = Instant::now();
    let loaded = block_on(store.read_all("load")).expect("loads");
    let took = started.elapsed();
    assert_eq!(loaded.len() as u64, events, "the whole stream loads");
    assert_eq!(loaded[events as usize - 1].payload, event(events));
    println!(
        "local store: load of a {events}-event stream ({:.1} MB of JSON) in {:.1} ms ({:.0} \
         events/s)",
        bytes as f64 / 1e6,
        took.as_secs_f64() * 1000.0,
        events as f64 / took.as_secs_f64()
    );

    let mut group = c.benchmark_group("local store");
    group.bench_function("append: one event, fsync on", |b| {
        b.iter(|| append_one(&store, &mut last))
    });
    group.bench_function(format!("load: read_all of {events} events"), |b| {
        b.iter(|| black_box(block_on(store.read_all("load")).expect("loads")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = devramps_benches::short_criterion();
    targets = bench
}

fn main() {
    FULL.store(devramps_benches::measuring(), Ordering::Relaxed);
    benches();
    Criterion::default().configure_from_args().final_summary();
}

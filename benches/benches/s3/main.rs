//! The engine's state on S3 (issue 11, "Performance"), against moto:
//!
//! 1. **S3 requests per stage-deployment** of a 5-step stage (`lifecycle_pipeline(1, 5)`,
//!    instant scripted steps), counted by kind by an SDK interceptor, next to the appends the
//!    engine made (counted by an [`Observer`](devramps_core::engine::Observer)). Goal: at most
//!    appends + 1. The engine runs on the scripted backends with `S3EventStore` and `S3Lock`
//!    on one bucket, on a manual clock that does not move: lease renewals (a GET and a PUT of
//!    the lease every TTL/2 of real time while a pipeline is held) are not in the figure.
//! 2. **Loading a 10,000-record log**: a log written by the engine (3 stages x 5 steps, pushed
//!    and deployed again and again on the in-memory backends, then copied to S3 append by
//!    append, with the engine's latest snapshot) loaded as a restarting engine does: the
//!    latest snapshot plus the records after it, against a replay of the whole log. A fresh
//!    `S3EventStore` per load (an instance caches the immutable objects it read). Goal: with
//!    the snapshot at most 10% of the time without.
//! 3. **Append latency** of `S3EventStore` against the in-memory store (one event of about 250
//!    bytes per append), and **pushes per second** with 3 engines against 1 on one bucket (6
//!    pipelines whose first stage is held by a step that never ends; each push goes to the
//!    next engine in turn), in the same run.
//!
//! Run with `scripts/bench-s3` (it starts moto like `scripts/test`; add `--quick` for
//! criterion's quick mode). Without `AWS_ENDPOINT_URL` the benchmark fails saying how to get
//! moto. Besides criterion's lines, it prints a summary line per figure (`s3 (n) ...`).
//! `cargo test --benches` runs it once at smaller sizes (also against moto).

mod rig;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group};
use devramps_aws::{S3EventStore, S3Location};
use devramps_benches::{interleaved_medians, lifecycle_pipeline, median_ms};
use devramps_core::backend::{AppendOptions, EventStore, EventStoreExt, Snapshot, StoredEvent};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Machine, PipelineState, Record, StageState};
use devramps_memory::{Behavior, InMemoryEventStore, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use rig::{AppendCounter, Requests, definition_path, describe, fresh_location, s3_engine};
use serde_json::{Value, json};

/// (1) Stage-deployments counted (the first takes the lease and loads the log).
const DEPLOYMENTS: usize = 5;
/// (1) Steps of the stage.
const STEPS: usize = 5;
/// (2) Records of the loaded log.
const RECORDS: usize = 10_000;
/// (3) Appends of the latency summary.
const APPENDS: usize = 200;
/// (3) Pipelines and pushes per pipeline of the throughput run.
const PIPELINES: usize = 6;
const PUSHES: usize = 10;

/// Whether this run measures (`cargo bench`) rather than smoke-tests (`cargo test --benches`).
static FULL: AtomicBool = AtomicBool::new(false);

/// `n`, or a tenth of it (at least 2) in a smoke test.
fn scaled(n: usize) -> usize {
    if FULL.load(Ordering::Relaxed) {
        n
    } else {
        (n / 10).max(2)
    }
}

/// The runtime every S3 call runs on.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

// ----- (1) requests per stage-deployment -----

/// What one stage-deployment cost.
struct Deployment {
    requests: BTreeMap<String, u64>,
    appends: u64,
    records: u64,
}

/// Deploys `n` pushes one after the other through a 1-stage pipeline of [`STEPS`] steps;
/// returns the engine's start and each stage-deployment (push to the stage's success).
async fn stage_deployments(n: usize) -> (BTreeMap<String, u64>, Vec<Deployment>) {
    let requests = Requests::default();
    let location = fresh_location("bench/requests", Some(requests.clone())).await;
    requests.take(); // the bucket's creation
    let counter = Arc::new(AppendCounter::default());
    let definition = lifecycle_pipeline(1, STEPS, false);
    let path = definition_path("app");
    let (engine, driving) = s3_engine(
        "bench",
        &location,
        Behavior::succeed(Duration::ZERO),
        counter.clone(),
        |handles| {
            for i in 1..=n {
                let files = [(path.as_str(), definition.as_str())];
                handles.source.commit(&format!("c{i}"), None, files);
            }
        },
    );
    // The driver's start (it lists the streams of the store).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = requests.take();
    let mut out = Vec::new();
    for i in 1..=n {
        let (appends, records) = (counter.appends(), counter.records());
        let request = PushRequest::new("main", format!("c{i}")).with_delivery(format!("d{i}"));
        engine
            .push("app", request)
            .await
            .expect("the push is recorded");
        rig::wait_for("the stage-deployment", || counter.succeeded() >= i as u64).await;
        // Nothing is appended after the stage's success: make sure.
        tokio::time::sleep(Duration::from_millis(100)).await;
        out.push(Deployment {
            requests: requests.take(),
            appends: counter.appends() - appends,
            records: counter.records() - records,
        });
    }
    let state = engine.state("app").await.expect("state");
    for revision in 1..=n as u64 {
        assert_eq!(
            state.deployments[&revision].stages[0].state,
            StageState::Succeeded,
            "revision {revision}"
        );
    }
    engine.stop().await.expect("stops");
    driving.await.expect("the driver ends");
    (start, out)
}

fn summary_requests() {
    let (start, deployments) = rt().block_on(stage_deployments(scaled(DEPLOYMENTS)));
    println!("s3 (1) engine start: {} S3 requests", describe(&start));
    for (i, d) in deployments.iter().enumerate() {
        let total: u64 = d.requests.values().sum();
        let first = if i == 0 {
            " (the first: takes the lease, loads the log)"
        } else {
            ""
        };
        println!(
            "s3 (1) stage-deployment {} of a {STEPS}-step stage{first}: {} S3 requests = {:.2} per append; {} appends ({} records); goal at most appends + 1 = {}: {}",
            i + 1,
            describe(&d.requests),
            total as f64 / d.appends.max(1) as f64,
            d.appends,
            d.records,
            d.appends + 1,
            if total <= d.appends + 1 {
                "met"
            } else {
                "not met"
            },
        );
    }
}

// ----- (2) loading a long log -----

/// A log of at least `records` records written by the engine on the in-memory backends (a
/// 3-stage x 5-step pipeline pushed and deployed again and again): its payloads, the sizes of
/// the engine's appends, and the engine's latest snapshot.
fn engine_log(records: usize) -> (Vec<Value>, Vec<usize>, Snapshot) {
    let (backends, handles) = scripted_backends();
    handles.steps.set_default(Behavior::succeed(Duration::ZERO));
    let counter = Arc::new(AppendCounter::default());
    let config = EngineConfig::default().with_observer(counter.clone());
    let (engine, driver) = Engine::new(backends, config);
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move { driver.run().await.expect("the engine runs") })
        .expect("spawn the driver");
    let definition = lifecycle_pipeline(3, 5, false);
    let path = definition_path("app");
    let mut i = 0;
    while counter.records() < records as u64 {
        i += 1;
        let commit = format!("c{i}");
        let files = [(path.as_str(), definition.as_str())];
        handles.source.commit(&commit, None, files);
        let request = PushRequest::new("main", commit).with_delivery(format!("d{i}"));
        pool.run_until(engine.push("app", request))
            .expect("the push is recorded");
        loop {
            pool.run_until_stalled();
            if handles.clock.advance_to_next_deadline().is_none() {
                break;
            }
        }
    }
    pool.run_until(engine.stop()).expect("the engine stops");
    let store = handles.store;
    let payloads = futures::executor::block_on(store.read_all("app"))
        .expect("reads")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    let snapshot = futures::executor::block_on(store.load_snapshot("app"))
        .expect("loads")
        .expect("the engine saved a snapshot");
    (payloads, counter.batch_sizes(), snapshot)
}

/// Writes `payloads` to `store` in appends of `sizes` (as the engine did), then `snapshot`.
async fn copy_log(store: &S3EventStore, payloads: &[Value], sizes: &[usize], snapshot: Snapshot) {
    let mut last = 0;
    for &size in sizes {
        let events = payloads[last..last + size].to_vec();
        let options = AppendOptions {
            fencing_token: Some(1),
        };
        let seq = store
            .append("app", last as u64, events, options)
            .await
            .expect("appends");
        last += size;
        assert_eq!(seq, last as u64);
    }
    store
        .save_snapshot("app", snapshot)
        .await
        .expect("saves the snapshot");
}

fn records(events: Vec<StoredEvent>) -> Vec<Record> {
    events
        .into_iter()
        .map(|e| Record::from_stored("app", e).expect("a record"))
        .collect()
}

/// Loads the machine with a fresh store instance: a replay of the whole log.
async fn load_without_snapshot(location: &S3Location) -> Machine {
    let store = S3EventStore::new(location.clone());
    let events = store.read_all("app").await.expect("reads");
    Machine::replay("app", &records(events))
}

/// Loads the machine with a fresh store instance as a restarting engine does: the latest
/// snapshot, then the records after it.
async fn load_with_snapshot(location: &S3Location) -> Machine {
    let store = S3EventStore::new(location.clone());
    let snapshot = store
        .load_snapshot("app")
        .await
        .expect("loads")
        .expect("a snapshot");
    let mut machine = Machine::from_snapshot("app", &snapshot.state).expect("decodes");
    let tail = store
        .read("app", machine.state().applied, None)
        .await
        .expect("reads");
    machine.apply(&records(tail));
    machine
}

/// The log of (2) on S3: its location (requests counted in the [`Requests`]) and a line
/// describing it.
fn s3_log() -> (S3Location, Requests, String) {
    let (payloads, sizes, snapshot) = engine_log(scaled(RECORDS));
    let requests = Requests::default();
    let location = rt().block_on(fresh_location("bench/load", Some(requests.clone())));
    let line = format!(
        "{} records in {} appends (objects), snapshot at seq {} ({:.1} MB of JSON), tail of {} records",
        payloads.len(),
        sizes.len(),
        snapshot.seq,
        serde_json::to_vec(&snapshot.state).map_or(0, |v| v.len()) as f64 / 1e6,
        payloads.len() as u64 - snapshot.seq,
    );
    let store = S3EventStore::new(location.clone());
    rt().block_on(copy_log(&store, &payloads, &sizes, snapshot));
    requests.take();
    (location, requests, line)
}

fn summary_load(location: &S3Location, requests: &Requests, line: &str) {
    let without = rt().block_on(load_without_snapshot(location));
    let without_requests = requests.take();
    let with = rt().block_on(load_with_snapshot(location));
    let with_requests = requests.take();
    assert_eq!(
        with.state(),
        without.state(),
        "both loads give the same state"
    );
    check_log(without.state());
    let (t_without, t_with) = interleaved_medians(
        3,
        || {
            black_box(rt().block_on(load_without_snapshot(location)));
        },
        || {
            black_box(rt().block_on(load_with_snapshot(location)));
        },
    );
    requests.take();
    println!("s3 (2) the log: {line}");
    println!(
        "s3 (2) load without a snapshot: {t_without:.0} ms (median of 3; {} S3 requests)",
        describe(&without_requests)
    );
    println!(
        "s3 (2) load with the snapshot: {t_with:.0} ms (median of 3; {} S3 requests) = {:.1}% of the time without; goal at most 10%: {}",
        describe(&with_requests),
        100.0 * t_with / t_without,
        if t_with <= t_without / 10.0 {
            "met"
        } else {
            "not met"
        }
    );
}

/// Every stage of every deployment of the loaded log succeeded.
fn check_log(state: &PipelineState) {
    assert!(state.deployments.len() > 1, "deployments in the log");
    for d in state.deployments.values() {
        for s in &d.stages {
            assert_eq!(s.state, StageState::Succeeded, "{} {}", d.revision, s.name);
        }
    }
}

// ----- (3) append latency and pushes per second -----

/// An event of about 250 bytes of JSON, like the lifecycle's.
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

/// Appends one event after `*last` to `stream`.
fn append_one(store: &dyn EventStore, stream: &str, last: &mut u64) {
    *last = rt()
        .block_on(store.append(
            stream,
            *last,
            vec![event(*last + 1)],
            AppendOptions::default(),
        ))
        .expect("appends");
}

/// Pushes [`PUSHES`] times into each of `pipelines` pipelines (one task per pipeline, its
/// pushes one after the other), push `k` of pipeline `p` going to engine `(p + k) % engines`,
/// all engines on one fresh bucket; returns pushes per second.
async fn pushes_per_second(engines: usize, pipelines: usize, pushes: usize) -> f64 {
    let location = fresh_location("bench/engines", None).await;
    let definition = lifecycle_pipeline(1, 1, false);
    let running: Vec<(Engine, tokio::task::JoinHandle<()>)> = (0..engines)
        .map(|e| {
            s3_engine(
                &format!("engine-{e}"),
                &location,
                Behavior::hang(),
                Arc::new(AppendCounter::default()),
                |handles| {
                    for p in 0..pipelines {
                        let path = definition_path(&format!("p{p}"));
                        for k in 0..pushes {
                            let files = [(path.as_str(), definition.as_str())];
                            handles.source.commit(&format!("p{p}-c{k}"), None, files);
                        }
                    }
                },
            )
        })
        .collect();
    let start = Instant::now();
    let tasks = (0..pipelines).map(|p| {
        let running = &running;
        async move {
            for k in 0..pushes {
                let request = PushRequest::new("main", format!("p{p}-c{k}"))
                    .with_delivery(format!("p{p}-d{k}"));
                running[(p + k) % engines]
                    .0
                    .push(&format!("p{p}"), request)
                    .await
                    .expect("the push is recorded");
            }
        }
    });
    futures::future::join_all(tasks).await;
    let secs = start.elapsed().as_secs_f64();
    for p in 0..pipelines {
        let state = running[0].0.state(&format!("p{p}")).await.expect("state");
        assert_eq!(state.deployments.len(), pushes, "p{p}: a revision per push");
    }
    for (engine, driving) in running {
        engine.stop().await.expect("stops");
        driving.await.expect("the driver ends");
    }
    (pipelines * pushes) as f64 / secs
}

fn summary_appends_and_engines() {
    let location = rt().block_on(fresh_location("bench/appends", None));
    let s3 = S3EventStore::new(location);
    let memory = InMemoryEventStore::new();
    let (mut s3_last, mut memory_last) = (0, 0);
    let appends = scaled(APPENDS);
    let mut s3_times = Vec::with_capacity(appends);
    let mut memory_times = Vec::with_capacity(appends);
    for _ in 0..appends {
        let start = Instant::now();
        append_one(&s3, "latency", &mut s3_last);
        s3_times.push(start.elapsed());
        let start = Instant::now();
        append_one(&memory, "latency", &mut memory_last);
        memory_times.push(start.elapsed());
    }
    let (s3_ms, memory_ms) = (median_ms(&mut s3_times), median_ms(&mut memory_times));
    println!(
        "s3 (3) append latency (one event of ~250 bytes, CAS), median of {appends}: S3EventStore on moto {:.2} ms, in-memory store {:.4} ms ({:.0}x)",
        s3_ms,
        memory_ms,
        s3_ms / memory_ms.max(1e-9)
    );
    let (pipelines, pushes) = (PIPELINES, scaled(PUSHES));
    let one = rt().block_on(pushes_per_second(1, pipelines, pushes));
    let three = rt().block_on(pushes_per_second(3, pipelines, pushes));
    println!(
        "s3 (3) pushes/s on one bucket ({pipelines} pipelines x {pushes} pushes, each push to the next engine in turn): 1 engine {one:.1}, 3 engines {three:.1} ({:.2}x)",
        three / one
    );
}

// ----- criterion -----

fn bench(c: &mut Criterion) {
    summary_requests();
    let (location, requests, line) = s3_log();
    summary_load(&location, &requests, &line);
    summary_appends_and_engines();

    let mut group = c.benchmark_group("s3");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("load: snapshot + tail, fresh store", |b| {
        b.iter(|| black_box(rt().block_on(load_with_snapshot(&location))))
    });
    group.bench_function("load: whole log, fresh store", |b| {
        b.iter(|| black_box(rt().block_on(load_without_snapshot(&location))))
    });
    let s3 = S3EventStore::new(rt().block_on(fresh_location("bench/criterion", None)));
    let memory = InMemoryEventStore::new();
    let (mut s3_last, mut memory_last) = (0, 0);
    group.bench_function("append: S3EventStore", |b| {
        b.iter(|| append_one(&s3, "append", &mut s3_last))
    });
    group.bench_function("append: in-memory store", |b| {
        b.iter(|| append_one(&memory, "append", &mut memory_last))
    });
    group.finish();
    requests.take();
}

criterion_group! {
    name = benches;
    config = devramps_benches::short_criterion();
    targets = bench
}

fn main() {
    FULL.store(devramps_benches::measuring(), Ordering::Relaxed);
    rig::endpoint();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

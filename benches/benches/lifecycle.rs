//! Benchmarks of the lifecycle engine (issue "The lifecycle engine"):
//!
//! - (a) a push storm: pushes into a pipeline whose first stage is held by revision 1 (its
//!   step never ends), each push a new commit and webhook delivery. Pushes per second at the
//!   machine level (`Machine::handle`, 100,000 pushes) and at the engine level (`Engine::push`
//!   on the in-memory backends, at growing sizes: its cost per push grows with the pushes
//!   before it). Memory: the growth of the resident set against the bytes the pushes add to
//!   the event log, at 10,000, 50,000 and 100,000 pushes (machine level) and at the engine
//!   sizes, each in a fresh child process of this benchmark. Resident-set figures read
//!   `/proc/self/status` and so exist on Linux only.
//! - (b) 1,000 pipelines x 3 stages x 5 instant steps, pushed once and run to completion by one
//!   engine on the manual clock: stage-deployments per second.
//! - (c) store appends per stage-deployment of a 5-step stage (counted by a decorator of the
//!   in-memory store) against the records (state changes) they carry, per instant; target: no
//!   more appends than state changes, and state changes of the same instant in one append.
//!
//! Run with `cargo bench -p devramps-benches --bench lifecycle` (about two minutes); the
//! summary lines follow the Criterion report. `cargo test --benches` runs everything once at
//! 1/100 of the sizes: a smoke test, not a measurement.
//!
//! To profile one part, run the benchmark executable with `DEVRAMPS_BENCH_LIFECYCLE_CHILD` set
//! to `machine:<pushes>`, `engine:<pushes>` or `fleet:<pipelines>` (under `perf record`; build
//! with `CARGO_PROFILE_BENCH_DEBUG=line-tables-only` for symbols).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group};
use devramps_benches::{
    finish_setup_work, lifecycle_pipeline, median_ms, resident_memory, storm_push,
};
use devramps_core::backend::{
    AppendOptions, Backends, EventStore, EventStoreExt, Snapshot, StoredEvent,
};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Command, Input, Machine, PipelineState, Record, StageState};
use devramps_core::pipeline::{PIPELINE_DIR, PIPELINE_FILE};
use devramps_memory::{
    Behavior, DEFAULT_START, InMemoryEventStore, MemoryHandles, scripted_backends,
};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use jiff::{SignedDuration, Timestamp};

/// (a) Pushes of the machine-level storm in the summary.
const STORM: usize = 100_000;
/// (a) Pushes of the machine-level storm per Criterion iteration.
const STORM_CRITERION: usize = 10_000;
/// (a) Storm sizes whose memory is measured at the machine level.
const MEMORY_POINTS: [usize; 3] = [10_000, 50_000, 100_000];
/// (a) Pushes of the engine-level storm in the summary (each size twice the one before). The
///     engine's cost per push grows with the pushes before it, so 100,000 does not fit.
const ENGINE_STORM_POINTS: [usize; 3] = [10_000, 50_000, 100_000];
/// (a) Pushes of the engine-level storm per Criterion iteration.
const ENGINE_STORM_CRITERION: usize = 1_000;
/// (b) Pipelines of the fleet, in Criterion and in the summary.
const FLEET: usize = 1_000;
/// (b) Stages of each fleet pipeline.
const FLEET_STAGES: usize = 3;
/// (b), (c) Steps of each stage.
const STEPS: usize = 5;
/// Set in the child processes of this benchmark: `machine:<pushes>`, `engine:<pushes>` or
/// `fleet:<pipelines>`.
const CHILD_ENV: &str = "DEVRAMPS_BENCH_LIFECYCLE_CHILD";
/// The slug of the storm pipeline.
const STORM_SLUG: &str = "storm";

/// Whether this run measures (`cargo bench`) rather than smoke-tests (`cargo test --benches`).
static FULL: AtomicBool = AtomicBool::new(false);

/// `n` in a measuring run, `n / 100` (at least 10) in a smoke test.
fn scale(n: usize) -> usize {
    if FULL.load(Ordering::Relaxed) {
        n
    } else {
        (n / 100).max(10)
    }
}

/// `DEFAULT_START` plus `ms` milliseconds.
fn at_ms(ms: usize) -> Timestamp {
    let ms = i64::try_from(ms).expect("a small count");
    DEFAULT_START
        .checked_add(SignedDuration::from_millis(ms))
        .expect("in range")
}

// ----- (a) the machine-level storm -----

/// A machine whose first stage is held by revision 1 (push `c0`): its resource validation and
/// mirroring succeed, its step starts and never ends.
fn busy_machine(definition: &str) -> Machine {
    let mut machine = Machine::new(STORM_SLUG);
    let mut commands = machine
        .handle(Input::Push(storm_push(0, definition)), DEFAULT_START)
        .commands;
    while !commands
        .iter()
        .any(|c| matches!(c, Command::RunStep { .. }))
    {
        let inputs = finish_setup_work(&commands);
        assert!(!inputs.is_empty(), "revision 1 is stuck: {commands:?}");
        commands = inputs
            .into_iter()
            .flat_map(|input| machine.handle(input, DEFAULT_START).commands)
            .collect();
    }
    machine
}

/// Pushes `c{from}..=c{to}` (one millisecond apart) into `machine`; `each` sees the records of
/// every push.
fn machine_storm(
    machine: &mut Machine,
    definition: &str,
    from: usize,
    to: usize,
    mut each: impl FnMut(&[Record]),
) {
    for i in from..=to {
        let out = machine.handle(Input::Push(storm_push(i, definition)), at_ms(i));
        assert!(out.commands.is_empty(), "push {i} started work");
        each(&out.records);
    }
}

/// Checks that a storm of `pushes` after revision 1 left two plans (the running and the queued
/// revision) and two active deployments.
fn check_storm_state(state: &PipelineState, pushes: usize) {
    let plans = state
        .deployments
        .values()
        .filter(|d| d.plan().is_some())
        .count();
    let active: Vec<u64> = state.active_deployments().map(|d| d.revision).collect();
    assert_eq!(plans, 2, "plans held after {pushes} pushes");
    assert_eq!(active, [1, 1 + pushes as u64], "active deployments");
}

/// The bytes of `records` serialized as the engine appends them (one JSON document each).
fn log_bytes(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| serde_json::to_vec(r).expect("a record serializes").len())
        .sum()
}

// ----- the engine on the in-memory backends -----

/// An [`EventStore`] that forwards to the in-memory store and remembers, per successful
/// append, how many events it wrote and the `at` of the first.
#[derive(Clone, Debug, Default)]
struct CountingStore {
    inner: InMemoryEventStore,
    batches: Arc<Mutex<Vec<(usize, String)>>>,
}

impl CountingStore {
    /// The appends so far: (events, `at` of the first event).
    fn batches(&self) -> MutexGuard<'_, Vec<(usize, String)>> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> devramps_core::Result<u64> {
        let count = events.len();
        let at = events
            .first()
            .and_then(|e| e.get("at"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let last = self
            .inner
            .append(stream, expected_last, events, options)
            .await?;
        self.batches().push((count, at));
        Ok(last)
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> devramps_core::Result<Vec<StoredEvent>> {
        self.inner.read(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &str) -> devramps_core::Result<u64> {
        self.inner.last_seq(stream).await
    }

    async fn streams(&self) -> devramps_core::Result<Vec<String>> {
        self.inner.streams().await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> devramps_core::Result<()> {
        self.inner.save_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &str) -> devramps_core::Result<Option<Snapshot>> {
        self.inner.load_snapshot(stream).await
    }
}

/// An engine on the in-memory backends (with a [`CountingStore`]), driven by a `LocalPool`.
struct Rig {
    pool: LocalPool,
    engine: Engine,
    handles: MemoryHandles,
    store: CountingStore,
}

impl Rig {
    /// A rig whose step runner does `steps` unless scripted otherwise; `setup` adds commits
    /// before the engine starts.
    fn new(steps: Behavior, setup: impl FnOnce(&MemoryHandles)) -> Rig {
        let (bundle, handles) = scripted_backends();
        handles.steps.set_default(steps);
        setup(&handles);
        let store = CountingStore::default();
        let bundle = Backends {
            store: Arc::new(store.clone()),
            ..bundle
        };
        let (engine, driver) = Engine::new(bundle, EngineConfig::default());
        let pool = LocalPool::new();
        pool.spawner()
            .spawn_local(async move {
                driver.run().await.expect("the engine runs");
            })
            .expect("spawn the driver");
        Rig {
            pool,
            engine,
            handles,
            store,
        }
    }

    /// Pushes `commit` to `pipeline` with delivery `delivery` and waits for its records.
    fn push(&mut self, pipeline: &str, commit: &str, delivery: &str) {
        let request =
            PushRequest::new("main", commit.to_owned()).with_delivery(delivery.to_owned());
        self.pool
            .run_until(self.engine.push(pipeline, request))
            .expect("the push is recorded");
    }

    /// Runs the pool, moving the manual clock to each next deadline, until nothing is left.
    fn settle(&mut self) {
        loop {
            self.pool.run_until_stalled();
            if self.handles.clock.advance_to_next_deadline().is_none() {
                return;
            }
        }
    }

    /// The live state of `pipeline` (a copy made by the engine).
    fn state(&mut self, pipeline: &str) -> PipelineState {
        self.pool
            .run_until(self.engine.state(pipeline))
            .expect("state")
    }

    /// The log of `pipeline`.
    fn history(&mut self, pipeline: &str) -> Vec<Record> {
        self.pool
            .run_until(self.engine.history(pipeline))
            .expect("history")
    }
}

/// The path of a pipeline's definition in the repository.
fn definition_path(slug: &str) -> String {
    format!("/{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}")
}

// ----- (a) the engine-level storm -----

/// An engine whose storm pipeline (1 stage, 1 step that never ends) is held by revision 1
/// (commit `c0`), with commits `c1..=c{pushes}` ready to push.
fn storm_rig(pushes: usize) -> Rig {
    let definition = lifecycle_pipeline(1, 1, false);
    let path = definition_path(STORM_SLUG);
    let mut rig = Rig::new(Behavior::hang(), |handles| {
        for i in 0..=pushes {
            let files = [(path.as_str(), definition.as_str())];
            handles.source.commit(&format!("c{i}"), None, files);
        }
    });
    rig.push(STORM_SLUG, "c0", "d0");
    rig.pool.run_until_stalled();
    rig
}

/// Pushes `c1..=c{pushes}` (deliveries `d1..`) through the engine, one after the other.
fn engine_storm(rig: &mut Rig, pushes: usize) {
    let engine = rig.engine.clone();
    rig.pool.run_until(async move {
        for i in 1..=pushes {
            let request = PushRequest::new("main", format!("c{i}")).with_delivery(format!("d{i}"));
            engine
                .push(STORM_SLUG, request)
                .await
                .expect("the push is recorded");
        }
    });
    rig.pool.run_until_stalled();
}

// ----- (b) the fleet -----

/// An engine with `pipelines` pipelines `p0..` of 3 stages x 5 instant steps; pipeline `p<i>`
/// has its own commit `p<i>-c1`.
fn fleet_rig(pipelines: usize) -> Rig {
    let definition = lifecycle_pipeline(FLEET_STAGES, STEPS, false);
    Rig::new(Behavior::succeed(Duration::ZERO), |handles| {
        for p in 0..pipelines {
            let slug = format!("p{p}");
            let files = [(definition_path(&slug), definition.as_str())];
            handles.source.commit(&format!("{slug}-c1"), None, files);
        }
    })
}

/// Pushes every fleet pipeline once and runs them all to completion.
fn run_fleet(rig: &mut Rig, pipelines: usize) {
    let engine = rig.engine.clone();
    rig.pool.run_until(async move {
        for p in 0..pipelines {
            let slug = format!("p{p}");
            let request =
                PushRequest::new("main", format!("{slug}-c1")).with_delivery(format!("{slug}-d1"));
            engine.push(&slug, request).await.expect("push recorded");
        }
    });
    rig.settle();
}

/// Checks that every stage-deployment of the fleet succeeded; returns how many there are.
fn check_fleet(rig: &mut Rig, pipelines: usize) -> usize {
    let mut done = 0;
    for p in 0..pipelines {
        let state = rig.state(&format!("p{p}"));
        for stage in &state.deployments[&1].stages {
            assert_eq!(stage.state, StageState::Succeeded, "p{p} {}", stage.name);
            done += 1;
        }
    }
    done
}

// ----- (c) appends per stage-deployment -----

/// Appends of one stage-deployment run to completion.
struct AppendCount {
    appends: usize,
    records: usize,
    /// Per instant (`HH:MM:SS`): appends and records written then.
    per_instant: BTreeMap<String, (usize, usize)>,
}

/// Runs one pipeline of one stage of 5 steps (one after the other, or all at once when
/// `parallel`), each taking `step`, to completion and counts its appends.
fn count_appends(step: Duration, parallel: bool) -> AppendCount {
    let definition = lifecycle_pipeline(1, STEPS, parallel);
    let mut rig = Rig::new(Behavior::succeed(step), |handles| {
        let files = [(definition_path("app"), definition.as_str())];
        handles.source.commit("c1", None, files);
    });
    rig.push("app", "c1", "d1");
    rig.settle();
    let state = rig.state("app");
    assert_eq!(
        state.deployments[&1].stages[0].state,
        StageState::Succeeded,
        "the stage-deployment succeeded"
    );
    let log = rig.history("app");
    let batches = rig.store.batches();
    let mut per_instant: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (events, at) in batches.iter() {
        let time = at.split_once('T').map_or(at.as_str(), |(_, t)| t);
        let entry = per_instant
            .entry(time.trim_end_matches('Z').to_owned())
            .or_default();
        entry.0 += 1;
        entry.1 += events;
    }
    let records: usize = batches.iter().map(|(n, _)| n).sum();
    assert_eq!(records, log.len(), "every record came through an append");
    AppendCount {
        appends: batches.len(),
        records,
        per_instant,
    }
}

// ----- child processes -----

/// What a child process measured after a storm (bytes unless said otherwise).
struct Memory {
    pushes: usize,
    /// Resident set before the storm.
    before: u64,
    /// Resident set after it.
    after: u64,
    /// Peak resident set.
    peak: u64,
    /// Serialized bytes of the records the storm added to the log.
    log_bytes: u64,
    /// Records the storm added to the log.
    records: u64,
    /// Resident-set growth from making one copy of the pipeline's state.
    state_copy: u64,
    /// Resident-set growth from making one copy of the stored log (engine level; 0 otherwise).
    log_copy: u64,
}

/// The resident set now.
fn rss() -> u64 {
    resident_memory().map_or(0, |(now, _)| now)
}

/// In a child process: runs what `spec` says (see [`CHILD_ENV`]) and prints one line.
fn child(spec: &str) {
    let (kind, n) = spec.split_once(':').expect("kind:count");
    let n: usize = n.parse().expect("a count");
    match kind {
        "fleet" => {
            let mut rig = fleet_rig(n);
            let start = Instant::now();
            run_fleet(&mut rig, n);
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(check_fleet(&mut rig, n), n * FLEET_STAGES);
            println!("fleet {n} pipelines in {secs:.3} s");
        }
        "machine" => {
            let definition = lifecycle_pipeline(1, 1, false);
            let mut machine = busy_machine(&definition);
            let before = rss();
            let (mut bytes, mut records) = (0, 0);
            machine_storm(&mut machine, &definition, 1, n, |r| {
                bytes += log_bytes(r);
                records += r.len();
            });
            let (after, peak) = resident_memory().unwrap_or_default();
            let copy = machine.state().clone();
            let state_copy = rss().saturating_sub(after);
            check_storm_state(&copy, n);
            black_box((&machine, &copy));
            println!("memory {n} {before} {after} {peak} {bytes} {records} {state_copy} 0");
        }
        _ => {
            let mut rig = storm_rig(n);
            let before = rss();
            let first_records = rig.history(STORM_SLUG).len();
            engine_storm(&mut rig, n);
            let (after, peak) = resident_memory().unwrap_or_default();
            let state = rig.state(STORM_SLUG);
            let state_copy = rss().saturating_sub(after);
            let inner = rig.store.inner.clone();
            let stored = rig
                .pool
                .run_until(inner.read_all(STORM_SLUG))
                .expect("read");
            let log_copy = rss().saturating_sub(after + state_copy);
            check_storm_state(&state, n);
            black_box((&state, &stored));
            let log = rig.history(STORM_SLUG);
            let added = &log[first_records..];
            let (bytes, records) = (log_bytes(added), added.len());
            println!(
                "memory {n} {before} {after} {peak} {bytes} {records} {state_copy} {log_copy}"
            );
        }
    }
}

/// Runs a storm of `pushes` at `level` in a fresh process of this benchmark.
fn measure_memory(level: &str, pushes: usize) -> Option<Memory> {
    let exe = std::env::current_exe().ok()?;
    let output = std::process::Command::new(exe)
        .env(CHILD_ENV, format!("{level}:{pushes}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("memory "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [
        pushes,
        before,
        after,
        peak,
        log_bytes,
        records,
        state_copy,
        log_copy,
    ] = v[..]
    else {
        return None;
    };
    Some(Memory {
        pushes: usize::try_from(pushes).ok()?,
        before,
        after,
        peak,
        log_bytes,
        records,
        state_copy,
        log_copy,
    })
}

// ----- Criterion -----

fn bench(c: &mut Criterion) {
    let definition = lifecycle_pipeline(1, 1, false);
    let mut group = c.benchmark_group("lifecycle");
    // Iterations of a second or less: the same number per sample.
    group.sampling_mode(SamplingMode::Flat);
    let storm = scale(STORM_CRITERION);
    group.throughput(Throughput::Elements(storm as u64));
    group.bench_function(format!("machine push storm ({storm} pushes)"), |b| {
        b.iter_batched(
            || busy_machine(&definition),
            |mut machine| {
                machine_storm(&mut machine, &definition, 1, storm, |r| {
                    black_box(r);
                });
                machine
            },
            BatchSize::PerIteration,
        )
    });
    let storm = scale(ENGINE_STORM_CRITERION);
    group.throughput(Throughput::Elements(storm as u64));
    group.bench_function(format!("engine push storm ({storm} pushes)"), |b| {
        b.iter_batched(
            || storm_rig(storm),
            |mut rig| {
                engine_storm(&mut rig, storm);
                rig
            },
            BatchSize::PerIteration,
        )
    });
    let fleet = scale(FLEET);
    group.throughput(Throughput::Elements((fleet * FLEET_STAGES) as u64));
    group.bench_function(
        format!("fleet ({fleet} pipelines x {FLEET_STAGES} stages x {STEPS} steps)"),
        |b| {
            b.iter_batched(
                || fleet_rig(fleet),
                |mut rig| {
                    run_fleet(&mut rig, fleet);
                    rig
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    // Three functions of 10 samples of about a second each (plus setup).
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    targets = bench
}

// ----- summary -----

/// Times `f` (which returns the time of the part it measures) `iterations` times; returns the
/// median in seconds.
fn median_secs(iterations: usize, mut f: impl FnMut() -> Duration) -> f64 {
    let mut samples: Vec<Duration> = (0..iterations).map(|_| f()).collect();
    median_ms(&mut samples) / 1000.0
}

/// Megabytes.
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// (a): the storms and their memory.
fn summary_storm(kind: &str) {
    let definition = lifecycle_pipeline(1, 1, false);
    let storm = scale(STORM);
    let mut machine = busy_machine(&definition);
    let start = Instant::now();
    machine_storm(&mut machine, &definition, 1, storm, |r| {
        black_box(r);
    });
    let secs = start.elapsed().as_secs_f64();
    check_storm_state(machine.state(), storm);
    drop(machine);
    println!(
        "lifecycle (a) machine push storm: {storm} pushes into a busy first stage in {secs:.2} s: {:.0} pushes/s ({:.1} us per push); plans held: 2, active deployments: 2{kind}",
        storm as f64 / secs,
        secs * 1e6 / storm as f64,
    );
    let parse = |text: &str| devramps_core::plan::parse(black_box(text)).is_ok();
    assert!(parse(&definition), "the storm pipeline parses");
    let parses = scale(10_000);
    let parse = median_secs(5, || {
        let start = Instant::now();
        for _ in 0..parses {
            black_box(parse(&definition));
        }
        start.elapsed()
    });
    println!(
        "lifecycle (a) for reference: `plan::parse` of the storm pipeline's definition ({} bytes) takes {:.1} us (median of 5 x {parses}); a push parses it twice (the tracked branch, then the fold before synthesis){kind}",
        definition.len(),
        parse * 1e6 / parses as f64,
    );

    let mut previous: Option<(usize, f64, f64)> = None;
    for n in ENGINE_STORM_POINTS.map(scale) {
        let mut rig = storm_rig(n);
        let start = Instant::now();
        engine_storm(&mut rig, n);
        let secs = start.elapsed().as_secs_f64();
        check_storm_state(&rig.state(STORM_SLUG), n);
        let per_push = secs * 1e6 / n as f64;
        println!(
            "lifecycle (a) engine push storm: {n} pushes in {secs:.2} s: {:.0} pushes/s ({per_push:.0} us per push{}){kind}",
            n as f64 / secs,
            previous
                .map(|(m, p, _)| format!("; {:.1}x the cost per push of {m} pushes", per_push / p))
                .unwrap_or_default(),
        );
        previous = Some((n, per_push, secs));
    }
    let _ = (previous, storm);

    if resident_memory().is_none() {
        println!("lifecycle (a) memory: not measured (needs Linux /proc/self/status)");
        return;
    }
    for (level, points) in [
        ("machine", MEMORY_POINTS.map(scale).to_vec()),
        ("engine", ENGINE_STORM_POINTS.map(scale).to_vec()),
    ] {
        for n in points {
            let Some(m) = measure_memory(level, n) else {
                println!("lifecycle (a) memory, {level} level, {n} pushes: the child failed");
                continue;
            };
            let per = |bytes: u64| bytes as f64 / m.pushes as f64;
            let growth = m.after.saturating_sub(m.before);
            let peak = m.peak.saturating_sub(m.before);
            // The engine copies the state twice per push and frees the copies, so a new copy
            // lands in freed memory: the state's size shows at the machine level only.
            let copies = if level == "engine" {
                format!(
                    "a copy of the stored log (JSON values) {:.1} MB ({:.0} B/push)",
                    mb(m.log_copy),
                    per(m.log_copy)
                )
            } else {
                format!(
                    "a copy of the state {:.1} MB ({:.0} B/push, {:.0}% of the log's bytes per push)",
                    mb(m.state_copy),
                    per(m.state_copy),
                    100.0 * m.state_copy as f64 / m.log_bytes.max(1) as f64
                )
            };
            println!(
                "lifecycle (a) memory, {level} level, {} pushes: resident set +{:.1} MB ({:.0} B/push), peak +{:.1} MB ({:.0} B/push); the log: {} records, {:.1} MB serialized ({:.0} B/push); {copies}{kind}",
                m.pushes,
                mb(growth),
                per(growth),
                mb(peak),
                per(peak),
                m.records,
                mb(m.log_bytes),
                per(m.log_bytes),
            );
        }
    }
}

/// (b): the fleet.
fn summary_fleet(kind: &str) {
    let pipelines = scale(FLEET);
    let iterations = 3;
    let mut counts = (0, 0, 0);
    let secs = median_secs(iterations, || {
        let mut rig = fleet_rig(pipelines);
        let start = Instant::now();
        run_fleet(&mut rig, pipelines);
        let elapsed = start.elapsed();
        let stage_deployments = check_fleet(&mut rig, pipelines);
        assert_eq!(stage_deployments, pipelines * FLEET_STAGES);
        let batches = rig.store.batches();
        let records: usize = batches.iter().map(|(n, _)| n).sum();
        counts = (stage_deployments, batches.len(), records);
        elapsed
    });
    let (stage_deployments, appends, records) = counts;
    println!(
        "lifecycle (b) fleet: {pipelines} pipelines x {FLEET_STAGES} stages x {STEPS} instant steps: {stage_deployments} stage-deployments in {secs:.2} s (median of {iterations}): {:.0} stage-deployments/s; {appends} appends of {records} records ({:.1} appends per stage-deployment){kind}",
        stage_deployments as f64 / secs,
        appends as f64 / stage_deployments as f64,
    );
}

/// (c): appends per stage-deployment.
fn summary_appends(kind: &str) {
    for (label, step, parallel) in [
        ("5 sequential instant steps", Duration::ZERO, false),
        (
            "5 sequential 1-minute steps",
            Duration::from_secs(60),
            false,
        ),
        ("5 parallel 1-minute steps", Duration::from_secs(60), true),
    ] {
        let c = count_appends(step, parallel);
        let instants: Vec<String> = c
            .per_instant
            .iter()
            .map(|(t, (a, r))| format!("{t} {a} appends/{r} records"))
            .collect();
        println!(
            "lifecycle (c) {label}: appends: {} for {} records ({:.1} records per append), 1 stage-deployment; by instant: {}{}{kind}",
            c.appends,
            c.records,
            c.records as f64 / c.appends as f64,
            instants.join(", "),
            if c.appends <= c.records {
                ""
            } else {
                " MORE APPENDS THAN RECORDS"
            },
        );
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    FULL.store(devramps_benches::measuring(), Ordering::Relaxed);
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    // Profiling (`--profile-time N`) and listing runs measure nothing else.
    if args.iter().any(|a| a == "--profile-time" || a == "--list") {
        return;
    }
    let kind = if FULL.load(Ordering::Relaxed) {
        ""
    } else {
        " (smoke test at 1/100 size; run `cargo bench`)"
    };
    summary_storm(kind);
    summary_fleet(kind);
    summary_appends(kind);
}

//! Growth benchmarks (issue 18): how the cost of each kind of work a user can grow scales with
//! its size. Each dimension runs over at least four doublings; the summary table at the end
//! gives, per dimension, the time at every size, the fitted growth exponent (the least-squares
//! slope of log2 time against log2 size: 1.0 is linear, 2.0 quadratic) and the largest size's
//! time. Goal: every exponent at most 1.15.
//!
//! - `sim pushes`: pushes into one pipeline (2 stages x 1 step), all at the same time, as a
//!   scenario through the simulator (parse and run);
//! - `engine pushes`: the same pushes through the engine alone on the in-memory backends, the
//!   first stage held by revision 1 (its step never ends);
//! - `stages` / `steps`: one push of a pipeline with that many stages (one step each) or that
//!   many steps (one stage), through the simulator;
//! - `replay full` / `replay snapshot`: loading a stored log of that many records of completed
//!   deployments (3 stages x 5 steps): decoding every record and replaying it, or decoding the
//!   snapshot taken 500 records before the end and applying the tail;
//! - `diagnostics text` / `diagnostics json`: one file with that many problems (unknown keys
//!   and broken expressions in alternate steps), checked and printed as `devramps validate`
//!   prints them (the CLI's own report code, compiled into this benchmark);
//! - `warnings text` / `warnings json`: a valid pipeline whose step skips that many stages that
//!   do not exist (one warning each), the same way;
//! - `invariant checks`: a history of that many records checked by the simulator's invariant
//!   checks after every record ([`devramps_sim::history_violations`]).
//!
//! Sizes whose single run takes under [`CRITERION_BELOW`] are measured by Criterion
//! (`iter_custom`, 10 samples); larger ones are timed once (the machine has 2 cores and the
//! whole run must stay near 10 minutes). A dimension stops doubling once a size takes over
//! [`STOP_ABOVE`]: the remaining sizes are reported as skipped, and the exponent is fitted over
//! the sizes measured.
//!
//! Run with `cargo bench -p devramps-benches --bench growth`; `cargo test --benches` runs every
//! dimension once at small sizes (a smoke test, not a measurement). To profile one workload,
//! run the benchmark executable with `DEVRAMPS_GROWTH_ONLY=<dimension>:<size>` (for example
//! `stages:400`) under `perf record`; `DEVRAMPS_GROWTH_FILTER=<part>,<part>` runs only the
//! dimensions whose name holds one of the parts.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, SamplingMode};
use devramps_benches::{lifecycle_pipeline, measuring, short_criterion};
use devramps_core::backend::{EventStoreExt, StoredEvent};
use devramps_core::engine::PushRequest;
use devramps_core::lifecycle::{Machine, Record, StageState};
use devramps_memory::{Behavior, scripted_backends};
use futures::executor::block_on;

// The CLI's report code, exactly as `devramps validate` runs it (the CLI is a binary crate, so
// its modules are compiled in here rather than linked).
#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../../devramps-cli/src/render.rs"]
mod render;
#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../../devramps-cli/src/report.rs"]
mod report;

/// Sizes under this single-run time are measured by Criterion; larger ones are timed once.
const CRITERION_BELOW: Duration = Duration::from_millis(300);
/// A dimension stops doubling once one size takes longer than this.
const STOP_ABOVE: Duration = Duration::from_secs(30);
/// The pipeline's slug.
const SLUG: &str = "app";
/// Records after the snapshot in `replay snapshot` (a quarter of the log when shorter).
const TAIL: usize = 500;
/// The length of the stored log the log dimensions cut (their largest size).
const LOG_RECORDS: usize = 160_000;
/// Set to parts of dimension names, separated by commas, to run only the dimensions whose
/// name holds one of them.
const FILTER_ENV: &str = "DEVRAMPS_GROWTH_FILTER";
/// Set to `<dimension>:<size>` to run that one workload once and exit.
const ONLY_ENV: &str = "DEVRAMPS_GROWTH_ONLY";

/// Whether this run measures (`cargo bench`) rather than smoke-tests (`cargo test --benches`).
static FULL: AtomicBool = AtomicBool::new(false);

/// One measured run: the time of the measured part only.
type Run = Box<dyn FnMut() -> Duration>;

/// A dimension: its name, its sizes (each twice the one before), and how to prepare a run of
/// one size.
struct Dimension {
    name: &'static str,
    sizes: Vec<usize>,
    prepare: Box<dyn Fn(usize) -> Run>,
}

fn dimensions(logs: &Rc<Log>) -> Vec<Dimension> {
    let doublings = |first: usize, count: u32| (0..count).map(|k| first << k).collect::<Vec<_>>();
    let replay = Rc::clone(logs);
    let snapshot = Rc::clone(logs);
    let invariants = Rc::clone(logs);
    vec![
        Dimension {
            name: "sim pushes",
            sizes: doublings(1_000, 5),
            prepare: Box::new(sim_pushes),
        },
        Dimension {
            name: "engine pushes",
            sizes: doublings(1_000, 5),
            prepare: Box::new(engine_pushes),
        },
        Dimension {
            name: "stages",
            sizes: doublings(50, 5),
            prepare: Box::new(|n| one_push(lifecycle_pipeline(n, 1, false))),
        },
        Dimension {
            name: "steps",
            sizes: doublings(50, 5),
            prepare: Box::new(|n| one_push(lifecycle_pipeline(1, n, false))),
        },
        Dimension {
            name: "replay full",
            sizes: doublings(10_000, 5),
            prepare: Box::new(move |n| replay.full(n)),
        },
        Dimension {
            name: "replay snapshot",
            sizes: doublings(10_000, 5),
            prepare: Box::new(move |n| snapshot.snapshot_and_tail(n)),
        },
        Dimension {
            name: "diagnostics text",
            sizes: doublings(1_000, 6),
            prepare: Box::new(|n| validate(diagnostics_file(n), Format::Text)),
        },
        Dimension {
            name: "diagnostics json",
            sizes: doublings(1_000, 6),
            prepare: Box::new(|n| validate(diagnostics_file(n), Format::Json)),
        },
        Dimension {
            name: "warnings text",
            sizes: doublings(1_000, 5),
            prepare: Box::new(|n| validate(warnings_file(n), Format::Text)),
        },
        Dimension {
            name: "warnings json",
            sizes: doublings(1_000, 5),
            prepare: Box::new(|n| validate(warnings_file(n), Format::Json)),
        },
        Dimension {
            name: "invariant checks",
            sizes: doublings(10_000, 5),
            prepare: Box::new(move |n| invariants.check(n)),
        },
    ]
}

/// Times `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

// ----- pushes -----

/// `pushes` pushes at the start of a scenario on a 2-stage pipeline, through the simulator.
fn sim_pushes(pushes: usize) -> Run {
    let pipeline = lifecycle_pipeline(2, 1, false);
    let mut scenario = String::from(
        "pipeline: pipeline.yaml\ndefaults: { mirror_duration: 0s, step_duration: 5m }\nevents:\n",
    );
    for i in 1..=pushes {
        let _ = writeln!(scenario, "  - push: {{ commit: c{i} }}");
    }
    Box::new(move || {
        let (report, took) = timed(|| {
            let parsed = devramps_sim::parse_scenario(&scenario, Path::new("growth.yaml"))
                .expect("the scenario parses");
            devramps_sim::simulate(&parsed, &pipeline)
        });
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.deployments.len(), pushes);
        took
    })
}

/// One push of `pipeline` through the simulator; every stage-deployment must succeed.
fn one_push(pipeline: String) -> Run {
    let scenario = "pipeline: pipeline.yaml\ndefaults: { mirror_duration: 0s, step_duration: 1s }\n\
                    events:\n  - push: { commit: c1 }\n";
    Box::new(move || {
        let (report, took) = timed(|| {
            let parsed = devramps_sim::parse_scenario(scenario, Path::new("growth.yaml"))
                .expect("the scenario parses");
            devramps_sim::simulate(&parsed, &pipeline)
        });
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        let stages = &report.deployments[0].stages;
        assert!(
            stages.0.iter().all(|(_, s)| s.state == "SUCCEEDED"),
            "{stages:?}"
        );
        took
    })
}

/// An engine on the in-memory backends whose first stage is held by revision 1 (commit `c0`,
/// its step never ends), with commits `c1..=c{pushes}`; the run pushes them one by one.
fn engine_pushes(pushes: usize) -> Run {
    Box::new(move || {
        let definition = lifecycle_pipeline(1, 1, false);
        let path = format!("/.devramps/{SLUG}/pipeline.yaml");
        let (backends, handles) = scripted_backends();
        handles.steps.set_default(Behavior::hang());
        for i in 0..=pushes {
            let files = [(path.as_str(), definition.as_str())];
            handles.source.commit(&format!("c{i}"), None, files);
        }
        let (mut pool, engine) = devramps_benches::start_engine(&backends);
        pool.run_until(engine.push(SLUG, PushRequest::new("main", "c0")))
            .expect("the push is recorded");
        pool.run_until_stalled();
        let pushing = engine.clone();
        let ((), took) = timed(|| {
            pool.run_until(async move {
                for i in 1..=pushes {
                    let request =
                        PushRequest::new("main", format!("c{i}")).with_delivery(format!("d{i}"));
                    pushing
                        .push(SLUG, request)
                        .await
                        .expect("the push is recorded");
                }
            });
            pool.run_until_stalled();
        });
        let state = pool.run_until(engine.state(SLUG)).expect("state");
        assert_eq!(state.deployments.len(), pushes + 1);
        took
    })
}

// ----- stored logs -----

/// A stored log of completed deployments (3 stages x 5 instant steps), built once by the engine
/// and cut to each size.
struct Log {
    events: RefCell<Vec<StoredEvent>>,
}

impl Log {
    fn new() -> Self {
        Log {
            events: RefCell::new(Vec::new()),
        }
    }

    /// The first `records` stored events (the log grows to that length when shorter).
    fn events(&self, records: usize) -> Vec<StoredEvent> {
        let mut events = self.events.borrow_mut();
        if events.len() < records {
            // Built once at the largest size of the run, then cut.
            let largest = if FULL.load(Ordering::Relaxed) {
                LOG_RECORDS
            } else {
                records
            };
            *events = build_log(records.max(largest));
        }
        events[..records].to_vec()
    }

    /// Decoding and replaying the first `records` events.
    fn full(&self, records: usize) -> Run {
        let events = self.events(records);
        Box::new(move || {
            let (machine, took) = timed(|| {
                let decoded: Vec<Record> = events
                    .iter()
                    .map(|e| Record::from_stored(SLUG, e.clone()).expect("a record"))
                    .collect();
                Machine::replay(SLUG, &decoded)
            });
            check_replayed(&machine, records);
            took
        })
    }

    /// Decoding a snapshot taken [`TAIL`] records before the end of the first `records`
    /// events, then decoding and applying the tail.
    fn snapshot_and_tail(&self, records: usize) -> Run {
        let events = self.events(records);
        let cut = records - TAIL.min(records / 4);
        let head: Vec<Record> = events[..cut]
            .iter()
            .map(|e| Record::from_stored(SLUG, e.clone()).expect("a record"))
            .collect();
        let snapshot = serde_json::to_vec(&Machine::replay(SLUG, &head).snapshot().expect("ok"))
            .expect("serializes");
        let tail = events[cut..].to_vec();
        Box::new(move || {
            let (machine, took) = timed(|| {
                let value: serde_json::Value = serde_json::from_slice(&snapshot).expect("decodes");
                let mut machine = Machine::from_snapshot(SLUG, &value).expect("a snapshot");
                let decoded: Vec<Record> = tail
                    .iter()
                    .map(|e| Record::from_stored(SLUG, e.clone()).expect("a record"))
                    .collect();
                machine.apply(&decoded);
                machine
            });
            check_replayed(&machine, records);
            took
        })
    }

    /// The simulator's invariant checks over the first `records` records.
    fn check(&self, records: usize) -> Run {
        let decoded: Vec<Record> = self
            .events(records)
            .into_iter()
            .map(|e| Record::from_stored(SLUG, e).expect("a record"))
            .collect();
        Box::new(move || {
            let (violations, took) =
                timed(|| devramps_sim::history_violations(SLUG, black_box(&decoded)));
            assert!(violations.is_empty(), "{violations:?}");
            took
        })
    }
}

/// The replayed state holds every record and its deployments but the last succeeded.
fn check_replayed(machine: &Machine, records: usize) {
    let state = machine.state();
    assert_eq!(state.applied, records as u64);
    let done = state
        .deployments
        .values()
        .filter(|d| d.stages.iter().all(|s| s.state == StageState::Succeeded))
        .count();
    assert!(
        done + 1 >= state.deployments.len(),
        "{done} of {}",
        state.deployments.len()
    );
}

/// At least `records` stored events of completed deployments
/// ([`devramps_benches::completed_deployments`]).
fn build_log(records: usize) -> Vec<StoredEvent> {
    let (_, handles) = devramps_benches::completed_deployments(SLUG, records);
    block_on(handles.store.read_all(SLUG)).expect("reads")
}

// ----- diagnostics -----

/// How `devramps validate` prints.
#[derive(Clone, Copy)]
enum Format {
    Text,
    Json,
}

/// A pipeline file with `problems` errors: entries of the stage's `skip` list that name no
/// step (E0107) alternate with steps whose param holds a broken expression (its location is
/// found inside the string). Small enough per problem for 32,000 to stay under the YAML node
/// budget.
fn diagnostics_file(problems: usize) -> String {
    let mut yaml = String::from(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stages:\n    \
         - name: staging\n      account_id: \"111111111111\"\n      region: us-east-1\n      \
         skip:\n",
    );
    for i in (0..problems).step_by(2) {
        let _ = writeln!(yaml, "        - nope-{i}");
    }
    yaml.push_str("  steps:\n");
    for i in (1..problems).step_by(2) {
        let _ = writeln!(
            yaml,
            "    - {{ name: Step {i}, type: \"CUSTOM:BENCH:STEP\", params: {{ v: \"${{{{ nope.{i} }}}}\" }} }}"
        );
    }
    yaml.push_str("  artifacts: {}\n");
    yaml
}

/// A valid pipeline whose stage's `skip` list names its one step `warnings + 1` times (each
/// repetition is warning W0211).
fn warnings_file(warnings: usize) -> String {
    let mut yaml = String::from(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stages:\n    \
         - name: staging\n      account_id: \"111111111111\"\n      region: us-east-1\n      \
         skip:\n",
    );
    for _ in 0..=warnings {
        yaml.push_str("        - step\n");
    }
    yaml.push_str(
        "  steps:\n    - { name: Step, id: step, type: \"CUSTOM:BENCH:STEP\" }\n  artifacts: {}\n",
    );
    yaml
}

/// Checking `text` and printing its report in `format`, as `devramps validate` does.
fn validate(text: String, format: Format) -> Run {
    Box::new(move || {
        let (out, took) = timed(|| {
            let checked = devramps_core::plan::check(&text);
            let reports = [report::PipelineReport {
                path: ".devramps/app/pipeline.yaml".to_owned(),
                slug: SLUG.to_owned(),
                source: Some(text.clone()),
                diagnostics: checked.diagnostics,
            }];
            match format {
                Format::Text => render::text(&reports, false),
                Format::Json => report::to_json(&reports),
            }
        });
        assert!(out.len() > text.len(), "a report of every problem");
        took
    })
}

// ----- the runs and the table -----

/// What was measured of one size.
enum Measured {
    Time(Duration),
    Skipped,
}

/// The least-squares slope of log2 time against log2 size.
fn exponent(points: &[(usize, Duration)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|(n, t)| ((*n as f64).log2(), t.as_secs_f64().max(1e-9).log2()))
        .collect();
    let k = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / k;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / k;
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    Some(sxy / sxx)
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2}s")
    } else {
        format!("{:.1}ms", s * 1e3)
    }
}

fn main() {
    // `cargo bench` measures; `cargo test --benches` only smoke-tests.
    let full = measuring();
    FULL.store(full, Ordering::Relaxed);
    let logs = Rc::new(Log::new());
    let dims = dimensions(&logs);

    let filter = std::env::var(FILTER_ENV).unwrap_or_default();
    if let Ok(only) = std::env::var(ONLY_ENV) {
        let (name, size) = only.rsplit_once(':').expect("<dimension>:<size>");
        let dim = dims.iter().find(|d| d.name == name).expect("a dimension");
        let mut run = (dim.prepare)(size.parse().expect("a size"));
        println!("{name} {size}: {}", seconds(run()));
        return;
    }

    // The shared short configuration, with shorter warm-up and measurement: the run holds
    // ten dimensions of five or six sizes each.
    let mut criterion = short_criterion()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut table: Vec<(&str, Vec<(usize, Measured)>)> = Vec::new();
    let wanted = |name: &str| filter.split(',').any(|part| name.contains(part));
    for dim in dims.iter().filter(|d| wanted(d.name)) {
        let sizes: Vec<usize> = if full {
            dim.sizes.clone()
        } else {
            // Smoke test: the two smallest sizes at 1/20.
            dim.sizes.iter().take(2).map(|n| (n / 20).max(2)).collect()
        };
        let mut row = Vec::new();
        let mut stop = false;
        let mut group = criterion.benchmark_group(dim.name);
        group.sampling_mode(SamplingMode::Flat);
        for &n in &sizes {
            if stop {
                row.push((n, Measured::Skipped));
                continue;
            }
            let mut run = (dim.prepare)(n);
            let probe = run();
            if !full || probe >= CRITERION_BELOW {
                println!("{} {n}: {} (timed once)", dim.name, seconds(probe));
                row.push((n, Measured::Time(probe)));
                stop = probe > STOP_ABOVE;
                continue;
            }
            let samples = Rc::new(RefCell::new(Vec::new()));
            let seen = Rc::clone(&samples);
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter_custom(|iters| {
                    let total: Duration = (0..iters).map(|_| run()).sum();
                    seen.borrow_mut().push(total / iters.max(1) as u32);
                    total
                })
            });
            let mut samples = samples.borrow_mut();
            samples.sort();
            let median = samples.get(samples.len() / 2).copied().unwrap_or(probe);
            row.push((n, Measured::Time(median)));
        }
        group.finish();
        table.push((dim.name, row));
    }
    criterion.final_summary();

    println!(
        "\ngrowth (median per run; `-` skipped; exponent = fitted log2 time ratio per doubling)"
    );
    println!(
        "{:<18} {:>8} {:>12}  times by size",
        "dimension", "exponent", "largest"
    );
    for (name, row) in &table {
        let points: Vec<(usize, Duration)> = row
            .iter()
            .filter_map(|(n, m)| match m {
                Measured::Time(t) => Some((*n, *t)),
                Measured::Skipped => None,
            })
            .collect();
        let fitted = exponent(&points).map_or("-".to_owned(), |e| format!("{e:.2}"));
        let largest = points
            .last()
            .map_or("-".to_owned(), |(n, t)| format!("{n}: {}", seconds(*t)));
        let times: Vec<String> = row
            .iter()
            .map(|(n, m)| match m {
                Measured::Time(t) => format!("{n}={}", seconds(*t)),
                Measured::Skipped => format!("{n}=-"),
            })
            .collect();
        println!("{name:<18} {fitted:>8} {largest:>12}  {}", times.join(" "));
    }
}

//! What running one custom step costs over starting its interpreter (issue 13, item 7): a
//! `CUSTOM:ECHO` step of the sample registry (`examples/step-registry`) run by
//! `CustomStepRunner` (spawn in a process group of its own, state on disk, protocol, result
//! parsing, log capture), against `node -e ''` (an empty program of the same interpreter) and
//! `node registry.js` run by hand with the same protocol arguments (the registry's own cost).
//! The registry is started with `node registry.js` for a fair comparison; `npm run` (the
//! default command) is measured too, with fewer samples.
//!
//! Besides criterion's figures it prints the median of each and the ratio runner / empty node
//! (goal: at most 1.5).
//!
//! Run with `cargo bench -p devramps-benches --bench custom_step`; `cargo test --benches` runs
//! each once. Needs `node` (and `npm`) on PATH.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use devramps_core::backend::{ExecutionKey, Outcome, Runner, StepRequest, Unit};
use devramps_core::expr::FinalValue;
use devramps_local::steps::{CustomStepRunner, StepRegistry};

/// Distinct keys, so every run is a new execution.
static NEXT: AtomicU64 = AtomicU64::new(1);

fn registry_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/step-registry")
}

/// `node -e ''`.
fn empty_node() {
    let status = Command::new("node")
        .args(["-e", ""])
        .stdout(Stdio::null())
        .status()
        .expect("node runs (install Node.js 18 or newer)");
    assert!(status.success());
}

/// `node registry.js` with the protocol's arguments, by hand.
fn registry_by_hand(scratch: &Path) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let output = scratch.join(format!("hand-{n}.json"));
    let status = Command::new("node")
        .arg("registry.js")
        .arg("--input")
        .arg(r#"{"job":"EXECUTE","type":"CUSTOM:ECHO","params":{"message":"hi"}}"#)
        .arg("--output")
        .arg(&output)
        .arg("--log-dir")
        .arg(scratch.join("hand-logs"))
        .arg("--execution-id")
        .arg(format!("hand-{n}"))
        .current_dir(registry_dir())
        .status()
        .expect("node runs");
    assert!(status.success() && output.exists());
}

/// One `CUSTOM:ECHO` execution through the runner: start, wait, logs.
async fn one_step(runner: &CustomStepRunner) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let key = ExecutionKey::new("bench", n, "prod", 1, Unit::step("echo"));
    let params = FinalValue::Plain(serde_json::json!({ "message": "hi" }));
    let request = StepRequest::new(key.clone(), "CUSTOM:ECHO", params);
    runner.start(request).await.expect("start");
    let outcome = runner.wait(&key).await.expect("wait");
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(runner.logs(&key).await.expect("logs").len(), 1);
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let node = StepRegistry::npm(registry_dir()).with_command(["node", "registry.js"]);
    let runner = CustomStepRunner::new(scratch.path().join("node"), vec![node]);
    let npm = CustomStepRunner::new(
        scratch.path().join("npm"),
        vec![StepRegistry::npm(registry_dir())],
    );

    let full = devramps_benches::measuring();
    if full {
        let runs = 31;
        let empty = median(empty_node, runs);
        let by_hand = median(|| registry_by_hand(scratch.path()), runs);
        let stepped = median(|| rt.block_on(one_step(&runner)), runs);
        let via_npm = median(|| rt.block_on(one_step(&npm)), 11);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "custom step medians: node -e '' {:.1} ms; node registry.js by hand {:.1} ms; \
             runner (node) {:.1} ms; runner (npm run) {:.1} ms; runner / empty node = {:.2}x \
             (goal <= 1.5x); runner / registry by hand = {:.2}x",
            ms(empty),
            ms(by_hand),
            ms(stepped),
            ms(via_npm),
            stepped.as_secs_f64() / empty.as_secs_f64(),
            stepped.as_secs_f64() / by_hand.as_secs_f64(),
        );
    }

    let mut group = c.benchmark_group("custom_step");
    group.bench_function("node -e ''", |b| b.iter(empty_node));
    group.bench_function("node registry.js by hand", |b| {
        b.iter(|| registry_by_hand(black_box(scratch.path())))
    });
    group.bench_function("CustomStepRunner, node registry.js", |b| {
        b.iter(|| rt.block_on(one_step(&runner)))
    });
    group.sample_size(10);
    group.bench_function("CustomStepRunner, npm run start-step-registry", |b| {
        b.iter(|| rt.block_on(one_step(&npm)))
    });
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
    benches();
    Criterion::default().configure_from_args().final_summary();
}

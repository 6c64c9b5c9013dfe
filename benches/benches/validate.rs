//! Benchmark `validate`: parsing and validating a large `pipeline.yaml` against parsing the same
//! text into an untyped value with the same YAML library.
//!
//! Run with `cargo bench -p devramps-benches --bench validate`. After the Criterion report the
//! benchmark prints one summary line with both medians and their ratio (target: at most 2.0,
//! i.e. validation costs at most as much again as plain YAML parsing).
//!
//! Criterion's filter is a regular expression: `-- 'validate/parse.validate'` selects (a) only.
//! To profile (a): `cargo bench -p devramps-benches --bench validate -- --profile-time 10
//! 'validate/parse'` under `perf record`, with `CARGO_PROFILE_BENCH_DEBUG=line-tables-only`
//! for symbols; the summary is skipped in that mode.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use devramps_benches::large_pipeline;
use devramps_core::plan::check;

/// Size of the benchmark input.
const STAGES: usize = 50;
/// Size of the benchmark input.
const STEPS: usize = 500;
/// Size of the benchmark input.
const ARTIFACTS: usize = 200;
/// Iterations of each function for the summary medians (interleaved).
const SUMMARY_ITERATIONS: usize = 30;
/// The largest parse+validate / untyped parse ratio considered acceptable.
const TARGET_RATIO: f64 = 2.0;

/// The generated input, shared by every measurement.
fn input() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let text = large_pipeline(STAGES, STEPS, ARTIFACTS);
        let checked = check(&text);
        assert!(
            checked.definition.is_some(),
            "the benchmark input is invalid: {:?}",
            checked.diagnostics.first()
        );
        text
    })
}

/// (a) What `devramps validate` does: parse with spans, read the typed model, validate.
fn parse_and_validate(text: &str) -> usize {
    let checked = check(black_box(text));
    checked.diagnostics.len() + usize::from(checked.definition.is_some())
}

/// (b) The baseline: the same YAML library into an untyped value.
fn untyped_parse(text: &str) -> usize {
    let value: serde_json::Value =
        serde_saphyr::from_str(black_box(text)).expect("the benchmark input is valid YAML");
    usize::from(value.is_object())
}

fn bench_validate(c: &mut Criterion) {
    let text = input();
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse+validate", |b| b.iter(|| parse_and_validate(text)));
    group.bench_function("untyped parse", |b| b.iter(|| untyped_parse(text)));
    group.finish();
}

criterion_group! {
    name = benches;
    // Two functions at about 12 s each keep the whole run under a minute.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    targets = bench_validate
}

/// The median of `samples`, in milliseconds.
fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    let n = samples.len();
    let mid = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    mid.as_secs_f64() * 1000.0
}

/// Measures both functions `iterations` times, interleaved so that machine noise (other builds
/// on the same cores) hits both alike, and prints the summary line.
fn summary(iterations: usize) {
    let text = input();
    let mut a = Vec::with_capacity(iterations);
    let mut b = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        black_box(parse_and_validate(text));
        a.push(start.elapsed());
        let start = Instant::now();
        black_box(untyped_parse(text));
        b.push(start.elapsed());
    }
    let a = median_ms(&mut a);
    let b = median_ms(&mut b);
    let ratio = a / b;
    if iterations < SUMMARY_ITERATIONS {
        // `cargo test --benches`: a smoke test of an unoptimized build, not a measurement.
        println!(
            "validate: smoke test passed ({iterations} iteration, parse+validate {a:.2} ms, untyped parse {b:.2} ms; run `cargo bench` to measure)"
        );
        return;
    }
    println!(
        "validate: input {STAGES} stages, {STEPS} steps, {ARTIFACTS} artifacts, {} bytes; {iterations} interleaved iterations",
        text.len()
    );
    println!(
        "validate: parse+validate median {a:.2} ms, untyped parse median {b:.2} ms, ratio {ratio:.2} (target <= {TARGET_RATIO:.1}){}",
        if ratio <= TARGET_RATIO {
            ""
        } else {
            " ABOVE TARGET"
        }
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    // Profiling (`--profile-time N`) and listing runs measure nothing else.
    if args.iter().any(|a| a == "--profile-time" || a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests.
    let benchmarking = args.iter().any(|a| a == "--bench");
    summary(if benchmarking { SUMMARY_ITERATIONS } else { 1 });
}

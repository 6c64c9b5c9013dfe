//! Random histories per second (issue 16): `devramps simulate --random` on the 5-step
//! two-stage fixture (`shared/fixtures/pipelines/api.yaml`, copied in the sample repository
//! as `examples/repo/.devramps/api/pipeline.yaml`): 100 histories of exactly 50 events each,
//! generated from a fixed seed, each simulated and checked by every lifecycle rule. The figure
//! is the time of one history (generation, simulation and checks); the goal is at least 500
//! histories per second on one core (2 ms each).
//!
//! It allocates with mimalloc, as the `devramps` binary does (the figure is that of `devramps
//! simulate --random`); a test suite that runs the same histories with the system allocator
//! runs them about a third slower.
//!
//! Run with `cargo bench -p devramps-benches --bench random_histories`; `cargo test --benches`
//! runs it once on 5 histories.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use devramps_sim::random::{Histories, HistoryConfig, check_run, seeded_rng};
use devramps_sim::{Scenario, simulate};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PIPELINE: &str = include_str!("../../examples/repo/.devramps/api/pipeline.yaml");

/// `count` histories of 50 events from seed 0.
fn histories(count: usize) -> Vec<Scenario> {
    let config = HistoryConfig {
        min_events: 50,
        max_events: 50,
        ..HistoryConfig::default()
    };
    let strategy = Histories::new(PIPELINE, config)
        .expect("the fixture is valid")
        .strategy();
    let mut runner = TestRunner::new_with_rng(Config::default(), seeded_rng(0));
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a history").current())
        .collect()
}

/// Simulates and checks one history; the number of log events.
fn run(scenario: &Scenario) -> usize {
    let report = simulate(scenario, PIPELINE);
    let violations = check_run(scenario, PIPELINE, &report, &[]);
    assert!(violations.is_empty(), "{violations:?}");
    report.events.len()
}

fn bench(c: &mut Criterion) {
    let count = if devramps_benches::measuring() {
        100
    } else {
        5
    };
    let scenarios = histories(count);
    let mut group = c.benchmark_group("random histories");
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function(
        format!("{count} histories of 50 events: simulate + check"),
        |b| b.iter(|| scenarios.iter().map(|s| black_box(run(s))).sum::<usize>()),
    );
    group.bench_function(format!("{count} histories of 50 events: generate"), |b| {
        b.iter(|| black_box(histories(count).len()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = devramps_benches::short_criterion();
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

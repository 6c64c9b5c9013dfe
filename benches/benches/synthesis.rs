//! Benchmarks of synthesis (issue "Expressions and synthesis"):
//!
//! - (a) `synthesize` of the large generated pipeline (50 stages, 500 steps, 200 artifacts, with
//!   expressions in most params) against an untyped YAML parse of the same text, in the same
//!   run; target: within 3x.
//! - (b) rebuild decisions for 100,000 changed paths against 1 artifact and against 1,000
//!   artifacts (prefix and glob entries); target: the 1,000-artifact case within 5x of the
//!   1-artifact case.
//!
//! Run with `cargo bench -p devramps-benches --bench synthesis`; summary lines follow the
//! Criterion report.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use devramps_benches::{changed_paths, interleaved_medians, large_pipeline, rebuild_pipeline};
use devramps_core::expr::{Organization, PipelineInfo, Trigger};
use devramps_core::pipeline::PipelineDefinition;
use devramps_core::plan::parse;
use devramps_core::plan::{Changes, RebuildMatcher, SynthesisInput, synthesize};

const BASE: &str = "1111111111111111111111111111111111111111";

fn synthesis_input(definition: &PipelineDefinition) -> SynthesisInput {
    SynthesisInput {
        pipeline: PipelineInfo::from_slug("big"),
        organization: Organization::default(),
        trigger: Trigger {
            sha: "2222222222222222222222222222222222222222".to_owned(),
            branch: "main".to_owned(),
            tag: String::new(),
            revision: 42,
        },
        previous_builds: definition
            .artifacts
            .iter()
            .map(|a| (a.id.value.clone(), BASE.to_owned()))
            .collect(),
        previous_stage_builds: Default::default(),
        changes: Changes::since(BASE, changed_paths(1_000)),
    }
}

fn untyped_parse(text: &str) -> usize {
    let value: serde_json::Value = serde_saphyr::from_str(black_box(text)).expect("valid YAML");
    usize::from(value.is_object())
}

struct Inputs {
    text: String,
    definition: PipelineDefinition,
    input: SynthesisInput,
    paths: Vec<String>,
    one: RebuildMatcher,
    thousand: RebuildMatcher,
}

fn inputs() -> Inputs {
    let text = large_pipeline(50, 500, 200);
    let definition = parse(&text).expect("the generated pipeline is valid");
    let input = synthesis_input(&definition);
    let one = parse(&rebuild_pipeline(1, 1)).expect("valid");
    let thousand = parse(&rebuild_pipeline(1_000, 1)).expect("valid");

    Inputs {
        paths: changed_paths(100_000),
        one: RebuildMatcher::new(&one.artifacts).expect("compiles"),
        thousand: RebuildMatcher::new(&thousand.artifacts).expect("compiles"),

        text,
        definition,
        input,
    }
}

fn bench(c: &mut Criterion) {
    let i = inputs();
    let mut group = c.benchmark_group("synthesis");
    group.bench_function("synthesize", |b| {
        b.iter(|| {
            synthesize(black_box(&i.definition), Some(&i.text), &i.input).map(|p| p.stages.len())
        })
    });
    group.bench_function("untyped parse", |b| b.iter(|| untyped_parse(&i.text)));
    group.finish();
    let mut group = c.benchmark_group("rebuild");
    group.bench_function("100k paths x 1 artifact", |b| {
        b.iter(|| i.one.matches(black_box(&i.paths)).len())
    });
    group.bench_function("100k paths x 1000 artifacts", |b| {
        b.iter(|| i.thousand.matches(black_box(&i.paths)).len())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--profile-time" || a == "--list") {
        return;
    }
    let iterations = if args.iter().any(|a| a == "--bench") {
        20
    } else {
        1
    };
    let i = inputs();
    let (synth, untyped) = interleaved_medians(
        iterations,
        || {
            black_box(
                synthesize(&i.definition, Some(&i.text), &i.input)
                    .map(|p| p.stages.len())
                    .ok(),
            );
        },
        || {
            black_box(untyped_parse(&i.text));
        },
    );
    let (one, thousand) = interleaved_medians(
        iterations,
        || {
            black_box(i.one.matches(&i.paths));
        },
        || {
            black_box(i.thousand.matches(&i.paths));
        },
    );
    let pairs = |m: &RebuildMatcher| m.matches(&i.paths).iter().map(Vec::len).sum::<usize>();
    let verdict = |ratio: f64, target: f64| if ratio <= target { "" } else { " ABOVE TARGET" };
    let kind = if iterations == 1 {
        " (smoke test of an unoptimized build; run `cargo bench`)"
    } else {
        ""
    };
    let r1 = synth / untyped;
    let r2 = thousand / one;
    println!(
        "synthesis: synthesize median {synth:.2} ms, untyped parse median {untyped:.2} ms, ratio {r1:.2} (target <= 3.0){}{kind}",
        verdict(r1, 3.0)
    );
    println!(
        "rebuild: 100000 paths x 1 artifact median {one:.2} ms, x 1000 artifacts median {thousand:.2} ms, ratio {r2:.2} (target <= 5.0){}{kind}",
        verdict(r2, 5.0)
    );
    println!(
        "rebuild: matched (path, artifact) pairs: 1 artifact {}, 1000 artifacts {} (the decisions carry every matched path)",
        pairs(&i.one),
        pairs(&i.thousand)
    );
}

//! What reading a large plan costs (issue 14, item 5): `devramps_local::terraform::classify`
//! on the `terraform show -json` output of a generated 5,000-resource plan, shaped as Terraform
//! 1.0.3 writes it (format 0.2: planned values, resource changes with their values before and
//! after, prior state, configuration), a mix of creations, updates, replacements, deletions
//! and no-ops. Goal: well under 100 ms.
//!
//! Besides criterion's figures it prints the median at 1,250 to 10,000 resources (doubling)
//! and the fitted exponent (1 is linear).
//!
//! Run with `cargo bench -p devramps-benches --bench terraform_classify`; `cargo test
//! --benches` runs each once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use devramps_local::terraform::classify;

/// The values of one resource: ten attributes, a nested block and a list.
fn values(i: usize, generation: usize) -> String {
    format!(
        r#"{{"id":"thing-{i:08}","name":"app-{i}-{generation}","size":{size},"tags":{{"team":"platform","env":"staging","owner":"x{i}"}},"rules":[{{"port":443,"cidr":"10.0.0.0/16"}},{{"port":80,"cidr":"0.0.0.0/0"}}],"description":"resource number {i} of the generated plan, with some text to make it realistic","enabled":true,"weight":0.5,"arn":"arn:aws:thing:us-east-1:111111111111:thing/{i}","zone":"us-east-1a"}}"#,
        size = i % 7 + generation,
    )
}

/// A plan of `n` resources, as `terraform show -json` prints it.
fn plan_json(n: usize) -> String {
    let actions = [
        r#"["create"]"#,
        r#"["update"]"#,
        r#"["delete","create"]"#,
        r#"["delete"]"#,
        r#"["no-op"]"#,
    ];
    let mut changes = Vec::with_capacity(n);
    let mut planned = Vec::with_capacity(n);
    let mut prior = Vec::with_capacity(n);
    let mut config = Vec::with_capacity(n);
    for i in 0..n {
        let address = format!("module.m{}.devramps_thing.t[{i}]", i % 10);
        changes.push(format!(
            r#"{{"address":"{address}","module_address":"module.m{m}","mode":"managed","type":"devramps_thing","name":"t","index":{i},"provider_name":"registry.terraform.io/devramps/devramps","change":{{"actions":{a},"before":{b},"after":{c},"after_unknown":{{"id":true}},"before_sensitive":{{}},"after_sensitive":{{"tags":{{}}}}}}}}"#,
            m = i % 10,
            a = actions[i % actions.len()],
            b = values(i, 1),
            c = values(i, 2),
        ));
        planned.push(format!(
            r#"{{"address":"{address}","mode":"managed","type":"devramps_thing","name":"t","index":{i},"provider_name":"registry.terraform.io/devramps/devramps","schema_version":0,"values":{v},"sensitive_values":{{}}}}"#,
            v = values(i, 2),
        ));
        prior.push(format!(
            r#"{{"address":"{address}","mode":"managed","type":"devramps_thing","name":"t","index":{i},"provider_name":"registry.terraform.io/devramps/devramps","schema_version":0,"values":{v},"sensitive_values":{{}}}}"#,
            v = values(i, 1),
        ));
        config.push(format!(
            r#"{{"address":"devramps_thing.t{i}","mode":"managed","type":"devramps_thing","name":"t{i}","provider_config_key":"devramps","expressions":{{"name":{{"constant_value":"app-{i}"}},"size":{{"references":["var.size"]}}}},"schema_version":0}}"#,
        ));
    }
    format!(
        r#"{{"format_version":"0.2","terraform_version":"1.0.3","variables":{{"size":{{"value":2}}}},"planned_values":{{"root_module":{{"resources":[{}]}}}},"resource_changes":[{}],"prior_state":{{"format_version":"0.2","terraform_version":"1.0.3","values":{{"root_module":{{"resources":[{}]}}}}}},"configuration":{{"root_module":{{"resources":[{}]}}}}}}"#,
        planned.join(","),
        changes.join(","),
        prior.join(","),
        config.join(","),
    )
}

fn median(json: &[u8], runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let changes = classify(black_box(json)).expect("classifies");
            black_box(changes);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn bench(c: &mut Criterion) {
    let sizes = [1_250, 2_500, 5_000, 10_000];
    let plans: Vec<(usize, String)> = sizes.iter().map(|&n| (n, plan_json(n))).collect();
    let five = &plans[2].1;
    let changes = classify(five.as_bytes()).expect("classifies");
    assert_eq!(changes.len(), 4_000, "every resource but the no-ops");

    if devramps_benches::measuring() {
        let medians: Vec<(usize, usize, Duration)> = plans
            .iter()
            .map(|(n, json)| (*n, json.len(), median(json.as_bytes(), 21)))
            .collect();
        for (n, bytes, d) in &medians {
            println!(
                "terraform classify: {n} resources ({:.1} MB of plan JSON): median {:.2} ms",
                *bytes as f64 / 1e6,
                d.as_secs_f64() * 1000.0
            );
        }
        let (first, last) = (medians[0], medians[medians.len() - 1]);
        let exponent = (last.2.as_secs_f64() / first.2.as_secs_f64()).ln()
            / (last.0 as f64 / first.0 as f64).ln();
        println!(
            "terraform classify: fitted exponent {exponent:.2} (1 is linear); goal at 5,000 resources: well under 100 ms"
        );
    }

    let mut group = c.benchmark_group("terraform_classify");
    for (n, json) in &plans {
        group.bench_with_input(BenchmarkId::from_parameter(n), json, |b, json| {
            b.iter(|| classify(black_box(json.as_bytes())).expect("classifies"))
        });
    }
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

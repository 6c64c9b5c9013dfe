//! `devramps simulate --store s3://BUCKET/PREFIX` against a real S3 API (moto, found through
//! `AWS_ENDPOINT_URL`, as `scripts/test` and `.ci/run` set it): every scenario of the
//! repository gives the same report on S3 as in memory.

mod common;

use std::path::Path;

use common::{code, devramps, stderr, stdout};

/// The endpoint of moto, or a failure saying how to start it.
fn moto() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: these tests need a local S3 API. Run them with \
             `scripts/test` (it starts moto), or start moto yourself: `python3 -m venv \
             /tmp/moto-venv && /tmp/moto-venv/bin/pip install 'moto[server]' && \
             /tmp/moto-venv/bin/moto_server -H 127.0.0.1 -p 5055 &` and set \
             AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=test \
             AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
        )
    })
}

/// A fresh bucket on moto.
fn bucket() -> String {
    let endpoint = moto();
    let name = format!(
        "devramps-sim-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .load()
            .await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name} on {endpoint}: {e:?}"));
    });
    name
}

#[test]
fn every_scenario_gives_the_same_report_on_s3_as_in_memory() {
    let bucket = bucket();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../devramps-sim/tests/scenarios");
    let mut scenarios: Vec<_> = std::fs::read_dir(&dir)
        .expect("the scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 10, "found {} scenarios", scenarios.len());
    for (i, scenario) in scenarios.iter().enumerate() {
        let path = scenario.to_str().expect("UTF-8 path");
        let memory = devramps(&dir, &["simulate", path, "--format", "json"]);
        let store = format!("s3://{bucket}/scenario-{i}");
        let s3 = devramps(
            &dir,
            &["simulate", path, "--format", "json", "--store", &store],
        );
        assert_eq!(code(&s3), code(&memory), "{path}: {}", stderr(&s3));
        assert_eq!(
            stdout(&s3),
            stdout(&memory),
            "{path}: the report on S3 differs from the one in memory"
        );
    }
    // A used prefix is refused: a simulation starts from an empty log.
    let path = scenarios[0].to_str().expect("UTF-8 path");
    let again = devramps(
        &dir,
        &[
            "simulate",
            path,
            "--store",
            &format!("s3://{bucket}/scenario-0"),
        ],
    );
    assert_eq!(code(&again), 2, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already holds events"),
        "{}",
        stderr(&again)
    );
}

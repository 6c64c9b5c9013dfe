//! Runs every example so that none can rot.

#[path = "../examples/validate.rs"]
#[allow(dead_code, unreachable_pub)]
mod validate;

#[test]
fn validate_example_reports_both_sample_pipelines() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("repo");
    let outcomes = validate::run(&repo).expect("sample repo is readable");
    let slugs: Vec<&str> = outcomes.iter().map(|o| o.slug.as_str()).collect();
    assert_eq!(
        slugs,
        ["api", "web"],
        "tools/ has no pipeline.yaml and is skipped"
    );
    for o in &outcomes {
        assert_eq!(o.errors, 0, "{} should be valid", o.slug);
        assert_eq!(o.stages, ["staging", "prod"]);
    }
}

#[path = "../examples/quickstart.rs"]
#[allow(dead_code, unreachable_pub)]
mod quickstart;

#[test]
fn quickstart_deploys_to_prod_and_the_middle_push_is_superseded_unbuilt() {
    use devramps_core::lifecycle::{Event, StageState};
    let log = quickstart::run(false);
    let final_state = |revision: u64, stage: &str| {
        log.iter().rev().find_map(|r| match &r.event {
            Event::StageState {
                revision: rv,
                stage: s,
                state,
                ..
            } if *rv == revision && s == stage => Some(*state),
            _ => None,
        })
    };
    assert_eq!(final_state(1, "prod"), Some(StageState::Succeeded));
    assert_eq!(
        final_state(2, "staging"),
        Some(StageState::Skipped),
        "r2 superseded by r3"
    );
    assert_eq!(final_state(3, "prod"), Some(StageState::Succeeded));
    assert!(
        !log.iter()
            .any(|r| matches!(r.event, Event::BuildStarted { revision: 2, .. })),
        "r2 never built"
    );
}

#[path = "../examples/custom_store.rs"]
#[allow(dead_code, unreachable_pub)]
mod custom_store;

/// The example's store passes every case of the kit, as any store must.
mod custom_store_conformance {
    devramps_core::store_conformance_tests!(super::custom_store::MapStore::default());
}

#[test]
fn custom_store_example_deploys_to_prod_with_its_log_in_the_custom_store() {
    use devramps_core::lifecycle::StageState;
    let (staging, prod, records) = custom_store::run(custom_store::MapStore::default());
    assert_eq!(
        (staging, prod),
        (StageState::Succeeded, StageState::Succeeded)
    );
    assert!(
        records > 10,
        "the whole log is in the custom store: {records} records"
    );
}

#[path = "../examples/s3_engine.rs"]
#[allow(dead_code, unreachable_pub)]
mod s3_engine;

#[test]
fn s3_engine_example_deploys_to_prod_with_its_log_on_s3() {
    use devramps_core::lifecycle::StageState;
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: this test needs a local S3 API. Run the tests with \
         `scripts/test` (it starts moto), or start moto and set AWS_ENDPOINT_URL, \
         AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test, AWS_REGION=us-east-1"
    );
    let bucket = format!("devramps-example-{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (staging, prod, records) = runtime
        .block_on(s3_engine::run(&bucket, "example"))
        .expect("the example runs against moto");
    assert_eq!(
        (staging, prod),
        (StageState::Succeeded, StageState::Succeeded)
    );
    assert!(records > 10, "the log is on S3: {records} records");
}

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

#[path = "../examples/aws_stages.rs"]
#[allow(dead_code, unreachable_pub)]
mod aws_stages;

/// The AWS example on moto: both stages deployed in their accounts and regions, images and
/// bundles mirrored, prod rolled back by its CloudWatch alarm, the log on S3.
#[test]
fn aws_stages_example_deploys_mirrors_and_rolls_prod_back_on_its_alarm() {
    use devramps_core::lifecycle::{Emergency, Event, StageState};
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: this test needs moto. Run the tests with `scripts/test` \
         (it starts moto and installs docker-registry), or start moto and set AWS_ENDPOINT_URL, \
         AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test, AWS_REGION=us-east-1"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime
        .block_on(aws_stages::run(false))
        .expect("the example runs against moto");
    let stage_state = |revision: u64, stage: &str| {
        report.log.iter().rev().find_map(|r| match &r.event {
            Event::StageState {
                revision: rv,
                stage: s,
                state,
                ..
            } if *rv == revision && s == stage => Some(*state),
            _ => None,
        })
    };
    // r1 went everywhere; r2 went through staging, and prod was rolled back to r1 by the alarm.
    assert_eq!(stage_state(1, "staging"), Some(StageState::Succeeded));
    assert_eq!(stage_state(2, "staging"), Some(StageState::Succeeded));
    assert_ne!(stage_state(2, "prod"), Some(StageState::Succeeded));
    assert!(
        report.log.iter().any(|r| matches!(
            &r.event,
            Event::EmergencyRequested { stage, operation: Emergency::Rollback, revision: 1, .. }
                if stage == "prod"
        )),
        "the alarm rolled prod back to r1"
    );
    assert_eq!(report.state.stage("prod").current, Some(1));
    // Validation and mirroring of each stage-deployment: r1 and r2 in both stages, then prod's
    // rollback to r1, whose image is there already: nothing copied.
    let stages: Vec<&str> = report.phases.iter().map(|c| c.stage.as_str()).collect();
    assert_eq!(
        stages,
        ["staging", "prod", "staging", "prod", "prod"],
        "{:?}",
        report.phases
    );
    for cost in &report.phases {
        assert!(cost.validation <= 6, "{cost:?}");
    }
    assert_eq!(
        report.phases[0].blobs_copied, 3,
        "config and two layers: {:?}",
        report.phases
    );
    assert_eq!(
        report.phases[2].blobs_copied, 2,
        "r2 shares its base layer: {:?}",
        report.phases
    );
    let rollback = &report.phases[4];
    assert_eq!(rollback.blobs_copied, 0, "{rollback:?}");
    assert!(rollback.registry <= 2, "{rollback:?}");
    assert_eq!(report.state.stage("staging").current, Some(2));
    // Each stage's work ran as its own role, in its own account.
    let roles: Vec<&str> = report
        .requests
        .keys()
        .map(|(who, _)| who.as_str())
        .filter(|who| who.starts_with("arn:"))
        .collect();
    assert!(
        roles
            .iter()
            .any(|r| r.contains(":222222222222:role/DevRamps-api-prod-DeploymentRole")),
        "{roles:?}"
    );
    assert!(
        roles
            .iter()
            .any(|r| r.contains(":111111111111:role/DevRamps-api-staging-DeploymentRole")),
        "{roles:?}"
    );
}

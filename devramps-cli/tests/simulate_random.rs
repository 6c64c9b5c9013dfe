//! `devramps simulate --random`, run as a user would: the real binary on pipeline files.

mod common;

use std::process::Command;

use common::*;

const PIPELINE: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
    - name: prod
      account_id: "222222222222"
      region: us-east-1
      auto_rollback_alarm_name: prod-5xx
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
    - name: Bake
      type: DEVRAMPS:APPROVAL:BAKE
      params: { duration_minutes: 20 }
  artifacts: {}
"#;

#[test]
fn random_histories_print_the_same_summary_for_the_same_seed() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "pipeline.yaml", PIPELINE);
    let args = ["simulate", "--random", "40", "--seed", "5", "pipeline.yaml"];
    let first = devramps(dir.path(), &args);
    assert_eq!(code(&first), 0, "{}{}", stdout(&first), stderr(&first));
    let summary = stdout(&first);
    assert!(summary.starts_with("seed 5: 40 histories, "), "{summary}");
    assert!(summary.contains("no invariant broken"), "{summary}");
    assert!(summary.contains("NOT_STARTED -> IN_PROGRESS"), "{summary}");
    assert!(summary.contains("operations refused ("), "{summary}");
    // Not a terminal: no progress on stderr.
    assert_eq!(stderr(&first), "");
    let second = devramps(dir.path(), &args);
    assert_eq!(stdout(&second), summary, "the same seed, the same output");
    let other = devramps(
        dir.path(),
        &["simulate", "--random", "40", "--seed", "6", "pipeline.yaml"],
    );
    assert_ne!(stdout(&other), summary, "another seed, other histories");
}

#[test]
fn an_invalid_pipeline_exits_2_with_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "pipeline.yaml",
        PIPELINE.replace("stages:", "stagez:"),
    );
    let output = devramps(dir.path(), &["simulate", "--random", "5", "pipeline.yaml"]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).starts_with("pipeline.yaml:"),
        "{}",
        stderr(&output)
    );
}

/// A deliberately broken property (test-only, through `DEVRAMPS_TEST_BROKEN_PROPERTY`): any
/// history that deploys twice breaks it. It is caught, shrunk to the two pushes that show it,
/// written into `--out` and runs again as a scenario.
#[test]
fn a_broken_property_is_shrunk_written_and_reruns() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "pipelines/pipeline.yaml", PIPELINE);
    let output = Command::new(env!("CARGO_BIN_EXE_devramps"))
        .current_dir(dir.path())
        .env("DEVRAMPS_TEST_BROKEN_PROPERTY", "at-most-one-deployment")
        .args([
            "simulate",
            "--random",
            "200",
            "--out",
            "failures",
            "pipelines/pipeline.yaml",
        ])
        .output()
        .expect("devramps runs");
    assert_eq!(code(&output), 1, "{}{}", stdout(&output), stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed.starts_with("# devramps simulate --random (seed 0): a shrunk history that breaks at-most-one-deployment\n"),
        "{printed}"
    );
    let file = dir
        .path()
        .join("failures/random-seed0-at-most-one-deployment.yaml");
    let written = std::fs::read_to_string(&file).expect("the failure is written");
    assert!(printed.starts_with(&written), "{printed}");
    assert!(
        written.contains("\npipeline: ../pipelines/pipeline.yaml\n"),
        "{written}"
    );
    let events = written.lines().filter(|l| l.starts_with("  - ")).count();
    assert!(events <= 3, "shrunk to a few events:\n{written}");
    assert!(written.contains("push:"), "{written}");

    let rerun = devramps(
        dir.path(),
        &[
            "simulate",
            "failures/random-seed0-at-most-one-deployment.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&rerun), 0, "{}", stderr(&rerun));
    let report = json(&rerun);
    assert_eq!(
        report["deployments"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
}

//! `devramps simulate`, run as a user would: the real binary on scenario files.

mod common;

use common::*;
use serde_json::json;

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
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
  artifacts: {}
"#;

const SCENARIO: &str = "pipeline: .devramps/api/pipeline.yaml\n\
    events:\n  \
      - push: { commit: c1 }\n  \
      - at: 1m\n    push: { commit: c2 }\n";

#[test]
fn json_report_of_a_scenario_with_a_pipeline_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", PIPELINE);
    write(dir.path(), "sim.yaml", SCENARIO);
    let output = devramps(dir.path(), &["simulate", "sim.yaml", "--format", "json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let report = json(&output);
    assert_eq!(report["violations"], json!([]));
    let deployments = report["deployments"].as_array().expect("deployments");
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[1]["commit"], "c2");
    assert_eq!(deployments[1]["stages"]["prod"]["state"], "SUCCEEDED");
    // The slug is the pipeline's folder; the first event is the first push's acceptance.
    assert_eq!(report["events"][0]["type"], "deployment_accepted");
    assert_eq!(report["events"][0]["actor"], "webhook:sim-1");
    assert_eq!(report["stages"]["prod"]["current_commit"], "c2");
    // Not a terminal: JSON by default, the same bytes every time.
    let again = devramps(dir.path(), &["simulate", "sim.yaml"]);
    assert_eq!(code(&again), 0);
    assert_eq!(stdout(&again), stdout(&output));
}

#[test]
fn text_report_is_a_timeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", PIPELINE);
    write(dir.path(), "sim.yaml", SCENARIO);
    let output = devramps(dir.path(), &["simulate", "sim.yaml", "--format", "text"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("Simulation from 2026-01-05T17:00:00Z"),
        "{text}"
    );
    assert!(text.contains("r1 accepted c1"), "{text}");
}

#[test]
fn an_invalid_scenario_exits_2_with_a_located_error_and_no_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", PIPELINE);
    write(
        dir.path(),
        "sim.yaml",
        "pipeline: .devramps/api/pipeline.yaml\nevnts: []\n",
    );
    let output = devramps(dir.path(), &["simulate", "sim.yaml", "--format", "json"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "sim.yaml:2:1: error: unknown key `evnts` at the top level\n  help: did you mean `events`?\n"
    );
}

#[test]
fn a_missing_scenario_or_pipeline_file_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = devramps(dir.path(), &["simulate", "nowhere.yaml"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).starts_with("nowhere.yaml:1:1: error: cannot read the scenario"));

    write(dir.path(), "sim.yaml", "pipeline: missing/pipeline.yaml\n");
    let output = devramps(dir.path(), &["simulate", "sim.yaml"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(
        err.starts_with("sim.yaml:1:11: error: cannot read the pipeline"),
        "{err}"
    );
}

#[test]
fn a_pipeline_error_inside_pipeline_yaml_is_located_in_the_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inline: String = PIPELINE
        .replace("name: prod", "name: Prod_1")
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    write(
        dir.path(),
        "sim.yaml",
        format!("pipeline_yaml: |\n{inline}events:\n  - push: {{ commit: c1 }}\n"),
    );
    let output = devramps(dir.path(), &["simulate", "sim.yaml"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    // `Prod_1` is on line 9 of the pipeline, so line 10 of the scenario, column 15.
    assert!(
        err.starts_with("sim.yaml:10:15: error: stage name `Prod_1`"),
        "{err}"
    );
    assert!(err.contains("[E0104]"), "{err}");
}

#[test]
fn a_pipeline_file_error_is_located_in_the_pipeline_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", INVALID);
    write(dir.path(), "sim.yaml", SCENARIO);
    let output = devramps(dir.path(), &["simulate", "sim.yaml"]);
    assert_eq!(code(&output), 2);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(
        err.starts_with(".devramps/api/pipeline.yaml:6:13: error: "),
        "{err}"
    );
    assert_eq!(err.matches(": error: ").count(), 3, "every error: {err}");
}

#[test]
fn an_endless_pipeline_or_scenario_file_is_refused_at_the_limit_within_a_second() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "sim.yaml", "pipeline: /dev/zero\n");
    let started = std::time::Instant::now();
    let output = devramps(dir.path(), &["simulate", "sim.yaml"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(code(&output), 2);
    let err = stderr(&output);
    assert!(
        err.starts_with("sim.yaml:1:11: error: cannot read the pipeline: cannot read `/dev/zero`: it is larger than the limit"),
        "{err}"
    );
    assert!(err.contains("DEVRAMPS_MAX_FILE_MIB"), "{err}");

    let output = devramps(dir.path(), &["simulate", "/dev/urandom"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("larger than the limit"),
        "{}",
        stderr(&output)
    );
}

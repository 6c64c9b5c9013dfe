//! `devramps_sim::random`: the scenario writer reads back to the same scenario (generated
//! histories and every scenario of `tests/scenarios/`), the lifecycle checks pass on every
//! scenario of `tests/scenarios/`, and a broken property is caught and shrunk to a history of
//! a few events that is written and re-runs as a scenario file.

use std::path::{Path, PathBuf};

use devramps_core::pipeline::Span;
use devramps_sim::random::{
    Checker, Histories, HistoryConfig, RandomOutcome, Violation, property, run_random,
    write_scenario,
};
use devramps_sim::{PipelineRef, Report, Scenario, parse_scenario, simulate, simulate_file};
use proptest::prelude::*;

const PIPELINE: &str = include_str!("scenarios/pipelines/alarmed.yaml");

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios reads")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() > 30, "the scenarios are there: {files:?}");
    files
}

/// The scenario without its source places (a written scenario reads back at other lines).
fn placeless(mut scenario: Scenario) -> Scenario {
    scenario.pipeline_span = Span::UNKNOWN;
    for event in &mut scenario.events {
        event.span = Span::UNKNOWN;
    }
    scenario
}

fn pipeline_text(scenario: &Scenario) -> String {
    match &scenario.pipeline {
        PipelineRef::Inline(text) => text.clone(),
        PipelineRef::Path(path) => std::fs::read_to_string(path).expect("the pipeline reads"),
    }
}

#[test]
fn every_scenario_file_reads_back_from_its_written_form() {
    for file in scenarios() {
        let text = std::fs::read_to_string(&file).expect("reads");
        let scenario = parse_scenario(&text, &file).expect("parses");
        let written = write_scenario(&scenario, &file);
        let again = parse_scenario(&written, &file).unwrap_or_else(|e| {
            panic!(
                "{}: the written form does not read: {e:?}\n{written}",
                file.display()
            )
        });
        assert_eq!(
            placeless(again),
            placeless(scenario),
            "{}:\n{written}",
            file.display()
        );
    }
}

#[test]
fn every_scenario_file_keeps_the_lifecycle_rules() {
    for file in scenarios() {
        let text = std::fs::read_to_string(&file).expect("reads");
        let scenario = parse_scenario(&text, &file).expect("parses");
        let report = simulate_file(&file).expect("runs");
        let violations = Checker::check_report(&scenario, &pipeline_text(&scenario), &report);
        assert_eq!(violations, vec![], "{}", file.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_histories_read_back_from_their_written_form(
        scenario in Histories::new(PIPELINE, HistoryConfig {
            definitions: vec![PIPELINE.replace("region: us-east-1", "region: us-east-2")],
            ..HistoryConfig::default()
        }).expect("valid").strategy()
    ) {
        let file = Path::new("sims/random.yaml");
        let written = write_scenario(&scenario, file);
        let again = parse_scenario(&written, file);
        prop_assert!(again.is_ok(), "{:?}\n{}", again.err(), written);
        prop_assert_eq!(placeless(again.expect("checked")), scenario);
    }
}

#[test]
fn a_written_path_is_relative_to_the_scenario_file() {
    let mut scenario =
        parse_scenario("pipeline: p.yaml\nevents: []\n", Path::new("a.yaml")).expect("parses");
    for (pipeline, file, written) in [
        ("fixtures/api.yaml", "out/s.yaml", "../fixtures/api.yaml"),
        (
            "/x/fixtures/api.yaml",
            "/x/out/deep/s.yaml",
            "../../fixtures/api.yaml",
        ),
        ("/x/api.yaml", "/x/s.yaml", "api.yaml"),
    ] {
        scenario.pipeline = PipelineRef::Path(pipeline.into());
        let text = write_scenario(&scenario, Path::new(file));
        assert!(
            text.starts_with(&format!("pipeline: {written}\n")),
            "{text}"
        );
        let again = parse_scenario(&text, Path::new(file)).expect("reads");
        let PipelineRef::Path(back) = again.pipeline else {
            panic!("a path")
        };
        let back: PathBuf = back.components().fold(PathBuf::new(), |mut p, c| {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                c => p.push(c),
            }
            p
        });
        assert_eq!(back, Path::new(pipeline), "{text}");
    }
}

#[test]
fn random_histories_of_the_fixture_keep_every_rule() {
    let histories = Histories::new(PIPELINE, HistoryConfig::default()).expect("valid");
    match run_random(&histories, PIPELINE, 64, 1, &[], &mut |_| {}) {
        RandomOutcome::Passed(coverage) => {
            assert_eq!(coverage.histories, 64);
            assert!(coverage.deployments > 64, "{coverage:?}");
            for state in ["SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "IN_PROGRESS"] {
                assert!(coverage.states.contains_key(state), "{state}: {coverage:?}");
            }
            assert!(!coverage.refused.is_empty(), "{coverage:?}");
        }
        RandomOutcome::Failed(failure) => panic!(
            "{:?}\n{}",
            failure.violations,
            write_scenario(&failure.scenario, Path::new("failure.yaml"))
        ),
    }
}

/// A pipeline whose `deploy` reads two outputs of `infra`: an unscripted `infra` succeeds with
/// no outputs, so `deploy` fails unless the histories script them.
const READS_OUTPUTS: &str = "version: \"1.0.0\"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: \"111111111111\", region: us-east-1 }
    - { name: prod, account_id: \"222222222222\", region: us-east-1 }
  steps:
    - name: Infra
      id: infra
      type: CUSTOM:SCRIPT:INFRA
    - name: Deploy
      id: deploy
      type: CUSTOM:SCRIPT:DEPLOY
      goes_after: [infra]
      params:
        cluster: ${{ steps.infra.cluster_name }}
        task: \"${{ steps.infra.task_definition }}-${{ stage.name }}\"
  artifacts: {}
";

fn succeeded_stages(script_outputs: bool) -> (u64, Vec<Scenario>) {
    let config = HistoryConfig {
        script_outputs,
        ..HistoryConfig::default()
    };
    let histories = Histories::new(READS_OUTPUTS, config).expect("valid");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let scenarios: Vec<Scenario> = (0..32)
        .map(|_| {
            histories
                .strategy()
                .new_tree(&mut runner)
                .expect("a history")
                .current()
        })
        .collect();
    let succeeded = scenarios
        .iter()
        .map(|scenario| simulate(scenario, READS_OUTPUTS))
        .flat_map(|report| report.events)
        .filter(|e| e.kind == "stage_state" && e.state.as_deref() == Some("SUCCEEDED"))
        .count();
    (succeeded as u64, scenarios)
}

#[test]
fn the_outputs_steps_read_are_scripted_so_deployments_can_succeed() {
    let (succeeded, scenarios) = succeeded_stages(true);
    assert!(succeeded > 10, "only {succeeded} stages succeeded");
    // The outcome that gives them comes with the commit's push, in every stage.
    let text = write_scenario(&scenarios[0], Path::new("s.yaml"));
    let scripted = scenarios
        .iter()
        .flat_map(|s| &s.events)
        .filter_map(|e| match &e.action {
            devramps_sim::Action::Outcome(o) => Some(o),
            _ => None,
        })
        .find(|o| !o.outputs.is_empty())
        .unwrap_or_else(|| panic!("no outcome scripts outputs:\n{text}"));
    assert_eq!(
        scripted
            .outputs
            .get("cluster_name")
            .and_then(|v| v.as_str()),
        Some("infra-cluster_name")
    );
    assert!(scripted.outputs.contains_key("task_definition"));

    let (without, _) = succeeded_stages(false);
    assert_eq!(without, 0, "without the outputs, `deploy` cannot succeed");
}

/// A deliberately wrong rule: "no stage is ever retried". Any history with a retry that the
/// engine carries out breaks it; proptest must shrink to the few events that show it.
#[test]
fn a_broken_property_is_caught_shrunk_written_and_reruns() {
    let no_retry = property("no-retry", |_, before, event| {
        let retried = event.kind == "stage_state"
            && event.state.as_deref() == Some("IN_PROGRESS")
            && before.iter().any(|e| {
                e.kind == "stage_state"
                    && e.revision == event.revision
                    && e.stage == event.stage
                    && matches!(
                        e.state.as_deref(),
                        Some("FAILED" | "CANCELLED" | "TIMED_OUT")
                    )
            });
        retried.then(|| "a stage-deployment ran again".to_owned())
    });
    let histories = Histories::new(PIPELINE, HistoryConfig::default()).expect("valid");
    let RandomOutcome::Failed(failure) =
        run_random(&histories, PIPELINE, 2_000, 3, &[&no_retry], &mut |_| {})
    else {
        panic!("2,000 histories have a retry")
    };
    assert_eq!(
        failure.violations[0].rule,
        "no-retry",
        "{:?}\n{}",
        failure.violations,
        write_scenario(&failure.scenario, Path::new("f.yaml"))
    );
    let events = &failure.scenario.events;
    assert!(
        events.len() <= 4,
        "shrunk to a few events: {}",
        write_scenario(&failure.scenario, Path::new("f.yaml"))
    );
    assert!(
        events.iter().any(|e| e.action.key() == "retry"),
        "{events:?}"
    );

    // Written next to its pipeline, it reads and runs again as a scenario file, and shows the
    // same violation.
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("pipeline.yaml"), PIPELINE).expect("writes");
    let mut scenario = failure.scenario.clone();
    scenario.pipeline = PipelineRef::Path(dir.path().join("pipeline.yaml"));
    let file = dir.path().join("failure.yaml");
    let text = format!("# breaks no-retry\n{}", write_scenario(&scenario, &file));
    std::fs::write(&file, text).expect("writes");
    let report: Report = simulate_file(&file).expect("the written failure runs");
    let again: Vec<Violation> =
        devramps_sim::random::Property::check(&no_retry, &scenario, &report);
    assert!(!again.is_empty(), "the written failure reproduces");
    assert_eq!(
        report,
        simulate(&failure.scenario, PIPELINE),
        "the same run"
    );
}

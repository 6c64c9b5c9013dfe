//! `devramps simulate` never panics on broken input, and the engine keeps its rules on any
//! scenario that reads.
//!
//! Inputs: the scenario files of `tests/scenarios/` (and the pipelines they run), with one to
//! four random edits (the same edits as the pipeline parser's never-panic test, from
//! `devramps-core/tests/support/mutate.rs`). For every input:
//!
//! - a scenario that does not read gives at least one error, each with a 1-based line and
//!   column inside the text;
//! - a scenario that reads runs to its end: the report has no invariant violation (every
//!   lifecycle rule the simulator checks held after every event), renders as text and JSON,
//!   and a second run gives the same JSON;
//! - an edited pipeline under an unedited scenario runs the same way (a pipeline that no longer
//!   validates fails synthesis; nothing panics).
//!
//! 64 cases per property fit the CI budget (each case runs a whole simulation in a debug
//! build). To search harder:
//!
//! ```text
//! PROPTEST_CASES=5000 cargo test -p devramps-sim --test no_panic --release
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devramps_sim::{PipelineRef, ScenarioError, parse_scenario, render_text, simulate, to_json};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

#[allow(dead_code)]
#[path = "../../devramps-core/tests/support/mutate.rs"]
mod mutate;

/// Cases per property in CI; `PROPTEST_CASES` overrides it.
const CASES: u32 = 64;

/// The longest one simulation may take (a generous bound for a debug build on a busy machine:
/// it only catches hangs and runaway work).
const SLOW: Duration = Duration::from_secs(20);

/// Scenario words inserted by the edits, besides YAML's own indicators.
const SCENARIO_TOKENS: &[&str] = &[
    "at: ",
    "- at: 1h\n  push: { commit: z9 }\n",
    "push: ",
    "approve: ",
    "retry: ",
    "cancel: ",
    "rollback: ",
    "stage: prod",
    "stage: nope",
    "revision: 0",
    "revision: 99999999999999999999",
    "-1",
    "0s",
    "1000d",
    "9999999d",
    "2026-02-30T00:00:00Z",
    "run_until: ",
    "outcome: ",
    "FAILED",
    "SUCCEEDED",
    "hang",
    "attempts: ",
];

/// One scenario file of `tests/scenarios/`, with the pipeline it runs.
#[derive(Clone, Debug)]
struct Case {
    path: PathBuf,
    scenario: String,
    pipeline: String,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let cases: Vec<Case> = paths
        .into_iter()
        .map(|path| {
            let scenario = std::fs::read_to_string(&path).expect("a scenario file");
            let parsed = parse_scenario(&scenario, &path)
                .unwrap_or_else(|e| panic!("{} does not read: {e:?}", path.display()));
            let pipeline = match parsed.pipeline {
                PipelineRef::Inline(text) => text,
                PipelineRef::Path(p) => std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())),
            };
            Case {
                path,
                scenario,
                pipeline,
            }
        })
        .collect();
    assert!(cases.len() >= 20, "only {} scenarios found", cases.len());
    cases
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Every error of a scenario that does not read says where: a line of the text and a column
/// on it (one past its end at most). Lines end as YAML ends them: at `\r\n`, `\n` or a lone
/// `\r`.
fn located(text: &str, errors: &[ScenarioError]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "rejected without an error");
    let lines: Vec<&str> = text
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .collect();
    for e in errors {
        prop_assert!(e.line >= 1 && e.column >= 1, "{e}: no line or column");
        let line = lines.get(e.line as usize - 1);
        prop_assert!(line.is_some(), "{e}: the text has {} lines", lines.len());
        let width = line.map_or(0, |l| l.chars().count());
        prop_assert!(
            e.column as usize <= width + 1,
            "{e}: line {} has {width} characters",
            e.line
        );
    }
    Ok(())
}

/// Reads `scenario` and, when it reads, runs it over `pipeline` and checks the report.
fn run(case: &Case, scenario: &str, pipeline: &str) -> Result<(), TestCaseError> {
    let parsed = match parse_scenario(scenario, &case.path) {
        Ok(parsed) => parsed,
        Err(errors) => return located(scenario, &errors),
    };
    let pipeline = match &parsed.pipeline {
        PipelineRef::Inline(text) => text.as_str(),
        PipelineRef::Path(_) => pipeline,
    };
    let started = Instant::now();
    let report = simulate(&parsed, pipeline);
    let took = started.elapsed();
    prop_assert!(took < SLOW, "the simulation took {took:?}");
    prop_assert!(
        report.violations.is_empty(),
        "violations: {:#?}",
        report.violations
    );
    let json = to_json(&report);
    prop_assert!(!render_text(&report).is_empty());
    prop_assert_eq!(
        json,
        to_json(&simulate(&parsed, pipeline)),
        "not deterministic"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn edited_scenarios_read_or_say_where_and_run_keeping_the_rules(
        case in select(cases()),
        edits in prop::collection::vec(mutate::mutation(tokens()), 1..5),
    ) {
        let scenario = edits.iter().fold(case.scenario.clone(), |t, m| mutate::apply(&t, m));
        run(&case, &scenario, &case.pipeline)?;
    }

    #[test]
    fn edited_pipelines_under_a_scenario_run_keeping_the_rules(
        case in select(cases()),
        edits in prop::collection::vec(mutate::mutation(mutate::TOKENS.to_vec()), 1..5),
    ) {
        if case.scenario.contains("pipeline_yaml:") {
            // The pipeline is part of the scenario's text: the first property edits it.
            return Ok(());
        }
        let pipeline = edits.iter().fold(case.pipeline.clone(), |t, m| mutate::apply(&t, m));
        run(&case, &case.scenario, &pipeline)?;
    }
}

/// YAML's indicators and the scenario format's own words.
fn tokens() -> Vec<&'static str> {
    mutate::TOKENS
        .iter()
        .chain(SCENARIO_TOKENS)
        .copied()
        .collect()
}

#[test]
fn every_scenario_runs_unedited_without_violations() {
    for case in cases() {
        run(&case, &case.scenario, &case.pipeline)
            .unwrap_or_else(|e| panic!("{}: {e}", case.path.display()));
    }
}

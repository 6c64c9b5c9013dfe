//! The scenario file of `devramps simulate` and its report: parsing with every error at once
//! (each with line, column and message), defaults, and the report's JSON shape.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use devramps_core::pipeline::Spanned;
use devramps_sim::{
    ACTION_KEYS, Action, AlarmState, Answer, BuildReport, DEFAULT_RUN_UNTIL,
    DEFAULT_SCENARIO_START, DEFAULT_SLUG, Defaults, DeploymentReport, EventReport, ExecutionReport,
    PipelineRef, Push, Report, Scenario, ScenarioError, ScriptedOutcome, ScriptedResult, StageMap,
    StageReport, StageSummary, StepRef, StoreOp, Synthesis, TerraformPlan, parse_scenario,
    render_text, to_json,
};
use serde_json::json;

const FILE: &str = "sims/scenario.yaml";

fn parse(text: &str) -> Scenario {
    match parse_scenario(text, Path::new(FILE)) {
        Ok(scenario) => scenario,
        Err(errors) => panic!("unexpected errors:\n{}", render(&errors)),
    }
}

fn errors(text: &str) -> Vec<ScenarioError> {
    match parse_scenario(text, Path::new(FILE)) {
        Ok(scenario) => panic!("expected errors, parsed {scenario:#?}"),
        Err(errors) => errors,
    }
}

fn render(errors: &[ScenarioError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `text` gives exactly one error, at `line`:`column`, whose message contains
/// `message`; returns it.
fn one_error(text: &str, line: u32, column: u32, message: &str) -> ScenarioError {
    let errors = errors(text);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        render(&errors)
    );
    let error = errors.into_iter().next().unwrap();
    assert_eq!(
        (error.line, error.column),
        (line, column),
        "wrong place: {error}"
    );
    assert!(error.message.contains(message), "wrong message: {error}");
    assert_eq!(error.path, PathBuf::from(FILE));
    error
}

fn stage(name: &str) -> Spanned<String> {
    Spanned::unspanned(name.to_owned())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const EVERY_ACTION: &str = r#"pipeline: ../.devramps/api/pipeline.yaml
slug: api-sim
start: "2026-01-06T17:30:00Z"
run_until: 10d
defaults:
  step_duration: 2m
  build_duration: 5m
  mirror_duration: 30s
events:
  - push: { commit: c1, changed: [/services/api/main.rs, /README.md], delivery: d-1 }
  - outcome:
      commit: c1
      stage: staging
      step: deploy
      result: fail
      duration: 1m30s
      attempt: 2
      outputs: { url: "https://x", replicas: 3, ok: true }
  - outcome: { commit: c1, build: api-image, result: hang }
  - at: 1h
    approve: { commit: c1, stage: prod, step: bake, actor: alice, comment: looks good }
  - reject: { commit: c1, stage: prod, step: gate }
  - at: 1h30m
    retry: { commit: c1, stage: staging }
  - cancel: { commit: c1, stage: staging }
  - rollback: { stage: prod, to: c0 }
  - roll_forward: { stage: prod, to: c1 }
  - stop_promotions: { stage: prod }
  - resume_promotions: { stage: prod }
  - unblock: { stage: beta }
  - bypass: { stage: prod, commit: c1 }
  - alarm: { stage: prod, state: ALARM }
  - alarm: { stage: prod, state: OK }
  - patch: { commit: c9, changed: [/hotfix.rs] }
  - release_patch:
  - at: 2d
    approve_pipeline: { commit: c2 }
  - reject_pipeline: { commit: c3 }
  - push: { commit: c4, branch: release }
  - store_fault: { op: append, times: 3 }
  - store_fault: { op: read }
  - restart: { down: 5m }
  - restart:
  - push: { commit: c4, branch: release, deleted: true }
  - outcome:
      commit: c5
      stage: prod
      step: infra
      result: ask_approval
      plan: { create: 1, delete: 2 }
"#;

#[test]
fn a_scenario_using_every_action_parses_into_typed_events() {
    let scenario = parse(EVERY_ACTION);
    assert_eq!(
        scenario.pipeline,
        PipelineRef::Path(PathBuf::from("sims/../.devramps/api/pipeline.yaml"))
    );
    assert_eq!(
        (scenario.pipeline_span.line, scenario.pipeline_span.column),
        (1, 11)
    );
    assert_eq!(scenario.slug, "api-sim");
    assert_eq!(scenario.start, "2026-01-06T17:30:00Z".parse().unwrap());
    assert_eq!(scenario.run_until, secs(10 * 86_400));
    assert_eq!(
        scenario.defaults,
        Defaults {
            step_duration: secs(120),
            build_duration: secs(300),
            mirror_duration: secs(30),
        }
    );

    let keys: Vec<&str> = scenario.events.iter().map(|e| e.action.key()).collect();
    for key in ACTION_KEYS {
        assert!(keys.contains(key), "`{key}` not exercised");
    }
    let ats: Vec<u64> = scenario.events.iter().map(|e| e.at.as_secs()).collect();
    assert_eq!(
        ats,
        [
            0, 0, 0, 3_600, 3_600, 5_400, 5_400, 5_400, 5_400, 5_400, 5_400, 5_400, 5_400, 5_400,
            5_400, 5_400, 5_400, 172_800, 172_800, 172_800, 172_800, 172_800, 172_800, 172_800,
            172_800, 172_800
        ]
    );
    assert_eq!(
        (scenario.events[3].span.line, scenario.events[3].span.column),
        (20, 5)
    );

    let actions: Vec<&Action> = scenario.events.iter().map(|e| &e.action).collect();
    assert_eq!(
        actions[0],
        &Action::Push(Push {
            commit: "c1".into(),
            branch: None,
            changed: vec!["/services/api/main.rs".into(), "/README.md".into()],
            delivery: Some("d-1".into()),
            pipeline_yaml: None,
            deleted: false,
        })
    );
    let Action::Outcome(step_outcome) = actions[1] else {
        panic!("{:?}", actions[1]);
    };
    assert_eq!(
        step_outcome,
        &ScriptedOutcome {
            commit: "c1".into(),
            stage: Some(stage("staging")),
            target: StepRef::Step(stage("deploy")),
            result: ScriptedResult::Fail,
            duration: Some(secs(90)),
            attempt: 2,
            outputs: json!({ "url": "https://x", "replicas": 3, "ok": true })
                .as_object()
                .unwrap()
                .clone(),
            plan: None,
        }
    );
    // Names keep their place for the engine's errors.
    let staging = step_outcome.stage.as_ref().unwrap();
    assert_eq!((staging.span.line, staging.span.column), (13, 14));
    assert_eq!(
        step_outcome.outputs.keys().collect::<Vec<_>>(),
        ["url", "replicas", "ok"]
    );
    let Action::Outcome(build_outcome) = actions[2] else {
        panic!("{:?}", actions[2]);
    };
    assert_eq!(build_outcome.target, StepRef::Build(stage("api-image")));
    assert_eq!(build_outcome.stage, None);
    assert_eq!(build_outcome.result, ScriptedResult::Hang);
    assert_eq!((build_outcome.duration, build_outcome.attempt), (None, 1));
    assert!(build_outcome.outputs.is_empty());
    assert_eq!(
        actions[3],
        &Action::Approve(Answer {
            commit: "c1".into(),
            stage: stage("prod"),
            step: stage("bake"),
            actor: "alice".into(),
            comment: Some("looks good".into()),
        })
    );
    assert_eq!(
        actions[4],
        &Action::Reject(Answer {
            commit: "c1".into(),
            stage: stage("prod"),
            step: stage("gate"),
            actor: "sim".into(),
            comment: None,
        })
    );
    let rest: Vec<Action> = vec![
        Action::Retry {
            commit: "c1".into(),
            stage: stage("staging"),
        },
        Action::Cancel {
            commit: "c1".into(),
            stage: stage("staging"),
        },
        Action::Rollback {
            stage: stage("prod"),
            to: "c0".into(),
        },
        Action::RollForward {
            stage: stage("prod"),
            to: "c1".into(),
        },
        Action::StopPromotions {
            stage: stage("prod"),
        },
        Action::ResumePromotions {
            stage: stage("prod"),
        },
        Action::Unblock {
            stage: stage("beta"),
        },
        Action::Bypass {
            stage: stage("prod"),
            commit: "c1".into(),
        },
        Action::Alarm {
            stage: stage("prod"),
            state: AlarmState::Alarm,
        },
        Action::Alarm {
            stage: stage("prod"),
            state: AlarmState::Ok,
        },
        Action::Patch {
            commit: "c9".into(),
            changed: vec!["/hotfix.rs".into()],
        },
        Action::ReleasePatch,
        Action::ApprovePipeline {
            commit: "c2".into(),
        },
        Action::RejectPipeline {
            commit: "c3".into(),
        },
        Action::Push(Push {
            commit: "c4".into(),
            branch: Some("release".into()),
            changed: vec![],
            delivery: None,
            pipeline_yaml: None,
            deleted: false,
        }),
        Action::StoreFault {
            op: StoreOp::Append,
            times: 3,
        },
        Action::StoreFault {
            op: StoreOp::Read,
            times: 1,
        },
        Action::Restart { down: secs(300) },
        Action::Restart { down: secs(0) },
        Action::Push(Push {
            commit: "c4".into(),
            branch: Some("release".into()),
            deleted: true,
            ..Push::default()
        }),
        Action::Outcome(ScriptedOutcome {
            commit: "c5".into(),
            stage: Some(stage("prod")),
            target: StepRef::Step(stage("infra")),
            result: ScriptedResult::AskApproval,
            duration: None,
            attempt: 1,
            outputs: serde_json::Map::new(),
            plan: Some(TerraformPlan {
                create: 1,
                update: 0,
                delete: 2,
            }),
        }),
    ];
    assert_eq!(actions[5..], rest.iter().collect::<Vec<_>>()[..]);
}

#[test]
fn defaults_apply_when_not_written() {
    let scenario = parse("pipeline_yaml: |\n  version: 1\nevents:\n  - push: { commit: c1 }\n");
    assert_eq!(scenario.start, DEFAULT_SCENARIO_START);
    assert_eq!(scenario.start, "2026-01-05T17:00:00Z".parse().unwrap());
    assert_eq!(scenario.run_until, DEFAULT_RUN_UNTIL);
    assert_eq!(scenario.run_until, secs(30 * 86_400));
    assert_eq!(
        scenario.defaults,
        Defaults {
            step_duration: secs(60),
            build_duration: secs(120),
            mirror_duration: secs(10),
        }
    );
    assert_eq!(
        scenario.events[0].action,
        Action::Push(Push {
            commit: "c1".into(),
            ..Push::default()
        })
    );
    // A partial `defaults` keeps the other values; no `events` is no event.
    let scenario = parse("pipeline: p.yaml\ndefaults: { build_duration: 1h }\n");
    assert_eq!(
        scenario.defaults,
        Defaults {
            build_duration: secs(3_600),
            ..Defaults::default()
        }
    );
    assert!(scenario.events.is_empty());
}

#[test]
fn at_defaults_to_the_previous_events_time() {
    let scenario = parse(
        "pipeline: p.yaml\nevents:\n  - push: { commit: c1 }\n  - at: 5m\n    push: { commit: c2 }\n  - push: { commit: c3 }\n  - at: 5m\n    push: { commit: c4 }\n  - at: 1h\n    release_patch: {}\n  - stop_promotions: { stage: prod }\n",
    );
    let ats: Vec<u64> = scenario.events.iter().map(|e| e.at.as_secs()).collect();
    assert_eq!(ats, [0, 300, 300, 300, 3_600, 3_600]);
}

#[test]
fn inline_and_path_pipelines_and_the_slug_default() {
    let inline = parse("pipeline_yaml: |\n  version: 1\n  stages: []\n");
    assert_eq!(
        inline.pipeline,
        PipelineRef::Inline("version: 1\nstages: []\n".into())
    );
    assert_eq!(inline.slug, DEFAULT_SLUG);
    assert_eq!(inline.slug, "app");

    // `pipeline.yaml`: the folder above it names the pipeline.
    let folder = parse("pipeline: ../.devramps/billing/pipeline.yaml\n");
    assert_eq!(
        folder.pipeline,
        PipelineRef::Path("sims/../.devramps/billing/pipeline.yaml".into())
    );
    assert_eq!(folder.slug, "billing");
    // Any other file name: "app".
    let other = parse("pipeline: pipelines/api.yaml\n");
    assert_eq!(
        other.pipeline,
        PipelineRef::Path("sims/pipelines/api.yaml".into())
    );
    assert_eq!(other.slug, "app");
    // An explicit slug wins.
    assert_eq!(parse("pipeline: x/pipeline.yaml\nslug: api\n").slug, "api");
    // Absolute paths stay as written; a scenario without a folder resolves against nothing.
    let absolute = parse_scenario("pipeline: /repo/ci/pipeline.yaml\n", Path::new("s.yaml"));
    let absolute = absolute.unwrap();
    assert_eq!(
        absolute.pipeline,
        PipelineRef::Path("/repo/ci/pipeline.yaml".into())
    );
    assert_eq!(absolute.slug, "ci");
    let bare = parse_scenario("pipeline: pipeline.yaml\n", Path::new("s.yaml")).unwrap();
    assert_eq!(bare.pipeline, PipelineRef::Path("pipeline.yaml".into()));
    assert_eq!(bare.slug, "app");
    // A folder that is no valid slug cannot name the pipeline: set `slug`.
    let error = one_error(
        "pipeline: My Pipes/pipeline.yaml\n",
        1,
        11,
        "the pipeline's folder `My Pipes` is not a valid slug",
    );
    assert!(error.help.unwrap().contains("set `slug:`"));
    parse("pipeline: My Pipes/pipeline.yaml\nslug: mine\n");
}

#[test]
fn error_display_names_file_line_column_and_help() {
    let error = one_error("pipeline: p.yaml\nevnts: []\n", 2, 1, "unknown key `evnts`");
    assert_eq!(
        error.to_string(),
        "sims/scenario.yaml:2:1: error: unknown key `evnts` at the top level\n  help: did you mean `events`?"
    );
}

#[test]
fn unknown_keys_are_reported_with_suggestions() {
    let error = one_error(
        "pipeline: p.yaml\nstrat: x\n",
        2,
        1,
        "unknown key `strat` at the top level",
    );
    assert_eq!(error.help.as_deref(), Some("did you mean `start`?"));

    let error = one_error(
        "pipeline: p.yaml\ndefaults: { step_duraton: 1m }\n",
        2,
        13,
        "unknown key `step_duraton` in `defaults`",
    );
    assert_eq!(error.help.as_deref(), Some("did you mean `step_duration`?"));

    // An unknown event key: no second error about the missing action.
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - at: 1m\n    pussh: { commit: c1 }\n",
        4,
        5,
        "unknown key `pussh` in an event",
    );
    assert_eq!(error.help.as_deref(), Some("did you mean `push`?"));

    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - push: { commit: c1, brnch: dev }\n",
        3,
        25,
        "unknown key `brnch` in `push`",
    );
    assert_eq!(error.help.as_deref(), Some("did you mean `branch`?"));

    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - release_patch: { commit: c1 }\n",
        3,
        22,
        "unknown key `commit` in `release_patch`",
    );
    assert_eq!(error.help.as_deref(), Some("this takes no fields"));
}

#[test]
fn exactly_one_of_pipeline_and_pipeline_yaml() {
    let error = one_error("events: []\n", 1, 1, "the scenario has no pipeline");
    assert!(error.help.unwrap().contains("pipeline_yaml"));
    one_error(
        "pipeline: p.yaml\npipeline_yaml: |\n  version: 1\n",
        2,
        1,
        "both `pipeline` and `pipeline_yaml` are set",
    );
    one_error("pipeline: ''\n", 1, 11, "`pipeline` must not be empty");
    one_error(
        "pipeline: [a]\n",
        1,
        11,
        "`pipeline` must be a string, found a list",
    );
}

#[test]
fn exactly_one_action_per_event() {
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - at: 1m\n",
        3,
        5,
        "the event has no action",
    );
    assert!(error.help.unwrap().contains("`push`, `outcome`"));
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - push: { commit: c1 }\n    retry: { commit: c1, stage: a }\n    cancel: { commit: c1, stage: a }\n",
        4,
        5,
        "the event has 3 actions: `push`, `retry` and `cancel`",
    );
    assert!(error.help.unwrap().contains("one action per event"));
    one_error(
        "pipeline: p.yaml\nevents:\n  - push\n",
        3,
        5,
        "an event must be a map, found a string",
    );
    one_error(
        "pipeline: p.yaml\nevents: { push: { commit: c1 } }\n",
        2,
        9,
        "`events` must be a list, found a map",
    );
}

#[test]
fn missing_required_fields_are_named() {
    one_error(
        "pipeline: p.yaml\nevents:\n  - push: {}\n",
        3,
        5,
        "`push` is missing `commit`",
    );
    one_error(
        "pipeline: p.yaml\nevents:\n  - push:\n",
        3,
        5,
        "`push` is missing `commit`",
    );
    let errors = errors("pipeline: p.yaml\nevents:\n  - approve: { commit: c1 }\n");
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`approve` is missing `stage`",
            "`approve` is missing `step`"
        ]
    );
    assert!(errors.iter().all(|e| (e.line, e.column) == (3, 5)));
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, stage: s, result: fail }\n",
        3,
        5,
        "`outcome` is missing `step` or `build`",
    );
    assert!(error.help.unwrap().contains("build: <artifact id>"));
    one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, step: a, build: b, stage: s, result: fail }\n",
        3,
        37,
        "`outcome` has both `step` and `build`",
    );
    // A step needs its stage; a build does not.
    one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, step: deploy, result: fail }\n",
        3,
        5,
        "`outcome` is missing `stage`",
    );
    one_error(
        "pipeline: p.yaml\nevents:\n  - rollback: { stage: prod }\n",
        3,
        5,
        "`rollback` is missing `to`",
    );
    one_error(
        "pipeline: p.yaml\nevents:\n  - alarm: { stage: prod }\n",
        3,
        5,
        "`alarm` is missing `state`",
    );
}

#[test]
fn wrong_types_are_reported_with_what_was_found() {
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - push: { commit: 1234567 }\n",
        3,
        21,
        "`commit` of `push` must be a string, found an integer",
    );
    assert_eq!(error.help.as_deref(), Some("quote it: `\"1234567\"`"));
    one_error(
        "pipeline: p.yaml\nevents:\n  - push: [c1]\n",
        3,
        11,
        "`push` must be a map of fields, found a list",
    );
    one_error(
        "pipeline: p.yaml\nevents:\n  - push: { commit: c1, changed: /a.rs }\n",
        3,
        34,
        "`changed` of `push` must be a list of paths, found a string",
    );
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - patch: { commit: c1, changed: [/a.rs, b.rs] }\n",
        3,
        43,
        "path `b.rs` of `changed` of `patch` must start with `/`",
    );
    assert!(error.help.unwrap().contains("`/b.rs`"));
    one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, build: b, result: succeed, outputs: [1] }\n",
        3,
        64,
        "`outputs` of `outcome` must be a map",
    );
    one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, build: b, result: succeed, attempt: two }\n",
        3,
        64,
        "`attempt` of `outcome` must be an integer, found a string",
    );
    one_error(
        "pipeline: p.yaml\ndefaults: 5m\n",
        2,
        11,
        "`defaults` must be a map of fields",
    );
    one_error(
        "pipeline: p.yaml\nslug: My API\n",
        2,
        7,
        "`slug` `My API` is not a valid slug",
    );
    one_error("[]\n", 1, 1, "a scenario must be a map, found a list");
}

#[test]
fn bad_durations_and_start_times_are_reported() {
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - at: 5x\n    release_patch:\n",
        3,
        9,
        "invalid duration for `at`: unknown unit `x` in `5x`",
    );
    assert_eq!(error.help, None);
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - at: 90\n    release_patch:\n",
        3,
        9,
        "`at` must be a duration with a unit, found the number 90",
    );
    assert_eq!(
        error.help.as_deref(),
        Some("write for example `90s` or `90m`")
    );
    one_error(
        "pipeline: p.yaml\nrun_until: 5m1h\n",
        2,
        12,
        "invalid duration for `run_until`: `5m1h`: units must go from largest to smallest",
    );
    one_error(
        "pipeline: p.yaml\ndefaults: { mirror_duration: 1 h }\n",
        2,
        30,
        "invalid duration for `mirror_duration` of `defaults`: `1 h` contains whitespace",
    );
    one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, build: b, result: fail, duration: -1m }\n",
        3,
        62,
        "invalid duration for `duration` of `outcome`: `-1m`: a duration cannot be negative",
    );
    let error = one_error(
        "pipeline: p.yaml\nstart: 2026-01-05 17:00\n",
        2,
        8,
        "`start` is not an RFC 3339 time: `2026-01-05 17:00`",
    );
    assert!(error.help.unwrap().contains("2026-01-05T17:00:00Z"));
    one_error(
        "pipeline: p.yaml\nstart: 5\n",
        2,
        8,
        "`start` must be a time, found an integer",
    );
}

#[test]
fn decreasing_at_and_events_after_run_until_are_reported() {
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - at: 10m\n    release_patch:\n  - at: 5m\n    release_patch:\n",
        5,
        9,
        "`at` is 5m, earlier than the previous event's 10m",
    );
    assert!(error.help.unwrap().contains("by time"));
    // The default `at` is the previous event's time, so it never goes backwards.
    parse("pipeline: p.yaml\nevents:\n  - at: 10m\n    release_patch:\n  - release_patch:\n");
    let error = one_error(
        "pipeline: p.yaml\nrun_until: 1h\nevents:\n  - at: 2h\n    release_patch:\n  - at: 3h\n    release_patch:\n",
        4,
        9,
        "`at` is 2h, after `run_until` (1h)",
    );
    assert_eq!(
        error.help.as_deref(),
        Some("raise `run_until` to at least 2h")
    );
}

#[test]
fn enumerations_and_attempts_are_checked() {
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - alarm: { stage: prod, state: alarm }\n",
        3,
        34,
        "`state` of `alarm` must be `ALARM` or `OK`, found `alarm`",
    );
    assert_eq!(error.help.as_deref(), Some("did you mean `ALARM`?"));
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, build: b, result: succeeded }\n",
        3,
        46,
        "`result` of `outcome` must be `succeed`, `fail`, `hang` or `ask_approval`, found `succeeded`",
    );
    assert_eq!(error.help.as_deref(), Some("did you mean `succeed`?"));
    let error = one_error(
        "pipeline: p.yaml\nevents:\n  - outcome: { commit: c1, build: b, result: hang, attempt: 0 }\n",
        3,
        61,
        "`attempt` of `outcome` must be 1 or more, found 0",
    );
    assert!(error.help.unwrap().contains("count from 1"));
}

#[test]
fn every_problem_is_reported_at_once_in_source_order() {
    let text = "\
pipline: p.yaml
start: yesterday
events:
  - at: 5m
    push: { commit: 1 }
  - at: 1m
    alarm: { stage: prod, state: BAD }
  - cancel: { commit: c1 }
";
    let errors = errors(text);
    let places: Vec<(u32, u32)> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        places,
        [(1, 1), (1, 1), (2, 8), (5, 21), (6, 9), (7, 34), (8, 5)],
        "{}",
        render(&errors)
    );
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown key `pipline` at the top level",
            "the scenario has no pipeline",
            "`start` is not an RFC 3339 time: `yesterday`",
            "`commit` of `push` must be a string, found an integer",
            "`at` is 1m, earlier than the previous event's 5m",
            "`state` of `alarm` must be `ALARM` or `OK`, found `BAD`",
            "`cancel` is missing `stage`",
        ]
    );
}

#[test]
fn yaml_syntax_errors_are_scenario_errors() {
    let errors = errors("pipeline: p.yaml\nevents: [\n");
    assert!(!errors.is_empty());
    assert!(errors.iter().all(|e| e.path == Path::new(FILE)));
    assert!(errors[0].line >= 2, "{}", render(&errors));
    let duplicate = self::errors("pipeline: p.yaml\npipeline: q.yaml\n");
    assert_eq!(duplicate.len(), 1, "{}", render(&duplicate));
    assert_eq!(duplicate[0].line, 2, "{}", render(&duplicate));
    assert!(
        duplicate[0].message.contains("pipeline"),
        "{}",
        render(&duplicate)
    );
}

proptest::proptest! {
    #[test]
    fn parse_scenario_never_panics(text in "\\PC*") {
        let _ = parse_scenario(&text, Path::new(FILE));
    }

    #[test]
    fn parse_scenario_never_panics_on_edited_scenarios(
        at in 0usize..EVERY_ACTION.len(),
        cut in 0usize..12,
        insert in "[a-z0-9_:{}\\[\\], \\-\n\"']{0,10}",
    ) {
        let chars: Vec<char> = EVERY_ACTION.chars().collect();
        let at = at.min(chars.len());
        let end = (at + cut).min(chars.len());
        let text: String = chars[..at]
            .iter()
            .chain(insert.chars().collect::<Vec<_>>().iter())
            .chain(chars[end..].iter())
            .collect();
        if let Err(errors) = parse_scenario(&text, Path::new(FILE)) {
            proptest::prop_assert!(!errors.is_empty());
        }
    }
}

/// The example report of the scenario format, verbatim.
const SPEC_REPORT: &str = r#"{
  "end": "2026-01-05T18:02:10Z",
  "deployments": [
    { "revision": 1, "commit": "c1", "synthesis": "SUCCEEDED",
      "stages": { "staging": { "state": "SUCCEEDED", "attempts": 1 },
                  "prod":    { "state": "NOT_STARTED", "waiting_for": "TIME_WINDOW" } } }
  ],
  "builds": [ { "revision": 1, "commit": "c1", "artifact": "api-image", "stage": null,
                "result": "SUCCEEDED" } ],
  "stages": { "staging": { "current_revision": 1, "current_commit": "c1", "blockers": [] },
              "prod":    { "current_revision": null, "current_commit": null, "blockers": [] } },
  "events": [
    { "seq": 1, "at": "2026-01-05T17:00:00Z", "type": "deployment_accepted", "revision": 1,
      "commit": "c1", "actor": "webhook:sim-1" }
  ],
  "executions": [
    { "key": "api/r1/staging/a1/deploy", "starts": 1, "result": "SUCCEEDED" }
  ],
  "violations": []
}"#;

fn spec_report() -> Report {
    Report {
        start: DEFAULT_SCENARIO_START,
        end: "2026-01-05T18:02:10Z".parse().unwrap(),
        deployments: vec![DeploymentReport {
            revision: 1,
            commit: "c1".into(),
            synthesis: Synthesis::Succeeded,
            stages: [
                ("staging", StageReport::new("SUCCEEDED", 1)),
                ("prod", StageReport::not_started("TIME_WINDOW")),
            ]
            .into_iter()
            .collect(),
        }],
        builds: vec![BuildReport {
            revision: 1,
            commit: "c1".into(),
            artifact: "api-image".into(),
            stage: None,
            result: "SUCCEEDED".into(),
        }],
        stages: [
            (
                "staging",
                StageSummary {
                    current_revision: Some(1),
                    current_commit: Some("c1".into()),
                    blockers: vec![],
                },
            ),
            ("prod", StageSummary::default()),
        ]
        .into_iter()
        .collect(),
        events: vec![EventReport {
            seq: 1,
            at: DEFAULT_SCENARIO_START,
            kind: "deployment_accepted".into(),
            revision: Some(1),
            commit: Some("c1".into()),
            actor: Some("webhook:sim-1".into()),
            ..EventReport::default()
        }],
        executions: vec![ExecutionReport {
            key: "api/r1/staging/a1/deploy".into(),
            starts: 1,
            result: "SUCCEEDED".into(),
        }],
        violations: vec![],
    }
}

#[test]
fn report_json_has_exactly_the_spec_keys_in_the_spec_order() {
    let json = to_json(&spec_report());
    assert!(json.ends_with("}\n"));
    // Byte for byte what the spec's example gives when pretty-printed: same keys, same order
    // (serde_json keeps insertion order here), same values.
    let spec: serde_json::Value = serde_json::from_str(SPEC_REPORT).unwrap();
    let expected = serde_json::to_string_pretty(&spec).unwrap() + "\n";
    assert_eq!(json, expected);
    // And key order really is checked: `prod` after `staging`, not alphabetical.
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let stages: Vec<&String> = parsed["stages"].as_object().unwrap().keys().collect();
    assert_eq!(stages, ["staging", "prod"]);
    let top: Vec<&String> = parsed.as_object().unwrap().keys().collect();
    assert_eq!(
        top,
        [
            "end",
            "deployments",
            "builds",
            "stages",
            "events",
            "executions",
            "violations"
        ]
    );
}

#[test]
fn report_json_keeps_pipeline_stage_order_and_optional_keys() {
    let mut report = spec_report();
    let order = ["zeta", "alpha", "mid"];
    report.stages = order
        .iter()
        .map(|s| (*s, StageSummary::default()))
        .collect();
    report.deployments[0].stages = [
        ("zeta", StageReport::new("FAILED", 2)),
        ("alpha", StageReport::skipped(3)),
        ("mid", StageReport::not_started("NEVER")),
    ]
    .into_iter()
    .collect();
    report.events.push(EventReport {
        seq: 2,
        at: "2026-01-05T17:00:10.999Z".parse().unwrap(),
        kind: "step_state".into(),
        revision: Some(1),
        stage: Some("zeta".into()),
        step: Some("deploy".into()),
        state: Some("RUNNING".into()),
        reason: Some("because".into()),
        ..EventReport::default()
    });
    let parsed: serde_json::Value = serde_json::from_str(&to_json(&report)).unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&parsed["stages"]), order);
    let stages = &parsed["deployments"][0]["stages"];
    assert_eq!(keys(stages), order);
    assert_eq!(stages["zeta"], json!({ "state": "FAILED", "attempts": 2 }));
    assert_eq!(
        stages["alpha"],
        json!({ "state": "SKIPPED", "superseded_by": 3 })
    );
    assert_eq!(
        stages["mid"],
        json!({ "state": "NOT_STARTED", "waiting_for": "NEVER" })
    );
    let event = &parsed["events"][1];
    assert_eq!(
        keys(event),
        [
            "seq", "at", "type", "revision", "stage", "step", "state", "reason"
        ]
    );
    assert_eq!(event["at"], "2026-01-05T17:00:10Z");
    // Same report, same bytes.
    assert_eq!(to_json(&report), to_json(&report.clone()));
}

#[test]
fn stage_map_replaces_in_place() {
    let mut map: StageMap<u32> = [("b", 1), ("a", 2)].into_iter().collect();
    map.insert("b", 3);
    map.insert("c", 4);
    assert_eq!(
        map.iter().collect::<Vec<_>>(),
        [("b", &3), ("a", &2), ("c", &4)]
    );
    assert_eq!(map.get("a"), Some(&2));
    assert_eq!(map.len(), 3);
}

#[test]
fn text_timeline_is_readable_and_deterministic() {
    let mut report = spec_report();
    let at = |s: &str| s.parse().unwrap();
    report.events.extend([
        EventReport {
            seq: 2,
            at: at("2026-01-05T17:02:10Z"),
            kind: "stage_state".into(),
            revision: Some(1),
            stage: Some("staging".into()),
            state: Some("IN_PROGRESS".into()),
            actor: Some("system".into()),
            ..EventReport::default()
        },
        EventReport {
            seq: 3,
            at: at("2026-01-05T17:05:00Z"),
            kind: "step_state".into(),
            revision: Some(1),
            stage: Some("prod".into()),
            step: Some("deploy".into()),
            state: Some("RUNNING".into()),
            ..EventReport::default()
        },
        EventReport {
            seq: 4,
            at: at("2026-01-07T18:00:00Z"),
            kind: "refused".into(),
            revision: Some(1),
            stage: Some("prod".into()),
            actor: Some("user:sim".into()),
            reason: Some("L11: a newer revision is queued in prod; retry it instead of this one, which is a long explanation that does not fit".into()),
            ..EventReport::default()
        },
    ]);
    report.stages.insert(
        "prod",
        StageSummary {
            blockers: vec!["STOP_PROMOTIONS".into(), "ALARM".into()],
            ..StageSummary::default()
        },
    );
    report
        .violations
        .push("L5: two stage-deployments hold prod".into());
    let text = render_text(&report);
    assert_eq!(text, render_text(&report.clone()));
    let expected = "\
Simulation from 2026-01-05T17:00:00Z to 2026-01-05T18:02:10Z (+01:02:10)
1 deployment, 1 build, 4 events, 1 violation

time         | pipeline                       | staging                        | prod
-------------+--------------------------------+--------------------------------+-------------------------------
+00:00:00    | r1 accepted c1 by webhook:sim-1
+00:02:10    |                                | r1 IN_PROGRESS
+00:05:00    |                                |                                | r1 deploy RUNNING
+2d 01:00:00 |                                |                                | r1 refused by user:sim: L11: a newer r…

Deployments
  rev  commit  synthesis  staging    prod
  r1   c1      SUCCEEDED  SUCCEEDED  NOT_STARTED (TIME_WINDOW)

Builds
  rev  commit  artifact   stage     result
  r1   c1      api-image  (shared)  SUCCEEDED

Stages
  stage    current  blockers
  staging  r1 (c1)  -
  prod     -        STOP_PROMOTIONS, ALARM

Violations
  - L5: two stage-deployments hold prod
";
    assert_eq!(text, expected, "\n{text}");
    assert!(
        text.lines()
            .all(|l| l.chars().count() <= 120 && l == l.trim_end())
    );
}

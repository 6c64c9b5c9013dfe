//! The lifecycle machine against behaviours the DevRamps reference documents (skip lists,
//! per-stage artifact reuse, promotion controls before a first deployment), with hand-fed work
//! results.

use std::collections::BTreeMap;

use devramps_core::backend::Outcome;
use devramps_core::lifecycle::{
    Actor, Blocker, Command, Control, ControlAction, Event, Input, Machine, Output, Push,
    StageState, StepState, WaitingFor, WorkResult,
};
use jiff::{SignedDuration, Timestamp};

/// Monday 2026-01-05 09:00 in Los Angeles.
fn t0() -> Timestamp {
    "2026-01-05T17:00:00Z".parse().expect("ts")
}

fn push(commit: &str, definition: &str) -> Input {
    Input::Push(
        Push::new("main", commit)
            .with_delivery(format!("d-{commit}"))
            .with_definition(Some(definition.into())),
    )
}

/// Completes every command with success until nothing is left; returns every record produced.
fn settle(m: &mut Machine, out: Output, now: Timestamp) -> Vec<Event> {
    let mut events: Vec<Event> = out.records.into_iter().map(|r| r.event).collect();
    let mut queue = out.commands;
    while let Some(command) = queue.pop() {
        if matches!(command, Command::Cancel { .. }) {
            continue;
        }
        let key = command.key().clone();
        let result = WorkResult::Done(Outcome::Succeeded {
            outputs: BTreeMap::new(),
        });
        let out = m.handle(Input::Work { key, result }, now);
        events.extend(out.records.into_iter().map(|r| r.event));
        queue.extend(out.commands);
    }
    events
}

const SKIPPING: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1, skip: ["Bake"] }
    - { name: qa, account_id: "111111111111", region: us-east-2, skip: [smoke] }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, type: "CUSTOM:DEPLOY" }
    - { name: Smoke, id: smoke, type: "CUSTOM:SMOKE" }
    - { name: Bake, type: DEVRAMPS:APPROVAL:BAKE, params: { duration_minutes: 1 } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: { dockerfile: /Dockerfile }
"#;

/// The `step_state` events of `stage`, as (step, state, reason).
fn step_events(events: &[Event], stage: &str) -> Vec<(String, StepState, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StepState {
                stage: s,
                step,
                state,
                reason,
                ..
            } if s == stage => Some((step.clone(), *state, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn reference_23_a_skip_list_step_is_recorded_skipped_when_the_deployment_steps_begin() {
    let mut m = Machine::new("app");
    let out = m.handle(push("c1", SKIPPING), t0());
    let mut events = settle(&mut m, out, t0());
    // Bakes end as time passes.
    for minutes in 1..=6 {
        let now = t0() + SignedDuration::from_mins(2 * minutes);
        let out = m.handle(Input::Tick, now);
        events.extend(settle(&mut m, out, now));
    }
    assert_eq!(
        m.state().run(1, "prod").map(|r| r.state),
        Some(StageState::Succeeded)
    );
    // Skipped by name in staging, by id in qa; each once, naming the skip list.
    for (stage, step, other) in [("staging", "Bake", "smoke"), ("qa", "smoke", "Bake")] {
        let skipped: Vec<_> = step_events(&events, stage)
            .into_iter()
            .filter(|(_, state, _)| *state == StepState::Skipped)
            .collect();
        assert_eq!(skipped.len(), 1, "{stage}: {skipped:?}");
        assert_eq!(skipped[0].0, step);
        let reason = skipped[0].2.as_deref().unwrap_or_default();
        assert!(
            reason.contains("skip") && reason.contains(stage),
            "{reason}"
        );
        let ran: Vec<_> = step_events(&events, stage)
            .into_iter()
            .filter(|(s, state, _)| s == other && *state == StepState::Succeeded)
            .collect();
        assert_eq!(ran.len(), 1, "{stage}: `{other}` runs");
    }
    // Recorded as the steps phase begins: after its `phase_started`, before the first step runs.
    let position = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred);
    let phase = position(&|e| {
        matches!(e, Event::PhaseStarted { stage, phase, .. }
            if stage == "staging" && format!("{phase:?}") == "Steps")
    });
    let skipped = position(
        &|e| matches!(e, Event::StepState { stage, state: StepState::Skipped, .. } if stage == "staging"),
    );
    let running = position(
        &|e| matches!(e, Event::StepState { stage, state: StepState::Running, .. } if stage == "staging"),
    );
    assert!(
        phase < skipped && skipped < running,
        "{phase:?} {skipped:?} {running:?}"
    );
    // Prod skips nothing.
    assert!(
        step_events(&events, "prod")
            .iter()
            .all(|(_, state, _)| *state != StepState::Skipped)
    );
}

const TWO_STAGES: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: A, type: "CUSTOM:A" }
  artifacts: {}
"#;

fn control(stage: &str, action: ControlAction) -> Input {
    Input::Control(
        Control::new(stage, action, Actor::User("ana".into()))
            .with_reason("freeze prod for the launch"),
    )
}

#[test]
fn l9_promotions_can_be_stopped_before_the_first_deployment_and_hold_from_it_on() {
    let mut m = Machine::new("app");
    let out = m.handle(control("prod", ControlAction::StopPromotions), t0());
    assert!(
        out.records
            .iter()
            .all(|r| !matches!(r.event, Event::Refused { .. })),
        "{:?}",
        out.records
    );
    assert!(
        out.records
            .iter()
            .any(|r| matches!(&r.event, Event::BlockerAdded { stage, blocker: Blocker::StopPromotions, .. } if stage == "prod"))
    );
    // The first deployment runs in staging and queues at prod behind the blocker.
    let out = m.handle(push("c1", TWO_STAGES), t0());
    settle(&mut m, out, t0());
    let run = |m: &Machine, stage: &str| {
        let r = m.state().run(1, stage).expect("run");
        (r.state, r.waiting_for)
    };
    assert_eq!(run(&m, "staging").0, StageState::Succeeded);
    assert_eq!(
        run(&m, "prod"),
        (StageState::NotStarted, Some(WaitingFor::Blocker))
    );
    // Resumed: prod deploys.
    let out = m.handle(control("prod", ControlAction::ResumePromotions), t0());
    settle(&mut m, out, t0());
    assert_eq!(run(&m, "prod").0, StageState::Succeeded);
}

#[test]
fn l9_other_operations_on_an_unknown_stage_are_still_refused() {
    let mut m = Machine::new("app");
    for action in [ControlAction::ResumePromotions, ControlAction::Unblock] {
        let out = m.handle(control("prod", action), t0());
        assert!(
            out.records
                .iter()
                .any(|r| matches!(r.event, Event::Refused { .. })),
            "{action:?}: {:?}",
            out.records
        );
    }
    // Once a definition is in force, a stage it does not have is a mistake (a typo).
    let out = m.handle(push("c1", TWO_STAGES), t0());
    settle(&mut m, out, t0());
    let out = m.handle(control("prdo", ControlAction::StopPromotions), t0());
    assert!(
        out.records
            .iter()
            .any(|r| matches!(r.event, Event::Refused { .. })),
        "{:?}",
        out.records
    );
}

const PER_STAGE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - name: Upload
      type: "CUSTOM:UPLOAD"
      params: { site: "${{ stage.artifacts.site.s3_url }}" }
  artifacts:
    Site:
      type: DEVRAMPS:BUNDLE:BUILD
      per_stage: true
      rebuild_when_changed: [/web]
      params: { build_commands: make, file_path: /site.zip }
"#;

fn push_changed(commit: &str, base: &str, paths: &[&str]) -> Input {
    let mut input = push(commit, PER_STAGE);
    if let Input::Push(p) = &mut input {
        let paths = paths.iter().map(|p| (*p).to_owned()).collect();
        p.changed = [(base.to_owned(), paths)].into();
    }
    input
}

/// The (artifact, stage) of every build started.
fn builds(events: &[Event]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BuildStarted {
                artifact, stage, ..
            } => Some((artifact.clone(), stage.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn l4_an_unchanged_per_stage_artifact_is_reused_in_each_stage() {
    let mut m = Machine::new("app");
    let out = m.handle(push("c1", PER_STAGE), t0());
    let first = settle(&mut m, out, t0());
    let site = |stage: &str| ("site".to_owned(), Some(stage.to_owned()));
    assert_eq!(builds(&first), [site("staging"), site("prod")]);
    assert_eq!(m.bases(), ["c1"]);
    // c2 touches nothing under /web: neither stage builds, both use c1's builds.
    let out = m.handle(push_changed("c2", "c1", &["/docs/readme.md"]), t0());
    let second = settle(&mut m, out, t0());
    assert_eq!(builds(&second), []);
    assert_eq!(
        m.state().run(2, "prod").map(|r| r.state),
        Some(StageState::Succeeded)
    );
    let plan = m.state().deployments[&2].plan().cloned().expect("a plan");
    for stage in &plan.stages {
        assert_eq!(stage.reused.get("site").map(String::as_str), Some("c1"));
        assert!(
            stage.artifacts["site"].s3_key.contains("/c1/"),
            "{}: {:?}",
            stage.name,
            stage.artifacts["site"]
        );
    }
    // c3 touches /web: each stage builds again.
    let out = m.handle(push_changed("c3", "c1", &["/web/index.html"]), t0());
    let third = settle(&mut m, out, t0());
    assert_eq!(builds(&third), [site("staging"), site("prod")]);
}

//! Tests of [`ScriptedRunner`](super::ScriptedRunner).

#![allow(clippy::unwrap_used)]

use devramps_core::backend::{Clock, Unit};
use devramps_core::expr::FinalValue;
use futures::FutureExt;
use futures::executor::block_on;
use serde_json::json;

use super::*;
use crate::ManualClock;

fn setup() -> (ManualClock, ScriptedStepRunner) {
    let clock = ManualClock::new(Timestamp::constant(1_767_632_400, 0));
    let runner = ScriptedRunner::new("test step runner", Arc::new(clock.clone()));
    (clock, runner)
}

fn key(stage: &str, attempt: u32, step: &str) -> ExecutionKey {
    ExecutionKey::new("api", 1, stage, attempt, Unit::step(step))
}

fn request(key: &ExecutionKey) -> StepRequest {
    StepRequest::new(
        key.clone(),
        "CUSTOM:SCRIPT:DEPLOY",
        FinalValue::Plain(json!({})),
    )
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
    }
}

#[test]
fn unscripted_execution_succeeds_after_the_default_duration() {
    let (clock, runner) = setup();
    let k = key("prod", 1, "deploy");
    block_on(runner.start(request(&k))).unwrap();
    assert!(runner.wait(&k).now_or_never().is_none());
    clock.advance(DEFAULT_DURATION - Duration::from_secs(1));
    assert!(runner.wait(&k).now_or_never().is_none());
    assert_eq!(runner.running(), std::slice::from_ref(&k));
    clock.advance(Duration::from_secs(1));
    let outcome = runner.wait(&k).now_or_never().unwrap().unwrap();
    assert_eq!(outcome, Behavior::succeed(DEFAULT_DURATION).outcome);
    assert!(runner.running().is_empty());
}

#[test]
fn scripts_select_by_stage_step_and_attempt() {
    let (clock, runner) = setup();
    let outputs = Outputs::from([("url".to_owned(), json!("https://x"))]);
    runner
        .script(
            Match::step("deploy").in_stage("prod").attempt(1),
            Behavior::fail("boom", Duration::from_secs(300)),
        )
        .script(
            Match::step("deploy"),
            Behavior::succeed_with(outputs.clone(), Duration::from_secs(10)),
        );
    let (first, retry) = (key("prod", 1, "deploy"), key("prod", 2, "deploy"));
    block_on(async {
        runner.start(request(&first)).await.unwrap();
        runner.start(request(&retry)).await.unwrap();
    });
    assert_eq!(clock.advance_to_next_deadline(), None, "no one waits yet");
    let both = futures::future::join(runner.wait(&first), runner.wait(&retry));
    let driver = async {
        // Jump from deadline to deadline, as a simulator does.
        while clock.advance_to_next_deadline().is_some() || clock.pending_sleepers() > 0 {
            crate::fault::yield_now().await;
        }
    };
    let ((a, b), ()) = block_on(futures::future::join(both, driver));
    assert_eq!(a.unwrap(), failed("boom"));
    assert_eq!(b.unwrap(), Outcome::Succeeded { outputs });
    assert_eq!(
        clock.now(),
        Timestamp::constant(1_767_632_400 + 300, 0),
        "time advanced exactly to the last deadline"
    );
}

#[test]
fn hanging_execution_ends_only_when_cancelled() {
    let (clock, runner) = setup();
    let k = key("prod", 1, "bake");
    runner.script(Match::step("bake"), Behavior::hang());
    block_on(runner.start(request(&k))).unwrap();
    clock.advance(Duration::from_secs(86_400 * 30));
    assert!(runner.wait(&k).now_or_never().is_none());
    let mut waiting = runner.wait(&k);
    assert!((&mut waiting).now_or_never().is_none());
    block_on(runner.cancel(&k)).unwrap();
    assert_eq!(block_on(waiting).unwrap(), failed(CANCELLED_REASON));
    assert_eq!(block_on(runner.wait(&k)).unwrap(), failed(CANCELLED_REASON));
    let actions: Vec<RunAction> = runner.log().iter().map(|r| r.action).collect();
    assert_eq!(actions, [RunAction::Started, RunAction::Cancelled]);
}

#[test]
fn restart_reattaches_and_wait_repeats_the_outcome() {
    let (clock, runner) = setup();
    let k = key("staging", 1, "deploy");
    block_on(async {
        runner.start(request(&k)).await.unwrap();
        clock.advance(Duration::from_secs(30));
        runner.start(request(&k)).await.unwrap();
    });
    clock.advance(Duration::from_secs(30));
    let first = block_on(runner.wait(&k)).unwrap();
    assert_eq!(block_on(runner.wait(&k)).unwrap(), first);
    assert_eq!(runner.started(), std::slice::from_ref(&k));
    let actions: Vec<RunAction> = runner.log().iter().map(|r| r.action).collect();
    assert_eq!(actions, [RunAction::Started, RunAction::Reattached]);
    assert_eq!(
        runner.request(&k).unwrap().step_type,
        "CUSTOM:SCRIPT:DEPLOY"
    );
}

#[test]
fn cancel_of_ended_or_unknown_execution_does_nothing() {
    let (clock, runner) = setup();
    let k = key("prod", 1, "deploy");
    block_on(runner.start(request(&k))).unwrap();
    clock.advance(DEFAULT_DURATION);
    block_on(runner.cancel(&k)).unwrap();
    block_on(runner.cancel(&key("prod", 1, "other"))).unwrap();
    assert!(matches!(
        block_on(runner.wait(&k)).unwrap(),
        Outcome::Succeeded { .. }
    ));
    assert_eq!(runner.log().len(), 1, "only the start is logged");
}

#[test]
fn wait_on_unknown_key_is_not_found() {
    let (_, runner) = setup();
    let err = block_on(runner.wait(&key("prod", 1, "x"))).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("test step runner"), "{err}");
}

#[test]
fn complete_ends_a_hanging_execution_by_hand() {
    let (_, runner) = setup();
    let k = key("prod", 1, "approve");
    runner.set_default(Behavior::hang());
    block_on(runner.start(request(&k))).unwrap();
    let mut waiting = runner.wait(&k);
    assert!((&mut waiting).now_or_never().is_none());
    let approval = Outcome::ApprovalRequired { context: None };
    assert!(runner.complete(&k, approval.clone()).unwrap());
    assert!(!runner.complete(&k, failed("late")).unwrap());
    assert_eq!(block_on(waiting).unwrap(), approval);
}

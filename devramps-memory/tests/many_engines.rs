//! Many engines on one store (L21): the harness of `devramps_memory::many_engines` on the
//! in-memory store with random injected compare-and-swap conflicts and latency, plus
//! hand-made races: a holder fenced out by a newer lease cannot write; a cancel recorded by
//! another instance stops work; a refused renewal is recovered from.
//!
//! More seeds: `MANY_ENGINES_SEEDS=50 cargo test -p devramps-memory --test many_engines`
//! (about 1.5 s per seed in debug); `MANY_ENGINES_STATS=1` prints what each history did.

use std::collections::BTreeMap;
use std::sync::Arc;

use devramps_core::backend::{Backends, ExecutionKey, Outcome, StepRunners, Unit};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{
    Actor, Control, ControlAction, Operate, PipelineState, StageState, StepState,
};
use devramps_memory::many_engines::{
    PIPELINE, POLL, SLUG, STAGES, Shared, check_log, config, run_history,
};
use devramps_memory::{
    Behavior, Fault, FaultOptions, FaultSchedule, FaultyLock, FaultyStore, RecordingObserver,
    RunAction, ScriptedStepRunner, scripted_backends,
};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

#[allow(dead_code)] // each test uses a part of it
#[path = "support/gated.rs"]
mod gated;
use gated::GatedStore;

#[test]
fn l21_three_engines_on_one_faulty_store_keep_every_invariant_and_replay_from_their_inputs() {
    let seeds: u64 = std::env::var("MANY_ENGINES_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 1..=seeds {
        let mut injected = None;
        let history = run_history(seed, |handles| {
            let store = FaultyStore::new(
                handles.store.clone(),
                FaultOptions {
                    schedule: FaultSchedule::RandomWrites {
                        seed,
                        one_in: 5,
                        faults: vec![Fault::Conflict],
                    },
                    latency_yields: 2,
                },
            );
            injected = Some(store.clone());
            let lock = handles.lock.clone();
            Shared {
                connect: Box::new(move |_| (Arc::new(store.clone()), Arc::new(lock.clone()))),
                in_flight: None,
            }
        });
        let injected = injected.expect("the store was built").injected().len();
        assert!(injected > 0, "seed {seed}: conflicts were injected");
        let unexpected: Vec<&String> = history
            .errors
            .iter()
            .filter(|e| !e.contains("kept changing"))
            .collect();
        assert!(unexpected.is_empty(), "seed {seed}: errors {unexpected:?}");
        eprintln!(
            "seed {seed}: {} records, {} deployments, {} appends, {} tokens, {injected} \
             injected conflicts, {} calls lost every race",
            history.log.len(),
            history.deployments,
            history.appends.len(),
            history.tokens,
            history.errors.len()
        );
    }
}

// ----- a holder fenced out -----

fn key(stage: &str, unit: Unit) -> ExecutionKey {
    ExecutionKey::new(SLUG, 1, stage, 1, unit)
}

#[test]
fn l21_a_holder_whose_lease_was_taken_over_cannot_write() {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/src/main.rs", "1"),
        ],
    );
    let journal = RecordingObserver::new();
    // A sees the store through a gate, and the step runner through its own view: the step
    // ends for A (its result is what A will try to write) while it still runs for B.
    let gated = GatedStore::new(handles.store.clone());
    let a_runner = ScriptedStepRunner::new("A's view", Arc::new(handles.clock.clone()));
    a_runner.set_default(Behavior::hang());
    handles.steps.set_default(Behavior::hang());
    let a_backends = Backends {
        store: Arc::new(gated.clone()),
        steps: StepRunners::new().with_fallback(Arc::new(a_runner.clone())),
        ..backends.clone()
    };
    let mut pool = LocalPool::new();
    let (a, a_driver) = Engine::new(a_backends, config("a", &journal));
    let _a_driver = pool
        .spawner()
        .spawn_local_with_handle(a_driver.run())
        .expect("A starts");
    let push = PushRequest::new("main", "c1").with_delivery("d1");
    let engine = a.clone();
    pool.run_until(async move { engine.push(SLUG, push).await })
        .expect("A records the push");
    // A drives: the build, validation and mirroring pass, staging's deploy starts.
    let deploy = key("staging", Unit::step("deploy"));
    for _ in 0..100 {
        pool.run_until_stalled();
        if a_runner.running().contains(&deploy) {
            break;
        }
        handles.clock.advance(POLL);
    }
    assert!(a_runner.running().contains(&deploy), "A runs the deploy");
    let lease = handles.lock.leases();
    assert_eq!(
        (lease[0].holder.as_str(), lease[0].token),
        ("a", 1),
        "A holds the lease"
    );
    // B starts and polls; A renews on its polls, so B drives nothing.
    let (b, b_driver) = Engine::new(backends.clone(), config("b", &journal));
    let _b_driver = pool
        .spawner()
        .spawn_local_with_handle(b_driver.run())
        .expect("B starts");
    for _ in 0..8 {
        handles.clock.advance(POLL);
        pool.run_until_stalled();
    }
    assert_eq!(handles.lock.leases()[0].holder, "a", "A kept its lease");
    assert!(handles.steps.running().is_empty(), "B started nothing");
    // A learns that the deploy succeeded and goes to record it, but stalls mid-append.
    gated.set_closed(true);
    let succeeded = Outcome::Succeeded {
        outputs: BTreeMap::new(),
    };
    a_runner
        .complete(&deploy, succeeded.clone())
        .expect("completes");
    pool.run_until_stalled();
    assert_eq!(gated.gate().waiting, 1, "A's append waits at the gate");
    // A cannot renew while it stalls; past the TTL, B takes the lease over, fences the
    // stream with its token and re-attaches to the deploy (still running in B's view).
    for _ in 0..8 {
        handles.clock.advance(POLL);
        pool.run_until_stalled();
    }
    let lease = handles.lock.leases();
    assert_eq!(
        (lease[0].holder.as_str(), lease[0].token),
        ("b", 2),
        "B took the lease over with a greater token"
    );
    assert_eq!(handles.store.highest_token(SLUG), Some(2), "B fenced");
    assert!(
        handles.steps.running().contains(&deploy),
        "B re-attached to the deploy"
    );
    let before = futures::executor::block_on(a.history(SLUG)).expect("log");
    let journaled = journal.appends().len();
    let appended = gated.gate().appends.len();
    // A wakes up: its append, presenting token 1, is refused, and it does not try again (not
    // with its token, and never without: a work result is the holder's to record).
    gated.set_closed(false);
    pool.run_until_stalled();
    let appends = gated.gate().appends[appended..].to_vec();
    assert_eq!(appends.len(), 1, "A appended once more: {appends:?}");
    let (token, outcome) = (appends[0].token, appends[0].outcome.clone());
    assert_eq!(token, Some(1), "A presented its old token");
    let refusal = outcome.expect_err("the store refused A's append");
    assert!(
        refusal.contains("conflict") && refusal.contains("fencing token 1"),
        "refused for its token: {refusal}"
    );
    let after = futures::executor::block_on(a.history(SLUG)).expect("log");
    assert_eq!(after, before, "nothing of A's landed");
    assert_eq!(journal.appends().len(), journaled, "A journaled nothing");
    // A caught up and reports the log; it drives nothing any more.
    let engine = a.clone();
    let a_state = pool
        .run_until(async move { engine.state(SLUG).await })
        .expect("A's state");
    assert_eq!(a_state, PipelineState::replay(SLUG, &after));
    let staging = |s: &PipelineState| s.deployments[&1].stage("staging").map(|r| r.state);
    assert_eq!(staging(&a_state), Some(StageState::InProgress));
    // B records the deploy's result when it ends in its view, under its token.
    handles
        .steps
        .complete(&deploy, succeeded)
        .expect("completes");
    pool.run_until_stalled();
    let engine = b.clone();
    let b_state = pool
        .run_until(async move { engine.state(SLUG).await })
        .expect("B's state");
    let deploy_done = b_state.deployments[&1]
        .stage("staging")
        .is_some_and(|r| r.steps[0].state == StepState::Succeeded);
    assert!(deploy_done, "B recorded the deploy's success");
    let entries = journal.appends().clone();
    let last = entries.last().expect("B journaled");
    assert_eq!((last.instance.as_str(), last.fencing_token), ("b", Some(2)));
    assert!(
        entries
            .iter()
            .filter(|e| e.instance == "a")
            .all(|e| e.fencing_token == Some(1)),
        "A wrote only while it held the lease"
    );
    // People's inputs are still welcome at A: it records them without a token.
    let control = Control::new(
        "prod".to_owned(),
        ControlAction::StopPromotions,
        Actor::User("ana".to_owned()),
    );
    let engine = a.clone();
    let records = pool
        .run_until(async move { engine.control(SLUG, control).await })
        .expect("A records a person's input");
    assert!(!records.is_empty());
    let last = journal.appends().last().cloned().expect("journaled");
    assert_eq!((last.instance.as_str(), last.fencing_token), ("a", None));
    check_log(&futures::executor::block_on(a.history(SLUG)).expect("log"));
}

#[test]
fn l12_l21_a_cancel_recorded_by_another_instance_stops_work_the_holder_starts_later() {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/src/main.rs", "1"),
        ],
    );
    handles.builds.set_default(Behavior::hang());
    let journal = RecordingObserver::new();
    let mut pool = LocalPool::new();
    let mut engines = Vec::new();
    for name in ["a", "b"] {
        let (engine, driver) = Engine::new(backends.clone(), config(name, &journal));
        let driver = pool
            .spawner()
            .spawn_local_with_handle(driver.run())
            .expect("starts");
        engines.push((engine, driver));
    }
    let (a, b) = (engines[0].0.clone(), engines[1].0.clone());
    let push = |delivery: &str, branch: &str| {
        PushRequest::new(branch.to_owned(), "c1".to_owned()).with_delivery(delivery.to_owned())
    };
    // A records an ignored push and so holds the lease; nothing runs.
    let request = push("d0", "feature");
    let engine = a.clone();
    pool.run_until(async move { engine.push(SLUG, request).await })
        .expect("A records");
    assert_eq!(handles.lock.leases()[0].holder, "a");
    // B accepts a deployment (its build is running in the log, but B starts nothing) and,
    // before A has caught up, a person cancels it at B: B's cancel finds no execution.
    let request = push("d1", "main");
    let engine = b.clone();
    pool.run_until(async move { engine.push(SLUG, request).await })
        .expect("B records");
    assert!(handles.builds.started().is_empty(), "B started nothing");
    let op = Operate::new(1, "staging".to_owned(), Actor::User("ana".to_owned()));
    let engine = b.clone();
    pool.run_until(async move { engine.cancel(SLUG, op).await })
        .expect("B records the cancel");
    let build = key("staging", Unit::build("image"));
    // A polls, catches up and re-attaches to the build of a cancelling stage-deployment: it
    // starts it and stops it at once, so the cancel completes (L12).
    handles.clock.advance(POLL);
    pool.run_until_stalled();
    let log = handles.builds.log();
    let actions: Vec<_> = log
        .iter()
        .filter(|r| r.key == build)
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [RunAction::Started, RunAction::Cancelled],
        "A started and stopped the build"
    );
    let engine = b.clone();
    let state = pool
        .run_until(async move { engine.state(SLUG).await })
        .expect("state");
    let staging = state.deployments[&1].stage("staging").expect("staging");
    assert_eq!(staging.state, StageState::Cancelled);
    check_log(&futures::executor::block_on(b.history(SLUG)).expect("log"));
}

#[test]
fn l21_a_single_instance_whose_renewal_is_refused_takes_its_lease_again_and_finishes() {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/src/main.rs", "1"),
        ],
    );
    // The second call to the lease service (the first renewal) says the lease was lost.
    let lock = FaultyLock::new(
        handles.lock.clone(),
        FaultOptions {
            schedule: FaultSchedule::at_calls([(2, Fault::Conflict)]),
            latency_yields: 0,
        },
    );
    let backends = Backends {
        lock: Arc::new(lock.clone()),
        ..backends
    };
    // One instance, no polling: the default configuration.
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let mut pool = LocalPool::new();
    let _driver = pool
        .spawner()
        .spawn_local_with_handle(driver.run())
        .expect("starts");
    let push = PushRequest::new("main", "c1").with_delivery("d1");
    let e = engine.clone();
    pool.run_until(async move { e.push(SLUG, push).await })
        .expect("recorded");
    loop {
        pool.run_until_stalled();
        if handles.clock.advance_to_next_deadline().is_none() {
            break;
        }
    }
    let injected = lock.injected();
    assert_eq!(injected.len(), 1, "a renewal was refused");
    assert!(injected[0].operation.starts_with("renew"), "{injected:?}");
    let e = engine.clone();
    let state = pool
        .run_until(async move { e.state(SLUG).await })
        .expect("state");
    for stage in STAGES {
        let run = state.deployments[&1].stage(stage).expect("stage");
        assert_eq!(run.state, StageState::Succeeded, "{stage}");
    }
    let log = futures::executor::block_on(engine.history(SLUG)).expect("log");
    check_log(&log);
    assert_eq!(PipelineState::replay(SLUG, &log), state);
}

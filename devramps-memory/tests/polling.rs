//! Steps that ask to be polled (custom steps' `TRIGGERED` / `POLL_AGAIN`): the polling state
//! is recorded in the log, each poll is a start of the same key with that state, and an engine
//! that restarts polls again instead of triggering twice. Also: an engine that only records
//! (an operation from another terminal) never drives work.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{
    Backends, ExecutionKey, Outcome, Polling, Runner, StepRequest, StepRunners,
};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Actor, Decide, StageState, StepState};
use devramps_core::{Error, Result};
use devramps_memory::{ManualClock, MemoryHandles, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use serde_json::json;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
  steps:
    - { name: Wait, id: wait, type: "CUSTOM:WAIT" }
    - { name: Gated, id: gated, type: "CUSTOM:GATED" }
  artifacts: {}
"#;

/// A polling step (`CUSTOM:WAIT`: triggered, then `POLL_AGAIN` until its third poll) and one
/// that asks for approval (`CUSTOM:GATED`), recording every invocation it is asked for.
#[derive(Debug, Default)]
struct ProtocolRunner {
    /// `(key unit, invocation)` in order: `trigger`, `poll-<n>`, `prepare`, `run-approved`.
    invocations: Mutex<Vec<(String, String)>>,
    outcomes: Mutex<BTreeMap<ExecutionKey, Outcome>>,
    /// Which invocations already ran, so a start of the same one re-attaches.
    seen: Mutex<BTreeMap<(ExecutionKey, String), Outcome>>,
    /// Every start asked for, re-attaches included.
    starts: Mutex<Vec<String>>,
}

impl ProtocolRunner {
    fn invocations(&self) -> Vec<(String, String)> {
        self.invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Runner<StepRequest> for ProtocolRunner {
    async fn start(&self, request: StepRequest) -> Result<()> {
        assert!(request.commit.is_some(), "the engine passes the commit");
        assert!(request.target.is_some(), "the engine passes the stage");
        let (invocation, outcome) = match (request.step_type.as_str(), &request.polling) {
            ("CUSTOM:WAIT", None) => (
                "trigger".to_owned(),
                Outcome::PollLater {
                    polling_state: json!({"job": 42, "polls": 0}),
                    retry_after_ms: Some(2_000),
                },
            ),
            ("CUSTOM:WAIT", Some(p)) => {
                let n = p.state["polls"].as_u64().unwrap_or(0) + 1;
                assert_eq!(p.state["job"], 42, "the poll gets the recorded state");
                assert_eq!(u64::from(p.polls), n - 1, "polls counts the earlier polls");
                let outcome = if n < 3 {
                    Outcome::PollLater {
                        polling_state: json!({"job": 42, "polls": n}),
                        retry_after_ms: None,
                    }
                } else {
                    Outcome::Succeeded {
                        outputs: [("polls".to_owned(), json!(n))].into(),
                    }
                };
                (format!("poll-{}", p.polls + 1), outcome)
            }
            (_, _) if !request.approved => (
                "prepare".to_owned(),
                Outcome::ApprovalRequired {
                    context: Some("look at the diff".to_owned()),
                },
            ),
            (_, _) => (
                "run-approved".to_owned(),
                Outcome::Succeeded {
                    outputs: BTreeMap::new(),
                },
            ),
        };
        self.starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(invocation.clone());
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (request.key.clone(), invocation.clone());
        let outcome = match seen.get(&id) {
            Some(earlier) => earlier.clone(),
            None => {
                self.invocations
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((request.key.unit.to_string(), invocation));
                seen.insert(id, outcome.clone());
                outcome
            }
        };
        self.outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.key, outcome);
        Ok(())
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        self.outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("execution {key}")))
    }

    async fn cancel(&self, _key: &ExecutionKey) -> Result<()> {
        Ok(())
    }
}

fn backends(runner: &Arc<ProtocolRunner>) -> (Backends, MemoryHandles) {
    let (base, handles) = scripted_backends();
    handles
        .source
        .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let steps = StepRunners::new().with_fallback(runner.clone());
    (Backends { steps, ..base }, handles)
}

fn spawn(pool: &LocalPool, backends: Backends, config: EngineConfig) -> Engine {
    let (engine, driver) = Engine::new(backends, config);
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn the driver");
    engine
}

/// Runs `pool`, moving `clock` to each next deadline, until nothing is due or `until` holds.
fn settle(pool: &mut LocalPool, clock: &ManualClock, until: impl Fn() -> bool) {
    loop {
        pool.run_until_stalled();
        if until() || clock.advance_to_next_deadline().is_none() {
            break;
        }
    }
}

fn log_of(handles: &MemoryHandles) -> Vec<serde_json::Value> {
    use devramps_core::backend::EventStoreExt;
    futures::executor::block_on(handles.store.read_all("app"))
        .expect("read the log")
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

fn polling_records(log: &[serde_json::Value]) -> Vec<(u64, serde_json::Value)> {
    log.iter()
        .filter(|e| e["type"] == "step_polling")
        .map(|e| (e["polls"].as_u64().unwrap_or(u64::MAX), e["state"].clone()))
        .collect()
}

#[test]
fn a_polled_step_records_each_state_and_succeeds_after_its_polls() {
    let runner = Arc::new(ProtocolRunner::default());
    let (backends, handles) = backends(&runner);
    let mut pool = LocalPool::new();
    let engine = spawn(&pool, backends, EngineConfig::default());
    pool.run_until(engine.push("app", PushRequest::new("main", "c1")))
        .expect("push");
    settle(&mut pool, &handles.clock, || false);

    let log = log_of(&handles);
    assert_eq!(
        polling_records(&log),
        vec![
            (0, json!({"job": 42, "polls": 0})),
            (1, json!({"job": 42, "polls": 1})),
            (2, json!({"job": 42, "polls": 2})),
        ],
        "every polling state is in the log, in order"
    );
    let wait_invocations: Vec<String> = runner
        .invocations()
        .into_iter()
        .filter(|(unit, _)| unit == "wait")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(wait_invocations, ["trigger", "poll-1", "poll-2", "poll-3"]);
    let state = pool.run_until(engine.state("app")).expect("state");
    let run = state.deployments[&1].stage("staging").expect("staging");
    assert_eq!(run.steps[0].state, StepState::Succeeded);
    assert_eq!(run.steps[0].outputs["polls"], json!(3));
    assert_eq!(run.steps[0].polling, None, "polling ends with the step");
    // The gated step waits for a person.
    assert_eq!(run.steps[1].state, StepState::WaitingApproval);
}

#[test]
fn a_restarted_engine_polls_with_the_recorded_state_and_never_triggers_again() {
    let runner = Arc::new(ProtocolRunner::default());
    let (backends, handles) = backends(&runner);
    let mut pool = LocalPool::new();
    let first = spawn(&pool, backends.clone(), EngineConfig::default());
    pool.run_until(first.push("app", PushRequest::new("main", "c1")))
        .expect("push");
    // Run until the first polling state is recorded, then "kill" the engine.
    let store = handles.clone();
    settle(&mut pool, &handles.clock, || {
        !polling_records(&log_of(&store)).is_empty()
    });
    drop(pool);
    drop(first);
    // The runner forgets what is running (a new process), but keeps what ran (the disk).
    runner
        .outcomes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    handles.clock.advance(Duration::from_secs(120));
    let starts_before = runner
        .starts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();

    let mut pool = LocalPool::new();
    let second = spawn(&pool, backends, EngineConfig::new("engine-2"));
    settle(&mut pool, &handles.clock, || false);
    let triggers = runner
        .invocations()
        .iter()
        .filter(|(_, i)| i == "trigger")
        .count();
    assert_eq!(triggers, 1, "a restart never triggers again");
    let after: Vec<String> =
        runner.starts.lock().unwrap_or_else(PoisonError::into_inner)[starts_before..].to_vec();
    assert_eq!(
        after.first().map(String::as_str),
        Some("poll-1"),
        "the restarted engine's first start of the step is a poll: {after:?}"
    );
    assert!(!after.iter().any(|i| i == "trigger"), "{after:?}");
    let state = pool.run_until(second.state("app")).expect("state");
    let run = state.deployments[&1].stage("staging").expect("staging");
    assert_eq!(run.steps[0].state, StepState::Succeeded);
}

#[test]
fn an_engine_that_only_records_approves_for_the_one_that_drives() {
    let runner = Arc::new(ProtocolRunner::default());
    let (backends, handles) = backends(&runner);
    let mut pool = LocalPool::new();
    let driving = spawn(
        &pool,
        backends.clone(),
        EngineConfig::new("run").with_poll_interval(Some(Duration::from_secs(1))),
    );
    pool.run_until(driving.push("app", PushRequest::new("main", "c1")))
        .expect("push");
    let store = handles.clone();
    let gated_waits = move || {
        log_of(&store)
            .iter()
            .any(|e| e["type"] == "approval_required" && e["step"] == "gated")
    };
    settle(&mut pool, &handles.clock, &gated_waits);
    assert!(gated_waits(), "the gated step asked for approval");

    // Another terminal: an instance that records only.
    let leases_before = handles.lock.leases();
    let recorder = spawn(&pool, backends, EngineConfig::new("cli").recording_only());
    let decide = Decide::new(1, "staging", "gated", Actor::User("ana".into()));
    pool.run_until(recorder.approve("app", decide))
        .expect("approve");
    assert_eq!(
        handles.lock.leases(),
        leases_before,
        "the recording instance took no lease"
    );
    let store = handles.clone();
    settle(&mut pool, &handles.clock, move || {
        log_of(&store)
            .iter()
            .any(|e| e["type"] == "stage_state" && e["state"] == "SUCCEEDED")
    });
    let state = pool.run_until(driving.state("app")).expect("state");
    let run = state.deployments[&1].stage("staging").expect("staging");
    assert_eq!(
        run.state,
        StageState::Succeeded,
        "the driving engine went on"
    );
    let invocations = runner.invocations();
    assert!(invocations.contains(&("gated".to_owned(), "run-approved".to_owned())));
    let _ = Polling::new(json!(null), 0, None); // the type is public for runners
}

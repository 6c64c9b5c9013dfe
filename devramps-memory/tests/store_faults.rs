//! A transient store error never changes an outcome: a work result whose append failed stays
//! queued and is recorded later, with backoff on the backends' clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, Backends, Clock, EventStore, StoredEvent};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{StageState, StepState};
use devramps_core::{Error, Result};
use devramps_memory::{InMemoryEventStore, MemoryHandles, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use jiff::Timestamp;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
  artifacts: {}
"#;

/// Which appends fail: those whose events match, `times` times, with a transient error.
#[derive(Debug)]
struct FailMatching {
    inner: InMemoryEventStore,
    matches: fn(&serde_json::Value) -> bool,
    times: AtomicU32,
    failed_at: Mutex<Vec<Timestamp>>,
    clock: devramps_memory::ManualClock,
}

#[async_trait]
impl EventStore for FailMatching {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        if events.iter().any(self.matches)
            && self
                .times
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.failed_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(self.clock.now());
            return Err(Error::Unavailable {
                backend: "flaky store".into(),
                operation: format!("append to `{stream}`"),
                message: "503 SlowDown".into(),
                retry_after: None,
                source: None,
            });
        }
        self.inner
            .append(stream, expected_last, events, options)
            .await
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        self.inner.read(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        self.inner.last_seq(stream).await
    }

    async fn streams(&self) -> Result<Vec<String>> {
        self.inner.streams().await
    }
}

fn deploy_succeeded_in_staging(event: &serde_json::Value) -> bool {
    event["type"] == "step_state"
        && event["stage"] == "staging"
        && event["step"] == "deploy"
        && event["state"] == "SUCCEEDED"
}

/// Deploys `c1` with the store failing `times` appends that record the staging deploy's
/// success; returns the final state, the log, and when the appends failed.
fn deploy_with_faults(times: u32) -> (StageState, StageState, Vec<serde_json::Value>, usize) {
    let (base, handles): (Backends, MemoryHandles) = scripted_backends();
    handles
        .source
        .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let store = Arc::new(FailMatching {
        inner: handles.store.clone(),
        matches: deploy_succeeded_in_staging,
        times: AtomicU32::new(times),
        failed_at: Mutex::new(Vec::new()),
        clock: handles.clock.clone(),
    });
    let backends = Backends {
        store: store.clone(),
        ..base
    };
    let (mut pool, engine) = start(backends);
    let push = PushRequest::new("main", "c1").with_delivery("d1");
    pool.run_until(engine.push("app", push))
        .expect("push accepted");
    settle(&mut pool, &handles.clock);
    let state = pool.run_until(engine.state("app")).expect("state");
    let d = &state.deployments[&1];
    let staging = d.stage("staging").expect("staging").state;
    let prod = d.stage("prod").expect("prod").state;
    let log = futures::executor::block_on(handles.store.read("app", 0, None))
        .expect("read the log")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    let failures = store
        .failed_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    (staging, prod, log, failures)
}

/// A new engine over `backends`, its driver spawned on a new pool.
fn start(backends: Backends) -> (LocalPool, Engine) {
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn the driver");
    (pool, engine)
}

/// Runs `pool`, moving `clock` to each next deadline, until nothing is due.
fn settle(pool: &mut LocalPool, clock: &devramps_memory::ManualClock) {
    loop {
        pool.run_until_stalled();
        if clock.advance_to_next_deadline().is_none() {
            break;
        }
    }
}

/// The log without times: what happened, in order.
fn untimed(log: &[serde_json::Value]) -> Vec<serde_json::Value> {
    log.iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                o.remove("at");
            }
            e
        })
        .collect()
}

#[test]
fn a_failed_append_of_a_step_result_is_recorded_later_and_changes_no_outcome() {
    let (staging, prod, clean, none) = deploy_with_faults(0);
    assert_eq!(none, 0);
    assert_eq!(
        (staging, prod),
        (StageState::Succeeded, StageState::Succeeded)
    );

    for times in [1, 3] {
        let (staging, prod, faulty, failures) = deploy_with_faults(times);
        assert_eq!(
            failures, times as usize,
            "the store refused {times} appends"
        );
        assert_eq!(
            (staging, prod),
            (StageState::Succeeded, StageState::Succeeded),
            "a store error changed the outcome"
        );
        assert_eq!(
            untimed(&faulty),
            untimed(&clean),
            "the log differs from the one without faults in more than times"
        );
        let timed_out = faulty.iter().any(|e| {
            e["state"] == serde_json::json!(StepState::TimedOut)
                || e["state"] == serde_json::json!(StageState::TimedOut)
        });
        assert!(!timed_out, "nothing timed out");
    }
}

/// A step runner whose `wait` answers `Unavailable` the first `times` times, as a runner
/// whose API is briefly down would.
#[derive(Debug)]
struct FlakyWait {
    inner: devramps_memory::ScriptedStepRunner,
    times: AtomicU32,
}

#[async_trait]
impl devramps_core::backend::Runner<devramps_core::backend::StepRequest> for FlakyWait {
    async fn start(&self, request: devramps_core::backend::StepRequest) -> Result<()> {
        self.inner.start(request).await
    }

    async fn wait(
        &self,
        key: &devramps_core::backend::ExecutionKey,
    ) -> Result<devramps_core::backend::Outcome> {
        if self
            .times
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::unavailable(
                "flaky runner",
                "wait",
                "connection reset",
            ));
        }
        self.inner.wait(key).await
    }

    async fn cancel(&self, key: &devramps_core::backend::ExecutionKey) -> Result<()> {
        self.inner.cancel(key).await
    }
}

#[test]
fn a_runner_that_is_briefly_unavailable_is_waited_for_again_and_the_step_starts_once() {
    let (base, handles) = scripted_backends();
    handles
        .source
        .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let flaky = Arc::new(FlakyWait {
        inner: handles.steps.clone(),
        times: AtomicU32::new(3),
    });
    let backends = Backends {
        steps: devramps_core::backend::StepRunners::new().with_fallback(flaky.clone()),
        ..base
    };
    let (mut pool, engine) = start(backends);
    let push = PushRequest::new("main", "c1").with_delivery("d1");
    pool.run_until(engine.push("app", push))
        .expect("push accepted");
    settle(&mut pool, &handles.clock);
    let state = pool.run_until(engine.state("app")).expect("state");
    let d = &state.deployments[&1];
    assert_eq!(
        d.stage("staging").map(|s| s.state),
        Some(StageState::Succeeded),
        "an unavailable runner failed the stage"
    );
    assert_eq!(
        d.stage("prod").map(|s| s.state),
        Some(StageState::Succeeded)
    );
    assert_eq!(flaky.times.load(Ordering::SeqCst), 0, "wait failed 3 times");
    let starts = handles
        .steps
        .started()
        .into_iter()
        .filter(|k| k.stage == "staging")
        .count();
    assert_eq!(starts, 1, "the step was started once and waited for again");
}

#[test]
fn an_engine_restarted_while_the_store_cannot_be_read_resumes_once_it_can() {
    use devramps_memory::{CallKind, FaultOptions, FaultyStore};
    let (base, handles) = scripted_backends();
    handles
        .source
        .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let store = Arc::new(FaultyStore::new(
        handles.store.clone(),
        FaultOptions::default(),
    ));
    let backends = Backends {
        store: store.clone(),
        ..base
    };
    // The first instance accepts the push and starts work, then dies (its driver is dropped,
    // its lease is not released).
    {
        let (mut pool, engine) = start(backends.clone());
        let push = PushRequest::new("main", "c1").with_delivery("d1");
        pool.run_until(engine.push("app", push))
            .expect("push accepted");
        pool.run_until_stalled();
    }
    // The second starts while every read fails for a while.
    store.fail_next(CallKind::Read, 4);
    let (mut pool, engine) = start(backends);
    settle(&mut pool, &handles.clock);
    assert_eq!(store.injected().len(), 4, "the reads failed");
    let state = pool.run_until(engine.state("app")).expect("state");
    let d = &state.deployments[&1];
    assert_eq!(
        d.stage("staging").map(|s| s.state),
        Some(StageState::Succeeded)
    );
    assert_eq!(
        d.stage("prod").map(|s| s.state),
        Some(StageState::Succeeded)
    );
    let staging_starts = handles
        .steps
        .started()
        .into_iter()
        .filter(|k| k.stage == "staging")
        .count();
    assert_eq!(
        staging_starts, 1,
        "the new instance re-attached, it did not start again"
    );
}

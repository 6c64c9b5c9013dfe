//! L15 on moto: the engine (in-memory backends, scripted steps, a manual clock) with a
//! [`CloudWatchAlarmSource`] as its alarm source. Stage `prod` of pipeline `app` is in account
//! 222222222222, region us-west-2, read through its deployment role (STS AssumeRole on moto),
//! and names an alarm created there with `PutMetricAlarm`. Revision 1 succeeds in prod;
//! revision 2's deploy step hangs in prod; `SetAlarmState` to ALARM makes the engine cancel
//! revision 2 and roll prod back to revision 1, which the test reads from the engine's state
//! and its event log (not from timing). And the idle branch: ALARM after revision 1 succeeded
//! adds an alarm blocker (no rollback), revision 2 queues at prod, and OK removes the blocker
//! and revision 2 deploys.
//!
//! What moto proves: the alarm is created, set and described in the stage's own account and
//! region as the stage's role, over the SDK's real wire protocol. What it does not: moto does
//! not check that the role exists or trusts the caller, nor IAM permissions.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use devramps_aws::alarms::AlarmOptions;
use devramps_aws::{AwsStages, CloudWatchAlarmSource};
use devramps_core::backend::{Clock, StageTarget};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{AlarmState, Blocker, PipelineState, StageState};
use devramps_memory::{Behavior, Match, MemoryHandles, scripted_backends};

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: prod, account_id: "222222222222", region: us-west-2, auto_rollback_alarm_name: "ALARM_NAME" }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY", params: { cluster: main } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: { dockerfile: /Dockerfile }
"#;

fn prod(state: &PipelineState, revision: u64) -> Option<StageState> {
    state
        .deployments
        .get(&revision)
        .and_then(|d| d.stage("prod"))
        .map(|s| s.state)
}

/// Reads the engine's state until `done` holds; with `advance`, moves the manual clock to its
/// next deadline (when within 10 minutes) between reads, so scripted work ends.
async fn until(
    engine: &Engine,
    handles: &MemoryHandles,
    what: &str,
    advance: bool,
    done: impl Fn(&PipelineState) -> bool,
) -> PipelineState {
    for _ in 0..1500 {
        if let Ok(state) = engine.state("app").await
            && done(&state)
        {
            return state;
        }
        // Short waits only (scripted work takes a minute), never a step's timeout.
        if advance
            && let Some(next) = handles.clock.next_deadline()
            && next.duration_since(handles.clock.now()) <= jiff::SignedDuration::from_mins(10)
        {
            handles.clock.advance_to_next_deadline();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state = engine.state("app").await.ok();
    panic!("{what}: never happened; state {state:#?}");
}

/// The engine on in-memory backends with a [`CloudWatchAlarmSource`] watching stage `prod`'s
/// alarm, created in moto (account 222222222222, us-west-2, as the stage's role) in OK.
struct Rig {
    engine: Engine,
    handles: MemoryHandles,
    driving: tokio::task::JoinHandle<devramps_core::Result<()>>,
    source: CloudWatchAlarmSource,
    cloudwatch: aws_sdk_cloudwatch::Client,
    alarm_name: String,
}

impl Rig {
    async fn start() -> Rig {
        support::endpoint();
        let stages = AwsStages::from_env().await;
        let target = StageTarget::new("app", "prod", "222222222222", "us-west-2");
        let alarm_name = format!("api-5xx-{}", support::fresh_bucket_name());
        let cloudwatch = stages.stage_cloudwatch(&target);
        cloudwatch
            .put_metric_alarm()
            .alarm_name(&alarm_name)
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(10.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutMetricAlarm: {e:?}\n{}", support::HOW_TO_START_MOTO));

        let definition = PIPELINE.replace("ALARM_NAME", &alarm_name);
        let parsed = devramps_core::pipeline::parse(&definition).unwrap();
        let options = AlarmOptions {
            interval: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let source = CloudWatchAlarmSource::with_options(stages.clone(), options);
        let watched = source.watch_pipeline("app", &parsed);
        assert_eq!(watched.len(), 1);
        assert_eq!(watched[0].account_id, "222222222222");

        let (mut backends, handles) = scripted_backends();
        backends.alarms = Arc::new(source.clone());
        let files = [
            ("/.devramps/app/pipeline.yaml", definition.as_str()),
            ("/Dockerfile", "FROM scratch"),
        ];
        handles.source.commit("c1", None, files);
        handles.source.commit("c2", Some("c1"), files);
        let (engine, driver) = Engine::new(backends, EngineConfig::default());
        let driving = tokio::spawn(driver.run());
        let rig = Rig {
            engine,
            handles,
            driving,
            source,
            cloudwatch,
            alarm_name,
        };
        rig.set(StateValue::Ok).await;
        rig
    }

    /// `SetAlarmState` in CloudWatch.
    async fn set(&self, state: StateValue) {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(&self.alarm_name)
            .state_value(state)
            .state_reason("devramps L15 test")
            .send()
            .await
            .unwrap();
    }

    async fn push(&self, commit: &str) {
        let push = PushRequest::new("main", commit).with_delivery(format!("d-{commit}"));
        self.engine.push("app", push).await.unwrap();
    }

    async fn until(
        &self,
        what: &str,
        advance: bool,
        done: impl Fn(&PipelineState) -> bool,
    ) -> PipelineState {
        until(&self.engine, &self.handles, what, advance, done).await
    }

    async fn stop(self) {
        self.engine.stop().await.unwrap();
        self.driving.await.unwrap().unwrap();
        self.source.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l15_alarm_while_prod_deploys_cancels_and_rolls_back_through_cloudwatch() {
    let rig = Rig::start().await;
    let (engine, handles, pipeline) = (&rig.engine, &rig.handles, "app");
    handles
        .steps
        .script(Match::step("deploy").revision(2), Behavior::hang());
    let set = |state| rig.set(state);

    // Revision 1 reaches prod and succeeds: the revision to roll back to.
    engine
        .push(pipeline, PushRequest::new("main", "c1").with_delivery("d1"))
        .await
        .unwrap();
    until(engine, handles, "revision 1 succeeds", true, |s| {
        prod(s, 1) == Some(StageState::Succeeded)
    })
    .await;
    // Revision 2 deploys in prod, its deploy step hanging.
    engine
        .push(pipeline, PushRequest::new("main", "c2").with_delivery("d2"))
        .await
        .unwrap();
    let running = until(engine, handles, "revision 2 runs in prod", true, |s| {
        prod(s, 2) == Some(StageState::InProgress)
            && s.deployments[&2]
                .stage("prod")
                .unwrap()
                .steps
                .iter()
                .any(|step| step.state == devramps_core::lifecycle::StepState::Running)
    })
    .await;
    assert_eq!(running.stage("prod").alarm, AlarmState::Ok);

    // The alarm fires in CloudWatch. The clock stands still (the step would otherwise time
    // out): only the alarm can end revision 2 in prod.
    set(StateValue::Alarm).await;
    until(
        engine,
        handles,
        "revision 2 cancelled by the alarm",
        false,
        |s| {
            matches!(
                prod(s, 2),
                Some(StageState::Cancelling | StageState::Cancelled)
            )
        },
    )
    .await;
    let rolled = until(
        engine,
        handles,
        "prod rolled back to revision 1",
        true,
        |s| prod(s, 1) == Some(StageState::RolledBack) && prod(s, 2) == Some(StageState::Cancelled),
    )
    .await;
    assert_eq!(rolled.stage("prod").alarm, AlarmState::Alarm);
    assert_eq!(
        rolled.stage("prod").current,
        Some(1),
        "revision 1 is what prod runs"
    );

    // The log says why: the alarm change (by the system), then the cancel and the rollback.
    let history = engine.history(pipeline).await.unwrap();
    let records: Vec<serde_json::Value> = history
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let position = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        records
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no such record in {records:#?}"))
    };
    let alarm = position(&|r| r["type"] == "alarm_changed" && r["state"] == "ALARM");
    let cancelled = position(&|r| {
        r["type"] == "stage_state" && r["revision"] == 2 && r["state"] == "CANCELLED"
    });
    let rolled_back = position(&|r| {
        r["type"] == "stage_state" && r["revision"] == 1 && r["state"] == "ROLLED_BACK"
    });
    assert!(alarm < cancelled && cancelled < rolled_back, "{records:#?}");
    assert_eq!(
        serde_json::to_value(&history[alarm].actor).unwrap(),
        serde_json::json!("system"),
        "the alarm acts as the system"
    );
    // The scripted runner was told to stop revision 2's step.
    let stopped = handles
        .steps
        .log()
        .into_iter()
        .any(|r| r.key.revision == 2 && r.action == devramps_memory::RunAction::Cancelled);
    assert!(stopped, "revision 2's deploy step was cancelled");

    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l15_alarm_while_prod_is_idle_blocks_it_until_the_alarm_is_ok_again() {
    let rig = Rig::start().await;
    rig.push("c1").await;
    rig.until("revision 1 succeeds", true, |s| {
        prod(s, 1) == Some(StageState::Succeeded)
    })
    .await;
    // ALARM while prod is idle: a blocker, no rollback.
    rig.set(StateValue::Alarm).await;
    let blocked = rig
        .until("the alarm blocks prod", false, |s| {
            s.stage("prod").blockers.contains(&Blocker::Alarm)
        })
        .await;
    assert_eq!(
        prod(&blocked, 1),
        Some(StageState::Succeeded),
        "no rollback"
    );
    // A push queues at prod and does not start there.
    rig.push("c2").await;
    let queued = rig
        .until("revision 2 waits at prod", true, |s| {
            s.stage("prod").queued == Some(2)
        })
        .await;
    assert_eq!(prod(&queued, 2), Some(StageState::NotStarted));
    // OK again: the blocker goes and revision 2 deploys.
    rig.set(StateValue::Ok).await;
    let deployed = rig
        .until("revision 2 deploys once the alarm is OK", true, |s| {
            prod(s, 2) == Some(StageState::Succeeded)
        })
        .await;
    assert!(!deployed.stage("prod").blockers.contains(&Blocker::Alarm));
    assert_eq!(deployed.stage("prod").alarm, AlarmState::Ok);
    rig.stop().await;
}

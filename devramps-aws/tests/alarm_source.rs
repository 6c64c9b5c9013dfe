//! [`CloudWatchAlarmSource`] on moto: only changes are emitted, each stage's alarms are read
//! with its own role in its own account and region (batched, one call per role and region),
//! unknown alarms have no state, transient failures are survived with the last known states
//! kept, and the poller stops with the source.
//!
//! moto does not check that the assumed roles exist, but it does keep each account's alarms
//! apart: an alarm created as account 222222222222's role is not seen by 333333333333's.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use devramps_aws::alarms::AlarmOptions;
use devramps_aws::stage::{Principal, Service};
use devramps_aws::{AwsStages, CloudWatchAlarmSource};
use devramps_core::backend::{AlarmChange, AlarmSource, StageTarget};
use devramps_core::lifecycle::AlarmState;
use devramps_s3_faults::{FaultPlan, FaultProxy};
use futures::StreamExt;
use futures::stream::BoxStream;

/// A name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", support::fresh_bucket_name())
}

async fn stages() -> AwsStages {
    support::endpoint();
    AwsStages::from_env().await
}

fn options(interval_ms: u64) -> AlarmOptions {
    AlarmOptions {
        interval: Duration::from_millis(interval_ms),
        max_backoff: Duration::from_millis(4 * interval_ms),
    }
}

/// Creates alarm `name` in `target`'s account and region (as its role), in `state`.
async fn create_alarm(stages: &AwsStages, target: &StageTarget, name: &str, state: StateValue) {
    let cw = stages.stage_cloudwatch(target);
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("devramps/test")
        .metric_name("errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PutMetricAlarm on {}: {}\n{}",
                support::endpoint(),
                aws_sdk_cloudwatch::error::DisplayErrorContext(&e),
                support::HOW_TO_START_MOTO
            )
        });
    set_alarm(stages, target, name, state).await;
}

async fn set_alarm(stages: &AwsStages, target: &StageTarget, name: &str, state: StateValue) {
    stages
        .stage_cloudwatch(target)
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by a devramps test")
        .send()
        .await
        .unwrap();
}

/// The next change within `wait`, if any.
async fn next_within(
    changes: &mut BoxStream<'static, AlarmChange>,
    wait: Duration,
) -> Option<AlarmChange> {
    tokio::time::timeout(wait, changes.next())
        .await
        .ok()
        .map(|c| c.expect("the subscription never ends while the source lives"))
}

fn cloudwatch_requests(stages: &AwsStages, target: &StageTarget) -> u64 {
    let key = (AwsStages::principal(target), Service::CloudWatch);
    stages.requests().get(&key).copied().unwrap_or(0)
}

/// Waits until `target`'s role has sent `n` CloudWatch requests.
async fn wait_for_requests(stages: &AwsStages, target: &StageTarget, n: u64) {
    for _ in 0..200 {
        if cloudwatch_requests(stages, target) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} CloudWatch requests as {}", AwsStages::role_arn(target));
}

#[tokio::test]
async fn only_state_changes_are_emitted() {
    let stages = stages().await;
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let name = unique("errors");
    create_alarm(&stages, &target, &name, StateValue::Ok).await;
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(100));
    let alarm = source.watch(target.clone(), &name);
    let mut changes = source.subscribe();
    // The first poll is the baseline: nothing emitted. OK -> OK emits nothing either.
    wait_for_requests(&stages, &target, 1).await;
    set_alarm(&stages, &target, &name, StateValue::Ok).await;
    let quiet = next_within(&mut changes, Duration::from_millis(600)).await;
    assert_eq!(quiet, None, "no change while the alarm stays OK");
    assert_eq!(source.state(&alarm).await.unwrap(), Some(AlarmState::Ok));
    // OK -> ALARM emits exactly one change, however many polls see it.
    set_alarm(&stages, &target, &name, StateValue::Alarm).await;
    let change = next_within(&mut changes, Duration::from_secs(5)).await;
    assert_eq!(
        change,
        Some(AlarmChange {
            alarm: alarm.clone(),
            state: AlarmState::Alarm
        })
    );
    let more = next_within(&mut changes, Duration::from_millis(600)).await;
    assert_eq!(more, None, "one change, not one per poll");
    assert_eq!(source.state(&alarm).await.unwrap(), Some(AlarmState::Alarm));
    // INSUFFICIENT_DATA is not firing: back to OK.
    set_alarm(&stages, &target, &name, StateValue::InsufficientData).await;
    let back = next_within(&mut changes, Duration::from_secs(5)).await;
    assert_eq!(back.map(|c| c.state), Some(AlarmState::Ok));
}

#[tokio::test]
async fn two_stages_in_two_accounts_are_polled_with_their_own_roles_one_call_each() {
    let stages = stages().await;
    let pipeline = unique("p");
    let a = StageTarget::new(&pipeline, "staging", "222222222222", "us-west-2");
    let b = StageTarget::new(&pipeline, "prod", "333333333333", "eu-central-1");
    // The same name in both accounts, in different states: each role reads its own.
    let name = unique("latency");
    create_alarm(&stages, &a, &name, StateValue::Ok).await;
    create_alarm(&stages, &b, &name, StateValue::Alarm).await;
    let created = [a.clone(), b.clone()].map(|t| cloudwatch_requests(&stages, &t));
    // A poll per hour: the test sees exactly the first one.
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(3_600_000));
    let alarm_a = source.watch(a.clone(), &name);
    let alarm_b = source.watch(b.clone(), &name);
    // Two more names for each stage (missing in CloudWatch): still one call per role.
    for extra in ["x", "y"] {
        source.watch(a.clone(), format!("{name}-{extra}"));
        source.watch(b.clone(), format!("{name}-{extra}"));
    }
    let _changes = source.subscribe();
    wait_for_requests(&stages, &a, created[0] + 1).await;
    wait_for_requests(&stages, &b, created[1] + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(source.state(&alarm_a).await.unwrap(), Some(AlarmState::Ok));
    assert_eq!(
        source.state(&alarm_b).await.unwrap(),
        Some(AlarmState::Alarm)
    );
    let requests = stages.requests();
    assert_eq!(
        [a.clone(), b.clone()].map(|t| cloudwatch_requests(&stages, &t) - created[i(&t, &a)]),
        [1, 1],
        "one DescribeAlarms per role for three alarms each (and `state` answered from the \
         poll): {requests:?}"
    );
    assert_eq!(
        requests.get(&(Principal::Base, Service::CloudWatch)),
        None,
        "no alarm is read with the base credentials"
    );
    assert_eq!(stages.assume_role_calls(&a), 1);
    assert_eq!(stages.assume_role_calls(&b), 1);
}

fn i(t: &StageTarget, a: &StageTarget) -> usize {
    usize::from(t != a)
}

#[tokio::test]
async fn a_hundred_and_twenty_alarms_of_one_stage_take_two_calls() {
    let stages = stages().await;
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let name = unique("many");
    create_alarm(&stages, &target, &format!("{name}-7"), StateValue::Alarm).await;
    let created = cloudwatch_requests(&stages, &target);
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(3_600_000));
    let ids: Vec<_> = (0..120)
        .map(|n| source.watch(target.clone(), format!("{name}-{n}")))
        .collect();
    let _changes = source.subscribe();
    wait_for_requests(&stages, &target, created + 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cloudwatch_requests(&stages, &target) - created, 2);
    assert_eq!(
        source.state(&ids[7]).await.unwrap(),
        Some(AlarmState::Alarm)
    );
    assert_eq!(source.state(&ids[8]).await.unwrap(), None);
}

#[tokio::test]
async fn an_unknown_alarm_has_no_state() {
    let stages = stages().await;
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(100));
    // Watched, but CloudWatch has no such alarm: a direct DescribeAlarms says so.
    let missing = source.watch(target.clone(), unique("never-created"));
    assert_eq!(source.state(&missing).await.unwrap(), None);
    // The poller agrees, and keeps answering `None` from what it saw.
    let _changes = source.subscribe();
    let before = cloudwatch_requests(&stages, &target);
    wait_for_requests(&stages, &target, before + 2).await;
    assert_eq!(source.state(&missing).await.unwrap(), None);
    // Not watched at all: no stage role to read it with, so no state (and no request).
    let mut stranger = missing.clone();
    stranger.name = unique("stranger");
    assert_eq!(source.state(&stranger).await.unwrap(), None);
}

#[tokio::test]
async fn transient_failures_are_survived_and_the_last_known_state_kept() {
    let stages = stages().await;
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let name = unique("flaky");
    create_alarm(&stages, &target, &name, StateValue::Ok).await;
    // Every request of the source goes through a proxy that answers 500/503 to all of them.
    let failing = FaultPlan {
        error_share: 1.0,
        drop_after_write_share: 0.0,
        delay: None,
        seed: 3,
    };
    let proxy = FaultProxy::start(&support::endpoint(), failing.clone()).unwrap();
    // The SDK's own retries off, so every poll is one request the proxy sees (with them, a
    // poll's retries may sleep through a whole observation window).
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let proxied = AwsStages::new(config);
    let source = CloudWatchAlarmSource::with_options(proxied, options(100));
    let alarm = source.watch(target.clone(), &name);
    let mut changes = source.subscribe();
    // While everything fails: `state` says the source is unavailable (transient), the
    // subscription stays open and quiet.
    let error = source.state(&alarm).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(
        next_within(&mut changes, Duration::from_millis(800)).await,
        None
    );
    assert!(proxy.counts().faults() >= 2, "{:?}", proxy.counts());
    // The outage ends: the state is learned.
    proxy.set_plan(FaultPlan::passthrough()).unwrap();
    let mut learned = None;
    for _ in 0..100 {
        learned = source.state(&alarm).await.ok().flatten();
        if learned.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(learned, Some(AlarmState::Ok));
    // A second outage: the alarm fires meanwhile; the last known state (OK) is kept and
    // nothing is emitted until a poll gets through, then the change arrives.
    proxy.set_plan(failing).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_alarm(&stages, &target, &name, StateValue::Alarm).await;
    let faults = proxy.counts().faults();
    assert_eq!(
        next_within(&mut changes, Duration::from_millis(1500)).await,
        None
    );
    assert!(proxy.counts().faults() > faults, "the poller kept trying");
    assert_eq!(source.state(&alarm).await.unwrap(), Some(AlarmState::Ok));
    proxy.set_plan(FaultPlan::passthrough()).unwrap();
    let change = next_within(&mut changes, Duration::from_secs(10)).await;
    assert_eq!(change.map(|c| c.state), Some(AlarmState::Alarm));
    assert_eq!(source.state(&alarm).await.unwrap(), Some(AlarmState::Alarm));
}

#[tokio::test]
async fn subscriptions_end_when_the_source_is_dropped_or_shut_down() {
    let stages = stages().await;
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(50));
    source.watch(target.clone(), unique("a"));
    let mut first = source.subscribe();
    let clone = source.clone();
    let mut second = clone.subscribe();
    drop(source);
    // A clone lives: the poller too.
    let before = cloudwatch_requests(&stages, &target);
    wait_for_requests(&stages, &target, before + 2).await;
    drop(clone);
    let ended = tokio::time::timeout(Duration::from_secs(2), first.next()).await;
    assert_eq!(ended.unwrap(), None, "the stream ended with the source");
    assert_eq!(second.next().await, None);
    // The poller stopped: no more requests.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = cloudwatch_requests(&stages, &target);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cloudwatch_requests(&stages, &target), after);

    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(50));
    let mut changes = source.subscribe();
    source.shutdown();
    assert_eq!(changes.next().await, None);
    assert_eq!(source.subscribe().next().await, None);
}

#[tokio::test]
async fn a_change_after_a_state_read_is_emitted_by_the_first_poll() {
    // The engine reads `state` when it starts; a change between that read and the first poll
    // must not be lost: the read is the baseline the first poll compares with.
    let stages = stages().await;
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let name = unique("restart");
    create_alarm(&stages, &target, &name, StateValue::Ok).await;
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(100));
    let alarm = source.watch(target.clone(), &name);
    assert_eq!(source.state(&alarm).await.unwrap(), Some(AlarmState::Ok));
    set_alarm(&stages, &target, &name, StateValue::Alarm).await;
    let mut changes = source.subscribe();
    let change = next_within(&mut changes, Duration::from_secs(5)).await;
    assert_eq!(change.map(|c| c.state), Some(AlarmState::Alarm));
}

#[test]
fn subscribing_and_reading_work_from_a_futures_executor() {
    use devramps_aws::runtime::block_on;
    let stages = block_on(stages()).unwrap();
    let target = StageTarget::new(unique("p"), "prod", "222222222222", "us-west-2");
    let name = unique("executor");
    let (s, t, n) = (stages.clone(), target.clone(), name.clone());
    block_on(async move { create_alarm(&s, &t, &n, StateValue::Ok).await }).unwrap();
    let source = CloudWatchAlarmSource::with_options(stages.clone(), options(100));
    let alarm = source.watch(target.clone(), &name);
    let mut changes = source.subscribe();
    let state = futures::executor::block_on(source.state(&alarm)).unwrap();
    assert_eq!(state, Some(AlarmState::Ok));
    let (s, t, n) = (stages.clone(), target.clone(), name.clone());
    block_on(async move { set_alarm(&s, &t, &n, StateValue::Alarm).await }).unwrap();
    // A watchdog ends the subscription (shutdown) if the change never comes.
    let watchdog = source.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        watchdog.shutdown();
    });
    let change = futures::executor::block_on(changes.next());
    assert_eq!(change.map(|c| c.state), Some(AlarmState::Alarm));
}

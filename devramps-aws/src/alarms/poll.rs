//! The poller of [`CloudWatchAlarmSource`](super::CloudWatchAlarmSource): `DescribeAlarms`
//! per (role, region), at most 100 names a call, with a backoff after failures.

use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;
use std::time::Duration;

use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::SdkError;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use devramps_core::Error;
use devramps_core::backend::{AlarmId, StageTarget};
use devramps_core::lifecycle::AlarmState;
use futures::future::Either;

use super::{Inner, Seen};
use crate::stage::{AwsStages, classify};

/// The most alarm names `DescribeAlarms` takes in one call.
const NAMES_PER_CALL: usize = 100;

/// Polls until every clone of the source is dropped or `stop` says so.
pub(super) async fn run(source: Weak<Inner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut failures: u32 = 0;
    loop {
        let Some(inner) = source.upgrade() else {
            return;
        };
        if *stop.borrow() {
            return;
        }
        let ok = poll_once(&inner).await;
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let delay = backoff(
            &inner.options.interval,
            &inner.options.max_backoff,
            failures,
        );
        // Not held while sleeping: dropping the last clone stops the poller.
        drop(inner);
        let sleep = std::pin::pin!(tokio::time::sleep(delay));
        let stopped = std::pin::pin!(stop.changed());
        if let Either::Right(_) = futures::future::select(sleep, stopped).await {
            // Shut down (`true` sent), or the source is gone (the sender dropped).
            return;
        }
    }
}

/// The wait before the next poll after `failures` failed polls in a row: the interval,
/// doubled per failure, at most `max` (never less than the interval).
fn backoff(interval: &Duration, max: &Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(16));
    interval.saturating_mul(factor).min(*max).max(*interval)
}

/// One poll of every watched alarm; whether every call succeeded.
async fn poll_once(inner: &Inner) -> bool {
    let mut groups: BTreeMap<(String, String), (StageTarget, Vec<AlarmId>)> = BTreeMap::new();
    for (alarm, target) in &inner.lock().watched {
        let key = (AwsStages::role_arn(target), target.region.clone());
        groups
            .entry(key)
            .or_insert_with(|| (target.clone(), Vec::new()))
            .1
            .push(alarm.clone());
    }
    let mut ok = true;
    for ((role, region), (target, alarms)) in groups {
        let client = inner.stages.stage_cloudwatch(&target);
        for chunk in alarms.chunks(NAMES_PER_CALL) {
            let names: Vec<String> = chunk.iter().map(|a| a.name.clone()).collect();
            match describe(client.clone(), names).await {
                Ok(found) => {
                    for alarm in chunk {
                        let seen = found
                            .get(&alarm.name)
                            .map_or(Seen::Missing, |s| Seen::State(*s));
                        inner.learn(alarm, seen);
                    }
                }
                Err(e) => {
                    ok = false;
                    let what = format!("{} alarm(s) in {region}", chunk.len());
                    let error = describe_error(e, &what, &role);
                    tracing::warn!(
                        role = %role,
                        region = %region,
                        error = %error,
                        "polling CloudWatch alarms failed; keeping their last known states"
                    );
                }
            }
        }
    }
    ok
}

/// The states of the alarms named `names` (metric and composite alarms) that exist;
/// `INSUFFICIENT_DATA` is [`AlarmState::Ok`].
pub(super) async fn describe(
    client: aws_sdk_cloudwatch::Client,
    names: Vec<String>,
) -> std::result::Result<HashMap<String, AlarmState>, SdkError<DescribeAlarmsError, HttpResponse>> {
    let mut found = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .describe_alarms()
            .set_alarm_names(Some(names.clone()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(100)
            .set_next_token(token.take())
            .send()
            .await?;
        let metric = out
            .metric_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        let composite = out
            .composite_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        for (name, state) in metric.chain(composite) {
            if let Some(name) = name {
                found.insert(name.to_owned(), state_of(state));
            }
        }
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(found),
        }
    }
}

/// CloudWatch's state as the engine's: only `ALARM` fires.
fn state_of(value: Option<&StateValue>) -> AlarmState {
    match value {
        Some(StateValue::Alarm) => AlarmState::Alarm,
        _ => AlarmState::Ok,
    }
}

/// A failed `DescribeAlarms` of `what` as `role`, as an [`Error`].
pub(super) fn describe_error(
    error: SdkError<DescribeAlarmsError, HttpResponse>,
    what: &str,
    role: &str,
) -> Error {
    classify("cloudwatch", "DescribeAlarms").error(error, &format!("alarm(s) {what} as {role}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let (i, max) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(backoff(&i, &max, 0), i);
        assert_eq!(backoff(&i, &max, 1), Duration::from_millis(200));
        assert_eq!(backoff(&i, &max, 3), Duration::from_millis(800));
        assert_eq!(backoff(&i, &max, 4), max);
        assert_eq!(backoff(&i, &max, u32::MAX), max);
        assert_eq!(
            state_of(Some(&StateValue::InsufficientData)),
            AlarmState::Ok
        );
        assert_eq!(state_of(Some(&StateValue::Alarm)), AlarmState::Alarm);
    }
}

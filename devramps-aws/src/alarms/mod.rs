//! [`CloudWatchAlarmSource`]: the CloudWatch alarms stages name in `auto_rollback_alarm_name`
//! (L15), polled in each stage's account and region as the stage's deployment role.
//!
//! # What it watches
//!
//! An alarm is read with the role of the stage that watches it (the role is per pipeline and
//! stage, see [`crate::stage`]), so the source must be told which stage watches which alarm:
//! [`CloudWatchAlarmSource::watch`] (one alarm of one stage) or
//! [`CloudWatchAlarmSource::watch_pipeline`] (every stage of a pipeline definition that names an
//! alarm, as [`AlarmId::of_stage`] names it). An alarm nobody registered has no state
//! (`state` answers `Ok(None)` and logs a warning saying to register it). When two stages
//! register the same [`AlarmId`], the last registration's role reads it.
//!
//! # Polling
//!
//! One poller per source (started by the first [`subscribe`](AlarmSource::subscribe), on the
//! crate's own runtime, [`crate::runtime::runtime`], so subscribing works from any executor)
//! calls `DescribeAlarms` every [`AlarmOptions::interval`] (30 s by default): one call per
//! (role, region) and at most 100 alarm names per call (metric and composite alarms).
//! CloudWatch's `INSUFFICIENT_DATA` counts as [`AlarmState::Ok`]: it is not firing, and the
//! engine acts only on `ALARM`.
//!
//! - **Changes only.** The source keeps the last state it saw of each alarm and emits an
//!   [`AlarmChange`] to every subscription only when a poll finds a different state.
//! - **First sight.** The first state the source learns of an alarm (by a poll, or by a
//!   `state` call made before any poll) is its baseline and is *not* emitted: subscribers
//!   learn current states through `state`, which the engine reads when it (re)starts (the
//!   contract of [`AlarmSource`]). A change from the baseline on is emitted, so a change
//!   between the engine's `state` call and the first poll is not lost. An alarm that was
//!   missing and then appears is emitted with the state it appears in.
//! - **Missing alarms.** An alarm `DescribeAlarms` does not return is logged once (a `tracing`
//!   warning) and has no state (`Ok(None)`) until it appears.
//! - **Failures.** Throttling, transient failures and refused credentials of a group are logged
//!   (warnings) and leave that group's last known states as they are; the next poll comes
//!   after a backoff (the interval doubled per failed poll in a row, at most
//!   [`AlarmOptions::max_backoff`]). An error never ends a subscription.
//!
//! # Stopping
//!
//! The poller stops when every clone of the source is dropped, or at
//! [`CloudWatchAlarmSource::shutdown`]; either ends every subscription's stream (the only way
//! they end).

mod poll;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{AlarmChange, AlarmId, AlarmSource, StageTarget};
use devramps_core::lifecycle::AlarmState;
use devramps_core::pipeline::PipelineDefinition;
use devramps_core::{Error, Result};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::stream::BoxStream;

use crate::stage::AwsStages;

/// How often and how patiently the alarms are polled.
#[derive(Clone, Debug)]
pub struct AlarmOptions {
    /// Time between two polls; 30 seconds by default.
    pub interval: Duration,
    /// The longest wait after failed polls; 5 minutes by default.
    pub max_backoff: Duration,
}

impl Default for AlarmOptions {
    fn default() -> Self {
        AlarmOptions {
            interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What the source last learned of an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    State(AlarmState),
    /// CloudWatch does not have it.
    Missing,
}

#[derive(Debug, Default)]
struct Watch {
    /// Which stage reads each alarm.
    watched: BTreeMap<AlarmId, StageTarget>,
    known: HashMap<AlarmId, Seen>,
    subscribers: Vec<mpsc::UnboundedSender<AlarmChange>>,
    poller_started: bool,
    shut_down: bool,
}

struct Inner {
    stages: AwsStages,
    options: AlarmOptions,
    watch: Mutex<Watch>,
    /// Dropped (or sent `true`) to stop the poller.
    stop: tokio::sync::watch::Sender<bool>,
}

/// An [`AlarmSource`] polling CloudWatch (see the [module docs](self)). Clones share the
/// watched alarms, their states, the subscriptions and the poller.
#[derive(Clone)]
pub struct CloudWatchAlarmSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for CloudWatchAlarmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watch = self.inner.lock();
        f.debug_struct("CloudWatchAlarmSource")
            .field("options", &self.inner.options)
            .field("watched", &watch.watched.len())
            .field("subscribers", &watch.subscribers.len())
            .field("polling", &watch.poller_started)
            .field("shut_down", &watch.shut_down)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what a read found of `alarm`; emits a change when it differs from a known
    /// state (see "First sight" in the module docs).
    fn learn(&self, alarm: &AlarmId, seen: Seen) {
        let mut watch = self.lock();
        if !watch.watched.contains_key(alarm) {
            return; // unwatched meanwhile
        }
        let before = watch.known.insert(alarm.clone(), seen);
        let emit = match (before, seen) {
            (_, Seen::Missing) => {
                if before != Some(Seen::Missing) {
                    tracing::warn!(
                        alarm = %alarm.name,
                        account = %alarm.account_id,
                        region = %alarm.region,
                        "CloudWatch has no such alarm: the stage's automatic rollback cannot \
                         happen until it exists"
                    );
                }
                None
            }
            (None, Seen::State(_)) => None,
            (Some(Seen::State(old)), Seen::State(new)) if old == new => None,
            (Some(_), Seen::State(new)) => Some(new),
        };
        if let Some(state) = emit {
            tracing::info!(alarm = %alarm.name, state = %state, "alarm changed");
            let change = AlarmChange {
                alarm: alarm.clone(),
                state,
            };
            watch
                .subscribers
                .retain(|tx| tx.unbounded_send(change.clone()).is_ok());
        }
    }
}

impl CloudWatchAlarmSource {
    /// A source reading alarms through `stages` (stage roles), polling every 30 seconds.
    pub fn new(stages: AwsStages) -> Self {
        CloudWatchAlarmSource::with_options(stages, AlarmOptions::default())
    }

    /// A source polling as `options` say.
    pub fn with_options(stages: AwsStages, options: AlarmOptions) -> Self {
        let (stop, _) = tokio::sync::watch::channel(false);
        CloudWatchAlarmSource {
            inner: Arc::new(Inner {
                stages,
                options,
                watch: Mutex::default(),
                stop,
            }),
        }
    }

    /// Watches the alarm `alarm_name` of the stage `target` (in its account and region, read
    /// as its deployment role); returns the alarm's id.
    pub fn watch(&self, target: StageTarget, alarm_name: impl Into<String>) -> AlarmId {
        let alarm = AlarmId {
            name: alarm_name.into(),
            account_id: target.account_id.clone(),
            region: target.region.clone(),
        };
        self.inner.lock().watched.insert(alarm.clone(), target);
        alarm
    }

    /// Watches the alarm of every stage of `definition` (pipeline `slug`) that names one;
    /// returns their ids, in stage order.
    pub fn watch_pipeline(&self, slug: &str, definition: &PipelineDefinition) -> Vec<AlarmId> {
        definition
            .stages
            .iter()
            .filter_map(|stage| {
                let alarm = AlarmId::of_stage(stage)?;
                let target = StageTarget::new(
                    slug,
                    stage.name.value.as_str(),
                    alarm.account_id.as_str(),
                    alarm.region.as_str(),
                );
                Some(self.watch(target, alarm.name))
            })
            .collect()
    }

    /// Stops watching `alarm` (its last state is forgotten); returns whether it was watched.
    pub fn unwatch(&self, alarm: &AlarmId) -> bool {
        let mut watch = self.inner.lock();
        watch.known.remove(alarm);
        watch.watched.remove(alarm).is_some()
    }

    /// The alarms watched.
    pub fn watched(&self) -> Vec<AlarmId> {
        self.inner.lock().watched.keys().cloned().collect()
    }

    /// Stops the poller and ends every subscription; later subscriptions end at once. `state`
    /// still answers (from CloudWatch).
    pub fn shutdown(&self) {
        let mut watch = self.inner.lock();
        watch.shut_down = true;
        watch.subscribers.clear();
        self.inner.stop.send_replace(true);
    }

    /// Starts the poller unless it runs (or the source is shut down).
    fn start_poller(&self, watch: &mut Watch) {
        if watch.poller_started || watch.shut_down {
            return;
        }
        match crate::runtime::runtime() {
            Ok(runtime) => {
                watch.poller_started = true;
                let stop = self.inner.stop.subscribe();
                runtime.spawn(poll::run(Arc::downgrade(&self.inner), stop));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot poll CloudWatch alarms: no runtime");
            }
        }
    }
}

#[async_trait]
impl AlarmSource for CloudWatchAlarmSource {
    fn subscribe(&self) -> BoxStream<'static, AlarmChange> {
        let (tx, rx) = mpsc::unbounded();
        let mut watch = self.inner.lock();
        if watch.shut_down {
            return futures::stream::empty().boxed();
        }
        watch.subscribers.push(tx);
        self.start_poller(&mut watch);
        rx.boxed()
    }

    async fn state(&self, alarm: &AlarmId) -> Result<Option<AlarmState>> {
        let target = {
            let watch = self.inner.lock();
            match watch.known.get(alarm) {
                Some(Seen::State(state)) => return Ok(Some(*state)),
                Some(Seen::Missing) => return Ok(None),
                None => {}
            }
            match watch.watched.get(alarm) {
                Some(target) => target.clone(),
                None => {
                    tracing::warn!(
                        alarm = %alarm.name,
                        account = %alarm.account_id,
                        region = %alarm.region,
                        "alarm not watched: register its stage with \
                         CloudWatchAlarmSource::watch or watch_pipeline"
                    );
                    return Ok(None);
                }
            }
        };
        let client = self.inner.stages.stage_cloudwatch(&target);
        let names = vec![alarm.name.clone()];
        let task = crate::runtime::runtime()?.spawn(poll::describe(client, names));
        let found = task.await.map_err(|e| {
            Error::backend(
                "cloudwatch",
                "DescribeAlarms",
                format!("the call died: {e}"),
            )
        })?;
        let found = found.map_err(|e| {
            let role = AwsStages::role_arn(&target);
            poll::describe_error(e, &alarm.name, &role)
        })?;
        let seen = found
            .get(&alarm.name)
            .map_or(Seen::Missing, |s| Seen::State(*s));
        // A poll may have learned it meanwhile: keep the poll's (newer) answer.
        let learned = self.inner.lock().known.get(alarm).copied();
        match learned {
            Some(Seen::State(state)) => Ok(Some(state)),
            Some(Seen::Missing) => Ok(None),
            None => {
                self.inner.learn(alarm, seen);
                Ok(match seen {
                    Seen::State(state) => Some(state),
                    Seen::Missing => None,
                })
            }
        }
    }
}

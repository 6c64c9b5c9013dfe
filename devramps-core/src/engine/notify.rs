//! Notifications (reference §1.8, §11.1): which records people are told about, the
//! subscription of the definition in force, and the [`NotifyingObserver`] that hands appends
//! to a delivery task without blocking the engine.
//!
//! | record | event |
//! |---|---|
//! | `stage_state` `FAILED` or `TIMED_OUT` | `stage_failed` |
//! | `approval_required`, `pipeline_approval_required` | `approval_required` |
//! | `stage_state` `ROLLED_BACK`, the rollback asked for by an alarm (L15) | `stage_auto_rolled_back` |
//! | `stage_state` `ROLLED_BACK`, the rollback asked for by a person (L13) | `stage_rolled_back` |
//! | `stage_state` `ROLLED_FORWARD` | `stage_rolled_forward` |
//!
//! The `ephemeral_*` events have no record: the engine runs no ephemeral environments yet, so
//! none is sent.
//!
//! Delivery is at most once per record: the [`Observer`] contract tells each record to the one
//! instance that appended it, once. The subscription is that of the definition in force
//! ([`PipelineState::definition`]) when the record is appended, so a delivery task folds the
//! whole log ([`PipelineNotifications`]), reading from the store what other instances (or this
//! one before a restart) appended.

use std::collections::{BTreeMap, BTreeSet};

use futures::channel::mpsc;
use jiff::Timestamp;

use super::observe::{Appended, Observer};
use crate::lifecycle::{Actor, Emergency, Event, PipelineState, Record, StageState, StepState};
pub use crate::pipeline::NotificationEvent;

/// What happened, for a message: everything in it comes from a record (reasons are already
/// redacted by the engine) and the definition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// The event key.
    pub event: NotificationEvent,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// The revision.
    pub revision: Option<u64>,
    /// The stage, when it concerns one.
    pub stage: Option<String>,
    /// The step, when it concerns one.
    pub step: Option<String>,
    /// The revision's commit ([`PipelineNotifications`] fills it in).
    pub commit: Option<String>,
    /// Why (the failure, what to approve).
    pub reason: Option<String>,
}

impl Notification {
    /// `event`, by `actor` at `at`, about nothing in particular yet.
    pub fn new(event: NotificationEvent, at: Timestamp, actor: Actor) -> Self {
        Notification {
            event,
            at,
            actor,
            revision: None,
            stage: None,
            step: None,
            commit: None,
            reason: None,
        }
    }

    /// About `stage` of `revision`.
    pub fn with_stage(mut self, revision: u64, stage: impl Into<String>) -> Self {
        self.revision = Some(revision);
        self.stage = Some(stage.into());
        self
    }

    /// About `step`.
    pub fn with_step(mut self, step: impl Into<String>) -> Self {
        self.step = Some(step.into());
        self
    }

    /// With the revision's commit.
    pub fn with_commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Where and which events a pipeline's messages go (`notifications.slack`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotifyConfig {
    /// The channel, for example `#deployments`.
    pub channel: String,
    /// The subscribed events.
    pub events: BTreeSet<NotificationEvent>,
}

impl NotifyConfig {
    /// Messages to `channel` for `events`.
    pub fn new(
        channel: impl Into<String>,
        events: impl IntoIterator<Item = NotificationEvent>,
    ) -> Self {
        NotifyConfig {
            channel: channel.into(),
            events: events.into_iter().collect(),
        }
    }
}

/// Sends notifications somewhere people read them (Slack, e-mail, a test's list).
///
/// # Contract
///
/// - `notify` delivers one message for `notification` of `pipeline` to `config.channel`, or
///   fails; it retries transient failures itself, so a failure is final for that message.
/// - It never includes a secret: what it is given is already redacted, and it adds nothing
///   from elsewhere.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers one notification.
    async fn notify(
        &self,
        pipeline: &str,
        notification: &Notification,
        config: &NotifyConfig,
    ) -> crate::Result<()>;
}

/// A shared [`Notifier`].
pub type DynNotifier = std::sync::Arc<dyn Notifier>;

/// The notification a record means, if any (pure: the same record, the same answer). A
/// `ROLLED_BACK` reads as `stage_rolled_back`; only the log tells whether an alarm asked for it
/// ([`PipelineNotifications`] does).
pub fn notifications(record: &Record) -> Option<Notification> {
    let at = |event, revision, stage: &str, step: Option<&str>, reason: Option<&String>| {
        Some(Notification {
            event,
            at: record.at,
            actor: record.actor.clone(),
            revision,
            stage: (!stage.is_empty()).then(|| stage.to_owned()),
            step: step.map(str::to_owned),
            commit: None,
            reason: reason.cloned(),
        })
    };
    match &record.event {
        Event::StageState {
            revision,
            stage,
            state,
            reason,
            ..
        } => {
            let event = match state {
                StageState::Failed | StageState::TimedOut => NotificationEvent::StageFailed,
                StageState::RolledBack => NotificationEvent::StageRolledBack,
                StageState::RolledForward => NotificationEvent::StageRolledForward,
                _ => return None,
            };
            at(event, Some(*revision), stage, None, reason.as_ref())
        }
        Event::ApprovalRequired {
            revision,
            stage,
            step,
            reason,
        } => at(
            NotificationEvent::ApprovalRequired,
            Some(*revision),
            stage,
            Some(step),
            reason.as_ref(),
        ),
        Event::PipelineApprovalRequired {
            revision,
            classification,
            changes,
        } => {
            let reason = format!(
                "the pipeline definition changed ({classification}): {}",
                changes.join("; ")
            );
            at(
                NotificationEvent::ApprovalRequired,
                Some(*revision),
                "",
                None,
                Some(&reason),
            )
        }
        _ => None,
    }
}

/// One pipeline's log folded for notifications: the definition in force, the commits of the
/// revisions, and which rollbacks an alarm asked for.
#[derive(Debug)]
pub struct PipelineNotifications {
    state: PipelineState,
    /// The sequence number the next record must have.
    next_seq: u64,
    /// (stage, target revision) of rollbacks an alarm asked for (L15), not yet done.
    alarm_rollbacks: BTreeSet<(String, u64)>,
    /// The cause a `stage_failed` message gives (the stage's own reason is only "a step
    /// failed").
    failed_steps: FailedSteps,
}

/// The last failed (or timed-out) step of each running stage-deployment, and why: what a
/// message or status about the stage's failure names, where the stage's own reason is only
/// "a step failed". Fold every record through [`note`](FailedSteps::note).
#[derive(Debug, Default)]
pub struct FailedSteps(BTreeMap<(u64, String), (String, Option<String>)>);

impl FailedSteps {
    /// Nothing failed yet.
    pub fn new() -> Self {
        FailedSteps::default()
    }

    /// Folds `record`: a step that failed or timed out is remembered for its (revision,
    /// stage); the stage-deployment's next state change returns the step and its reason, and
    /// forgets them.
    pub fn note(&mut self, record: &Record) -> Option<(String, Option<String>)> {
        match &record.event {
            Event::StepState {
                revision,
                stage,
                step,
                state: StepState::Failed | StepState::TimedOut,
                reason,
                ..
            } => {
                let cause = (step.clone(), reason.clone());
                self.0.insert((*revision, stage.clone()), cause);
                None
            }
            Event::StageState {
                revision, stage, ..
            } => self.0.remove(&(*revision, stage.clone())),
            _ => None,
        }
    }
}

impl PipelineNotifications {
    /// The fold of the empty log of `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        PipelineNotifications {
            state: PipelineState::new(pipeline),
            next_seq: 1,
            alarm_rollbacks: BTreeSet::new(),
            failed_steps: FailedSteps::new(),
        }
    }

    /// The sequence number the next record must have: records before it were folded.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Folds record `seq` (the next one) and returns the notification it means with the
    /// subscription in force, when that subscription takes the event. A record out of order
    /// (already folded, or after a gap) is ignored and returns `None`.
    pub fn apply(&mut self, seq: u64, record: &Record) -> Option<(Notification, NotifyConfig)> {
        if seq != self.next_seq {
            return None;
        }
        self.next_seq += 1;
        self.state.apply(record);
        if let Event::EmergencyRequested {
            stage,
            operation: Emergency::Rollback,
            revision,
            ..
        } = &record.event
            && record.actor == Actor::System
        {
            self.alarm_rollbacks.insert((stage.clone(), *revision));
        }
        if let Some((step, reason)) = self.failed_steps.note(record)
            && let Some(n) = notifications(record)
            && n.event == NotificationEvent::StageFailed
        {
            return self.finish(Notification {
                step: Some(step),
                reason: reason.or(n.reason.clone()),
                ..n
            });
        }
        self.finish(notifications(record)?)
    }

    /// Fills in what the log knows (auto-rollback, commit) and applies the subscription.
    fn finish(&mut self, mut notification: Notification) -> Option<(Notification, NotifyConfig)> {
        if let (Some(stage), Some(revision)) = (&notification.stage, notification.revision) {
            let rolled_back = notification.event == NotificationEvent::StageRolledBack;
            if rolled_back && self.alarm_rollbacks.remove(&(stage.clone(), revision)) {
                notification.event = NotificationEvent::StageAutoRolledBack;
            }
        }
        if let Some(revision) = notification.revision {
            notification.commit = self
                .state
                .deployments
                .get(&revision)
                .map(|d| d.commit.clone());
        }
        let slack = self.state.definition.as_ref()?.notifications.as_ref()?;
        let slack = slack.slack.as_ref()?;
        let config = NotifyConfig::new(
            slack.channel.value.clone(),
            slack.events.iter().map(|e| e.value),
        );
        config
            .events
            .contains(&notification.event)
            .then_some((notification, config))
    }
}

/// The records of one append, as the [`NotifyingObserver`] hands them on.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AppendedRecords {
    /// The pipeline.
    pub pipeline: String,
    /// The sequence number of the first record.
    pub first_seq: u64,
    /// The records.
    pub records: Vec<Record>,
}

/// An [`Observer`] that hands every append to a delivery task through a bounded channel,
/// without waiting: when the task falls more than the channel's capacity behind, the append is
/// dropped with a warning (its notifications are not sent; the task folds its records from
/// the store when it sees the gap).
#[derive(Debug)]
pub struct NotifyingObserver {
    /// Behind a lock because `try_send` takes `&mut` (a clone per send would add a slot each).
    sender: std::sync::Mutex<mpsc::Sender<AppendedRecords>>,
}

impl NotifyingObserver {
    /// An observer and the receiving end for the delivery task, holding up to `capacity`
    /// appends.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<AppendedRecords>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let sender = std::sync::Mutex::new(sender);
        (NotifyingObserver { sender }, receiver)
    }
}

impl Observer for NotifyingObserver {
    fn appended(&self, append: &Appended<'_>) {
        let batch = AppendedRecords {
            pipeline: append.pipeline.to_owned(),
            first_seq: append.first_seq,
            records: append.records.to_vec(),
        };
        let mut sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = sender.try_send(batch)
            && e.is_full()
        {
            tracing::warn!(
                pipeline = append.pipeline,
                first_seq = append.first_seq,
                "the notification queue is full: the notifications of this append are dropped"
            );
        }
    }
}

/// Reads the records of `pipeline` with sequence numbers from `next` up to (not including)
/// `until` from `store`, in pages, and hands each to `apply` with its sequence number: how a
/// delivery task catches up with appends its observer dropped or another instance made.
/// A transient store failure is retried up to 5 times, after `sleep` of the delay the error
/// asks for (else 200 ms doubling).
///
/// # Errors
///
/// The store's error after the retries; [`Error::Backend`](crate::Error::Backend) when the
/// store has fewer records than `until - 1` (`what` names the reader), or a record does not
/// parse.
pub async fn read_records<Z, F>(
    store: &crate::backend::DynEventStore,
    pipeline: &str,
    what: &str,
    mut next: u64,
    until: u64,
    sleep: impl Fn(std::time::Duration) -> Z,
    mut apply: F,
) -> crate::Result<()>
where
    Z: std::future::Future<Output = ()>,
    F: FnMut(u64, &Record),
{
    const PAGE: usize = 1_000;
    let mut failures = 0u32;
    while next < until {
        let wanted = usize::try_from(until - next).unwrap_or(PAGE).min(PAGE);
        let events = match store.read(pipeline, next - 1, Some(wanted)).await {
            Ok(events) => events,
            Err(e) if e.is_transient() && failures < 5 => {
                failures += 1;
                let delay = e
                    .retry_after()
                    .unwrap_or(std::time::Duration::from_millis(100 << failures));
                sleep(delay).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if events.is_empty() {
            return Err(crate::Error::backend(
                what.to_owned(),
                format!("catch up with `{pipeline}`"),
                format!("the store has no record {next} yet"),
            ));
        }
        for event in events {
            let seq = event.seq;
            let record = Record::from_stored(pipeline, event)?;
            apply(seq, &record);
            next = seq + 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(actor: Actor, event: Event) -> Record {
        Record {
            at: "2026-01-05T17:00:00Z".parse().expect("ts"),
            actor,
            event,
        }
    }

    fn stage_state(stage: &str, revision: u64, state: StageState) -> Event {
        Event::StageState {
            revision,
            stage: stage.into(),
            state,
            waiting_for: None,
            superseded_by: None,
            attempt: Some(1),
            reason: Some("why".into()),
        }
    }

    #[test]
    fn records_map_to_the_reference_events() {
        let cases = [
            (StageState::Failed, Some(NotificationEvent::StageFailed)),
            (StageState::TimedOut, Some(NotificationEvent::StageFailed)),
            (
                StageState::RolledBack,
                Some(NotificationEvent::StageRolledBack),
            ),
            (
                StageState::RolledForward,
                Some(NotificationEvent::StageRolledForward),
            ),
            (StageState::Succeeded, None),
            (StageState::Cancelled, None),
            (StageState::InProgress, None),
        ];
        for (state, event) in cases {
            let n = notifications(&record(Actor::System, stage_state("prod", 3, state)));
            assert_eq!(n.as_ref().map(|n| n.event), event, "{state}");
            if let Some(n) = n {
                assert_eq!((n.stage.as_deref(), n.revision), (Some("prod"), Some(3)));
                assert_eq!(n.reason.as_deref(), Some("why"));
            }
        }
        let approval = Event::ApprovalRequired {
            revision: 2,
            stage: "prod".into(),
            step: "Tests".into(),
            reason: Some("tests failed".into()),
        };
        let n = notifications(&record(Actor::System, approval)).expect("notifies");
        assert_eq!(n.event, NotificationEvent::ApprovalRequired);
        assert_eq!(n.step.as_deref(), Some("Tests"));
        let pipeline = Event::PipelineApprovalRequired {
            revision: 4,
            classification: "DESTRUCTIVE".into(),
            changes: vec!["removed stage `qa`".into()],
        };
        let n = notifications(&record(Actor::System, pipeline)).expect("notifies");
        assert_eq!(n.event, NotificationEvent::ApprovalRequired);
        assert_eq!(n.stage, None);
        assert!(n.reason.expect("reason").contains("removed stage `qa`"));
        let refused = Event::PatchReleased { reason: None };
        assert_eq!(notifications(&record(Actor::System, refused)), None);
    }

    #[test]
    fn a_rollback_an_alarm_asked_for_is_an_auto_rollback() {
        let mut fold = PipelineNotifications::new("api");
        let rollback = |stage: &str| Event::EmergencyRequested {
            stage: stage.into(),
            operation: Emergency::Rollback,
            revision: 1,
            reason: None,
        };
        let person = Actor::User("ana".into());
        let seq = [
            record(Actor::System, rollback("prod")),
            record(person, rollback("qa")),
            record(
                Actor::System,
                stage_state("prod", 1, StageState::RolledBack),
            ),
            record(Actor::System, stage_state("qa", 1, StageState::RolledBack)),
        ];
        // No definition in force: nothing is subscribed, but the fold still moves on.
        for (i, r) in seq.iter().enumerate() {
            assert_eq!(fold.apply(i as u64 + 1, r), None);
        }
        assert_eq!(fold.next_seq(), 5);
        assert!(
            fold.alarm_rollbacks.is_empty(),
            "the prod rollback was matched"
        );
        assert_eq!(fold.apply(9, &seq[0]), None, "out of order: ignored");
        assert_eq!(fold.next_seq(), 5);
    }
}

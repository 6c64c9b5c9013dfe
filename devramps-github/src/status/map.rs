//! Which commit status a record means (pure), and the per-pipeline fold that knows each
//! revision's commit.

use devramps_core::engine::FailedSteps;
use devramps_core::lifecycle::{Event, PipelineState, Record, StageState, WaitingFor};

/// GitHub's longest status description, in characters.
pub const MAX_DESCRIPTION: usize = 140;

/// The state of a commit status, as GitHub names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusState {
    /// Queued, running, waiting for an approval, rolling back or forward.
    Pending,
    /// The stage succeeded (or a rollback / roll-forward to this commit is done).
    Success,
    /// The stage failed or timed out.
    Failure,
    /// The stage will not run this commit: cancelled, superseded, or the deployment stopped
    /// earlier.
    Error,
}

impl StatusState {
    /// GitHub's spelling (`pending`, `success`, `failure`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// What a record says of one stage of one revision: its state and description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StageStatus {
    pub(crate) revision: u64,
    pub(crate) stage: String,
    pub(crate) state: StatusState,
    pub(crate) description: String,
}

/// The status a record means, if any (the same record, the same answer).
pub(crate) fn stage_status(record: &Record) -> Option<StageStatus> {
    let out = |revision: &u64, stage: &String, state, description: String| {
        Some(StageStatus {
            revision: *revision,
            stage: stage.clone(),
            state,
            description: truncate(&description),
        })
    };
    match &record.event {
        Event::StageState {
            revision,
            stage,
            state,
            waiting_for,
            superseded_by,
            attempt,
            reason,
        } => {
            let because = |what: &str| match reason {
                Some(r) => format!("{what}: {r}"),
                None => what.to_owned(),
            };
            let (status, description) = match state {
                StageState::NotStarted if *waiting_for == Some(WaitingFor::Never) => {
                    (StatusState::Error, because("will not run"))
                }
                StageState::NotStarted => (
                    StatusState::Pending,
                    format!("queued: waiting for {}", waiting(*waiting_for)),
                ),
                StageState::InProgress => (
                    StatusState::Pending,
                    match attempt {
                        Some(n) if *n > 1 => format!("in progress (attempt {n})"),
                        _ => "in progress".to_owned(),
                    },
                ),
                StageState::Cancelling => (StatusState::Pending, because("cancelling")),
                StageState::RollingBack => {
                    (StatusState::Pending, "rolling back to this commit".into())
                }
                StageState::RollingForward => (
                    StatusState::Pending,
                    "rolling forward to this commit".into(),
                ),
                StageState::Succeeded => (StatusState::Success, "succeeded".into()),
                StageState::RolledBack => {
                    (StatusState::Success, "rolled back to this commit".into())
                }
                StageState::RolledForward => {
                    (StatusState::Success, "rolled forward to this commit".into())
                }
                StageState::Failed => (
                    StatusState::Failure,
                    reason.clone().unwrap_or_else(|| "failed".into()),
                ),
                StageState::TimedOut => (StatusState::Failure, because("timed out")),
                StageState::Cancelled => (StatusState::Error, because("cancelled")),
                StageState::Skipped => (
                    StatusState::Error,
                    match superseded_by {
                        Some(r) => format!("skipped: superseded by revision {r}"),
                        None => because("skipped"),
                    },
                ),
                _ => return None,
            };
            out(revision, stage, status, description)
        }
        Event::ApprovalRequired {
            revision,
            stage,
            step,
            ..
        } => out(
            revision,
            stage,
            StatusState::Pending,
            format!("waiting for approval of {step}"),
        ),
        Event::Approved {
            revision,
            stage,
            step,
            ..
        } => out(
            revision,
            stage,
            StatusState::Pending,
            format!("in progress ({step} approved by {})", record.actor),
        ),
        _ => None,
    }
}

fn waiting(w: Option<WaitingFor>) -> &'static str {
    match w {
        Some(WaitingFor::PreviousStage) | None => "the previous stage",
        Some(WaitingFor::Lock) => "the stage to be free",
        Some(WaitingFor::TimeWindow) => "the deployment window",
        Some(WaitingFor::Blocker) => "a blocker to be removed",
        Some(WaitingFor::PipelineApproval) => "approval of the pipeline change",
        Some(_) => "its turn",
    }
}

/// `text` cut to [`MAX_DESCRIPTION`] characters (an ellipsis marks the cut).
pub(crate) fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_DESCRIPTION - 1).collect();
    out.push('…');
    out
}

/// One pipeline's log folded: each revision's commit, the step that failed each failing
/// stage (its reason says more than the stage's), and the sequence number expected next.
#[derive(Debug)]
pub(crate) struct Fold {
    state: PipelineState,
    next_seq: u64,
    failed_steps: FailedSteps,
}

impl Fold {
    pub(crate) fn new(pipeline: &str) -> Self {
        Fold {
            state: PipelineState::new(pipeline),
            next_seq: 1,
            failed_steps: FailedSteps::new(),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Applies the record `seq` (ignored unless it is the next one) and returns the commit and
    /// stage status it means.
    pub(crate) fn apply(&mut self, seq: u64, record: &Record) -> Option<(String, StageStatus)> {
        if seq != self.next_seq {
            return None;
        }
        self.next_seq += 1;
        self.state.apply(record);
        let mut status = stage_status(record);
        if let (Some((step, Some(reason))), Some(status)) =
            (self.failed_steps.note(record), status.as_mut())
            && status.state == StatusState::Failure
        {
            status.description = truncate(&format!("{step} failed: {reason}"));
        }
        let status = status?;
        let commit = self.state.deployments.get(&status.revision)?.commit.clone();
        Some((commit, status))
    }
}

#[cfg(test)]
mod tests {
    use devramps_core::lifecycle::Actor;

    use super::*;

    fn stage(state: StageState, waiting_for: Option<WaitingFor>, reason: Option<&str>) -> Record {
        Record {
            at: "2026-01-05T17:00:00Z".parse().expect("ts"),
            actor: Actor::System,
            event: Event::StageState {
                revision: 2,
                stage: "prod".into(),
                state,
                waiting_for,
                superseded_by: None,
                attempt: Some(1),
                reason: reason.map(str::to_owned),
            },
        }
    }

    #[test]
    fn stage_states_map_to_github_states_with_the_reason() {
        let cases = [
            (
                stage(StageState::NotStarted, Some(WaitingFor::Lock), None),
                StatusState::Pending,
                "queued: waiting for the stage to be free",
            ),
            (
                stage(
                    StageState::NotStarted,
                    Some(WaitingFor::Never),
                    Some("staging failed"),
                ),
                StatusState::Error,
                "will not run: staging failed",
            ),
            (
                stage(StageState::InProgress, None, None),
                StatusState::Pending,
                "in progress",
            ),
            (
                stage(StageState::Succeeded, None, None),
                StatusState::Success,
                "succeeded",
            ),
            (
                stage(
                    StageState::Failed,
                    None,
                    Some("step `deploy` failed: exit 3"),
                ),
                StatusState::Failure,
                "step `deploy` failed: exit 3",
            ),
            (
                stage(StageState::TimedOut, None, None),
                StatusState::Failure,
                "timed out",
            ),
            (
                stage(StageState::Cancelled, None, Some("by ana")),
                StatusState::Error,
                "cancelled: by ana",
            ),
            (
                stage(StageState::RolledBack, None, None),
                StatusState::Success,
                "rolled back to this commit",
            ),
        ];
        for (record, state, description) in cases {
            let s = stage_status(&record).expect("a status");
            assert_eq!((s.revision, s.stage.as_str()), (2, "prod"));
            assert_eq!(
                (s.state, s.description.as_str()),
                (state, description),
                "{record:?}"
            );
        }
    }

    #[test]
    fn descriptions_are_cut_to_140_characters() {
        let long = "é".repeat(500);
        let s = stage_status(&stage(StageState::Failed, None, Some(&long))).expect("status");
        assert_eq!(s.description.chars().count(), MAX_DESCRIPTION);
        assert!(s.description.ends_with('…'));
        assert_eq!(truncate("short"), "short");
        let exact = "x".repeat(MAX_DESCRIPTION);
        assert_eq!(truncate(&exact), exact);
    }

    #[test]
    fn other_records_mean_no_status() {
        let record = Record {
            at: "2026-01-05T17:00:00Z".parse().expect("ts"),
            actor: Actor::System,
            event: Event::PatchReleased { reason: None },
        };
        assert_eq!(stage_status(&record), None);
    }
}

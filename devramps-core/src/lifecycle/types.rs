//! The names of `lifecycle.md`: stage-deployment and step states, what a queued deployment waits
//! for, phases, blockers and actors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The state of a stage-deployment (one revision in one stage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum StageState {
    /// Not begun; see [`WaitingFor`].
    NotStarted,
    /// Phases executing.
    InProgress,
    /// All phases done.
    Succeeded,
    /// A phase or step failed, or an approval was rejected.
    Failed,
    /// Cancel requested; running work is being stopped.
    Cancelling,
    /// Cancelled by a person or by the system.
    Cancelled,
    /// A step exceeded its timeout.
    TimedOut,
    /// An emergency rollback of this stage to this revision runs.
    RollingBack,
    /// An emergency rollback to this revision is done.
    RolledBack,
    /// An emergency roll-forward of this stage to this revision runs.
    RollingForward,
    /// An emergency roll-forward to this revision is done.
    RolledForward,
    /// Superseded by a newer deployment before it started here.
    Skipped,
}

impl StageState {
    /// Whether the state holds the stage's lock (L5).
    pub fn holds_lock(self) -> bool {
        matches!(
            self,
            StageState::InProgress
                | StageState::Cancelling
                | StageState::RollingBack
                | StageState::RollingForward
        )
    }

    /// Whether the state is terminal (`NOT_STARTED` is terminal only with `NEVER`).
    pub fn is_terminal(self, waiting_for: Option<WaitingFor>) -> bool {
        match self {
            StageState::NotStarted => waiting_for == Some(WaitingFor::Never),
            other => !other.holds_lock(),
        }
    }

    /// The spelling of `lifecycle.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::NotStarted => "NOT_STARTED",
            StageState::InProgress => "IN_PROGRESS",
            StageState::Succeeded => "SUCCEEDED",
            StageState::Failed => "FAILED",
            StageState::Cancelling => "CANCELLING",
            StageState::Cancelled => "CANCELLED",
            StageState::TimedOut => "TIMED_OUT",
            StageState::RollingBack => "ROLLING_BACK",
            StageState::RolledBack => "ROLLED_BACK",
            StageState::RollingForward => "ROLLING_FORWARD",
            StageState::RolledForward => "ROLLED_FORWARD",
            StageState::Skipped => "SKIPPED",
        }
    }
}

impl fmt::Display for StageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a `NOT_STARTED` stage-deployment waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum WaitingFor {
    /// The previous stage has not succeeded yet.
    PreviousStage,
    /// Another stage-deployment holds the stage.
    Lock,
    /// The stage's deployment window is closed.
    TimeWindow,
    /// A blocker is active.
    Blocker,
    /// A person must approve the pipeline definition change (L18).
    PipelineApproval,
    /// The deployment stopped earlier and will never reach this stage.
    Never,
}

impl WaitingFor {
    /// The spelling of `lifecycle.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingFor::PreviousStage => "PREVIOUS_STAGE",
            WaitingFor::Lock => "LOCK",
            WaitingFor::TimeWindow => "TIME_WINDOW",
            WaitingFor::Blocker => "BLOCKER",
            WaitingFor::PipelineApproval => "PIPELINE_APPROVAL",
            WaitingFor::Never => "NEVER",
        }
    }
}

/// The state of one step in one attempt of a stage-deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum StepState {
    /// Not started.
    Pending,
    /// Running.
    Running,
    /// Waiting for a person.
    WaitingApproval,
    /// Done.
    Succeeded,
    /// Failed (or rejected).
    Failed,
    /// Not run: in the stage's `skip` list, or after a failure or cancel.
    Skipped,
    /// Stopped by a cancel.
    Cancelled,
    /// Stopped by its timeout.
    TimedOut,
}

impl StepState {
    /// Whether the step has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            StepState::Pending | StepState::Running | StepState::WaitingApproval
        )
    }

    /// Whether the step is running or waiting for a person.
    pub fn is_active(self) -> bool {
        matches!(self, StepState::Running | StepState::WaitingApproval)
    }

    /// The spelling of `lifecycle.md` and of the records.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "PENDING",
            StepState::Running => "RUNNING",
            StepState::WaitingApproval => "WAITING_APPROVAL",
            StepState::Succeeded => "SUCCEEDED",
            StepState::Failed => "FAILED",
            StepState::Skipped => "SKIPPED",
            StepState::Cancelled => "CANCELLED",
            StepState::TimedOut => "TIMED_OUT",
        }
    }
}

/// The phases of a stage-deployment, in order (L4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Phase {
    /// Artifact builds.
    Build,
    /// Resource validation.
    ResourceValidation,
    /// Artifact mirroring.
    Mirroring,
    /// Infrastructure synthesis (Terraform steps).
    Infrastructure,
    /// The deployment steps.
    Steps,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::Build,
        Phase::ResourceValidation,
        Phase::Mirroring,
        Phase::Infrastructure,
        Phase::Steps,
    ];

    /// The spelling of the log (`RESOURCE_VALIDATION`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "BUILD",
            Phase::ResourceValidation => "RESOURCE_VALIDATION",
            Phase::Mirroring => "MIRRORING",
            Phase::Infrastructure => "INFRASTRUCTURE",
            Phase::Steps => "STEPS",
        }
    }

    /// The phase after this one.
    pub fn next(self) -> Option<Phase> {
        let i = Phase::ALL.iter().position(|p| *p == self)?;
        Phase::ALL.get(i + 1).copied()
    }
}

#[cfg(test)]
mod phase_tests {
    use super::Phase;

    #[test]
    fn phases_are_spelled_as_serialized() {
        for phase in Phase::ALL {
            assert_eq!(serde_json::json!(phase), phase.as_str());
        }
    }
}

/// A reason a stage starts nothing from its queue (L9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Blocker {
    /// Added and removed by a person.
    StopPromotions,
    /// Added by an emergency rollback; removed by "unblock after rollback".
    Rollback,
    /// Added while the stage's alarm fires on an idle stage (L15).
    Alarm,
}

pub use crate::exec::AlarmState;

/// The emergency operations that take a stage over (L13, L14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Emergency {
    /// Roll the stage back to a revision that succeeded there (L13).
    Rollback,
    /// Roll the stage forward to a newer revision (L14).
    RollForward,
}

impl Emergency {
    /// The operation's name, as in messages and the scenario format.
    pub fn as_str(self) -> &'static str {
        match self {
            Emergency::Rollback => "rollback",
            Emergency::RollForward => "roll_forward",
        }
    }

    /// The rule that governs it.
    pub fn rule(self) -> &'static str {
        match self {
            Emergency::Rollback => "L13",
            Emergency::RollForward => "L14",
        }
    }
}

impl fmt::Display for Emergency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Blocker {
    /// The spelling of `lifecycle.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocker::StopPromotions => "STOP_PROMOTIONS",
            Blocker::Rollback => "ROLLBACK",
            Blocker::Alarm => "ALARM",
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did something (L19): `user:<name>`, `system`, `webhook:<delivery>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Actor {
    /// A person.
    User(String),
    /// The engine itself.
    System,
    /// A webhook delivery.
    Webhook(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(n) => write!(f, "user:{n}"),
            Actor::System => f.write_str("system"),
            Actor::Webhook(d) => write!(f, "webhook:{d}"),
        }
    }
}

impl FromStr for Actor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "system" {
            return Ok(Actor::System);
        }
        if let Some(n) = s.strip_prefix("user:") {
            return Ok(Actor::User(n.to_owned()));
        }
        if let Some(d) = s.strip_prefix("webhook:") {
            return Ok(Actor::Webhook(d.to_owned()));
        }
        Err(format!(
            "`{s}` is not an actor (user:<name>, system, webhook:<delivery>)"
        ))
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_states_are_spelled_as_recorded() {
        use StepState::*;
        for state in [
            Pending,
            Running,
            WaitingApproval,
            Succeeded,
            Failed,
            Skipped,
            Cancelled,
            TimedOut,
        ] {
            let recorded = serde_json::to_value(state).expect("serializes");
            assert_eq!(recorded.as_str(), Some(state.as_str()));
        }
    }

    #[test]
    fn lock_holders_are_exactly_the_running_states_of_l5() {
        let holders: Vec<StageState> = [
            StageState::NotStarted,
            StageState::InProgress,
            StageState::Succeeded,
            StageState::Failed,
            StageState::Cancelling,
            StageState::Cancelled,
            StageState::TimedOut,
            StageState::RollingBack,
            StageState::RolledBack,
            StageState::RollingForward,
            StageState::RolledForward,
            StageState::Skipped,
        ]
        .into_iter()
        .filter(|s| s.holds_lock())
        .collect();
        assert_eq!(
            holders,
            [
                StageState::InProgress,
                StageState::Cancelling,
                StageState::RollingBack,
                StageState::RollingForward
            ]
        );
        assert!(StageState::NotStarted.is_terminal(Some(WaitingFor::Never)));
        assert!(!StageState::NotStarted.is_terminal(Some(WaitingFor::Lock)));
    }

    #[test]
    fn actors_round_trip_through_their_spelling() {
        for a in [
            Actor::User("ana".into()),
            Actor::System,
            Actor::Webhook("d-1".into()),
        ] {
            let json = serde_json::to_string(&a).expect("serializes");
            assert_eq!(serde_json::from_str::<Actor>(&json).expect("parses"), a);
        }
        assert!("robot".parse::<Actor>().is_err());
        assert_eq!(
            serde_json::to_string(&StageState::TimedOut).expect("ok"),
            "\"TIMED_OUT\""
        );
        assert_eq!(Phase::Build.next(), Some(Phase::ResourceValidation));
        assert_eq!(Phase::Steps.next(), None);
    }
}

//! [`Action`]: what one scenario event does, one variant per key of the scenario format.

use std::time::Duration;

use devramps_core::pipeline::Spanned;

/// The action keys of an event, in the order of the scenario format's table.
pub const ACTION_KEYS: &[&str] = &[
    "push",
    "outcome",
    "approve",
    "reject",
    "retry",
    "cancel",
    "rollback",
    "roll_forward",
    "stop_promotions",
    "resume_promotions",
    "unblock",
    "bypass",
    "alarm",
    "patch",
    "release_patch",
    "approve_pipeline",
    "reject_pipeline",
    "store_fault",
    "restart",
];

/// The actor of `approve` and `reject` when the event names none.
pub const DEFAULT_ACTOR: &str = "sim";

/// What one event does. Each variant is one key of the scenario format; the rule ids (L9,
/// L11, ...) are those of the lifecycle specification.
///
/// Names of stages, steps and artifacts keep their
/// [`Span`](devramps_core::pipeline::Span) so that the engine can point at
/// them when it checks the scenario against its pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `push`: a push webhook.
    Push(Push),
    /// `outcome`: scripts how a step or build behaves when it runs.
    Outcome(ScriptedOutcome),
    /// `approve`: approves a waiting step (L16).
    Approve(Answer),
    /// `reject`: rejects a waiting step (L16).
    Reject(Answer),
    /// `retry`: a new attempt of a failed, timed-out or cancelled stage-deployment (L11).
    Retry {
        /// The deployment's commit.
        commit: String,
        /// The stage.
        stage: Spanned<String>,
    },
    /// `cancel`: cancels a running or queued stage-deployment (L12).
    Cancel {
        /// The deployment's commit.
        commit: String,
        /// The stage.
        stage: Spanned<String>,
    },
    /// `rollback`: an emergency rollback of a stage (L13).
    Rollback {
        /// The stage.
        stage: Spanned<String>,
        /// The commit to roll back to.
        to: String,
    },
    /// `roll_forward`: an emergency roll-forward of a stage (L14).
    RollForward {
        /// The stage.
        stage: Spanned<String>,
        /// The commit to roll forward to.
        to: String,
    },
    /// `stop_promotions`: adds the `STOP_PROMOTIONS` blocker (L9).
    StopPromotions {
        /// The stage.
        stage: Spanned<String>,
    },
    /// `resume_promotions`: removes the `STOP_PROMOTIONS` blocker (L9).
    ResumePromotions {
        /// The stage.
        stage: Spanned<String>,
    },
    /// `unblock`: removes the `ROLLBACK` blocker (L9).
    Unblock {
        /// The stage.
        stage: Spanned<String>,
    },
    /// `bypass`: lets one queued revision start once despite blockers and the window (L9).
    Bypass {
        /// The stage.
        stage: Spanned<String>,
        /// The queued deployment's commit.
        commit: String,
    },
    /// `alarm`: the stage's rollback alarm changes state (L15).
    Alarm {
        /// The stage.
        stage: Spanned<String>,
        /// The new alarm state.
        state: AlarmState,
    },
    /// `patch`: deploys a chosen commit as a patch and enters patch mode (L17).
    Patch {
        /// The commit to deploy.
        commit: String,
        /// Repository paths the commit changes (leading `/`); empty when not written.
        changed: Vec<String>,
    },
    /// `release_patch`: ends patch mode (L17).
    ReleasePatch,
    /// `approve_pipeline`: approves a pipeline definition update (L18).
    ApprovePipeline {
        /// The waiting deployment's commit.
        commit: String,
    },
    /// `reject_pipeline`: rejects a pipeline definition update (L18).
    RejectPipeline {
        /// The waiting deployment's commit.
        commit: String,
    },
    /// `store_fault`: the next `times` calls of a store operation fail with a transient error.
    StoreFault {
        /// The operation.
        op: StoreOp,
        /// How many calls fail.
        times: u32,
    },
    /// `restart`: the engine instance dies at once; a new one starts after `down`.
    Restart {
        /// How long the engine stays down.
        down: Duration,
    },
}

/// The store operation a `store_fault` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// `append`: appends to the event log.
    Append,
    /// `read`: every read of the store (events, the last sequence number, snapshots, streams).
    Read,
}

impl Action {
    /// The event key of this action, for example `roll_forward`.
    pub fn key(&self) -> &'static str {
        match self {
            Action::Push(_) => "push",
            Action::Outcome(_) => "outcome",
            Action::Approve(_) => "approve",
            Action::Reject(_) => "reject",
            Action::Retry { .. } => "retry",
            Action::Cancel { .. } => "cancel",
            Action::Rollback { .. } => "rollback",
            Action::RollForward { .. } => "roll_forward",
            Action::StopPromotions { .. } => "stop_promotions",
            Action::ResumePromotions { .. } => "resume_promotions",
            Action::Unblock { .. } => "unblock",
            Action::Bypass { .. } => "bypass",
            Action::Alarm { .. } => "alarm",
            Action::Patch { .. } => "patch",
            Action::ReleasePatch => "release_patch",
            Action::ApprovePipeline { .. } => "approve_pipeline",
            Action::RejectPipeline { .. } => "reject_pipeline",
            Action::StoreFault { .. } => "store_fault",
            Action::Restart { .. } => "restart",
        }
    }
}

/// The fields of a `push` event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Push {
    /// The head commit.
    pub commit: String,
    /// The branch; `None` means the pipeline's tracked branch.
    pub branch: Option<String>,
    /// Repository paths the push changes (leading `/`); empty when not written.
    pub changed: Vec<String>,
    /// The webhook delivery id; `None` lets the engine number deliveries itself.
    pub delivery: Option<String>,
    /// The pipeline definition as of this commit, when it changes (`None`: the parent's); the
    /// branch's later commits inherit it.
    pub pipeline_yaml: Option<String>,
    /// A branch deletion: the branch's head is forgotten and nothing is deployed (L2).
    pub deleted: bool,
}

/// The fields of an `outcome` event: how one step or build will behave when it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptedOutcome {
    /// The deployment's commit.
    pub commit: String,
    /// The stage. Always set for a step; for a build it may be left out, which means the
    /// build wherever it runs (the first stage for a shared artifact).
    pub stage: Option<Spanned<String>>,
    /// The step or build it scripts.
    pub target: StepRef,
    /// What happens.
    pub result: ScriptedResult,
    /// How long it runs; `None` means the scenario's default duration for steps or builds.
    pub duration: Option<Duration>,
    /// Which attempt of the stage-deployment it applies to (1 = the first run).
    pub attempt: u32,
    /// The step's outputs, in the order written; empty when not written.
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// What the plan of a Terraform step shows; `None` when not written (no changes).
    pub plan: Option<TerraformPlan>,
}

/// What an `outcome` scripts: a step (`step:`) or an artifact build (`build:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepRef {
    /// A step, by name or id.
    Step(Spanned<String>),
    /// The build of an artifact, by artifact id.
    Build(Spanned<String>),
}

/// How a scripted step or build ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptedResult {
    /// `succeed`: it succeeds (with the scripted outputs).
    Succeed,
    /// `fail`: it fails.
    Fail,
    /// `hang`: it runs until cancelled or timed out.
    Hang,
    /// `ask_approval`: a custom step whose `prepare` asks for approval; once approved it
    /// succeeds after its duration (L16).
    AskApproval,
}

/// What a Terraform plan shows (`plan: {create, update, delete}`), judged by the step's
/// approval policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TerraformPlan {
    /// Resources to create.
    pub create: u32,
    /// Resources to update.
    pub update: u32,
    /// Resources to delete.
    pub delete: u32,
}

/// The fields of `approve` and `reject`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The deployment's commit.
    pub commit: String,
    /// The stage.
    pub stage: Spanned<String>,
    /// The waiting step, by name or id.
    pub step: Spanned<String>,
    /// Who answers ([`DEFAULT_ACTOR`] when not written).
    pub actor: String,
    /// The comment, if any.
    pub comment: Option<String>,
}

/// The state an `alarm` event sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmState {
    /// `ALARM`: the alarm fires.
    Alarm,
    /// `OK`: the alarm is back to normal.
    Ok,
}

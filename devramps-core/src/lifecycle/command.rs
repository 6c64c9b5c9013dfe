//! The work the machine asks for. Each command is self-contained: it carries everything the
//! engine needs to call a backend (target, commit, artifact types, the parameters with their
//! secrets and step outputs still deferred, and the step outputs those parameters read), so the
//! engine only fetches secrets, resolves and calls; it never reads the machine's state or the
//! plan. [`crate::lifecycle::Machine::pending_work`] rebuilds the same commands from the state
//! after a restart (L20).

use std::collections::BTreeMap;

use crate::exec::{
    ExecutionKey, MirrorRequest, Outputs, Polling, StageTarget, TerraformState, ValidationRequest,
};
use crate::expr::{ArtifactLocation, ParamValue};
use crate::pipeline::ArtifactType;
use crate::plan::StepKind;

/// The outputs of earlier steps that a command's parameters read, by the producing step's key
/// (id, else name).
pub type StepOutputs = BTreeMap<String, Outputs>;

/// Work for the engine.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Build an artifact (`key.unit` is [`Unit::Build`](crate::exec::Unit::Build)).
    Build(BuildWork),
    /// Check the stage's resources (`key.unit` is [`Unit::Validate`](crate::exec::Unit)).
    ValidateResources(ValidateWork),
    /// Mirror the artifacts into the stage (`key.unit` is [`Unit::Mirror`](crate::exec::Unit)).
    Mirror(MirrorWork),
    /// Plan a Terraform step.
    PlanInfra(InfraWork),
    /// Apply a Terraform step (planned again first: a plan is idempotent per key).
    ApplyInfra(InfraWork),
    /// Run a step through the step runners.
    RunStep(StepWork),
    /// Stop an execution.
    Cancel {
        /// Idempotency key.
        key: ExecutionKey,
    },
}

impl Command {
    /// The execution the command concerns.
    pub fn key(&self) -> &ExecutionKey {
        match self {
            Command::Build(w) => &w.key,
            Command::ValidateResources(w) => &w.key,
            Command::Mirror(w) => &w.key,
            Command::PlanInfra(w) | Command::ApplyInfra(w) => &w.key,
            Command::RunStep(w) => &w.key,
            Command::Cancel { key } => key,
        }
    }
}

/// An artifact build to start.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BuildWork {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// Artifact id.
    pub artifact: String,
    /// Artifact type.
    pub artifact_type: ArtifactType,
    /// Commit to build.
    pub commit: String,
    /// `params` and `envs` of the build, secrets still deferred.
    pub params: ParamValue,
    /// Where the build puts the artifact (its root location, or the stage's for a per-stage
    /// artifact).
    pub destination: ArtifactLocation,
}

/// Resource validation of a stage (phase 2 of L4).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ValidateWork {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// What must exist in the stage: every artifact's repository or bucket, and the
    /// Terraform state bucket when the stage has Terraform steps.
    pub request: ValidationRequest,
}

/// Mirroring of a deployment's artifacts into a stage (phase 3 of L4).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MirrorWork {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// One copy per artifact, in definition order.
    pub artifacts: Vec<MirrorRequest>,
}

/// A Terraform step, to plan or to apply.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct InfraWork {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// The stage.
    pub target: StageTarget,
    /// Repository path of the Terraform root.
    pub source: String,
    /// The commit.
    pub commit: String,
    /// The Terraform variables, secrets and step outputs still deferred.
    pub variables: ParamValue,
    /// The step outputs `variables` read.
    pub outputs: StepOutputs,
    /// Where the step's Terraform state lives.
    pub state: TerraformState,
}

/// A step to run through the step runners.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepWork {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// The type as written (the step runners are registered by it).
    pub step_type: String,
    /// What the step is.
    pub kind: StepKind,
    /// Parameters, secrets and step outputs still deferred.
    pub params: ParamValue,
    /// The step outputs `params` read.
    pub outputs: StepOutputs,
    /// Whether a person approved it.
    pub approved: bool,
    /// The deployed commit.
    pub commit: String,
    /// The stage it runs in.
    pub target: StageTarget,
    /// Set when this start is a poll of a step that asked to be polled.
    pub polling: Option<Polling>,
}

//! The work a stage-deployment does: builds, resource validation, mirroring, infrastructure
//! and steps. Every execution carries a stable idempotency key (L20).

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::expr::{ArtifactLocation, FinalValue};
use crate::pipeline::{ApprovalPolicy, ArtifactType};

/// The idempotency key of one execution: (pipeline, revision, stage, attempt, step). Runners
/// use it to make a repeated start (after a restart) harmless.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExecutionKey {
    /// Pipeline slug.
    pub pipeline: String,
    /// Revision (L1).
    pub revision: u64,
    /// Stage name, or empty for shared artifact builds.
    pub stage: String,
    /// Attempt of the stage-deployment, from 1.
    pub attempt: u32,
    /// Step key, or `build:<artifact id>`, `infra:<step key>`.
    pub step: String,
}

impl fmt::Display for ExecutionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/r{}/{}/a{}/{}",
            self.pipeline, self.revision, self.stage, self.attempt, self.step
        )
    }
}

/// Outputs of a finished execution, readable as `steps.<step>.<name>`.
pub type Outputs = BTreeMap<String, serde_json::Value>;

/// How an execution ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Done; with outputs.
    Succeeded {
        /// Named outputs.
        outputs: Outputs,
    },
    /// Failed.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// The step asks a person to approve before it goes on (custom steps' `prepare`).
    ApprovalRequired {
        /// What the person should look at.
        context: Option<String>,
    },
}

/// Runs executions of some kind: start, wait for the end, cancel.
///
/// # Contract
///
/// - `start` begins the execution of `request.key()`; starting a key that was started before
///   does not start it again (it re-attaches).
/// - `wait(key)` completes when that execution ends, with its [`Outcome`]; it may be called
///   again (after a restart) and returns the same outcome. An unknown key fails with
///   [`Error::NotFound`].
/// - `cancel(key)` asks a running execution to stop; `wait` then returns `Failed` (or the
///   outcome it reached first). Cancelling an ended or unknown execution does nothing.
#[async_trait]
pub trait Runner<R: Send + Sync + 'static>: Send + Sync + Debug + 'static {
    /// Starts (or re-attaches to) an execution.
    async fn start(&self, request: R) -> Result<()>;
    /// Waits for an execution's end.
    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome>;
    /// Asks an execution to stop.
    async fn cancel(&self, key: &ExecutionKey) -> Result<()>;
}

/// An artifact build.
#[derive(Clone, Debug, Serialize)]
pub struct BuildRequest {
    /// Idempotency key (`step` is `build:<artifact id>`).
    pub key: ExecutionKey,
    /// Artifact id.
    pub artifact: String,
    /// Artifact type.
    pub artifact_type: ArtifactType,
    /// Commit to build.
    pub commit: String,
    /// Resolved `params` and `envs` (secrets redacted when printed).
    pub params: FinalValue,
}

/// A build runner: builds artifacts (the build VMs of DevRamps).
pub trait BuildRunner: Runner<BuildRequest> {}
impl<T: Runner<BuildRequest>> BuildRunner for T {}

/// One step execution.
#[derive(Clone, Debug, Serialize)]
pub struct StepRequest {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// The step type as written (`DEVRAMPS:ECS:DEPLOY`, `CUSTOM:...`).
    pub step_type: String,
    /// Final parameters (secrets redacted when printed; [`FinalValue::expose_json`] for the
    /// runner).
    pub params: FinalValue,
    /// Set when a person approved a step that asked for approval.
    pub approved: bool,
}

/// A runner of steps of one or more types.
pub trait StepRunner: Runner<StepRequest> {}
impl<T: Runner<StepRequest>> StepRunner for T {}

/// A shared [`StepRunner`].
pub type DynStepRunner = Arc<dyn Runner<StepRequest>>;
/// A shared [`BuildRunner`].
pub type DynBuildRunner = Arc<dyn Runner<BuildRequest>>;

/// Step runners by step type, with an optional fallback for every other type.
#[derive(Clone, Debug, Default)]
pub struct StepRunners {
    by_type: BTreeMap<String, DynStepRunner>,
    fallback: Option<DynStepRunner>,
}

impl StepRunners {
    /// An empty registry: every step type is unsupported.
    pub fn new() -> Self {
        StepRunners::default()
    }

    /// Registers the runner of `step_type`.
    pub fn with(mut self, step_type: impl Into<String>, runner: DynStepRunner) -> Self {
        self.by_type.insert(step_type.into(), runner);
        self
    }

    /// Registers the runner of every type without its own.
    pub fn with_fallback(mut self, runner: DynStepRunner) -> Self {
        self.fallback = Some(runner);
        self
    }

    /// Every registered runner (each once), for operations that concern any of them.
    pub fn all(&self) -> Vec<&DynStepRunner> {
        let mut out: Vec<&DynStepRunner> = Vec::new();
        for runner in self.by_type.values().chain(self.fallback.as_ref()) {
            if !out.iter().any(|r| Arc::ptr_eq(r, runner)) {
                out.push(runner);
            }
        }
        out
    }

    /// The runner of `step_type`, or [`Error::NotSupported`].
    pub fn get(&self, step_type: &str) -> Result<&DynStepRunner> {
        self.by_type
            .get(step_type)
            .or(self.fallback.as_ref())
            .ok_or_else(|| Error::NotSupported {
                operation: format!("steps of type `{step_type}`"),
                backend: "step runner registry".to_owned(),
            })
    }
}

/// A stage's account and region, and the artifacts it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageTarget {
    /// Pipeline slug.
    pub pipeline: String,
    /// Stage name.
    pub stage: String,
    /// AWS account.
    pub account_id: String,
    /// AWS region.
    pub region: String,
}

/// Resource validation (phase 2 of L4): the stage's registries and buckets exist.
///
/// # Contract
///
/// `validate` returns the missing resources (empty when all exist); errors are for failures
/// to look.
#[async_trait]
pub trait ResourceValidator: Send + Sync + Debug + 'static {
    /// The resources of `artifacts` (id, type) missing in the stage.
    async fn validate(
        &self,
        target: &StageTarget,
        artifacts: &[(String, ArtifactType)],
    ) -> Result<Vec<String>>;
}

/// One artifact to copy into a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MirrorRequest {
    /// The stage.
    pub target: StageTarget,
    /// Artifact id.
    pub artifact: String,
    /// Artifact type.
    pub artifact_type: ArtifactType,
    /// The commit of the build to copy.
    pub build_commit: String,
    /// Where it goes in the stage.
    pub destination: ArtifactLocation,
}

/// Artifact mirroring (phase 3 of L4).
///
/// # Contract
///
/// `mirror` makes the destination hold the artifact; mirroring what is already there
/// succeeds without copying (so a rollback's re-check is cheap).
#[async_trait]
pub trait ArtifactMirror: Send + Sync + Debug + 'static {
    /// Copies one artifact into a stage.
    async fn mirror(&self, request: &MirrorRequest) -> Result<()>;
}

/// A Terraform plan's summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfraPlan {
    /// Identifies the plan for `apply`.
    pub id: String,
    /// Resources to create.
    pub create: u32,
    /// Resources to update in place.
    pub update: u32,
    /// Resources to destroy (replacements count here and in `create`).
    pub delete: u32,
}

impl InfraPlan {
    /// Whether anything changes.
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.delete > 0
    }

    /// Whether the plan modifies or destroys existing resources.
    pub fn is_destructive(&self) -> bool {
        self.update + self.delete > 0
    }

    /// Whether applying it waits for a person under `policy` (reference scenarios 30, 31).
    pub fn needs_approval(&self, policy: ApprovalPolicy) -> bool {
        match policy {
            ApprovalPolicy::Always => self.has_changes(),
            ApprovalPolicy::Never => false,
            ApprovalPolicy::DestructiveChangesOnly => self.is_destructive(),
        }
    }
}

/// One Terraform step in one stage.
#[derive(Clone, Debug, Serialize)]
pub struct InfraRequest {
    /// Idempotency key.
    pub key: ExecutionKey,
    /// The stage.
    pub target: StageTarget,
    /// Repository path of the Terraform root.
    pub source: String,
    /// The commit.
    pub commit: String,
    /// Final variables.
    pub variables: FinalValue,
}

/// Infrastructure synthesis (phase 4 of L4): plan, then apply.
///
/// # Contract
///
/// `plan` has no effect on the infrastructure; `apply(plan)` applies exactly that plan and
/// returns the Terraform outputs. Both are idempotent per request key.
#[async_trait]
pub trait InfrastructureSynthesizer: Send + Sync + Debug + 'static {
    /// Plans the changes.
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan>;
    /// Applies a plan; returns the outputs.
    async fn apply(&self, request: &InfraRequest, plan: &InfraPlan) -> Result<Outputs>;
}

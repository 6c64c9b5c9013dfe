//! What the engine asks of the backends: requests with final values, and the stage they
//! concern.

use serde::Serialize;

use super::{ExecutionKey, Polling};
use crate::expr::{ArtifactLocation, FinalValue};
use crate::pipeline::ArtifactType;

/// A stage's account and region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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

impl StageTarget {
    /// Stage `stage` of `pipeline`, in `account_id` and `region`.
    pub fn new(
        pipeline: impl Into<String>,
        stage: impl Into<String>,
        account_id: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        StageTarget {
            pipeline: pipeline.into(),
            stage: stage.into(),
            account_id: account_id.into(),
            region: region.into(),
        }
    }
}

/// An artifact build.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct BuildRequest {
    /// Idempotency key (its unit is the build of `artifact`).
    pub key: ExecutionKey,
    /// Artifact id.
    pub artifact: String,
    /// Artifact type.
    pub artifact_type: ArtifactType,
    /// Commit to build.
    pub commit: String,
    /// Resolved `params` and `envs` (secrets redacted when printed).
    pub params: FinalValue,
    /// Where the build puts the artifact: for a shared artifact its root repository or
    /// bucket in the CI/CD account (`pipeline.pre_mirror_artifacts`), for a per-stage one the
    /// stage's (`stage.artifacts`). Empty when the engine does not know it.
    pub destination: ArtifactLocation,
}

impl BuildRequest {
    /// A build of `artifact` (of type `artifact_type`) at `commit`, with `params`.
    pub fn new(
        key: ExecutionKey,
        artifact: impl Into<String>,
        artifact_type: ArtifactType,
        commit: impl Into<String>,
        params: FinalValue,
    ) -> Self {
        BuildRequest {
            key,
            artifact: artifact.into(),
            artifact_type,
            commit: commit.into(),
            params,
            destination: ArtifactLocation::default(),
        }
    }

    /// Sets where the build puts the artifact.
    pub fn with_destination(mut self, destination: ArtifactLocation) -> Self {
        self.destination = destination;
        self
    }
}

/// One step execution.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
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
    /// The deployed commit (the engine always sets it).
    pub commit: Option<String>,
    /// The stage it runs in (the engine always sets it).
    pub target: Option<StageTarget>,
    /// Set when the step asked to be polled ([`Outcome::PollLater`](crate::exec::Outcome)):
    /// this start is a poll with that state, not a new run.
    pub polling: Option<Polling>,
}

impl StepRequest {
    /// A run of a step of `step_type` with `params`, not approved by anyone.
    pub fn new(key: ExecutionKey, step_type: impl Into<String>, params: FinalValue) -> Self {
        StepRequest {
            key,
            step_type: step_type.into(),
            params,
            approved: false,
            commit: None,
            target: None,
            polling: None,
        }
    }

    /// Sets the deployed commit.
    pub fn with_commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    /// Sets the stage the step runs in.
    pub fn with_target(mut self, target: StageTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// Makes this start a poll with `polling`.
    pub fn with_polling(mut self, polling: Option<Polling>) -> Self {
        self.polling = polling;
        self
    }

    /// Marks the run as approved by a person (or not).
    pub fn approved(mut self, approved: bool) -> Self {
        self.approved = approved;
        self
    }
}

/// Resource validation of one stage (phase 2 of L4): what must exist in the stage's account and
/// region before anything is copied into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ValidationRequest {
    /// The stage.
    pub target: StageTarget,
    /// Every artifact of the deployment, in definition order, with where it goes in the stage
    /// (its repository or bucket, `stage.artifacts`).
    pub artifacts: Vec<StageArtifact>,
    /// The state of each Terraform step the stage runs (not those in its `skip` list), in step
    /// order (empty when it runs none): the state bucket must exist too.
    pub terraform_states: Vec<TerraformState>,
}

impl ValidationRequest {
    /// Validation of `target`, for no artifact and no Terraform step yet.
    pub fn new(target: StageTarget) -> Self {
        ValidationRequest {
            target,
            artifacts: Vec::new(),
            terraform_states: Vec::new(),
        }
    }

    /// Adds an artifact whose repository or bucket must exist.
    pub fn with_artifact(mut self, artifact: StageArtifact) -> Self {
        self.artifacts.push(artifact);
        self
    }

    /// Adds the state of a Terraform step of the stage.
    pub fn with_terraform_state(mut self, state: TerraformState) -> Self {
        self.terraform_states.push(state);
        self
    }
}

/// An artifact of a deployment, as one stage holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StageArtifact {
    /// Artifact id.
    pub id: String,
    /// Artifact type.
    pub artifact_type: ArtifactType,
    /// Where it is in the stage (`stage.artifacts`); empty fields when the engine does not
    /// know it.
    pub location: ArtifactLocation,
}

impl StageArtifact {
    /// Artifact `id` of `artifact_type`, at `location` in the stage.
    pub fn new(
        id: impl Into<String>,
        artifact_type: ArtifactType,
        location: ArtifactLocation,
    ) -> Self {
        StageArtifact {
            id: id.into(),
            artifact_type,
            location,
        }
    }
}

/// One artifact to copy into a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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
    /// Where it comes from: a shared artifact's root repository or bucket in the CI/CD
    /// account (`pipeline.pre_mirror_artifacts` of the build's commit); `None` for a per-stage
    /// artifact, built into the stage in place (nothing to copy), or when the engine does not
    /// know it.
    pub source: Option<ArtifactLocation>,
}

impl MirrorRequest {
    /// A copy of the build of `artifact` at `build_commit` to `destination` in `target`.
    pub fn new(
        target: StageTarget,
        artifact: impl Into<String>,
        artifact_type: ArtifactType,
        build_commit: impl Into<String>,
        destination: ArtifactLocation,
    ) -> Self {
        MirrorRequest {
            target,
            artifact: artifact.into(),
            artifact_type,
            build_commit: build_commit.into(),
            destination,
            source: None,
        }
    }

    /// Sets where the artifact comes from.
    pub fn with_source(mut self, source: Option<ArtifactLocation>) -> Self {
        self.source = source;
        self
    }
}

/// One Terraform step in one stage.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
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
    /// Where the Terraform state lives (the plan's naming); empty when the engine does not
    /// know it.
    pub state: TerraformState,
}

/// Where one Terraform step keeps its state: the organization's state bucket, in the CI/CD
/// account's region, at a key of its own (`devramps_core::plan::naming`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TerraformState {
    /// The S3 bucket (`devramps-<org>-terraform-state`).
    pub bucket: String,
    /// The object key (`<pipeline>/<stage>/<step>/terraform.tfstate`).
    pub key: String,
    /// The bucket's region.
    pub region: String,
}

impl TerraformState {
    /// The state at `key` of `bucket` in `region`.
    pub fn new(
        bucket: impl Into<String>,
        key: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        TerraformState {
            bucket: bucket.into(),
            key: key.into(),
            region: region.into(),
        }
    }
}

impl InfraRequest {
    /// Terraform at `source` of `commit` in `target`, with `variables`.
    pub fn new(
        key: ExecutionKey,
        target: StageTarget,
        source: impl Into<String>,
        commit: impl Into<String>,
        variables: FinalValue,
    ) -> Self {
        InfraRequest {
            key,
            target,
            source: source.into(),
            commit: commit.into(),
            variables,
            state: TerraformState::default(),
        }
    }

    /// Sets where the state lives.
    pub fn with_state(mut self, state: TerraformState) -> Self {
        self.state = state;
        self
    }
}

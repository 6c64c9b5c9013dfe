//! The on-call operations of the engine's handle: emergency rollback and roll-forward (L13,
//! L14), alarms (L15), patch mode (L17) and pipeline-update approval (L18). Each is recorded
//! with its actor and reason, or refused with a `refused` record that names the rule and says
//! why; the records are returned.

use super::{Engine, Request};
use crate::error::Result;
use crate::lifecycle::{Actor, AlarmInput, Input, Operate, Person, PipelineDecision, Record};

/// A patch deployment as an embedder submits it (L17).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatchRequest {
    /// The commit to deploy (any revision the source repository resolves, a short SHA too).
    pub commit: String,
    /// Who.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
}

impl PatchRequest {
    /// A patch deployment of `commit` by `actor`, with no reason.
    pub fn new(commit: impl Into<String>, actor: Actor) -> Self {
        PatchRequest {
            commit: commit.into(),
            actor,
            reason: None,
        }
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

impl Engine {
    async fn input(&self, pipeline: &str, input: Input) -> Result<Vec<Record>> {
        self.record(pipeline, input).await
    }

    /// Rolls `op.stage` back to `op.revision`, a revision that succeeded there (L13): what runs
    /// there is cancelled first; the stage and the next get a `ROLLBACK` blocker.
    pub async fn rollback(&self, pipeline: &str, op: Operate) -> Result<Vec<Record>> {
        self.input(pipeline, Input::RollBack(op)).await
    }

    /// Rolls `op.stage` forward to `op.revision`, newer than its current revision and
    /// succeeded in the previous stage (L14).
    pub async fn roll_forward(&self, pipeline: &str, op: Operate) -> Result<Vec<Record>> {
        self.input(pipeline, Input::RollForward(op)).await
    }

    /// Reports a stage's alarm state directly (L15), as the [`AlarmSource`] of the backends
    /// does.
    ///
    /// [`AlarmSource`]: crate::backend::AlarmSource
    pub async fn alarm(&self, pipeline: &str, alarm: AlarmInput) -> Result<Vec<Record>> {
        self.input(pipeline, Input::Alarm(alarm)).await
    }

    /// Deploys a chosen commit as a patch and puts the pipeline in patch mode (L17).
    pub async fn patch(&self, pipeline: &str, patch: PatchRequest) -> Result<Vec<Record>> {
        self.ask(|r| Request::Patch(pipeline.to_owned(), patch, r))
            .await
            .and_then(super::refusal_as_error)
    }

    /// Ends patch mode (L17).
    pub async fn release_patch(&self, pipeline: &str, person: Person) -> Result<Vec<Record>> {
        self.input(pipeline, Input::ReleasePatch(person)).await
    }

    /// Approves a deployment's definition change (L18).
    pub async fn approve_pipeline(
        &self,
        pipeline: &str,
        decision: PipelineDecision,
    ) -> Result<Vec<Record>> {
        self.input(pipeline, Input::ApprovePipeline(decision)).await
    }

    /// Rejects a deployment's definition change: the deployment fails at synthesis (L18).
    pub async fn reject_pipeline(
        &self,
        pipeline: &str,
        decision: PipelineDecision,
    ) -> Result<Vec<Record>> {
        self.input(pipeline, Input::RejectPipeline(decision)).await
    }
}

//! What a pipeline's state says to people who operate it: the steps waiting for a person, and
//! the revision an operation means when none is named. Shared by `devramps status`, the
//! operations of the command line and the HTTP API of `devramps serve`, so they answer alike.

use devramps_core::backend::{ExecutionKey, Unit};
use devramps_core::lifecycle::{Deployment, PipelineState, StageState, StepState};
use serde::Serialize;

/// A step waiting for a person (L16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalReport {
    /// The revision.
    pub revision: u64,
    /// The stage.
    pub stage: String,
    /// The step's id, else name.
    pub step: String,
    /// The step's name.
    pub name: String,
}

/// Every step waiting for a person, by revision, then stage and step in pipeline order.
pub fn waiting_approvals(state: &PipelineState) -> Vec<ApprovalReport> {
    state
        .deployments
        .values()
        .flat_map(deployment_approvals)
        .collect()
}

/// The steps of one deployment waiting for a person, by stage and step in pipeline order
/// (its part of [`waiting_approvals`]).
pub fn deployment_approvals(d: &Deployment) -> Vec<ApprovalReport> {
    let mut out = Vec::new();
    let Some(plan) = d.plan() else {
        return out;
    };
    for run in &d.stages {
        let Some(stage) = plan.stages.iter().find(|s| s.name == run.name) else {
            continue;
        };
        for (step, step_run) in stage.steps.iter().zip(&run.steps) {
            if step_run.state == StepState::WaitingApproval {
                out.push(ApprovalReport {
                    revision: d.revision,
                    stage: run.name.clone(),
                    step: step.key().to_owned(),
                    name: step.name.clone(),
                });
            }
        }
    }
    out
}

/// The revision whose `step` (id or name) waits for a person in `stage`, when exactly one
/// does; otherwise why not.
pub fn waiting_revision(state: &PipelineState, stage: &str, step: &str) -> Result<u64, String> {
    let waiting: Vec<u64> = waiting_approvals(state)
        .into_iter()
        .filter(|a| a.stage == stage && (a.step == step || a.name == step))
        .map(|a| a.revision)
        .collect();
    match waiting.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "no revision has step `{step}` waiting for a person in stage `{stage}`; name the \
             revision"
        )),
        many => Err(format!(
            "several revisions wait at `{step}` in `{stage}`: {many:?}; name one"
        )),
    }
}

/// The revision in progress in `stage` (`retry: false`, for cancel), or the newest that ended
/// `FAILED`, `TIMED_OUT` or `CANCELLED` there (`retry: true`); otherwise why not.
pub fn stage_revision(state: &PipelineState, stage: &str, retry: bool) -> Result<u64, String> {
    let found = state.deployments.values().rev().find(|d| {
        d.stage(stage).is_some_and(|run| {
            if retry {
                matches!(
                    run.state,
                    StageState::Failed | StageState::TimedOut | StageState::Cancelled
                )
            } else {
                run.state.holds_lock()
            }
        })
    });
    found.map(|d| d.revision).ok_or_else(|| {
        let what = if retry {
            "ended FAILED, TIMED_OUT or CANCELLED"
        } else {
            "is in progress"
        };
        format!("no revision {what} in stage `{stage}`; name one")
    })
}

/// Whether `stage` is a stage of the pipeline: one of its deployments has it, or the state
/// keeps a runtime (current revision, blockers) for it.
pub fn has_stage(state: &PipelineState, stage: &str) -> bool {
    state.stages.contains_key(stage) || state.deployments.values().any(|d| d.stage(stage).is_some())
}

/// The key of the newest build of `artifact` that `stage` started (of `revision` when given):
/// what `devramps logs --step build:<artifact>` reads.
pub fn build_execution(
    slug: &str,
    state: &PipelineState,
    stage: &str,
    artifact: &str,
    revision: Option<u64>,
) -> Option<ExecutionKey> {
    state
        .deployments
        .values()
        .rev()
        .filter(|d| revision.is_none_or(|r| r == d.revision))
        .find_map(|d| {
            let run = d.stage(stage)?;
            run.builds.contains_key(artifact).then(|| {
                ExecutionKey::new(slug, d.revision, stage, run.attempt, Unit::build(artifact))
            })
        })
}

/// The execution of `step` (id or name) in `stage`: of `revision`, else of the newest revision
/// that ran it there; with the step's type (whose runner keeps its logs).
pub fn step_execution(
    slug: &str,
    state: &PipelineState,
    stage: &str,
    step: &str,
    revision: Option<u64>,
) -> Option<(ExecutionKey, String)> {
    state
        .deployments
        .values()
        .rev()
        .filter(|d| revision.is_none_or(|r| r == d.revision))
        .find_map(|d| {
            let run = d.stage(stage)?;
            let plan = d.plan()?;
            let planned = plan.stages.iter().find(|s| s.name == stage)?;
            let (i, found) = planned
                .steps
                .iter()
                .enumerate()
                .find(|(_, s)| s.key() == step || s.name == step)?;
            (run.steps.get(i)?.state != StepState::Pending).then(|| {
                let key = ExecutionKey::new(
                    slug,
                    d.revision,
                    stage,
                    run.attempt,
                    Unit::step(found.key()),
                );
                (key, found.step_type.clone())
            })
        })
}

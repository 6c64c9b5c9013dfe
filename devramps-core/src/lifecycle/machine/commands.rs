//! The commands the machine issues, made from the plan and the state in one place: the command
//! issued when work starts and the one [`Machine::pending_work`] rebuilds after a restart are
//! the same value.

use super::*;
use crate::exec::{MirrorRequest, StageArtifact, StageTarget, TerraformState, ValidationRequest};
use crate::expr::{Deferred, ParamValue};
use crate::lifecycle::command::{
    BuildWork, InfraWork, MirrorWork, StepOutputs, StepWork, ValidateWork,
};
use crate::lifecycle::state::{Deployment, StageRun};
use crate::plan::{Plan, StagePlan, naming};

/// What the commands of one stage-deployment are made from.
struct Context<'a> {
    deployment: &'a Deployment,
    plan: &'a Plan,
    stage: &'a StagePlan,
    run: &'a StageRun,
}

impl Context<'_> {
    fn target(&self, slug: &str) -> StageTarget {
        StageTarget::new(
            slug,
            &self.stage.name,
            &self.stage.account_id,
            &self.stage.region,
        )
    }

    /// The outputs of the steps `value` reads (`steps.<step>.<name>`), as far as they exist.
    fn outputs_read(&self, value: &ParamValue) -> StepOutputs {
        let mut out = StepOutputs::new();
        for deferred in value.deferred() {
            let Deferred::Output { step, .. } = deferred else {
                continue;
            };
            if out.contains_key(step) {
                continue;
            }
            let produced = self
                .stage
                .steps
                .iter()
                .zip(&self.run.steps)
                .find(|(plan, _)| plan.key() == step)
                .map(|(_, run)| &run.outputs)
                .filter(|outputs| !outputs.is_empty());
            if let Some(outputs) = produced {
                out.insert(step.clone(), outputs.clone());
            }
        }
        out
    }
}

impl Machine {
    fn context(&self, revision: u64, stage: &str) -> Option<Context<'_>> {
        let deployment = self.state.deployments.get(&revision)?;
        let plan = deployment.plan().map(|p| &**p)?;
        Some(Context {
            deployment,
            plan,
            stage: deployment.plan_stage(stage)?.1,
            run: deployment.stage(stage)?,
        })
    }

    fn key_in(&self, cx: &Context<'_>, unit: Unit) -> ExecutionKey {
        self.key(cx.deployment.revision, &cx.run.name, cx.run.attempt, unit)
    }

    /// The build of `artifact` by `stage` for `revision`.
    pub(super) fn build_command(
        &self,
        revision: u64,
        stage: &str,
        artifact: &str,
    ) -> Option<Command> {
        let cx = self.context(revision, stage)?;
        let a = cx.plan.artifacts.iter().find(|a| a.id == artifact)?;
        let params = if a.per_stage {
            cx.stage.builds.get(artifact).cloned()
        } else {
            a.build_params.clone()
        };
        let destination = if a.per_stage {
            cx.stage.artifacts.get(artifact).cloned()
        } else {
            a.origin.clone()
        };
        Some(Command::Build(BuildWork {
            key: self.key_in(&cx, Unit::build(artifact)),
            artifact: artifact.to_owned(),
            artifact_type: a.artifact_type,
            commit: cx.deployment.commit.clone(),
            params: params.unwrap_or(ParamValue::Null),
            destination: destination.unwrap_or_default(),
        }))
    }

    /// Resource validation of `stage` for `revision`.
    pub(super) fn validate_command(&self, revision: u64, stage: &str) -> Option<Command> {
        let cx = self.context(revision, stage)?;
        let mut request = ValidationRequest::new(cx.target(&self.slug));
        for a in &cx.plan.artifacts {
            let location = cx.stage.artifacts.get(&a.id).cloned().unwrap_or_default();
            request = request.with_artifact(StageArtifact::new(&a.id, a.artifact_type, location));
        }
        for step in cx.stage.steps.iter().filter(|s| !s.skipped) {
            if let StepKind::Terraform { .. } = step.kind {
                request = request.with_terraform_state(self.terraform_state(&cx, step.key()));
            }
        }
        Some(Command::ValidateResources(ValidateWork {
            key: self.key_in(&cx, Unit::Validate),
            request,
        }))
    }

    /// Where the Terraform step `step` of the context's stage keeps its state.
    fn terraform_state(&self, cx: &Context<'_>, step: &str) -> TerraformState {
        let (bucket, region) = &cx.plan.terraform_state;
        let unit = Unit::step(step).to_string();
        TerraformState::new(
            bucket,
            naming::terraform_state_key(&self.slug, &cx.run.name, &unit),
            region,
        )
    }

    /// Mirroring into `stage` for `revision`.
    pub(super) fn mirror_command(&self, revision: u64, stage: &str) -> Option<Command> {
        let cx = self.context(revision, stage)?;
        let target = cx.target(&self.slug);
        let artifacts = cx
            .plan
            .artifacts
            .iter()
            .filter_map(|a| {
                let destination = cx.stage.artifacts.get(&a.id)?.clone();
                Some(
                    MirrorRequest::new(
                        target.clone(),
                        &a.id,
                        a.artifact_type,
                        &a.build_commit,
                        destination,
                    )
                    .with_source(a.origin.clone()),
                )
            })
            .collect();
        Some(Command::Mirror(MirrorWork {
            key: self.key_in(&cx, Unit::Mirror),
            artifacts,
        }))
    }

    /// The work of step `index` of `stage` for `revision`: a Terraform plan (an apply once
    /// `approved`), or a run by the step runners. Bakes have no work.
    pub(super) fn step_command(
        &self,
        revision: u64,
        stage: &str,
        index: usize,
        approved: bool,
    ) -> Option<Command> {
        let cx = self.context(revision, stage)?;
        let step = cx.stage.steps.get(index)?;
        let key = self.key_in(&cx, Unit::step(step.key()));
        match &step.kind {
            StepKind::Bake { .. } => None,
            StepKind::Terraform { source, .. } => {
                let variables = step
                    .params
                    .get("variables")
                    .cloned()
                    .unwrap_or_else(|| ParamValue::Map(Default::default()));
                let state = self.terraform_state(&cx, step.key());
                let work = InfraWork {
                    state,
                    key,
                    target: cx.target(&self.slug),
                    source: source.clone(),
                    commit: cx.deployment.commit.clone(),
                    outputs: cx.outputs_read(&variables),
                    variables,
                };
                Some(if approved {
                    Command::ApplyInfra(work)
                } else {
                    Command::PlanInfra(work)
                })
            }
            kind => Some(Command::RunStep(StepWork {
                key,
                step_type: step.step_type.clone(),
                kind: kind.clone(),
                params: step.params.clone(),
                outputs: cx.outputs_read(&step.params),
                approved,
                commit: cx.deployment.commit.clone(),
                target: cx.target(&self.slug),
                polling: cx.run.steps.get(index).and_then(|s| s.polling.clone()),
            })),
        }
    }
}

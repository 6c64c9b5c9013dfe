//! Moving a running stage-deployment through its phases (L4): entering each phase or
//! recording it skipped, and the build phase (which artifacts a stage builds, and reuses).

use super::*;

/// One stage's plan, sharing the deployment's plan rather than copying the stage's steps.
pub(super) struct PlannedStage {
    plan: std::sync::Arc<crate::plan::Plan>,
    at: usize,
}

impl std::ops::Deref for PlannedStage {
    type Target = crate::plan::StagePlan;

    fn deref(&self) -> &crate::plan::StagePlan {
        &self.plan.stages[self.at]
    }
}

impl Run<'_> {
    /// The plan of `stage` in `revision`'s deployment and its position in the plan, shared
    /// with the deployment (the caller may change the state while it holds it).
    pub(super) fn plan_stage(&self, revision: u64, stage: &str) -> Option<(usize, PlannedStage)> {
        let deployment = self.state().deployments.get(&revision)?;
        let (at, _) = deployment.plan_stage(stage)?;
        let plan = std::sync::Arc::clone(deployment.plan()?);
        Some((at, PlannedStage { plan, at }))
    }

    /// The outputs that infrastructure step `step` (its key) gave in `stage` when it last
    /// succeeded there, in whichever revision: the stage's standing infrastructure, which a
    /// rollback leaves as it is (L13). Empty when it never gave any.
    fn standing_outputs(&self, stage: &str, step: &str) -> BTreeMap<String, serde_json::Value> {
        self.state()
            .deployments
            .values()
            .rev()
            .find_map(|deployment| {
                let run = deployment.stages.iter().find(|r| r.name == stage)?;
                let gave = |s: &crate::lifecycle::StepRun| {
                    s.state == StepState::Succeeded && !s.outputs.is_empty()
                };
                if !run.steps.iter().any(gave) {
                    return None;
                }
                let step = run.steps.get(deployment.plan_step(stage, step)?)?;
                gave(step).then(|| step.outputs.clone())
            })
            .unwrap_or_default()
    }

    pub(super) fn key_of(&self, revision: u64, stage: &str, unit: Unit) -> ExecutionKey {
        let attempt = self.state().run(revision, stage).map_or(1, |r| r.attempt);
        self.machine.key(revision, stage, attempt, unit)
    }

    /// Moves a running stage-deployment on as far as it can go now.
    pub(super) fn progress(&mut self, revision: u64, stage: &str) {
        let Some(run) = self
            .state()
            .run(revision, stage)
            .map(crate::lifecycle::StageRun::without_steps)
        else {
            return;
        };
        if run.state == StageState::Cancelling {
            self.finish_cancel(revision, stage);
            return;
        }
        if !run.state.holds_lock() {
            return;
        }
        match run.phase {
            None => self.enter(revision, stage, Phase::Build),
            Some(Phase::Build) => self.progress_builds(revision, stage),
            Some(Phase::ResourceValidation | Phase::Mirroring) => {}
            Some(phase @ (Phase::Infrastructure | Phase::Steps)) => {
                self.progress_steps(revision, stage, phase)
            }
        }
    }

    /// Starts `phase`, or records it skipped and moves to the next when it has nothing to do.
    pub(super) fn enter(&mut self, revision: u64, stage: &str, phase: Phase) {
        // A rollback neither builds nor synthesizes infrastructure (L13).
        let rollback =
            self.state().run(revision, stage).map(|r| r.state) == Some(StageState::RollingBack);
        let empty = match phase {
            Phase::Build | Phase::Infrastructure if rollback => true,
            Phase::Build => self.needed_builds(revision, stage).is_empty(),
            Phase::ResourceValidation | Phase::Mirroring => false,
            Phase::Infrastructure | Phase::Steps => {
                self.phase_steps(revision, stage, phase).is_empty()
            }
        };
        self.emit(
            Actor::System,
            Event::PhaseStarted {
                revision,
                stage: stage.to_owned(),
                phase,
                skipped: empty,
            },
        );
        if phase == Phase::Build && self.is_first_stage(revision, stage) {
            self.record_reuses(revision);
        }
        if phase == Phase::Steps {
            self.record_skip_list(revision, stage);
        }
        if rollback && phase == Phase::Infrastructure {
            let Some((_, plan)) = self.plan_stage(revision, stage) else {
                return;
            };
            for i in self.phase_steps(revision, stage, Phase::Infrastructure) {
                let step = plan.steps[i].key();
                // The infrastructure stays as it is: the skipped step gives the outputs of its
                // stage's standing infrastructure, for the steps that read them.
                let outputs = self.standing_outputs(stage, step);
                self.set_step_with(
                    revision,
                    stage,
                    step,
                    StepTrigger::SkipInRollback,
                    Some("a rollback skips infrastructure synthesis (L13)".into()),
                    outputs,
                );
            }
        }
        if empty {
            match phase.next() {
                Some(next) => self.enter(revision, stage, next),
                None => self.succeed(revision, stage),
            }
            return;
        }
        match phase {
            Phase::ResourceValidation => {
                let command = self.machine.validate_command(revision, stage);
                self.issue(command);
            }
            Phase::Mirroring => {
                let command = self.machine.mirror_command(revision, stage);
                self.issue(command);
            }
            _ => {}
        }
    }

    /// *Step Skipped* for every step the stage's `skip` list names, as its deployment steps
    /// begin. Those steps are `SKIPPED` from the stage's start; this records why.
    fn record_skip_list(&mut self, revision: u64, stage: &str) {
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return;
        };
        // Not a change of state (they start `SKIPPED`, outside the step table): a record of
        // why, as DevRamps emits *Step Skipped*.
        let skipped: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| s.skipped)
            .map(|s| s.key().to_owned())
            .collect();
        for step in skipped {
            self.emit(
                Actor::System,
                Event::StepState {
                    revision,
                    stage: stage.to_owned(),
                    step,
                    state: StepState::Skipped,
                    outputs: BTreeMap::new(),
                    reason: Some(format!("in the `skip` list of stage `{stage}`")),
                },
            );
        }
    }

    fn is_first_stage(&self, revision: u64, stage: &str) -> bool {
        self.state()
            .deployments
            .get(&revision)
            .and_then(|d| d.stages.first())
            .is_some_and(|s| s.name == stage)
    }

    /// `build_reused` for every shared artifact the first stage does not build (once).
    fn record_reuses(&mut self, revision: u64) {
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return;
        };
        let Some(plan) = deployment.plan().cloned() else {
            return;
        };
        if deployment.stages.first().is_some_and(|s| s.attempt > 1) {
            return;
        }
        for artifact in plan
            .artifacts
            .iter()
            .filter(|a| !a.per_stage && a.decision == Decision::Reuse)
        {
            self.emit(
                Actor::System,
                Event::BuildReused {
                    revision,
                    artifact: artifact.id.clone(),
                    commit: artifact.build_commit.clone(),
                },
            );
        }
    }

    /// The artifacts `stage` builds for `revision` (L4): shared ones to rebuild in the first
    /// stage, per-stage ones to rebuild in every stage, minus those a previous attempt built.
    fn needed_builds(&self, revision: u64, stage: &str) -> Vec<(String, Option<String>)> {
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return Vec::new();
        };
        let Some(plan) = deployment.plan() else {
            return Vec::new();
        };
        let first = self.is_first_stage(revision, stage);
        // A per-stage artifact is decided in each stage: this one may reuse its own last build.
        let reused = plan
            .stages
            .iter()
            .find(|s| s.name == stage)
            .map(|s| &s.reused);
        let rebuilt_here = |a: &&crate::plan::ArtifactPlan| {
            if a.per_stage {
                !reused.is_some_and(|r| r.contains_key(&a.id))
            } else {
                a.decision == Decision::Rebuild && first
            }
        };
        plan.artifacts
            .iter()
            .filter(rebuilt_here)
            .map(|a| (a.id.clone(), a.per_stage.then(|| stage.to_owned())))
            .filter(|(id, at)| {
                self.state().builds.get(&(id.clone(), at.clone())) != Some(&deployment.commit)
            })
            .collect()
    }

    fn progress_builds(&mut self, revision: u64, stage: &str) {
        let needed = self.needed_builds(revision, stage);
        let Some(run) = self.state().run(revision, stage).cloned() else {
            return;
        };
        let mut running = false;
        let mut failed = false;
        for (artifact, at) in &needed {
            match run.builds.get(artifact) {
                None => {
                    self.emit(
                        Actor::System,
                        Event::BuildStarted {
                            revision,
                            artifact: artifact.clone(),
                            stage: at.clone(),
                        },
                    );
                    let command = self.machine.build_command(revision, stage, artifact);
                    self.issue(command);
                    running = true;
                }
                Some(StepState::Running) => running = true,
                Some(StepState::Failed) => failed = true,
                Some(_) => {}
            }
        }
        if running {
            return;
        }
        if failed {
            self.fail(revision, stage, Trigger::Fail, "an artifact build failed");
            return;
        }
        self.enter(revision, stage, Phase::ResourceValidation);
    }

    /// The steps of `phase`: Terraform steps form the infrastructure phase, the others the steps
    /// phase (skipped steps excluded).
    pub(super) fn phase_steps(&self, revision: u64, stage: &str, phase: Phase) -> Vec<usize> {
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return Vec::new();
        };
        plan.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !s.skipped && (s.kind.is_terraform() == (phase == Phase::Infrastructure))
            })
            .map(|(i, _)| i)
            .collect()
    }
}

//! Driving a running stage-deployment through its phases, and the operations on it.

use super::*;

/// Where a stage-deployment's steps stand.
struct StepsView {
    /// Some step ended badly (failed, timed out or cancelled).
    failed: bool,
    /// Some step timed out.
    timed_out: bool,
    /// Some step is running or waiting for a person.
    active: bool,
}

impl Run<'_> {
    fn plan_stage(&self, revision: u64, stage: &str) -> Option<(usize, crate::plan::StagePlan)> {
        let deployment = self.state().deployments.get(&revision)?;
        let plan = deployment.plan()?;
        let index = plan.stages.iter().position(|s| s.name == stage)?;
        Some((index, plan.stages[index].clone()))
    }

    fn key_of(&self, revision: u64, stage: &str, unit: Unit) -> ExecutionKey {
        let attempt = self.state().run(revision, stage).map_or(1, |r| r.attempt);
        self.machine.key(revision, stage, attempt, unit)
    }

    /// Moves a running stage-deployment on as far as it can go now.
    pub(super) fn progress(&mut self, revision: u64, stage: &str) {
        let Some(run) = self.state().run(revision, stage).cloned() else {
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
    fn enter(&mut self, revision: u64, stage: &str, phase: Phase) {
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
                self.set_step(
                    revision,
                    stage,
                    plan.steps[i].key(),
                    StepTrigger::SkipInRollback,
                    Some("a rollback skips infrastructure synthesis (L13)".into()),
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
    fn phase_steps(&self, revision: u64, stage: &str, phase: Phase) -> Vec<usize> {
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

    fn steps_view(&self, revision: u64, stage: &str) -> StepsView {
        let steps = self
            .state()
            .run(revision, stage)
            .map(|r| r.steps.clone())
            .unwrap_or_default();
        StepsView {
            failed: steps.iter().any(|s| {
                matches!(
                    s.state,
                    StepState::Failed | StepState::TimedOut | StepState::Cancelled
                )
            }),
            timed_out: steps.iter().any(|s| s.state == StepState::TimedOut),
            active: steps.iter().any(|s| s.state.is_active()),
        }
    }

    /// Moves a step along the edge `trigger` of the step table ([`next_step_state`]).
    fn set_step(
        &mut self,
        revision: u64,
        stage: &str,
        step: &str,
        trigger: StepTrigger,
        reason: Option<String>,
    ) {
        self.set_step_with(revision, stage, step, trigger, reason, BTreeMap::new());
    }

    fn set_step_with(
        &mut self,
        revision: u64,
        stage: &str,
        step: &str,
        trigger: StepTrigger,
        reason: Option<String>,
        outputs: BTreeMap<String, serde_json::Value>,
    ) {
        let Some(from) = self.step_state(revision, stage, step) else {
            return;
        };
        let Some(state) = next_step_state(from, trigger) else {
            debug_assert!(false, "no step transition from {from:?} on {trigger:?}");
            return;
        };
        self.emit(
            Actor::System,
            Event::StepState {
                revision,
                stage: stage.to_owned(),
                step: step.to_owned(),
                state,
                outputs,
                reason,
            },
        );
    }

    /// The state of `step` (its key) in the current attempt of a stage-deployment.
    fn step_state(&self, revision: u64, stage: &str, step: &str) -> Option<StepState> {
        let deployment = self.state().deployments.get(&revision)?;
        let plan = deployment.plan()?.stages.iter().find(|s| s.name == stage)?;
        let index = plan.steps.iter().position(|s| s.key() == step)?;
        let run = self.state().run(revision, stage)?;
        run.steps.get(index).map(|s| s.state)
    }

    fn progress_steps(&mut self, revision: u64, stage: &str, phase: Phase) {
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return;
        };
        let Some(run) = self.state().run(revision, stage).cloned() else {
            return;
        };
        // Timers due now: bakes end, steps time out (L10).
        for (i, (step, s)) in plan.steps.iter().zip(&run.steps).enumerate() {
            if s.state != StepState::Running {
                continue;
            }
            let Some(deadline) = step_deadline(step, s.started_at) else {
                continue;
            };
            if deadline > self.now {
                continue;
            }
            if step.kind.is_bake() {
                self.set_step(
                    revision,
                    stage,
                    step.key(),
                    StepTrigger::BakeElapsed,
                    Some("bake time elapsed".into()),
                );
            } else {
                let minutes = step.timeout_minutes.unwrap_or_default();
                self.set_step(
                    revision,
                    stage,
                    step.key(),
                    StepTrigger::TimeOut,
                    Some(format!("exceeded its {minutes}-minute timeout")),
                );
                let key = self.key_of(revision, stage, Unit::step(step.key()));
                self.command(Command::Cancel { key });
            }
            let _ = i;
        }
        let view = self.steps_view(revision, stage);
        if view.failed {
            if view.active {
                return;
            }
            let trigger = if view.timed_out {
                Trigger::TimeOut
            } else {
                Trigger::Fail
            };
            self.fail(
                revision,
                stage,
                trigger,
                if view.timed_out {
                    "a step timed out"
                } else {
                    "a step failed"
                },
            );
            return;
        }
        let run = match self.state().run(revision, stage) {
            Some(r) => r.clone(),
            None => return,
        };
        let members = self.phase_steps(revision, stage, phase);
        for &i in &members {
            if run.steps[i].state != StepState::Pending {
                continue;
            }
            let ready = plan.steps[i].predecessors.iter().all(|&p| {
                matches!(
                    run.steps[p].state,
                    StepState::Succeeded | StepState::Skipped
                ) || (phase == Phase::Infrastructure && !plan.steps[p].kind.is_terraform())
            });
            if ready {
                self.start_step(revision, stage, i, &plan.steps[i]);
            }
        }
        let run = match self.state().run(revision, stage) {
            Some(r) => r.clone(),
            None => return,
        };
        if members.iter().all(|&i| run.steps[i].state.is_terminal()) {
            match phase.next() {
                Some(next) => self.enter(revision, stage, next),
                None => self.succeed(revision, stage),
            }
        }
    }

    fn start_step(&mut self, revision: u64, stage: &str, index: usize, step: &StepPlan) {
        self.set_step(revision, stage, step.key(), StepTrigger::Start, None);
        if step.kind.is_bake() {
            return;
        }
        let command = self.machine.step_command(revision, stage, index, false);
        self.issue(command);
    }

    fn succeed(&mut self, revision: u64, stage: &str) {
        let from = self.state().run(revision, stage).map(|r| r.state);
        self.set_stage(
            Actor::System,
            revision,
            stage,
            Trigger::Succeed,
            StageDetail::default(),
        );
        // A rollback promotes nothing (L13); a roll-forward promotes as usual (L14), unless the
        // revision was in the next stage before.
        if from == Some(StageState::RollingBack) {
            return;
        }
        let next = self.state().deployments.get(&revision).and_then(|d| {
            d.stages
                .iter()
                .skip_while(|s| s.name != stage)
                .nth(1)
                .filter(|s| s.state == StageState::NotStarted)
                .map(|s| s.name.clone())
        });
        if let Some(next) = next {
            self.join_queue(revision, &next);
        }
    }

    /// Ends a stage-deployment badly: remaining steps skipped, later stages never (L10).
    fn fail(&mut self, revision: u64, stage: &str, trigger: Trigger, reason: &str) {
        let from = self.state().run(revision, stage).map(|r| r.state);
        // An emergency ends `FAILED` whatever went wrong (L13, L14).
        let emergency = matches!(
            from,
            Some(StageState::RollingBack | StageState::RollingForward)
        );
        let trigger = if emergency { Trigger::Fail } else { trigger };
        self.skip_pending(revision, stage, StepTrigger::SkipAfterFailure);
        self.set_stage(
            Actor::System,
            revision,
            stage,
            trigger,
            StageDetail::reason(reason),
        );
        // A failed rollback leaves the old revision's later stages as they were.
        if from != Some(StageState::RollingBack) {
            self.abandon_after(revision, stage, &format!("stage `{stage}` did not succeed"));
        }
    }

    /// Skips the steps not started, for `why` (one of the `Skip*` triggers).
    fn skip_pending(&mut self, revision: u64, stage: &str, why: StepTrigger) {
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return;
        };
        let Some(run) = self.state().run(revision, stage).cloned() else {
            return;
        };
        for (step, s) in plan.steps.iter().zip(&run.steps) {
            if s.state == StepState::Pending {
                self.set_step(revision, stage, step.key(), why, None);
            }
        }
    }

    // ----- work results -----

    pub(super) fn work(&mut self, key: &ExecutionKey, result: WorkResult) {
        let (revision, stage) = (key.revision, key.stage.as_str());
        let Some(run) = self.state().run(revision, stage).cloned() else {
            return;
        };
        if key.attempt != run.attempt || !run.state.holds_lock() {
            return; // A result of an older attempt, or after the stage ended: nothing to do.
        }
        let cancelling = run.state == StageState::Cancelling;
        if let Unit::Build { artifact } = &key.unit {
            let artifact = artifact.as_str();
            if run.builds.get(artifact) != Some(&StepState::Running) {
                return;
            }
            let (succeeded, reason) = match result {
                WorkResult::Done(Outcome::Succeeded { .. }) => (true, None),
                WorkResult::Done(Outcome::Failed { reason }) => (false, Some(reason)),
                other => (false, Some(format!("unexpected build result {other:?}"))),
            };
            let at = self
                .plan_stage(revision, stage)
                .and_then(|_| self.state().deployments.get(&revision))
                .and_then(|d| d.plan())
                .and_then(|p| p.artifacts.iter().find(|a| a.id == artifact))
                .and_then(|a| a.per_stage.then(|| stage.to_owned()));
            self.emit(
                Actor::System,
                Event::BuildFinished {
                    revision,
                    artifact: artifact.to_owned(),
                    stage: at,
                    succeeded,
                    reason,
                },
            );
            return;
        }
        match (&key.unit, run.phase) {
            (Unit::Validate, Some(Phase::ResourceValidation))
            | (Unit::Mirror, Some(Phase::Mirroring)) => {
                if cancelling {
                    return;
                }
                match result {
                    WorkResult::Done(Outcome::Succeeded { .. }) => {
                        let next = run.phase.and_then(Phase::next).unwrap_or(Phase::Steps);
                        self.enter(revision, stage, next);
                    }
                    WorkResult::Done(Outcome::Failed { reason }) => {
                        let what = if key.unit == Unit::Validate {
                            "resource validation"
                        } else {
                            "artifact mirroring"
                        };
                        self.fail(
                            revision,
                            stage,
                            Trigger::Fail,
                            &format!("{what} failed: {reason}"),
                        );
                    }
                    _ => {}
                }
                return;
            }
            _ => {}
        }
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return;
        };
        let Some(step_key) = key.unit.step_key() else {
            return;
        };
        let Some(index) = plan.steps.iter().position(|s| s.key() == step_key) else {
            return;
        };
        let step = &plan.steps[index];
        if run.steps[index].state != StepState::Running {
            return;
        }
        let name = step.key().to_owned();
        match result {
            WorkResult::Planned(infra) => {
                if cancelling {
                    return;
                }
                let policy = approval_policy(step);
                if infra.needs_approval(policy) {
                    let reason = format!(
                        "Terraform plan: {} to create, {} to update, {} to destroy ({policy})",
                        infra.create, infra.update, infra.delete
                    );
                    self.wait_for_approval(revision, stage, name, Some(reason));
                } else {
                    let command = self.machine.step_command(revision, stage, index, true);
                    self.issue(command);
                }
            }
            WorkResult::Done(Outcome::Succeeded { outputs }) => {
                let trigger = if cancelling {
                    StepTrigger::Cancel
                } else {
                    StepTrigger::Succeed
                };
                self.set_step_with(revision, stage, &name, trigger, None, outputs);
            }
            WorkResult::Done(Outcome::Failed { reason }) => {
                if cancelling {
                    self.set_step(revision, stage, &name, StepTrigger::Cancel, Some(reason));
                } else if step.kind.is_test_gate() {
                    // A failed test gate waits for a person: approve to continue, reject to fail (L16).
                    let reason = format!("tests failed: {reason}");
                    self.wait_for_approval(revision, stage, name, Some(reason));
                } else {
                    self.set_step(revision, stage, &name, StepTrigger::Fail, Some(reason));
                }
            }
            WorkResult::Done(Outcome::ApprovalRequired { context }) => {
                if cancelling {
                    self.set_step(revision, stage, &name, StepTrigger::Cancel, None);
                    return;
                }
                self.wait_for_approval(revision, stage, name, context);
            }
        }
    }

    /// A step waits for a person (L16): its state changes and `approval_required` is recorded.
    fn wait_for_approval(
        &mut self,
        revision: u64,
        stage: &str,
        step: String,
        reason: Option<String>,
    ) {
        self.set_step(
            revision,
            stage,
            &step,
            StepTrigger::AskApproval,
            reason.clone(),
        );
        self.emit(
            Actor::System,
            Event::ApprovalRequired {
                revision,
                stage: stage.to_owned(),
                step,
                reason,
            },
        );
    }

    // ----- people (L11, L12, L16) -----

    pub(super) fn decide(&mut self, d: Decide, approve: bool) {
        let operation = if approve { "approve" } else { "reject" };
        let found = self.plan_stage(d.revision, &d.stage).and_then(|(_, plan)| {
            plan.steps
                .iter()
                .position(|s| s.name == d.step || s.id.as_deref() == Some(d.step.as_str()))
                .map(|i| (i, plan.steps[i].clone()))
        });
        let run = self.state().run(d.revision, &d.stage).cloned();
        let (Some((index, step)), Some(run)) = (found, run) else {
            return self.refuse(
                &d.actor,
                operation,
                "L16",
                format!(
                    "revision {} has no step `{}` in stage `{}`",
                    d.revision, d.step, d.stage
                ),
            );
        };
        let state = run.steps.get(index).map(|s| s.state);
        let waiting = state == Some(StepState::WaitingApproval);
        let baking = state == Some(StepState::Running) && step.kind.is_bake();
        let running = run.state.holds_lock() && run.state != StageState::Cancelling;
        if !running || !(waiting || baking) {
            return self.refuse(
                &d.actor,
                operation,
                "L16",
                format!(
                    "step `{}` of revision {} in `{}` is not waiting for a person",
                    d.step, d.revision, d.stage
                ),
            );
        }
        let key = step.key().to_owned();
        let event = if approve {
            Event::Approved {
                revision: d.revision,
                stage: d.stage.clone(),
                step: key.clone(),
                reason: d.comment.clone(),
            }
        } else {
            Event::Rejected {
                revision: d.revision,
                stage: d.stage.clone(),
                step: key.clone(),
                reason: d.comment.clone(),
            }
        };
        self.emit(d.actor.clone(), event);
        if !approve {
            let reason = format!("rejected by {}", d.actor);
            self.set_step(
                d.revision,
                &d.stage,
                &key,
                StepTrigger::Reject,
                Some(reason),
            );
            return;
        }
        if baking || step.kind.is_test_gate() {
            self.set_step(
                d.revision,
                &d.stage,
                &key,
                StepTrigger::Pass,
                Some(format!("approved by {}", d.actor)),
            );
            return;
        }
        self.set_step(
            d.revision,
            &d.stage,
            &key,
            StepTrigger::Approve,
            Some(format!("approved by {}", d.actor)),
        );
        let command = self.machine.step_command(d.revision, &d.stage, index, true);
        self.issue(command);
    }

    /// Records that an operation was refused, naming the rule and why.
    pub(super) fn refuse(&mut self, actor: &Actor, operation: &str, rule: &str, reason: String) {
        let event = Event::Refused {
            operation: operation.to_owned(),
            rule: rule.to_owned(),
            reason,
        };
        self.emit(actor.clone(), event);
    }

    pub(super) fn retry(&mut self, op: Operate) {
        let Some(run) = self.state().run(op.revision, &op.stage).cloned() else {
            return self.refuse(
                &op.actor,
                "retry",
                "L11",
                format!("revision {} has no stage `{}`", op.revision, op.stage),
            );
        };
        if !matches!(
            run.state,
            StageState::Failed | StageState::TimedOut | StageState::Cancelled
        ) {
            return self.refuse(&op.actor,
                "retry",
                "L11",
                format!(
                    "revision {} is {} in `{}`; only FAILED, TIMED_OUT or CANCELLED stage-deployments can be retried",
                    op.revision, run.state, op.stage
                ));
        }
        let runtime = self.state().stage(&op.stage);
        let newer = self
            .state()
            .deployments
            .range(op.revision + 1..)
            .find_map(|(r, d)| {
                let s = d.stage(&op.stage)?;
                (s.attempt > 0 || runtime.queued == Some(*r)).then_some(*r)
            });
        if let Some(newer) = newer {
            let how = if runtime.queued == Some(newer) {
                "is queued"
            } else {
                "has started"
            };
            return self.refuse(
                &op.actor,
                "retry",
                "L11",
                format!("revision {newer} {how} in {}", op.stage),
            );
        }
        if let Some(blocker) = runtime.blockers.iter().next() {
            return self.refuse(
                &op.actor,
                "retry",
                "L9",
                format!(
                    "stage `{}` is blocked by {blocker}; remove the blocker first",
                    op.stage
                ),
            );
        }
        if let Some((kind, target)) = runtime.emergency {
            return self.refuse(
                &op.actor,
                "retry",
                "L11",
                format!(
                    "a {kind} of `{}` to revision {target} is waiting to start",
                    op.stage
                ),
            );
        }
        if let Some(holder) = runtime.running {
            return self.refuse(
                &op.actor,
                "retry",
                "L11",
                format!(
                    "revision {holder} holds the stage `{}`; retry when it ends",
                    op.stage
                ),
            );
        }
        let detail = StageDetail::reason(format!(
            "retried by {}{}",
            op.actor,
            op.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ));
        self.set_stage(
            op.actor.clone(),
            op.revision,
            &op.stage,
            Trigger::Retry,
            detail,
        );
    }

    pub(super) fn cancel(&mut self, op: Operate) {
        let Some(run) = self.state().run(op.revision, &op.stage).cloned() else {
            return self.refuse(
                &op.actor,
                "cancel",
                "L12",
                format!("revision {} has no stage `{}`", op.revision, op.stage),
            );
        };
        let reason = format!(
            "cancelled by {}{}",
            op.actor,
            op.reason
                .clone()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        let queued = self.state().stage(&op.stage).queued == Some(op.revision);
        if run.state == StageState::NotStarted && queued {
            self.set_stage(
                op.actor.clone(),
                op.revision,
                &op.stage,
                Trigger::CancelQueued,
                StageDetail::reason(reason.clone()),
            );
            self.abandon_after(op.revision, &op.stage, &reason);
            return;
        }
        if !run.state.holds_lock() || run.state == StageState::Cancelling {
            return self.refuse(&op.actor,
                "cancel",
                "L12",
                format!(
                    "revision {} is {} in `{}`; only running or queued stage-deployments can be cancelled",
                    op.revision, run.state, op.stage
                ));
        }
        self.request_cancel(op.revision, &op.stage, op.actor, reason);
    }

    /// Moves a running stage-deployment to `CANCELLING` and tells its running work to stop
    /// (L12).
    pub(super) fn request_cancel(
        &mut self,
        revision: u64,
        stage: &str,
        actor: Actor,
        reason: String,
    ) {
        let op = Operate {
            revision,
            stage: stage.to_owned(),
            actor,
            reason: None,
        };
        self.set_stage(
            op.actor.clone(),
            op.revision,
            &op.stage,
            Trigger::RequestCancel,
            StageDetail::reason(reason),
        );
        let Some((_, plan)) = self.plan_stage(op.revision, &op.stage) else {
            return;
        };
        let Some(run) = self.state().run(op.revision, &op.stage).cloned() else {
            return;
        };
        for (artifact, state) in &run.builds {
            if *state == StepState::Running {
                let key = self.key_of(op.revision, &op.stage, Unit::build(artifact));
                self.command(Command::Cancel { key });
            }
        }
        if matches!(
            run.phase,
            Some(Phase::ResourceValidation | Phase::Mirroring)
        ) {
            let unit = if run.phase == Some(Phase::Mirroring) {
                Unit::Mirror
            } else {
                Unit::Validate
            };
            let key = self.key_of(op.revision, &op.stage, unit);
            self.command(Command::Cancel { key });
        }
        for (step, s) in plan.steps.iter().zip(&run.steps) {
            match s.state {
                StepState::Running if step.kind.is_bake() => {
                    self.set_step(
                        op.revision,
                        &op.stage,
                        step.key(),
                        StepTrigger::Cancel,
                        None,
                    );
                }
                StepState::Running => {
                    let key = self.key_of(op.revision, &op.stage, Unit::step(step.key()));
                    self.command(Command::Cancel { key });
                }
                StepState::WaitingApproval => {
                    self.set_step(
                        op.revision,
                        &op.stage,
                        step.key(),
                        StepTrigger::Cancel,
                        None,
                    );
                }
                _ => {}
            }
        }
    }

    /// A cancelling stage-deployment ends once nothing runs any more (L12).
    fn finish_cancel(&mut self, revision: u64, stage: &str) {
        let Some(run) = self.state().run(revision, stage).cloned() else {
            return;
        };
        let builds_running = run.builds.values().any(|s| *s == StepState::Running);
        let steps_running = run.steps.iter().any(|s| s.state.is_active());
        if builds_running || steps_running {
            return;
        }
        self.skip_pending(revision, stage, StepTrigger::SkipAfterCancel);
        self.set_stage(
            Actor::System,
            revision,
            stage,
            Trigger::CancelDone,
            StageDetail::default(),
        );
        self.abandon_after(revision, stage, &format!("cancelled in stage `{stage}`"));
    }

    /// Stop and resume promotions, unblock after rollback, bypass (L9).
    pub(super) fn control(&mut self, c: Control) {
        use crate::lifecycle::Blocker;
        let operation = match c.action {
            ControlAction::StopPromotions => "stop_promotions",
            ControlAction::ResumePromotions => "resume_promotions",
            ControlAction::Unblock => "unblock",
            ControlAction::Bypass { .. } => "bypass",
        };
        // Promotions may be stopped before the first deployment (L9): no stage is known yet,
        // and the blocker holds from that deployment on.
        let before_first = self.state().stage_order.is_empty();
        let freeze_ahead = before_first && c.action == ControlAction::StopPromotions;
        if !self.state().stages.contains_key(&c.stage) && !freeze_ahead {
            return self.refuse(
                &c.actor,
                operation,
                "L9",
                format!("no deployment of this pipeline has a stage `{}`", c.stage),
            );
        }
        let runtime = self.state().stage(&c.stage);
        let (add, remove) = match c.action {
            ControlAction::StopPromotions => (Some(Blocker::StopPromotions), None),
            ControlAction::ResumePromotions => (None, Some(Blocker::StopPromotions)),
            ControlAction::Unblock => (None, Some(Blocker::Rollback)),
            ControlAction::Bypass { revision } => {
                if runtime.queued != Some(revision) {
                    let why = format!(
                        "revision {revision} is not waiting in the queue of `{}`",
                        c.stage
                    );
                    return self.refuse(&c.actor, operation, "L9", why);
                }
                let event = Event::Bypassed {
                    stage: c.stage.clone(),
                    revision,
                    reason: c.reason.clone(),
                };
                return self.emit(c.actor.clone(), event);
            }
        };
        if let Some(blocker) = add {
            if runtime.blockers.contains(&blocker) {
                return self.refuse(
                    &c.actor,
                    operation,
                    "L9",
                    format!("promotions to `{}` are already stopped", c.stage),
                );
            }
            let event = Event::BlockerAdded {
                stage: c.stage.clone(),
                blocker,
                reason: c.reason.clone(),
            };
            return self.emit(c.actor.clone(), event);
        }
        if let Some(blocker) = remove {
            if !runtime.blockers.contains(&blocker) {
                let what = blocker.as_str();
                return self.refuse(
                    &c.actor,
                    operation,
                    "L9",
                    format!("stage `{}` has no {what} blocker", c.stage),
                );
            }
            let event = Event::BlockerRemoved {
                stage: c.stage.clone(),
                blocker,
                reason: c.reason.clone(),
            };
            self.emit(c.actor.clone(), event);
        }
    }
}

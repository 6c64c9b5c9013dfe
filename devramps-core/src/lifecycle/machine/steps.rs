//! The step phases (infrastructure, then deployment steps): starting steps whose
//! predecessors are done, bakes ending and steps timing out (L10), moving a step along the
//! step table, and how a stage-deployment ends (succeeded, or failed with its pending steps
//! skipped).

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
    fn steps_view(&self, revision: u64, stage: &str) -> StepsView {
        let steps = self
            .state()
            .run(revision, stage)
            .map_or(&[][..], |r| &r.steps);
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
    pub(super) fn set_step(
        &mut self,
        revision: u64,
        stage: &str,
        step: &str,
        trigger: StepTrigger,
        reason: Option<String>,
    ) {
        self.set_step_with(revision, stage, step, trigger, reason, BTreeMap::new());
    }

    pub(super) fn set_step_with(
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
        let index = deployment.plan_step(stage, step)?;
        let run = deployment.stage(stage)?;
        run.steps.get(index).map(|s| s.state)
    }

    pub(super) fn progress_steps(&mut self, revision: u64, stage: &str, phase: Phase) {
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return;
        };
        let Some(run) = self.state().run(revision, stage) else {
            return;
        };
        // Timers due now: bakes end, steps time out (L10).
        let due: Vec<usize> = plan
            .steps
            .iter()
            .zip(&run.steps)
            .enumerate()
            .filter(|(_, (step, s))| {
                s.state == StepState::Running
                    && step_deadline(step, s.started_at).is_some_and(|d| d <= self.now)
            })
            .map(|(i, _)| i)
            .collect();
        for i in due {
            let step = &plan.steps[i];
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
        // The step states as the round starts (a step started in it is not yet done, so its
        // successors wait either way).
        let states: Vec<StepState> = match self.state().run(revision, stage) {
            Some(r) => r.steps.iter().map(|s| s.state).collect(),
            None => return,
        };
        let members = self.phase_steps(revision, stage, phase);
        for &i in &members {
            if states[i] != StepState::Pending {
                continue;
            }
            let ready = plan.steps[i].predecessors.iter().all(|&p| {
                matches!(states[p], StepState::Succeeded | StepState::Skipped)
                    || (phase == Phase::Infrastructure && !plan.steps[p].kind.is_terraform())
            });
            if ready {
                self.start_step(revision, stage, i, &plan.steps[i]);
            }
        }
        let Some(run) = self.state().run(revision, stage) else {
            return;
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

    pub(super) fn succeed(&mut self, revision: u64, stage: &str) {
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
    pub(super) fn fail(&mut self, revision: u64, stage: &str, trigger: Trigger, reason: &str) {
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
    pub(super) fn skip_pending(&mut self, revision: u64, stage: &str, why: StepTrigger) {
        let Some((_, plan)) = self.plan_stage(revision, stage) else {
            return;
        };
        let Some(run) = self.state().run(revision, stage) else {
            return;
        };
        let pending: Vec<usize> = plan
            .steps
            .iter()
            .zip(&run.steps)
            .enumerate()
            .filter(|(_, (_, s))| s.state == StepState::Pending)
            .map(|(i, _)| i)
            .collect();
        for i in pending {
            self.set_step(revision, stage, plan.steps[i].key(), why, None);
        }
    }
}

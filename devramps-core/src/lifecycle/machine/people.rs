//! A person's operations on a stage-deployment: retry (L11), cancel (L12), and the blocker
//! operations of L9 (stop and resume promotions, unblock, bypass); and how a refused
//! operation is recorded.

use super::*;

impl Run<'_> {
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
        let runtime = self.state().runtime(&op.stage);
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
        let queued = self.state().runtime(&op.stage).queued == Some(op.revision);
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
    pub(super) fn finish_cancel(&mut self, revision: u64, stage: &str) {
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
        let runtime = self.state().runtime(&c.stage);
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

//! Steps waiting for a person, and a person's approval or rejection of them (L16).

use super::*;

impl Run<'_> {
    /// A step waits for a person (L16): its state changes and `approval_required` is recorded.
    pub(super) fn wait_for_approval(
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
}

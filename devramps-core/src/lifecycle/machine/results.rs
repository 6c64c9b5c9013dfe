//! Work results (L10): what a finished build, validation, mirroring or step changes.

use super::*;
use crate::lifecycle::StageRun;

impl Run<'_> {
    pub(super) fn work(&mut self, key: &ExecutionKey, result: WorkResult) {
        let (revision, stage) = (key.revision, key.stage.as_str());
        // What the result needs of the stage-deployment: its state, and the one step or build
        // the result is for (not a copy of every step).
        let Some(run) = self
            .state()
            .run(revision, stage)
            .map(StageRun::without_steps)
        else {
            return;
        };
        if key.attempt != run.attempt || !run.state.holds_lock() {
            return; // A result of an older attempt, or after the stage ended: nothing to do.
        }
        let cancelling = run.state == StageState::Cancelling;
        if let Unit::Build { artifact } = &key.unit {
            return self.build_finished(revision, stage, &run, artifact, result);
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
        let Some(step_run) = self
            .state()
            .run(revision, stage)
            .and_then(|r| r.steps.get(index).cloned())
        else {
            return;
        };
        if step_run.state != StepState::Running {
            return;
        }
        let name = step.key().to_owned();
        match result {
            WorkResult::Planned(infra) => {
                if cancelling {
                    return;
                }
                let policy = approval_policy(step);
                if plan_needs_approval(&infra, policy) {
                    let reason = approval_reason(&infra, policy);
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
            WorkResult::Done(Outcome::PollLater {
                polling_state,
                retry_after_ms,
            }) => {
                if cancelling {
                    self.set_step(revision, stage, &name, StepTrigger::Cancel, None);
                    return;
                }
                let polls = step_run
                    .polling
                    .as_ref()
                    .map_or(0, |p| p.polls.saturating_add(1));
                self.emit(
                    Actor::System,
                    Event::StepPolling {
                        revision,
                        stage: stage.to_owned(),
                        step: name,
                        polling: Polling::new(polling_state, polls, retry_after_ms),
                    },
                );
                let approved = step_run.approved;
                let command = self.machine.step_command(revision, stage, index, approved);
                self.issue(command);
            }
        }
    }

    /// Records how a build of `artifact` ended, when the current attempt is running it.
    fn build_finished(
        &mut self,
        revision: u64,
        stage: &str,
        run: &StageRun,
        artifact: &str,
        result: WorkResult,
    ) {
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
    }
}

/// The most resource addresses an approval's reason lists.
const LISTED_CHANGES: usize = 20;

/// What the person asked to approve a plan reads: the counts, the policy, and the resources
/// that change (the first [`LISTED_CHANGES`]), each with its action.
fn approval_reason(plan: &InfraPlan, policy: ApprovalPolicy) -> String {
    let mut reason = format!(
        "Terraform plan: {} to create, {} to update, {} to destroy ({policy})",
        plan.create, plan.update, plan.delete
    );
    for (i, change) in plan.changes.iter().take(LISTED_CHANGES).enumerate() {
        reason.push_str(if i == 0 { ": " } else { ", " });
        reason.push_str(change.action.as_str());
        reason.push(' ');
        reason.push_str(&change.address);
    }
    if plan.changes.len() > LISTED_CHANGES {
        let more = plan.changes.len() - LISTED_CHANGES;
        reason.push_str(&format!(" and {more} more"));
    }
    reason
}

/// When a Terraform step's plan waits for a person.
fn approval_policy(step: &StepPlan) -> ApprovalPolicy {
    match step.kind {
        StepKind::Terraform {
            requires_approval, ..
        } => requires_approval,
        _ => ApprovalPolicy::DestructiveChangesOnly,
    }
}

/// Whether applying `plan` waits for a person under `policy` (L16; reference scenarios 30,
/// 31): a lifecycle decision, so it lives here and not on the plan the backend reports.
fn plan_needs_approval(plan: &InfraPlan, policy: ApprovalPolicy) -> bool {
    match policy {
        ApprovalPolicy::Always => plan.has_changes(),
        ApprovalPolicy::Never => false,
        ApprovalPolicy::DestructiveChangesOnly => plan.is_destructive(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_of_changes_counts_a_replacement_as_a_creation_and_a_destruction() {
        use crate::exec::{ChangeAction, ResourceChange};
        let plan = InfraPlan::of_changes(
            "p",
            vec![
                ResourceChange::new("a.one", ChangeAction::Create),
                ResourceChange::new("a.two", ChangeAction::Replace),
                ResourceChange::new("a.three", ChangeAction::Update),
            ],
        );
        assert_eq!((plan.create, plan.update, plan.delete), (2, 1, 1));
        assert!(plan.is_destructive());
        assert_eq!(plan.changes[1].address, "a.two");
        assert_eq!(
            approval_reason(&plan, ApprovalPolicy::Always),
            "Terraform plan: 2 to create, 1 to update, 1 to destroy (ALWAYS): create a.one, \
             replace a.two, update a.three"
        );
        let many: Vec<ResourceChange> = (0..25)
            .map(|i| ResourceChange::new(format!("r.n{i}"), ChangeAction::Delete))
            .collect();
        let reason = approval_reason(&InfraPlan::of_changes("p", many), ApprovalPolicy::Never);
        assert!(reason.ends_with("delete r.n19 and 5 more"), "{reason}");
    }

    #[test]
    fn each_policy_judges_the_plan_counts() {
        let plan = |create, update, delete| InfraPlan::new("p", create, update, delete);
        let cases = [
            (plan(0, 0, 0), [false, false, false]),
            (plan(1, 0, 0), [true, false, false]),
            (plan(0, 1, 0), [true, false, true]),
            (plan(0, 0, 2), [true, false, true]),
        ];
        for (p, expected) in cases {
            let got = [
                ApprovalPolicy::Always,
                ApprovalPolicy::Never,
                ApprovalPolicy::DestructiveChangesOnly,
            ]
            .map(|policy| plan_needs_approval(&p, policy));
            assert_eq!(got, expected, "{p:?}");
        }
    }
}

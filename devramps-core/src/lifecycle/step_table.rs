//! The transition table of a step within one attempt of a stage-deployment: every allowed
//! (state, trigger, next state), each tagged with the rule of `lifecycle.md` that makes it. The
//! machine changes a step's state only through [`next_step_state`]; the docs' diagram is
//! generated from [`STEP_TRANSITIONS`] (see [`diagram`](super::diagram)), and a test checks that
//! every edge is exercised.
//!
//! A step starts `PENDING` in every attempt, or `SKIPPED` when the stage's `skip` list names it;
//! those are starting states, not transitions.

use super::types::StepState::{self, *};

/// What moves a step from one state to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepTrigger {
    /// Its predecessors are done and its phase runs (L4).
    Start,
    /// Its work succeeded (L4).
    Succeed,
    /// Its work failed (L10).
    Fail,
    /// It exceeded its timeout (L10).
    TimeOut,
    /// A bake's time elapsed (L16).
    BakeElapsed,
    /// It waits for a person: a Terraform plan that needs approval, a custom step that asks, a
    /// failed test gate (L16).
    AskApproval,
    /// A person approves work that continues: a Terraform apply, a custom step again (L16).
    Approve,
    /// A person approves a step with nothing left to run: a bake ended early, a failed test
    /// gate accepted (L16).
    Pass,
    /// A person rejects the step (L16).
    Reject,
    /// The stage-deployment is cancelled: a step waiting for a person or baking stops at once, a
    /// running step when its work ends (L12).
    Cancel,
    /// A step failed or timed out: the steps not started are skipped (L10).
    SkipAfterFailure,
    /// A cancel ended: the steps not started are skipped (L12).
    SkipAfterCancel,
    /// A rollback skips infrastructure synthesis (L13).
    SkipInRollback,
}

/// One edge of the step table: from, trigger, to, and the rule that makes it.
pub type StepTransition = (StepState, StepTrigger, StepState, &'static str);

/// Every allowed step transition, with its rule id.
pub const STEP_TRANSITIONS: &[StepTransition] = &[
    (Pending, StepTrigger::Start, Running, "L4"),
    (Pending, StepTrigger::SkipAfterFailure, Skipped, "L10"),
    (Pending, StepTrigger::SkipAfterCancel, Skipped, "L12"),
    (Pending, StepTrigger::SkipInRollback, Skipped, "L13"),
    (Running, StepTrigger::Succeed, Succeeded, "L4"),
    (Running, StepTrigger::Fail, Failed, "L10"),
    (Running, StepTrigger::TimeOut, TimedOut, "L10"),
    (Running, StepTrigger::BakeElapsed, Succeeded, "L16"),
    (Running, StepTrigger::AskApproval, WaitingApproval, "L16"),
    (Running, StepTrigger::Pass, Succeeded, "L16"),
    (Running, StepTrigger::Reject, Failed, "L16"),
    (Running, StepTrigger::Cancel, Cancelled, "L12"),
    (WaitingApproval, StepTrigger::Approve, Running, "L16"),
    (WaitingApproval, StepTrigger::Pass, Succeeded, "L16"),
    (WaitingApproval, StepTrigger::Reject, Failed, "L16"),
    (WaitingApproval, StepTrigger::Cancel, Cancelled, "L12"),
];

/// The state `trigger` leads a step to from `from`, or `None` when the table has no such edge.
pub fn next_step_state(from: StepState, trigger: StepTrigger) -> Option<StepState> {
    step_edge(from, trigger).map(|(_, _, to, _)| *to)
}

/// The edge `trigger` takes from `from`, with its rule id.
pub fn step_edge(from: StepState, trigger: StepTrigger) -> Option<&'static StepTransition> {
    STEP_TRANSITIONS
        .iter()
        .find(|(f, t, _, _)| *f == from && *t == trigger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_table_is_a_function() {
        for (i, (f, t, _, _)) in STEP_TRANSITIONS.iter().enumerate() {
            assert!(
                !STEP_TRANSITIONS[i + 1..]
                    .iter()
                    .any(|(f2, t2, _, _)| f2 == f && t2 == t),
                "two edges from {f:?} on {t:?}"
            );
        }
    }

    #[test]
    fn every_edge_leaves_a_live_state_and_names_a_rule_of_the_spec() {
        for (from, trigger, to, rule) in STEP_TRANSITIONS {
            assert!(
                !from.is_terminal(),
                "{from:?} --{trigger:?}--> {to:?} leaves an end state"
            );
            assert_ne!(from, to, "{from:?} --{trigger:?}--> itself");
            let number = rule.strip_prefix('L').and_then(|n| n.parse::<u8>().ok());
            assert!(
                number.is_some_and(|n| (1..=21).contains(&n)),
                "{from:?} --{trigger:?}--> {to:?}: `{rule}` is no rule of lifecycle.md"
            );
        }
        assert_eq!(next_step_state(Succeeded, StepTrigger::Fail), None);
        assert_eq!(
            next_step_state(Pending, StepTrigger::Succeed),
            None,
            "L4: it starts first"
        );
        assert_eq!(
            step_edge(WaitingApproval, StepTrigger::Reject).map(|e| e.3),
            Some("L16")
        );
    }
}

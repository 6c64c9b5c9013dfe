//! The transition table of a stage-deployment: every allowed (state, trigger, next state), in one
//! place. The machine changes a stage-deployment's state only through [`next_state`], the docs'
//! diagram is generated from [`TRANSITIONS`], and a test checks that every edge is exercised.

use super::types::StageState::{self, *};

/// What moves a stage-deployment from one state to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    /// The lock is free, the window open and no blocker active (L7), or a retry starts (L11).
    Start,
    /// Every phase succeeded.
    Succeed,
    /// A phase or step failed, or an approval was rejected (L10, L16).
    Fail,
    /// A step exceeded its timeout (L10).
    TimeOut,
    /// A person cancels a running stage-deployment (L12).
    RequestCancel,
    /// The running work stopped after a cancel (L12).
    CancelDone,
    /// A person cancels a queued stage-deployment (L12).
    CancelQueued,
    /// A newer deployment joined the queue (L6).
    Supersede,
    /// The deployment stopped in an earlier stage (`NOT_STARTED` / `NEVER`).
    Abandon,
    /// A person retries a failed, timed-out or cancelled stage-deployment (L11).
    Retry,
    /// An emergency rollback to this revision starts (L13, L15).
    RollBack,
    /// An emergency roll-forward to this revision starts (L14).
    RollForward,
}

/// Every allowed transition.
pub const TRANSITIONS: &[(StageState, Trigger, StageState)] = &[
    (NotStarted, Trigger::Start, InProgress),
    (NotStarted, Trigger::Supersede, Skipped),
    (NotStarted, Trigger::Abandon, NotStarted),
    (NotStarted, Trigger::CancelQueued, Cancelled),
    (NotStarted, Trigger::RollForward, RollingForward),
    (InProgress, Trigger::Succeed, Succeeded),
    (InProgress, Trigger::Fail, Failed),
    (InProgress, Trigger::TimeOut, TimedOut),
    (InProgress, Trigger::RequestCancel, Cancelling),
    (Cancelling, Trigger::CancelDone, Cancelled),
    (Failed, Trigger::Retry, InProgress),
    (TimedOut, Trigger::Retry, InProgress),
    (Cancelled, Trigger::Retry, InProgress),
    (Succeeded, Trigger::RollBack, RollingBack),
    (RolledBack, Trigger::RollBack, RollingBack),
    (RolledForward, Trigger::RollBack, RollingBack),
    // A revision that succeeded here once stays a rollback target after a later attempt of it
    // (a failed rollback, a cancelled roll-forward) ended badly; the machine checks that (L13).
    (Failed, Trigger::RollBack, RollingBack),
    (TimedOut, Trigger::RollBack, RollingBack),
    (Cancelled, Trigger::RollBack, RollingBack),
    (RollingBack, Trigger::Succeed, RolledBack),
    (RollingBack, Trigger::Fail, Failed),
    (RollingBack, Trigger::RequestCancel, Cancelling),
    (Skipped, Trigger::RollForward, RollingForward),
    (Failed, Trigger::RollForward, RollingForward),
    (TimedOut, Trigger::RollForward, RollingForward),
    (Cancelled, Trigger::RollForward, RollingForward),
    // Forward again to a revision that ran here before a rollback (L14).
    (Succeeded, Trigger::RollForward, RollingForward),
    (RolledBack, Trigger::RollForward, RollingForward),
    (RolledForward, Trigger::RollForward, RollingForward),
    (RollingForward, Trigger::Succeed, RolledForward),
    (RollingForward, Trigger::Fail, Failed),
    (RollingForward, Trigger::RequestCancel, Cancelling),
];

/// The state `trigger` leads to from `from`, or `None` when the table has no such edge.
pub fn next_state(from: StageState, trigger: Trigger) -> Option<StageState> {
    TRANSITIONS
        .iter()
        .find(|(f, t, _)| *f == from && *t == trigger)
        .map(|(_, _, to)| *to)
}

/// The table as a Mermaid state diagram, for the docs.
pub fn mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> NOT_STARTED\n");
    for (from, trigger, to) in TRANSITIONS {
        out.push_str(&format!("    {from} --> {to}: {trigger:?}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_a_function() {
        for (i, (f, t, _)) in TRANSITIONS.iter().enumerate() {
            assert!(
                !TRANSITIONS[i + 1..]
                    .iter()
                    .any(|(f2, t2, _)| f2 == f && t2 == t),
                "two edges from {f} on {t:?}"
            );
        }
    }

    #[test]
    fn lock_is_taken_and_released_only_through_the_table() {
        // Entering a lock-holding state starts from a state without the lock, except moves
        // between lock-holding states (cancel while running).
        for (from, trigger, to) in TRANSITIONS {
            if to.holds_lock() && !from.holds_lock() {
                assert!(
                    matches!(
                        trigger,
                        Trigger::Start | Trigger::Retry | Trigger::RollBack | Trigger::RollForward
                    ),
                    "{from} -> {to} on {trigger:?} takes the lock without starting"
                );
            }
        }
        assert_eq!(
            next_state(StageState::Succeeded, Trigger::Retry),
            None,
            "L11: only failed, timed-out or cancelled"
        );
        assert_eq!(
            next_state(StageState::Skipped, Trigger::Start),
            None,
            "L6: superseded never starts"
        );
        assert!(mermaid().contains("IN_PROGRESS --> CANCELLING: RequestCancel"));
    }
}

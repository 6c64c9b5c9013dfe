//! [`Driven`]: everything an engine instance keeps about one pipeline — its machine, its next
//! timer, its lease, the work it runs, and the inputs not yet recorded.
//!
//! Inputs are recorded in the order they arrived. One that could not be recorded because the
//! store failed stays at the head of [`Driven::queue`] (the inputs behind it wait) and is tried
//! again after a [`Backoff`]: a work result is never dropped because of a store error, only
//! when the lease it was started under is lost (the new holder re-attaches to the work, L20).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use futures::future::AbortHandle;
use jiff::Timestamp;

use super::backoff::Backoff;
use super::{PatchRequest, PushRequest, Reply};
use crate::backend::{ExecutionKey, Lease};
use crate::lifecycle::{Input, Machine, Record};

/// Who may record an input (L21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A person's or a webhook's input: any instance records it, presenting its token when it
    /// holds the lease.
    Outside,
    /// A timer or an alarm the instance observed: only the holder records it.
    Holder,
    /// Results of work started under the lease with this token: recorded only while that
    /// lease is held, never by anyone else.
    Work(u64),
}

/// Something to record for a pipeline.
#[derive(Clone, Debug)]
pub(super) enum Job {
    /// A push: its commit is read, then it is fed.
    Push(PushRequest),
    /// A patch (L17).
    Patch(PatchRequest),
    /// Inputs fed together.
    Inputs {
        /// The inputs.
        inputs: Vec<Input>,
        /// Who may record them.
        origin: Origin,
    },
}

/// A queued [`Job`] and whom to answer, if anyone waits.
pub(super) struct Queued {
    /// What to record.
    pub(super) job: Job,
    /// Whom to answer.
    pub(super) reply: Option<Reply<Vec<Record>>>,
}

impl Job {
    /// The executions whose results the job records.
    pub(super) fn work_keys(&self) -> impl Iterator<Item = &ExecutionKey> {
        let inputs: &[Input] = match self {
            Job::Inputs { inputs, .. } => inputs,
            _ => &[],
        };
        inputs.iter().filter_map(|i| match i {
            Input::Work { key, .. } => Some(key),
            _ => None,
        })
    }

    /// Whether it may be recorded in one append with the jobs queued next to it: the inputs
    /// of people and webhooks (see `batch`).
    pub(super) fn batches(&self) -> bool {
        matches!(
            self,
            Job::Push(_)
                | Job::Patch(_)
                | Job::Inputs {
                    origin: Origin::Outside,
                    ..
                }
        )
    }

    /// Whether a failure to record it is tried again later rather than answered: work
    /// results always (whatever failed), everything else when the failure was transient
    /// (the log that kept changing under a person's input is answered with the conflict).
    pub(super) fn retried_after(&self, error: &crate::Error) -> bool {
        match self {
            Job::Inputs {
                origin: Origin::Work(_),
                ..
            } => true,
            _ => error.is_transient(),
        }
    }
}

/// An execution this instance runs.
pub(super) struct Flight {
    /// The token of the lease it was started under.
    pub(super) token: u64,
    /// Stops the future that waits for it (the execution itself goes on at its runner).
    pub(super) abort: AbortHandle,
}

/// One pipeline, as an engine instance drives it.
#[derive(Default)]
pub(super) struct Driven {
    /// The fold of the log as far as this instance read it; `None` until loaded (or after a
    /// failed append, until reloaded).
    pub(super) machine: Option<Machine>,
    /// The machine's next timer, while this instance holds the lease.
    pub(super) wake: Option<Timestamp>,
    /// The lease, while held (L21).
    pub(super) lease: Option<Lease>,
    /// When to try again for the lease another instance holds (without polling).
    pub(super) lease_retry: Option<Timestamp>,
    /// The executions this instance runs, by key (at most one future each).
    pub(super) in_flight: BTreeMap<ExecutionKey, Flight>,
    /// Inputs waiting to be recorded, in arrival order. When it is not empty, its head could
    /// not be recorded and waits for the backoff; the rest wait behind it.
    pub(super) queue: VecDeque<Queued>,
    /// Work results the store did not take: tried again after the backoff, without holding
    /// up other inputs.
    pub(super) parked: Vec<Queued>,
    /// The executions whose results are queued or being recorded: still running as far as the
    /// log knows, and not to be re-attached.
    pub(super) recording: BTreeSet<ExecutionKey>,
    /// Retries of failed store calls.
    pub(super) backoff: Backoff,
    /// Whether to compare the stages' alarms with the alarm source on the next turn (L15).
    pub(super) alarm_check: bool,
    /// The log's length when a snapshot was last tried (or the machine loaded): the next is
    /// spaced from it.
    pub(super) snapshot_base: u64,
}

impl Driven {
    /// The earliest time something of this pipeline is due: its timer, a retry after a store
    /// failure, or a lease retry.
    pub(super) fn next_wake(&self) -> Option<Timestamp> {
        // While backing off, timers wait for the store too.
        if let Some(until) = self.backoff.until() {
            return Some(until);
        }
        [self.wake, self.lease_retry].into_iter().flatten().min()
    }

    /// Puts the parked work results back at the head of the queue, to be tried again.
    pub(super) fn unpark(&mut self) {
        for queued in self.parked.drain(..).rev() {
            self.queue.push_front(queued);
        }
    }

    /// Queues a job; returns whether it is the only one (so it may run at once).
    pub(super) fn enqueue(&mut self, job: Job, reply: Option<Reply<Vec<Record>>>) -> bool {
        self.recording.extend(job.work_keys().cloned());
        self.queue.push_back(Queued { job, reply });
        self.queue.len() == 1
    }

    /// Drops the queued work results: the lease they were started under is lost.
    pub(super) fn drop_work_results(&mut self) {
        self.parked.clear();
        self.queue.retain(|queued| {
            !matches!(
                queued.job,
                Job::Inputs {
                    origin: Origin::Work(_),
                    ..
                }
            )
        });
        self.recording.clear();
        for queued in &self.queue {
            self.recording.extend(queued.job.work_keys().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Outcome;
    use crate::lifecycle::WorkResult;

    fn key(step: &str) -> ExecutionKey {
        ExecutionKey {
            pipeline: "api".into(),
            revision: 1,
            stage: "staging".into(),
            attempt: 1,
            unit: crate::exec::Unit::step(step),
        }
    }

    fn result(step: &str, token: u64) -> Job {
        Job::Inputs {
            inputs: vec![Input::Work {
                key: key(step),
                result: WorkResult::Done(Outcome::Failed { reason: "x".into() }),
            }],
            origin: Origin::Work(token),
        }
    }

    #[test]
    fn queued_results_are_recording_until_dropped_with_the_lease() {
        let mut d = Driven::default();
        assert!(d.enqueue(result("deploy", 3), None));
        let tick = Job::Inputs {
            inputs: vec![Input::Tick],
            origin: Origin::Holder,
        };
        assert!(!d.enqueue(tick, None));
        assert!(d.recording.contains(&key("deploy")));
        d.drop_work_results();
        assert!(d.recording.is_empty());
        assert_eq!(d.queue.len(), 1, "the timer input stays");
    }

    #[test]
    fn work_results_are_retried_after_any_error_other_inputs_only_after_transient_ones() {
        let permanent = crate::Error::backend("s3", "append", "access denied");
        let transient = crate::Error::unavailable("s3", "append", "503 SlowDown");
        let work = result("deploy", 1);
        assert!(work.retried_after(&permanent) && work.retried_after(&transient));
        let push = Job::Push(PushRequest::default());
        assert!(push.retried_after(&transient));
        assert!(!push.retried_after(&permanent));
    }

    #[test]
    fn backing_off_postpones_the_timer() {
        let now = Timestamp::UNIX_EPOCH;
        let mut d = Driven {
            wake: Some(now),
            ..Driven::default()
        };
        assert_eq!(d.next_wake(), Some(now));
        let due = d.backoff.failed(now, None);
        assert_eq!(d.next_wake(), Some(due));
    }
}

//! [`Executions`]: what the simulated runners saw of each execution, by idempotency key: how
//! many times one began (a re-attach is not a start), when it ends, and how it ended.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use devramps_core::backend::{ExecutionKey, Outcome};
use devramps_memory::CANCELLED_REASON;
use jiff::Timestamp;

use crate::report::ExecutionReport;
use crate::time::add;

/// The result of an execution that has not ended (or whose end nobody waited for).
const RUNNING: &str = "RUNNING";

#[derive(Debug)]
struct Execution {
    starts: u32,
    /// When it ends, for executions timed here (validation, Terraform applies).
    ends_at: Option<Timestamp>,
    result: &'static str,
}

#[derive(Debug, Default)]
struct State {
    /// Keys in the order first seen.
    order: Vec<ExecutionKey>,
    by_key: BTreeMap<ExecutionKey, Execution>,
}

/// The executions of a simulation, shared by its runners and backends. Clones share state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Executions {
    state: Arc<Mutex<State>>,
}

impl Executions {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A runner was asked to start `key`: returns `true` when that begins a new execution (a
    /// start), `false` when the key was seen before (a re-attach).
    pub(crate) fn begin(&self, key: &ExecutionKey) -> bool {
        let mut state = self.lock();
        if state.by_key.contains_key(key) {
            return false;
        }
        state.order.push(key.clone());
        state.by_key.insert(
            key.clone(),
            Execution {
                starts: 1,
                ends_at: None,
                result: RUNNING,
            },
        );
        true
    }

    /// Begins `key` (or re-attaches to it) as an execution that lasts `duration` from its
    /// start: returns when it ends, the same for every re-attach.
    pub(crate) fn timed(
        &self,
        key: &ExecutionKey,
        now: Timestamp,
        duration: Duration,
    ) -> Timestamp {
        self.begin(key);
        let mut state = self.lock();
        match state.by_key.get_mut(key) {
            Some(execution) => *execution.ends_at.get_or_insert(add(now, duration)),
            None => add(now, duration),
        }
    }

    /// Records how `key` ended (or where it stands, for a plan waiting for its apply).
    pub(crate) fn end(&self, key: &ExecutionKey, result: &'static str) {
        if let Some(execution) = self.lock().by_key.get_mut(key) {
            execution.result = result;
        }
    }

    /// Records the outcome a runner gave for `key`.
    pub(crate) fn outcome(&self, key: &ExecutionKey, outcome: &Outcome) {
        self.end(key, result_of(outcome));
    }

    /// The report's `executions`, in the order first seen.
    pub(crate) fn report(&self) -> Vec<ExecutionReport> {
        let state = self.lock();
        state
            .order
            .iter()
            .filter_map(|key| {
                state.by_key.get(key).map(|e| ExecutionReport {
                    key: key.to_string(),
                    starts: e.starts,
                    result: e.result.to_owned(),
                })
            })
            .collect()
    }
}

/// The report's name of an outcome.
fn result_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded { .. } => "SUCCEEDED",
        Outcome::Failed { reason } if reason == CANCELLED_REASON => "CANCELLED",
        Outcome::Failed { .. } => "FAILED",
        Outcome::ApprovalRequired { .. } => "APPROVAL_REQUIRED",
        // Outcomes added to the core later are reported as unknown until they are named here.
        _ => "UNKNOWN",
    }
}

//! [`ScriptedRunner`]: builds and steps whose outcomes and durations are scripted.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{
    BuildRequest, DynClock, ExecutionKey, Outcome, Outputs, Runner, StepRequest,
};
use devramps_core::{Error, Result};
use jiff::Timestamp;

use crate::clock::add;
use crate::script::{Match, lookup};

/// How long an unscripted execution takes: one minute.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);

/// The reason of the `Failed` outcome of a cancelled execution.
pub const CANCELLED_REASON: &str = "cancelled";

/// A request a [`ScriptedRunner`] can run: it carries its idempotency key.
pub trait ScriptedRequest: Clone + Send + Sync + 'static {
    /// The request's idempotency key.
    fn key(&self) -> &ExecutionKey;
}

impl ScriptedRequest for BuildRequest {
    fn key(&self) -> &ExecutionKey {
        &self.key
    }
}

impl ScriptedRequest for StepRequest {
    fn key(&self) -> &ExecutionKey {
        &self.key
    }
}

/// What a scripted execution does: end with `outcome` after `duration` on the clock, or hang
/// (`duration: None`) until cancelled or [completed](ScriptedRunner::complete) by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct Behavior {
    /// How it ends.
    pub outcome: Outcome,
    /// How long it runs; `None` never ends by itself.
    pub duration: Option<Duration>,
}

impl Behavior {
    /// Succeeds without outputs after `after`.
    pub fn succeed(after: Duration) -> Self {
        Behavior::succeed_with(Outputs::new(), after)
    }

    /// Succeeds with `outputs` after `after`.
    pub fn succeed_with(outputs: Outputs, after: Duration) -> Self {
        Behavior {
            outcome: Outcome::Succeeded { outputs },
            duration: Some(after),
        }
    }

    /// Fails with `reason` after `after`.
    pub fn fail(reason: impl Into<String>, after: Duration) -> Self {
        Behavior {
            outcome: Outcome::Failed {
                reason: reason.into(),
            },
            duration: Some(after),
        }
    }

    /// Asks for approval after `after`.
    pub fn approval_required(context: Option<String>, after: Duration) -> Self {
        Behavior {
            outcome: Outcome::ApprovalRequired { context },
            duration: Some(after),
        }
    }

    /// Never ends by itself (a step stuck until its timeout cancels it).
    pub fn hang() -> Self {
        Behavior {
            outcome: Outcome::Failed {
                reason: "hung".to_owned(),
            },
            duration: None,
        }
    }
}

/// What a caller did to a [`ScriptedRunner`], as recorded in its [log](ScriptedRunner::log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAction {
    /// A new execution started.
    Started,
    /// `start` of a key started before: no new execution.
    Reattached,
    /// A running execution was cancelled (cancels of ended or unknown keys are not recorded).
    Cancelled,
}

/// One entry of a [`ScriptedRunner`]'s log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// Clock time of the call.
    pub at: Timestamp,
    /// The execution.
    pub key: ExecutionKey,
    /// What happened.
    pub action: RunAction,
}

#[derive(Debug)]
struct Execution<R> {
    request: R,
    ends_at: Option<Timestamp>,
    outcome: Outcome,
    cancelled: bool,
    /// Waiters to wake on cancel or manual completion.
    wakers: Vec<Waker>,
}

impl<R> Execution<R> {
    fn result(&self, now: Timestamp) -> Option<Outcome> {
        if self.cancelled {
            Some(Outcome::Failed {
                reason: CANCELLED_REASON.to_owned(),
            })
        } else if self.ends_at.is_some_and(|end| now >= end) {
            Some(self.outcome.clone())
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct State<R> {
    default: Behavior,
    scripts: Vec<(Match, Behavior)>,
    executions: BTreeMap<ExecutionKey, Execution<R>>,
    log: Vec<RunRecord>,
}

/// A [`Runner`] of builds or steps whose outcomes are scripted, timed on a clock (normally a
/// [`ManualClock`](crate::ManualClock)).
///
/// - `start` begins an execution whose behaviour is the most specific scripted
///   [`Match`] of its key, else the default (succeed after [`DEFAULT_DURATION`]); it ends when
///   the clock reaches start + duration, and `wait` completes then with the scripted outcome.
/// - `start` of a key started before re-attaches: no second execution.
/// - `cancel` of a running execution makes `wait` return `Failed { reason: "cancelled" }`;
///   cancelling an ended or unknown execution does nothing.
/// - Every start, re-attach and effective cancel is [logged](ScriptedRunner::log) in order.
///
/// Clones share the same scripts, executions and log.
pub struct ScriptedRunner<R> {
    name: String,
    clock: DynClock,
    state: Arc<Mutex<State<R>>>,
}

/// A scripted build runner ([`DynBuildRunner`](devramps_core::backend::DynBuildRunner)).
pub type ScriptedBuildRunner = ScriptedRunner<BuildRequest>;
/// A scripted step runner ([`DynStepRunner`](devramps_core::backend::DynStepRunner)).
pub type ScriptedStepRunner = ScriptedRunner<StepRequest>;

impl<R> Clone for ScriptedRunner<R> {
    fn clone(&self) -> Self {
        ScriptedRunner {
            name: self.name.clone(),
            clock: self.clock.clone(),
            state: self.state.clone(),
        }
    }
}

impl<R> ScriptedRunner<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R> fmt::Debug for ScriptedRunner<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ScriptedRunner")
            .field("name", &self.name)
            .field("scripts", &state.scripts.len())
            .field("executions", &state.executions.len())
            .finish()
    }
}

impl<R: ScriptedRequest> ScriptedRunner<R> {
    /// A runner named `name` (in messages) timed by `clock`, with nothing scripted.
    pub fn new(name: impl Into<String>, clock: DynClock) -> Self {
        ScriptedRunner {
            name: name.into(),
            clock,
            state: Arc::new(Mutex::new(State {
                default: Behavior::succeed(DEFAULT_DURATION),
                scripts: Vec::new(),
                executions: BTreeMap::new(),
                log: Vec::new(),
            })),
        }
    }

    /// Scripts the executions selected by `selector` (for executions started afterwards).
    pub fn script(&self, selector: Match, behavior: Behavior) -> &Self {
        self.lock().scripts.push((selector, behavior));
        self
    }

    /// Sets the behaviour of unscripted executions.
    pub fn set_default(&self, behavior: Behavior) -> &Self {
        self.lock().default = behavior;
        self
    }

    /// Every start, re-attach and cancel, in order.
    pub fn log(&self) -> Vec<RunRecord> {
        self.lock().log.clone()
    }

    /// The keys of every execution started, in start order.
    pub fn started(&self) -> Vec<ExecutionKey> {
        let state = self.lock();
        let started = state.log.iter().filter(|r| r.action == RunAction::Started);
        started.map(|r| r.key.clone()).collect()
    }

    /// The request an execution was started with.
    pub fn request(&self, key: &ExecutionKey) -> Option<R> {
        self.lock().executions.get(key).map(|e| e.request.clone())
    }

    /// The executions that have not ended at the clock's current time, sorted by key.
    pub fn running(&self) -> Vec<ExecutionKey> {
        let now = self.clock.now();
        let state = self.lock();
        let running = state
            .executions
            .iter()
            .filter(|(_, e)| e.result(now).is_none());
        running.map(|(k, _)| k.clone()).collect()
    }

    /// Ends a running execution now with `outcome` (for hanging ones, or approvals decided
    /// by hand). Returns whether it was running; unknown keys fail with [`Error::NotFound`].
    pub fn complete(&self, key: &ExecutionKey, outcome: Outcome) -> Result<bool> {
        let now = self.clock.now();
        let mut state = self.lock();
        let execution = state
            .executions
            .get_mut(key)
            .ok_or_else(|| self.not_found(key))?;
        if execution.result(now).is_some() {
            return Ok(false);
        }
        execution.outcome = outcome;
        execution.ends_at = Some(now);
        let wakers = std::mem::take(&mut execution.wakers);
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        Ok(true)
    }

    fn not_found(&self, key: &ExecutionKey) -> Error {
        Error::not_found(format!("execution `{key}` in {}", self.name))
    }
}

#[async_trait]
impl<R: ScriptedRequest> Runner<R> for ScriptedRunner<R> {
    async fn start(&self, request: R) -> Result<()> {
        let now = self.clock.now();
        let key = request.key().clone();
        let mut state = self.lock();
        if state.executions.contains_key(&key) {
            state.log.push(RunRecord {
                at: now,
                key,
                action: RunAction::Reattached,
            });
            return Ok(());
        }
        let behavior = lookup(&state.scripts, &key)
            .unwrap_or(&state.default)
            .clone();
        state.executions.insert(
            key.clone(),
            Execution {
                request,
                ends_at: behavior.duration.map(|d| add(now, d)),
                outcome: behavior.outcome,
                cancelled: false,
                wakers: Vec::new(),
            },
        );
        state.log.push(RunRecord {
            at: now,
            key,
            action: RunAction::Started,
        });
        Ok(())
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        let ends_at = {
            let state = self.lock();
            let execution = state
                .executions
                .get(key)
                .ok_or_else(|| self.not_found(key))?;
            execution.ends_at
        };
        let mut sleep = ends_at.map(|end| self.clock.sleep_until(end));
        futures::future::poll_fn(|cx| {
            if let Some(pending) = sleep.as_mut()
                && pending.as_mut().poll(cx).is_ready()
            {
                sleep = None;
            }
            let now = self.clock.now();
            let mut state = self.lock();
            let Some(execution) = state.executions.get_mut(key) else {
                return Poll::Ready(Err(self.not_found(key)));
            };
            if let Some(outcome) = execution.result(now) {
                return Poll::Ready(Ok(outcome));
            }
            if !execution.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                execution.wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(execution) = state.executions.get_mut(key) else {
            return Ok(());
        };
        if execution.result(now).is_some() {
            return Ok(());
        }
        execution.cancelled = true;
        let wakers = std::mem::take(&mut execution.wakers);
        state.log.push(RunRecord {
            at: now,
            key: key.clone(),
            action: RunAction::Cancelled,
        });
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! Conformance cases of [`Runner`]: start, re-attach by key, wait twice, cancel, unknown keys.
//!
//! Run them all with [`runner_conformance_tests!`](crate::runner_conformance_tests) over a
//! [`RunnerFixture`].

use std::fmt;
use std::sync::Arc;

use crate::Error;
use crate::backend::{ExecutionKey, Outcome, Runner};

use super::{Capabilities, Time, ok, until};

/// The step (in the [`ExecutionKey`]) of executions that end by themselves soon.
pub const QUICK: &str = "quick";
/// The step of executions that run until cancelled (at least an hour).
pub const SLOW: &str = "slow";

/// A runner under test, with what the cases need to drive it.
pub struct RunnerFixture<R> {
    /// The runner.
    pub runner: Arc<dyn Runner<R>>,
    /// Makes the request of the execution `key`, which the runner must accept. An execution
    /// whose `key.step` is [`QUICK`] ends by itself soon (any outcome); one whose step is
    /// [`SLOW`] runs until cancelled, or at least an hour.
    pub request: Box<dyn Fn(ExecutionKey) -> R + Send + Sync>,
    /// How time passes for its executions.
    pub time: Time,
}

impl<R> fmt::Debug for RunnerFixture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerFixture")
            .field("runner", &self.runner)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

/// The fixture a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject<R>(fixture: &RunnerFixture<R>) -> &RunnerFixture<R> {
    fixture
}

fn key(step: &str, attempt: u32) -> ExecutionKey {
    ExecutionKey {
        pipeline: "conformance".to_owned(),
        revision: 1,
        stage: "prod".to_owned(),
        attempt,
        unit: crate::exec::Unit::step(step),
    }
}

impl<R: Send + Sync + 'static> RunnerFixture<R> {
    async fn start(&self, key: &ExecutionKey) {
        let request = (self.request)(key.clone());
        ok(self.runner.start(request).await, &format!("start `{key}`"));
    }

    async fn wait(&self, key: &ExecutionKey) -> Outcome {
        let what = format!("wait for `{key}`");
        ok(until(&self.time, &what, self.runner.wait(key)).await, &what)
    }
}

/// A started execution ends, and `wait` returns its outcome.
pub async fn start_then_wait_ends<R: Send + Sync + 'static>(
    f: &RunnerFixture<R>,
    _: &Capabilities,
) {
    let k = key(QUICK, 1);
    f.start(&k).await;
    f.wait(&k).await;
}

/// Starting a key started before re-attaches: after the execution ended, a second start
/// does not run it again, and `wait` returns the first outcome at once (a manual clock does
/// not move).
pub async fn start_again_reattaches<R: Send + Sync + 'static>(
    f: &RunnerFixture<R>,
    _: &Capabilities,
) {
    let k = key(QUICK, 1);
    f.start(&k).await;
    let first = f.wait(&k).await;
    f.start(&k).await;
    let again = match &f.time {
        Time::Real => f.wait(&k).await,
        Time::Manual(_) => {
            let frozen = Time::manual(|| false);
            let what = "wait after a second start (it must re-attach, not run again)";
            ok(until(&frozen, what, f.runner.wait(&k)).await, what)
        }
    };
    assert_eq!(
        again, first,
        "a second start re-attaches to the ended execution"
    );
}

/// `wait` may be called again (after a restart) and returns the same outcome.
pub async fn wait_twice_returns_the_same_outcome<R: Send + Sync + 'static>(
    f: &RunnerFixture<R>,
    _: &Capabilities,
) {
    let k = key(QUICK, 2);
    f.start(&k).await;
    let first = f.wait(&k).await;
    let second = f.wait(&k).await;
    assert_eq!(first, second, "waiting twice for `{k}`");
}

/// Cancelling a running execution makes `wait` return `Failed`; other executions go on.
pub async fn cancel_running_fails_it<R: Send + Sync + 'static>(
    f: &RunnerFixture<R>,
    _: &Capabilities,
) {
    let (slow, quick) = (key(SLOW, 1), key(QUICK, 3));
    f.start(&slow).await;
    f.start(&quick).await;
    ok(f.runner.cancel(&slow).await, "cancel a running execution");
    match f.wait(&slow).await {
        Outcome::Failed { .. } => {}
        other => panic!("a cancelled execution must end Failed, got {other:?}"),
    }
    f.wait(&quick).await;
}

/// Cancelling an ended or unknown execution does nothing: the outcome stays.
pub async fn cancel_ended_or_unknown_does_nothing<R: Send + Sync + 'static>(
    f: &RunnerFixture<R>,
    _: &Capabilities,
) {
    ok(
        f.runner.cancel(&key("never-started", 1)).await,
        "cancel of an unknown execution",
    );
    let k = key(QUICK, 4);
    f.start(&k).await;
    let outcome = f.wait(&k).await;
    ok(f.runner.cancel(&k).await, "cancel of an ended execution");
    assert_eq!(
        f.wait(&k).await,
        outcome,
        "cancelling an ended execution changes nothing"
    );
}

/// `wait` for a key never started fails with [`Error::NotFound`].
pub async fn unknown_key_not_found<R: Send + Sync + 'static>(
    f: &RunnerFixture<R>,
    _: &Capabilities,
) {
    match f.runner.wait(&key("never-started", 1)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("wait for an unknown key: expected NotFound, got {other:?}"),
    }
}

//! The async engine: runs the lifecycle machine's commands against the [`Backends`] on any
//! executor (the core depends on no runtime; tests run it on tokio and on
//! `futures::executor`).
//!
//! [`Engine::new`] returns a handle and an [`EngineDriver`]; spawn (or await) the driver's
//! [`run`](EngineDriver::run) and talk to the engine through the handle: submit pushes, approve,
//! retry, cancel, read state and history. Every state change is appended to the store before
//! the work it implies starts (L20); after a restart the driver resumes from the store and
//! re-attaches to work in flight.
//!
//! # Many engines (L21)
//!
//! Several instances (each with its own [`EngineConfig::instance`] name) may share one store
//! and one [`DeploymentLock`](crate::backend::DeploymentLock):
//!
//! - Every append is a compare-and-swap on the stream's last sequence number; an instance that
//!   lost the race re-reads the log and decides again. Before deciding, an instance catches up
//!   with what the others appended.
//! - The work of a pipeline (builds, validation, mirroring, Terraform, steps) and its timers
//!   are driven by the holder of the pipeline's lease (key: the pipeline's slug, TTL
//!   [`EngineConfig::lease_ttl`]). The holder presents the lease's fencing token on every
//!   append, so once a newer holder has written, the store refuses the old one's appends. A
//!   holder that loses its lease drops the results of its work in flight; the new holder
//!   re-attaches to that work by its idempotency key (L20).
//! - Any instance records people's and webhooks' inputs (push, approve, retry, cancel,
//!   rollback, ...) for any pipeline, without a token when it is not the holder; it then
//!   starts no work, except stopping executions ([`Command::Cancel`]).
//! - With [`EngineConfig::poll_interval`] the driver wakes regularly to catch up, take free
//!   leases and renew its own; without it (one instance, the default) it does so only when it
//!   records something.
//!
//! [`Command::Cancel`]: crate::lifecycle::Command::Cancel

mod backoff;
mod batch;
mod driver;
mod execute;
mod feed;
mod lease;
mod notify;
mod observe;
mod ops;
mod pipeline;
mod snapshot;

pub use driver::EngineDriver;
pub use notify::{
    AppendedRecords, DynNotifier, FailedSteps, Notification, NotificationEvent, Notifier,
    NotifyConfig, NotifyingObserver, PipelineNotifications, notifications, read_records,
};
pub use observe::{Appended, DynObserver, Observer};
pub use ops::PatchRequest;

/// A push that is no deployment, for [`Engine::record_ignored_push`].
pub use crate::lifecycle::IgnoredPush;

use std::time::Duration;

use futures::channel::{mpsc, oneshot};

use crate::backend::{Backends, EventStoreExt, ExecutionKey};
use crate::error::{Error, Result};
use crate::expr::Organization;
use crate::lifecycle::{Control, Decide, Input, Operate, PipelineState, Record};

/// The default of [`EngineConfig::lease_ttl`]: 30 seconds.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// The default of [`EngineConfig::request_queue`].
pub const DEFAULT_REQUEST_QUEUE: usize = 1024;

/// The default of [`EngineConfig::snapshot_every`]: a snapshot every 1,000 records.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1_000;

/// How an engine instance runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The organization context of expressions.
    pub organization: Organization,
    /// This instance's name: the holder name of the leases it takes. Instances sharing a store
    /// need different names.
    pub instance: String,
    /// How long a pipeline's lease lasts unless renewed (default [`DEFAULT_LEASE_TTL`]). The
    /// holder renews it when half of it has passed, whenever it records something or polls.
    pub lease_ttl: Duration,
    /// How often the driver wakes, on the backends' clock, to catch up with what other
    /// instances recorded, take the leases of pipelines nobody drives and renew its own
    /// (L21). `None` (the default) suits a single instance: it never wakes for that, and takes
    /// and renews leases only when it records an input. A zero interval counts as 1 ms.
    pub poll_interval: Option<Duration>,
    /// Told about every append this instance makes, with the inputs that produced it:
    /// notifications, commit statuses, audit trails (see [`Observer`]).
    pub observers: Vec<DynObserver>,
    /// How many requests of the handles may wait for the driver (default
    /// [`DEFAULT_REQUEST_QUEUE`]); beyond that, callers wait for room (back-pressure for a
    /// server). At least 1.
    pub request_queue: usize,
    /// Save a snapshot of a pipeline's state whenever its log passes a multiple of this many
    /// records (default [`DEFAULT_SNAPSHOT_EVERY`]; 0: never). Loading reads the latest
    /// snapshot and the records after it. Saving is best effort: a failure is logged.
    pub snapshot_every: u64,
    /// Whether this instance drives work (default `true`). An instance that does not never
    /// takes a lease: it records people's inputs for the instance that drives (a command-line
    /// operation from another terminal) and starts nothing but cancellations.
    pub drives: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            organization: Organization::default(),
            instance: "engine-1".to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            poll_interval: None,
            observers: Vec::new(),
            request_queue: DEFAULT_REQUEST_QUEUE,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            drives: true,
        }
    }
}

impl EngineConfig {
    /// The defaults (see [`EngineConfig::default`]) for the instance named `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        EngineConfig {
            instance: instance.into(),
            ..EngineConfig::default()
        }
    }

    /// An instance that records inputs only and never drives work (see
    /// [`EngineConfig::drives`]).
    pub fn recording_only(mut self) -> Self {
        self.drives = false;
        self
    }

    /// With the organization context of expressions.
    pub fn with_organization(mut self, organization: Organization) -> Self {
        self.organization = organization;
        self
    }

    /// With the lease's time to live ([`EngineConfig::lease_ttl`]).
    pub fn with_lease_ttl(mut self, lease_ttl: Duration) -> Self {
        self.lease_ttl = lease_ttl;
        self
    }

    /// With a poll interval ([`EngineConfig::poll_interval`]; `None`: never poll).
    pub fn with_poll_interval(mut self, poll_interval: Option<Duration>) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// With one more observer of the appends ([`EngineConfig::observers`]).
    pub fn with_observer(mut self, observer: DynObserver) -> Self {
        self.observers.push(observer);
        self
    }

    /// With the size of the request queue ([`EngineConfig::request_queue`]).
    pub fn with_request_queue(mut self, request_queue: usize) -> Self {
        self.request_queue = request_queue;
        self
    }

    /// With the snapshot interval ([`EngineConfig::snapshot_every`]; 0: never).
    pub fn with_snapshot_every(mut self, snapshot_every: u64) -> Self {
        self.snapshot_every = snapshot_every;
        self
    }
}

/// A push as an embedder submits it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushRequest {
    /// The webhook delivery id, when there is one (L2 ignores a delivery seen before).
    pub delivery: Option<String>,
    /// The branch.
    pub branch: String,
    /// The pushed head commit (any revision the source repository resolves).
    pub commit: String,
    /// A tag pointing at the commit, or empty.
    pub tag: String,
}

impl PushRequest {
    /// A push of `commit` to `branch`, with no delivery id and no tag.
    pub fn new(branch: impl Into<String>, commit: impl Into<String>) -> Self {
        PushRequest {
            delivery: None,
            branch: branch.into(),
            commit: commit.into(),
            tag: String::new(),
        }
    }

    /// With the webhook delivery id.
    pub fn with_delivery(mut self, delivery: impl Into<String>) -> Self {
        self.delivery = Some(delivery.into());
        self
    }

    /// With a tag pointing at the commit.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

enum Request {
    Push(String, PushRequest, Reply<Vec<Record>>),
    Patch(String, PatchRequest, Reply<Vec<Record>>),
    Input(String, Input, Reply<Vec<Record>>),
    State(String, Reply<PipelineState>),
    Applied(String, Reply<u64>),
    Stop(Reply<()>),
}

/// A handle to a running engine. Cloning gives another handle to the same engine.
///
/// Every method that records an input returns the records it produced. An operation that the
/// lifecycle rules refuse is recorded as a `refused` event and returns [`Error::Refused`] with
/// the rule and the reason. While the store fails transiently, the input waits in the engine
/// and is recorded once the store answers (the call returns then).
#[derive(Clone, Debug)]
pub struct Engine {
    tx: mpsc::Sender<Request>,
    backends: Backends,
}

impl Engine {
    /// A new engine over `backends`.
    pub fn new(backends: Backends, config: EngineConfig) -> (Engine, EngineDriver) {
        let (tx, rx) = mpsc::channel(config.request_queue.max(1) - 1);
        let engine = Engine {
            tx,
            backends: backends.clone(),
        };
        (engine, EngineDriver::new(rx, backends, config))
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        use futures::SinkExt;
        let (reply, answer) = oneshot::channel();
        self.tx.clone().send(make(reply)).await.map_err(|_| {
            Error::backend(
                "engine",
                "send a request",
                "the engine's driver is not running",
            )
        })?;
        answer.await.map_err(|_| {
            Error::backend(
                "engine",
                "wait for an answer",
                "the engine's driver stopped",
            )
        })?
    }

    /// Records a person's input; a refusal becomes [`Error::Refused`].
    pub(crate) async fn record(&self, pipeline: &str, input: Input) -> Result<Vec<Record>> {
        self.ask(|r| Request::Input(pipeline.to_owned(), input, r))
            .await
            .and_then(refusal_as_error)
    }

    /// Submits a push to the pipeline `pipeline` (its slug); returns the records it produced.
    pub async fn push(&self, pipeline: &str, push: PushRequest) -> Result<Vec<Record>> {
        self.ask(|r| Request::Push(pipeline.to_owned(), push, r))
            .await
    }

    /// Records a push that is no deployment whatever the pipeline (a tag, a branch deletion,
    /// a ref that is no branch) in the log of `pipeline` as `push_ignored` with its reason
    /// (L2), without resolving anything. Its delivery id is remembered: a re-delivery (of this
    /// push, or of any push with the same id) is recorded as a duplicate and creates nothing.
    /// Returns the record.
    pub async fn record_ignored_push(
        &self,
        pipeline: &str,
        push: IgnoredPush,
    ) -> Result<Vec<Record>> {
        self.record(pipeline, Input::IgnoredPush(push)).await
    }

    /// Approves a waiting step (L16).
    pub async fn approve(&self, pipeline: &str, decide: Decide) -> Result<Vec<Record>> {
        self.record(pipeline, Input::Approve(decide)).await
    }

    /// Rejects a waiting step (L16).
    pub async fn reject(&self, pipeline: &str, decide: Decide) -> Result<Vec<Record>> {
        self.record(pipeline, Input::Reject(decide)).await
    }

    /// Retries a stage-deployment (L11).
    pub async fn retry(&self, pipeline: &str, op: Operate) -> Result<Vec<Record>> {
        self.record(pipeline, Input::Retry(op)).await
    }

    /// Cancels a stage-deployment (L12).
    pub async fn cancel(&self, pipeline: &str, op: Operate) -> Result<Vec<Record>> {
        self.record(pipeline, Input::Cancel(op)).await
    }

    /// Changes a stage's blockers: stop or resume promotions, unblock after rollback, bypass
    /// (L9).
    pub async fn control(&self, pipeline: &str, control: Control) -> Result<Vec<Record>> {
        self.record(pipeline, Input::Control(control)).await
    }

    /// The live state of a pipeline, after catching up with what other instances recorded.
    pub async fn state(&self, pipeline: &str) -> Result<PipelineState> {
        self.ask(|r| Request::State(pipeline.to_owned(), r)).await
    }

    /// How far the live state of a pipeline is: the sequence number of the last record it
    /// applied, after catching up with what other instances recorded exactly as
    /// [`Engine::state`] does (the same store calls), without copying the state. A reader that
    /// folds the log itself (as the simulator does after every step) reads the records up to
    /// it instead of asking for the whole state each time.
    pub async fn applied(&self, pipeline: &str) -> Result<u64> {
        self.ask(|r| Request::Applied(pipeline.to_owned(), r)).await
    }

    /// The pipeline's log, from the store.
    pub async fn history(&self, pipeline: &str) -> Result<Vec<Record>> {
        let events = self.backends.store.read_all(pipeline).await?;
        records_of(pipeline, events)
    }

    /// The log lines of the execution `key` of a step of type `step_type`, from that type's
    /// runner ([`Runner::logs`](crate::backend::Runner::logs)), or for a Terraform step from
    /// the infrastructure synthesizer
    /// ([`InfrastructureSynthesizer::logs`](crate::backend::InfrastructureSynthesizer::logs)).
    pub async fn step_logs(
        &self,
        step_type: &str,
        key: &ExecutionKey,
    ) -> Result<Vec<crate::exec::LogEntry>> {
        if step_type == crate::pipeline::BuiltinStep::TerraformSynthesize.as_str() {
            return crate::backend::InfrastructureSynthesizer::logs(&*self.backends.infra, key)
                .await;
        }
        self.backends.steps.get(step_type)?.logs(key).await
    }

    /// The log lines of the build `key` (its unit is `build:<artifact>`), from the build
    /// runner ([`Runner::logs`](crate::backend::Runner::logs)).
    pub async fn build_logs(&self, key: &ExecutionKey) -> Result<Vec<crate::exec::LogEntry>> {
        self.backends.builds.logs(key).await
    }

    /// Stops the driver after the request in progress; it releases the leases it holds.
    pub async fn stop(&self) -> Result<()> {
        self.ask(Request::Stop).await
    }
}

/// `records`, or [`Error::Refused`] when the input was refused: the only record then is the
/// `refused` event.
pub(crate) fn refusal_as_error(records: Vec<Record>) -> Result<Vec<Record>> {
    match records.as_slice() {
        [
            Record {
                event:
                    crate::lifecycle::Event::Refused {
                        operation,
                        rule,
                        reason,
                    },
                ..
            },
        ] => Err(Error::Refused {
            operation: operation.clone(),
            rule: rule.clone(),
            reason: reason.clone(),
        }),
        _ => Ok(records),
    }
}

/// The records of stored events of `pipeline`, in order.
pub(crate) fn records_of(
    pipeline: &str,
    events: Vec<crate::backend::StoredEvent>,
) -> Result<Vec<Record>> {
    events
        .into_iter()
        .map(|e| Record::from_stored(pipeline, e))
        .collect()
}

//! The async engine: runs the lifecycle machine's commands against the [`Backends`] on any
//! executor (the core depends on no runtime; tests run it on tokio and on
//! `futures::executor`).
//!
//! [`Engine::new`] returns a handle and an [`EngineDriver`]; spawn (or await) the driver's
//! [`run`](EngineDriver::run) and talk to the engine through the handle: submit pushes, approve,
//! retry, cancel, read state and history. Every state change is appended to the store before
//! the work it implies starts (L20); after a restart the driver resumes from the store and
//! re-attaches to work in flight.

mod ops;
mod work;

pub use ops::PatchRequest;

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::channel::{mpsc, oneshot};
use futures::future::{BoxFuture, Fuse, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;

use crate::backend::{AlarmChange, AlarmId, AppendOptions, Backends, EventStoreExt};
use crate::error::{Error, Result};
use crate::expr::Organization;
use crate::lifecycle::{
    Actor, AlarmInput, Control, Decide, Input, Machine, Operate, Patch, PipelineState, Push, Record,
};
use crate::pipeline::{PIPELINE_DIR, PIPELINE_FILE};

/// How an engine instance runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The organization context of expressions.
    pub organization: Organization,
    /// This instance's name (lease holder).
    pub instance: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            organization: Organization::default(),
            instance: "engine-1".to_owned(),
        }
    }
}

/// A push as an embedder submits it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

type Reply<T> = oneshot::Sender<Result<T>>;

/// The pending wake-up of the driver.
type Timer = Pin<Box<Fuse<BoxFuture<'static, ()>>>>;

enum Request {
    Push(String, PushRequest, Reply<Vec<Record>>),
    Patch(String, PatchRequest, Reply<Vec<Record>>),
    Input(String, Input, Reply<Vec<Record>>),
    State(String, Reply<PipelineState>),
    Stop(Reply<()>),
}

/// A handle to a running engine. Cloning gives another handle to the same engine.
#[derive(Clone, Debug)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Request>,
    backends: Backends,
}

/// The engine's loop; run it with [`EngineDriver::run`].
pub struct EngineDriver {
    rx: mpsc::UnboundedReceiver<Request>,
    backends: Backends,
    config: EngineConfig,
    machines: BTreeMap<String, Machine>,
    /// Each pipeline's next wake-up, updated whenever its machine changes.
    wakes: BTreeMap<String, Option<Timestamp>>,
    work: FuturesUnordered<BoxFuture<'static, Option<work::Done>>>,
}

impl std::fmt::Debug for EngineDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineDriver")
            .field("pipelines", &self.machines.keys().collect::<Vec<_>>())
            .field("work_in_flight", &self.work.len())
            .finish()
    }
}

impl Engine {
    /// A new engine over `backends`.
    pub fn new(backends: Backends, config: EngineConfig) -> (Engine, EngineDriver) {
        let (tx, rx) = mpsc::unbounded();
        let engine = Engine {
            tx,
            backends: backends.clone(),
        };
        let driver = EngineDriver {
            rx,
            backends,
            config,
            machines: BTreeMap::new(),
            wakes: BTreeMap::new(),
            work: FuturesUnordered::new(),
        };
        (engine, driver)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.unbounded_send(make(reply)).map_err(|_| {
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

    /// Submits a push to the pipeline `pipeline` (its slug); returns the records it produced.
    pub async fn push(&self, pipeline: &str, push: PushRequest) -> Result<Vec<Record>> {
        self.ask(|r| Request::Push(pipeline.to_owned(), push, r))
            .await
    }

    /// Approves a waiting step (L16).
    pub async fn approve(&self, pipeline: &str, decide: Decide) -> Result<Vec<Record>> {
        self.ask(|r| Request::Input(pipeline.to_owned(), Input::Approve(decide), r))
            .await
    }

    /// Rejects a waiting step (L16).
    pub async fn reject(&self, pipeline: &str, decide: Decide) -> Result<Vec<Record>> {
        self.ask(|r| Request::Input(pipeline.to_owned(), Input::Reject(decide), r))
            .await
    }

    /// Retries a stage-deployment (L11).
    pub async fn retry(&self, pipeline: &str, op: Operate) -> Result<Vec<Record>> {
        self.ask(|r| Request::Input(pipeline.to_owned(), Input::Retry(op), r))
            .await
    }

    /// Cancels a stage-deployment (L12).
    pub async fn cancel(&self, pipeline: &str, op: Operate) -> Result<Vec<Record>> {
        self.ask(|r| Request::Input(pipeline.to_owned(), Input::Cancel(op), r))
            .await
    }

    /// Changes a stage's blockers: stop or resume promotions, unblock after rollback, bypass
    /// (L9).
    pub async fn control(&self, pipeline: &str, control: Control) -> Result<Vec<Record>> {
        self.ask(|r| Request::Input(pipeline.to_owned(), Input::Control(control), r))
            .await
    }

    /// The live state of a pipeline.
    pub async fn state(&self, pipeline: &str) -> Result<PipelineState> {
        self.ask(|r| Request::State(pipeline.to_owned(), r)).await
    }

    /// The pipeline's log, from the store.
    pub async fn history(&self, pipeline: &str) -> Result<Vec<Record>> {
        let events = self.backends.store.read_all(pipeline).await?;
        events
            .into_iter()
            .map(|e| {
                serde_json::from_value(e.payload).map_err(|err| {
                    Error::backend(
                        "engine",
                        format!("read record {} of `{pipeline}`", e.seq),
                        err.to_string(),
                    )
                })
            })
            .collect()
    }

    /// Stops the driver after the request in progress.
    pub async fn stop(&self) -> Result<()> {
        self.ask(Request::Stop).await
    }
}

impl EngineDriver {
    /// Runs the engine until [`Engine::stop`] or until every handle is dropped. Resumes every
    /// pipeline found in the store first.
    pub async fn run(mut self) -> Result<()> {
        let mut alarms = self.backends.alarms.subscribe().fuse();
        self.resume().await?;
        let mut timer: Option<(Timestamp, Timer)> = None;
        loop {
            let wake = self.wakes.values().flatten().min().copied();
            if timer.as_ref().map(|(t, _)| *t) != wake {
                timer = wake.map(|t| {
                    let clock = self.backends.clock.clone();
                    let sleep: BoxFuture<'static, ()> =
                        Box::pin(async move { clock.sleep_until(t).await });
                    (t, Box::pin(sleep.fuse()))
                });
            }
            let mut never = Box::pin(futures::future::pending::<()>().boxed().fuse());
            let tick = match timer.as_mut() {
                Some((_, t)) => t.as_mut(),
                None => never.as_mut(),
            };
            futures::select_biased! {
                request = self.rx.next() => match request {
                    None => return Ok(()),
                    Some(Request::Stop(reply)) => {
                        let _ = reply.send(Ok(()));
                        return Ok(());
                    }
                    Some(request) => self.serve(request).await,
                },
                done = self.work.select_next_some() => {
                    // Every result ready now is recorded together: one append per pipeline.
                    let mut ready = vec![done];
                    while let Some(Some(more)) = self.work.next().now_or_never() {
                        ready.push(more);
                    }
                    let mut by_pipeline: BTreeMap<String, Vec<Input>> = BTreeMap::new();
                    for (pipeline, key, result) in ready.into_iter().flatten() {
                        by_pipeline.entry(pipeline).or_default().push(Input::Work { key, result });
                    }
                    for (pipeline, inputs) in by_pipeline {
                        if let Err(e) = self.feed_all(&pipeline, inputs).await {
                            tracing::error!(pipeline = %pipeline, error = %e, "could not record work results");
                        }
                    }
                }
                change = alarms.select_next_some() => self.alarm_changed(&change).await,
                () = tick.fuse() => {
                    timer = None;
                    let now = self.backends.clock.now();
                    let due: Vec<String> = self
                        .wakes
                        .iter()
                        .filter(|(_, w)| w.is_some_and(|w| w <= now))
                        .map(|(p, _)| p.clone())
                        .collect();
                    for p in due {
                        match self.feed(&p, Input::Tick).await {
                            // Nothing was due after all: forget the wake-up rather than spin.
                            Ok(records) if records.is_empty() => {
                                if self.wakes.get(&p).copied().flatten().is_some_and(|w| w <= now) {
                                    self.wakes.insert(p, None);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!(pipeline = %p, error = %e, "timer"),
                        }
                    }
                }
            }
        }
    }

    /// Loads every pipeline of the store and re-attaches to its work in flight (L20).
    async fn resume(&mut self) -> Result<()> {
        for stream in self.backends.store.streams().await? {
            let machine = load(&self.backends, &stream).await?;
            let state = machine.state().clone();
            for command in machine.pending_work() {
                if let Some(f) = work::start(&self.backends, &stream, &state, command) {
                    self.work.push(f);
                }
            }
            self.wakes
                .insert(stream.clone(), machine.next_wake(self.backends.clock.now()));
            self.machines.insert(stream.clone(), machine);
            // An alarm that changed while no engine listened is acted on now (L15).
            for (stage, alarm) in self.watched_alarms(&stream) {
                match self.backends.alarms.state(&alarm).await {
                    Ok(Some(state)) => {
                        let current = self
                            .machines
                            .get(&stream)
                            .map(|m| m.state().stage(&stage).alarm);
                        if current != Some(state) {
                            let input = Input::Alarm(AlarmInput {
                                stage,
                                state,
                                actor: Actor::System,
                            });
                            self.feed(&stream, input).await?;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(pipeline = %stream, alarm = %alarm.name, error = %e, "alarm state")
                    }
                }
            }
        }
        Ok(())
    }

    /// The alarms the stages of `pipeline` watch (L15), from the definition in force.
    fn watched_alarms(&self, pipeline: &str) -> Vec<(String, AlarmId)> {
        let Some(definition) = self
            .machines
            .get(pipeline)
            .and_then(|m| m.state().definition.clone())
        else {
            return Vec::new();
        };
        definition
            .stages
            .iter()
            .filter_map(|s| {
                let name = s.auto_rollback_alarm_name.as_ref()?;
                Some((
                    s.name.value.clone(),
                    AlarmId {
                        name: name.value.clone(),
                        account_id: s.account_id.value.clone(),
                        region: s.region.value.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Feeds an alarm change to every stage that watches the alarm.
    async fn alarm_changed(&mut self, change: &AlarmChange) {
        let pipelines: Vec<String> = self.machines.keys().cloned().collect();
        for pipeline in pipelines {
            for (stage, alarm) in self.watched_alarms(&pipeline) {
                if alarm != change.alarm {
                    continue;
                }
                let input = Input::Alarm(AlarmInput {
                    stage,
                    state: change.state,
                    actor: Actor::System,
                });
                if let Err(e) = self.feed(&pipeline, input).await {
                    tracing::error!(pipeline = %pipeline, error = %e, "could not record an alarm change");
                }
            }
        }
    }
}

/// Rebuilds a pipeline's machine from its log. A free function so that the driver's future
/// borrows only the (shareable) backends across the read, and stays `Send`.
async fn load(backends: &Backends, pipeline: &str) -> Result<Machine> {
    {
        let events = backends.store.read_all(pipeline).await?;
        let records: Vec<Record> = events
            .into_iter()
            .map(|e| {
                serde_json::from_value(e.payload).map_err(|err| {
                    Error::backend("engine", format!("replay `{pipeline}`"), err.to_string())
                })
            })
            .collect::<Result<_>>()?;
        Ok(Machine::replay(pipeline, &records))
    }
}

impl EngineDriver {
    async fn serve(&mut self, request: Request) {
        match request {
            Request::Push(pipeline, push, reply) => {
                let result = self.push(&pipeline, push).await;
                let _ = reply.send(result);
            }
            Request::Patch(pipeline, patch, reply) => {
                let result = self.patch(&pipeline, patch).await;
                let _ = reply.send(result);
            }
            Request::Input(pipeline, input, reply) => {
                let result = self.feed(&pipeline, input).await;
                let _ = reply.send(result);
            }
            Request::State(pipeline, reply) => {
                let result = match self.machine(&pipeline).await {
                    Ok(m) => Ok(m.state().clone()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Stop(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn machine(&mut self, pipeline: &str) -> Result<&mut Machine> {
        if !self.machines.contains_key(pipeline) {
            let machine = load(&self.backends, pipeline).await?;
            self.wakes.insert(
                pipeline.to_owned(),
                machine.next_wake(self.backends.clock.now()),
            );
            self.machines.insert(pipeline.to_owned(), machine);
        }
        self.machines
            .get_mut(pipeline)
            .ok_or_else(|| Error::not_found(format!("pipeline `{pipeline}`")))
    }

    /// Reads what synthesis needs for a push and feeds it to the machine.
    async fn push(&mut self, pipeline: &str, push: PushRequest) -> Result<Vec<Record>> {
        let input = Input::Push(self.read_push(pipeline, push).await?);
        self.feed(pipeline, input).await
    }

    /// Reads the patch's commit and feeds it to the machine (L17). It deploys on the tracked
    /// branch of the definition at that commit.
    async fn patch(&mut self, pipeline: &str, patch: PatchRequest) -> Result<Vec<Record>> {
        let request = PushRequest {
            commit: patch.commit,
            ..PushRequest::default()
        };
        let mut push = self.read_push(pipeline, request).await?;
        push.branch = push
            .definition
            .as_deref()
            .and_then(|d| crate::pipeline::parse(d).ok())
            .map_or_else(
                || crate::pipeline::DEFAULT_TRACKED_BRANCH.to_owned(),
                |d| d.tracked_branch().to_owned(),
            );
        let input = Input::Patch(Patch {
            push,
            actor: patch.actor,
            reason: patch.reason,
        });
        self.feed(pipeline, input).await
    }

    /// What the machine needs of a pushed commit: its full id, the definition at it, and the
    /// paths changed since each base commit.
    async fn read_push(&mut self, pipeline: &str, push: PushRequest) -> Result<Push> {
        let source = self.backends.source.clone();
        let commit = source.resolve(&push.commit).await?;
        let path = format!("/{PIPELINE_DIR}/{pipeline}/{PIPELINE_FILE}");
        let definition = source
            .read_file(&commit, &path)
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        let bases = self.machine(pipeline).await?.bases();
        let mut changed = BTreeMap::new();
        for base in bases {
            if let Ok(paths) = source.changed_paths(&base, &commit).await {
                changed.insert(base, paths);
            }
        }
        Ok(Push {
            delivery: push.delivery,
            branch: push.branch,
            commit,
            tag: push.tag,
            definition,
            changed,
            organization: self.config.organization.clone(),
        })
    }

    /// Feeds one input: decides, appends the records (compare-and-swap), then starts the work.
    async fn feed(&mut self, pipeline: &str, input: Input) -> Result<Vec<Record>> {
        self.feed_all(pipeline, vec![input]).await
    }

    /// Feeds inputs that arrived together: their records go to the store in one append, before
    /// any of the work they imply starts (L20).
    async fn feed_all(&mut self, pipeline: &str, inputs: Vec<Input>) -> Result<Vec<Record>> {
        let now = self.backends.clock.now();
        for _ in 0..5 {
            let machine = self.machine(pipeline).await?;
            let expected = machine.state().applied;
            let mut records = Vec::new();
            let mut commands = Vec::new();
            for input in inputs.iter().cloned() {
                let output = machine.handle(input, now);
                records.extend(output.records);
                commands.extend(output.commands);
            }
            if records.is_empty() && commands.is_empty() {
                return Ok(Vec::new());
            }
            let payloads = records
                .iter()
                .map(serde_json::to_value)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::backend("engine", "serialize records", e.to_string()));
            let appended = match payloads {
                Ok(payloads) => {
                    self.backends
                        .store
                        .append(pipeline, expected, payloads, AppendOptions::default())
                        .await
                }
                Err(e) => Err(e),
            };
            match appended {
                Ok(_) => {
                    for record in &records {
                        tracing::debug!(
                            pipeline = %pipeline,
                            r#type = record.event.type_name(),
                            actor = %record.actor,
                            "recorded"
                        );
                    }
                    let Some(machine) = self.machines.get(pipeline) else {
                        return Ok(records);
                    };
                    for command in commands {
                        if let Some(f) =
                            work::start(&self.backends, pipeline, machine.state(), command)
                        {
                            self.work.push(f);
                        }
                    }
                    self.wakes
                        .insert(pipeline.to_owned(), machine.next_wake(now));
                    return Ok(records);
                }
                Err(e) => {
                    // The machine moved on but the store did not: rebuild it from the log. A lost
                    // race (another writer) means re-read and decide again (L21).
                    let fresh = load(&self.backends, pipeline).await?;
                    self.wakes.insert(pipeline.to_owned(), fresh.next_wake(now));
                    self.machines.insert(pipeline.to_owned(), fresh);
                    if !matches!(e, Error::Conflict { .. }) {
                        return Err(e);
                    }
                }
            }
        }
        Err(Error::Conflict {
            what: format!("the log of `{pipeline}` kept changing while recording an input"),
        })
    }
}

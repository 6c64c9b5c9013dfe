//! [`EngineDriver`]: the engine's loop. It serves the handle's requests, records inputs in the
//! store (compare-and-swap, L21), runs the machine's commands and feeds their results back.
//!
//! The loop is fair: it takes one thing at a time from the handle's requests, the work that
//! ended, the alarm changes and the timer, in that order of preference, except that after
//! [`REQUEST_BURST`] requests in a row while something else is ready, the others go first
//! once; a storm of requests cannot starve work results or timers.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::task::Poll;

use futures::channel::mpsc;
use futures::future::{BoxFuture, Fuse, FusedFuture, FutureExt};
use futures::stream::{BoxStream, FusedStream, FuturesUnordered, StreamExt};
use jiff::Timestamp;

use super::batch::MAX_BATCH;
use super::lease::Landed;
use super::pipeline::{Driven, Job, Origin};
use super::{EngineConfig, Request};
use crate::backend::{AlarmChange, AlarmId, Backends};
use crate::error::Result;
use crate::lifecycle::{Actor, AlarmInput, Input};

/// The pending wake-up of the driver.
type Timer = Pin<Box<Fuse<BoxFuture<'static, ()>>>>;

/// How many requests in a row the loop serves while other things are ready.
pub(super) const REQUEST_BURST: u32 = 16;

/// What the loop takes next.
// One value at a time, on the stack of the loop, never stored: boxing would only add an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(Option<Request>),
    Landed(Landed),
    Alarm(AlarmChange),
    Tick,
}

/// The engine's loop; run it with [`EngineDriver::run`].
pub struct EngineDriver {
    rx: mpsc::Receiver<Request>,
    pub(super) backends: Backends,
    pub(super) config: EngineConfig,
    /// Every pipeline this instance knows, by slug.
    pub(super) pipelines: BTreeMap<String, Driven>,
    /// The futures of work in flight, of every pipeline.
    pub(super) work: FuturesUnordered<BoxFuture<'static, Landed>>,
    /// When to poll next ([`EngineConfig::poll_interval`]).
    next_poll: Option<Timestamp>,
    /// Requests served in a row while something else was ready.
    burst: u32,
    /// A request taken from the channel while gathering inputs to record together, served
    /// next (see [`EngineDriver::record_requests`]).
    deferred: Option<Request>,
    /// Whether the channel said every handle is gone while gathering.
    hung_up: bool,
}

impl std::fmt::Debug for EngineDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held: Vec<&String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.lease.is_some())
            .map(|(k, _)| k)
            .collect();
        f.debug_struct("EngineDriver")
            .field("instance", &self.config.instance)
            .field("pipelines", &self.pipelines.keys().collect::<Vec<_>>())
            .field("leases", &held)
            .field("work_in_flight", &self.work.len())
            .finish()
    }
}

impl EngineDriver {
    pub(super) fn new(
        rx: mpsc::Receiver<Request>,
        backends: Backends,
        config: EngineConfig,
    ) -> Self {
        EngineDriver {
            rx,
            backends,
            config,
            pipelines: BTreeMap::new(),
            work: FuturesUnordered::new(),
            next_poll: None,
            burst: 0,
            deferred: None,
            hung_up: false,
        }
    }

    /// Runs the engine until [`Engine::stop`](super::Engine::stop) or until every handle is
    /// dropped, then releases its leases. Resumes every pipeline found in the store first.
    pub async fn run(mut self) -> Result<()> {
        let mut alarms = self.backends.alarms.subscribe().fuse();
        self.resume().await?;
        let mut timer: Option<(Timestamp, Timer)> = None;
        loop {
            let checks: Vec<String> = self
                .pipelines
                .iter()
                .filter(|(_, p)| p.alarm_check)
                .map(|(k, _)| k.clone())
                .collect();
            if !checks.is_empty() {
                self.check_alarms(checks).await;
            }
            let wake = self.next_wake();
            if timer.as_ref().map(|(t, _)| *t) != wake {
                timer = wake.map(|t| {
                    let clock = self.backends.clock.clone();
                    let sleep: BoxFuture<'static, ()> =
                        Box::pin(async move { clock.sleep_until(t).await });
                    (t, Box::pin(sleep.fuse()))
                });
            }
            let next = if let Some(request) = self.deferred.take() {
                Next::Request(Some(request))
            } else if self.hung_up {
                Next::Request(None)
            } else {
                self.next(&mut alarms, timer.as_mut().map(|(_, t)| t)).await
            };
            match next {
                Next::Request(None) => {
                    self.release_leases().await;
                    return Ok(());
                }
                Next::Request(Some(Request::Stop(reply))) => {
                    self.release_leases().await;
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                Next::Request(Some(request)) => self.serve(request).await,
                Next::Landed(landed) => self.record_work(landed).await,
                Next::Alarm(change) => self.alarm_changed(&change).await,
                Next::Tick => {
                    timer = None;
                    self.wake_up().await;
                }
            }
        }
    }

    /// Waits for the next thing to do, fairly (see the module docs).
    async fn next(
        &mut self,
        alarms: &mut futures::stream::Fuse<BoxStream<'static, AlarmChange>>,
        mut timer: Option<&mut Timer>,
    ) -> Next {
        let requests_last = self.burst >= REQUEST_BURST;
        let (rx, work) = (&mut self.rx, &mut self.work);
        let next = futures::future::poll_fn(|cx| {
            let mut others = |cx: &mut std::task::Context<'_>| {
                if !work.is_empty()
                    && let Poll::Ready(Some(landed)) = work.poll_next_unpin(cx)
                {
                    return Some(Next::Landed(landed));
                }
                if !alarms.is_terminated()
                    && let Poll::Ready(Some(change)) = alarms.poll_next_unpin(cx)
                {
                    return Some(Next::Alarm(change));
                }
                if let Some(t) = timer.as_mut()
                    && !t.is_terminated()
                    && t.as_mut().poll(cx).is_ready()
                {
                    return Some(Next::Tick);
                }
                None
            };
            if requests_last && let Some(next) = others(cx) {
                return Poll::Ready(next);
            }
            if !rx.is_terminated()
                && let Poll::Ready(request) = rx.poll_next_unpin(cx)
            {
                return Poll::Ready(Next::Request(request));
            }
            match others(cx) {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
        .await;
        self.burst = match next {
            Next::Request(_) => self.burst.saturating_add(1),
            _ => 0,
        };
        if requests_last {
            self.burst = 0;
        }
        next
    }

    async fn serve(&mut self, request: Request) {
        match request {
            Request::Push(..) | Request::Patch(..) | Request::Input(..) => {
                self.record_requests(request).await;
            }
            Request::State(pipeline, reply) => {
                let result = match self.sync(&pipeline).await {
                    Ok(()) => self.machine(&pipeline).await.map(|m| m.state().clone()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Applied(pipeline, reply) => {
                let result = match self.sync(&pipeline).await {
                    Ok(()) => self.machine(&pipeline).await.map(|m| m.state().applied),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Stop(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Queues `first` and the other requests to record that are ready in the channel now (up
    /// to [`MAX_BATCH`]), then records them: those of one pipeline in one append (group
    /// commit, see `batch`). A request of another kind ends the gathering and is served next.
    async fn record_requests(&mut self, first: Request) {
        let mut fresh: Vec<String> = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(request) = next.take() {
            let (pipeline, job, reply) = match request {
                Request::Push(pipeline, push, reply) => (pipeline, Job::Push(push), reply),
                Request::Patch(pipeline, patch, reply) => (pipeline, Job::Patch(patch), reply),
                Request::Input(pipeline, input, reply) => {
                    let job = Job::Inputs {
                        inputs: vec![input],
                        origin: Origin::Outside,
                    };
                    (pipeline, job, reply)
                }
                other => {
                    self.deferred = Some(other);
                    break;
                }
            };
            // A queue that was not empty waits for its backoff: it is not drained now.
            if self.pipeline(&pipeline).enqueue(job, Some(reply)) {
                fresh.push(pipeline);
            }
            taken += 1;
            if taken >= MAX_BATCH {
                break;
            }
            match self.rx.try_recv() {
                Ok(request) => next = Some(request),
                Err(mpsc::TryRecvError::Closed) => self.hung_up = true,
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        for pipeline in fresh {
            self.drain(&pipeline).await;
        }
    }

    /// The earliest of the pipelines' timers, retries and lease retries, and the next poll.
    fn next_wake(&self) -> Option<Timestamp> {
        self.pipelines
            .values()
            .filter_map(Driven::next_wake)
            .chain(self.next_poll)
            .min()
    }

    /// Loads every pipeline of the store, takes the leases nobody holds and re-attaches to the
    /// work in flight of those (L20).
    /// A store that fails transiently delays this (the list of pipelines is asked for again
    /// with backoff; a pipeline that cannot be read now is read again after its backoff); a
    /// permanent failure (a log this version cannot read) stops the driver with the error.
    async fn resume(&mut self) -> Result<()> {
        let mut backoff = super::backoff::Backoff::default();
        let streams = loop {
            match self.backends.store.streams().await {
                Ok(streams) => break streams,
                Err(e) if e.is_transient() => {
                    let due = backoff.failed(self.backends.clock.now(), e.retry_after());
                    tracing::warn!(error = %e, retry_at = %due, "resume: list the pipelines");
                    self.backends.clock.sleep_until(due).await;
                }
                Err(e) => return Err(e),
            }
        };
        let now = self.backends.clock.now();
        for stream in streams {
            match self.reload(&stream).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    let due = self.pipeline(&stream).backoff.failed(now, e.retry_after());
                    tracing::warn!(pipeline = %stream, error = %e, retry_at = %due, "resume: read the log");
                    continue;
                }
                // A log this engine cannot read (a record of a newer version): an upgrade is
                // needed, and driving the other pipelines would hide it.
                Err(e) => return Err(e),
            }
            self.take_lease(&stream, now).await;
        }
        self.next_poll = self.config.poll_interval.map(|d| later(now, d));
        Ok(())
    }

    /// Does what is due: polls, retries leases, records what waited for the store, fires
    /// timers.
    async fn wake_up(&mut self) {
        let now = self.backends.clock.now();
        if self.next_poll.is_some_and(|t| t <= now) {
            self.poll(now).await;
        }
        let retries: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.lease_retry.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for p in retries {
            self.pipeline(&p).lease_retry = None;
            self.take_lease(&p, now).await;
        }
        let backed_off: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.backoff.until().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for p in backed_off {
            self.retry_unrecorded(&p).await;
        }
        let due: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| {
                p.queue.is_empty() && !p.backoff.waiting(now) && p.wake.is_some_and(|w| w <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for p in due {
            match self.feed_all(&p, &[Input::Tick], Origin::Holder).await {
                // Nothing was due after all: forget the wake-up rather than spin.
                Ok(records) if records.is_empty() => {
                    let d = self.pipeline(&p);
                    if d.wake.is_some_and(|w| w <= now) {
                        d.wake = None;
                    }
                }
                Ok(_) => {
                    let d = self.pipeline(&p);
                    if d.parked.is_empty() {
                        d.backoff.succeeded();
                    }
                }
                Err(e) => {
                    let due = self.pipeline(&p).backoff.failed(now, e.retry_after());
                    tracing::warn!(pipeline = %p, error = %e, retry_at = %due, "timer: will retry");
                }
            }
        }
    }

    /// Catches up with every pipeline of the store, takes the free leases, renews its own and
    /// re-attaches to work nobody runs (L21).
    async fn poll(&mut self, now: Timestamp) {
        let mut pipelines: BTreeSet<String> = self.pipelines.keys().cloned().collect();
        match self.backends.store.streams().await {
            Ok(streams) => pipelines.extend(streams),
            Err(e) => tracing::warn!(error = %e, "poll: list the pipelines"),
        }
        for p in pipelines {
            let held = self.take_lease(&p, now).await.is_some();
            if let Err(e) = self.sync(&p).await {
                tracing::warn!(pipeline = %p, error = %e, "poll: catch up");
                continue;
            }
            if held {
                self.start_pending(&p);
                self.drain(&p).await;
            }
            self.set_wake(&p, now);
        }
        self.next_poll = self.config.poll_interval.map(|d| later(now, d));
    }

    /// Queues the results of work that ended (every result ready now together: one append
    /// per pipeline) and records them. Results of work started under a lease that is no
    /// longer held are dropped: the new holder re-attaches to that work (L20, L21). A result
    /// the store could not take stays queued and is recorded later.
    async fn record_work(&mut self, landed: Landed) {
        let mut ready = vec![landed];
        while let Some(Some(more)) = self.work.next().now_or_never() {
            ready.push(more);
        }
        let mut by_pipeline: BTreeMap<(String, u64), Vec<Input>> = BTreeMap::new();
        for landed in ready {
            let Landed::Done { token, done } = landed else {
                continue;
            };
            let (pipeline, key, result) = *done;
            // Only the execution tracked now: a lost lease aborted the others.
            let Some(p) = self.pipelines.get_mut(&pipeline) else {
                continue;
            };
            if p.in_flight.get(&key).is_none_or(|f| f.token != token) {
                continue;
            }
            p.in_flight.remove(&key);
            by_pipeline
                .entry((pipeline, token))
                .or_default()
                .push(Input::Work { key, result });
        }
        let mut touched = BTreeSet::new();
        for ((pipeline, token), inputs) in by_pipeline {
            let job = Job::Inputs {
                inputs,
                origin: Origin::Work(token),
            };
            self.pipeline(&pipeline).enqueue(job, None);
            touched.insert(pipeline);
        }
        for pipeline in touched {
            self.drain(&pipeline).await;
        }
    }

    /// The alarms the stages of `pipeline` watch (L15), from the definition in force.
    pub(super) fn watched_alarms(&self, pipeline: &str) -> Vec<(String, AlarmId)> {
        let Some(definition) = self
            .pipelines
            .get(pipeline)
            .and_then(|p| p.machine.as_ref())
            .and_then(|m| m.state().definition.clone())
        else {
            return Vec::new();
        };
        definition
            .stages
            .iter()
            .filter_map(|s| Some((s.name.value.clone(), AlarmId::of_stage(s)?)))
            .collect()
    }

    /// Acts on alarms that changed while nobody drove the pipelines that got a new holder
    /// (L15).
    async fn check_alarms(&mut self, pipelines: Vec<String>) {
        for pipeline in pipelines {
            self.pipeline(&pipeline).alarm_check = false;
            for (stage, alarm) in self.watched_alarms(&pipeline) {
                match self.backends.alarms.state(&alarm).await {
                    Ok(Some(state)) => {
                        let current = self
                            .pipelines
                            .get(&pipeline)
                            .and_then(|p| p.machine.as_ref())
                            .map(|m| m.state().stage(&stage).alarm);
                        if current != Some(state) {
                            let input = Input::Alarm(AlarmInput {
                                stage,
                                state,
                                actor: Actor::System,
                            });
                            let job = Job::Inputs {
                                inputs: vec![input],
                                origin: Origin::Holder,
                            };
                            self.submit(&pipeline, job, None).await;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(pipeline = %pipeline, alarm = %alarm.name, error = %e, "alarm state")
                    }
                }
            }
        }
    }

    /// Feeds an alarm change to every stage that watches the alarm, in the pipelines this
    /// instance drives.
    async fn alarm_changed(&mut self, change: &AlarmChange) {
        let pipelines: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, p)| p.lease.is_some())
            .map(|(k, _)| k.clone())
            .collect();
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
                let job = Job::Inputs {
                    inputs: vec![input],
                    origin: Origin::Holder,
                };
                self.submit(&pipeline, job, None).await;
            }
        }
    }
}

/// `t + d` (at least 1 ms later), saturating.
fn later(t: Timestamp, d: std::time::Duration) -> Timestamp {
    let d = d.max(std::time::Duration::from_millis(1));
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

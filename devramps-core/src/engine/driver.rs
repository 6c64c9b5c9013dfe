//! [`EngineDriver`]: the engine's loop. It serves the handle's requests, records inputs in the
//! store (compare-and-swap, L21), runs the machine's commands and feeds their results back.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;

use futures::channel::mpsc;
use futures::future::{BoxFuture, Fuse, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;

use super::lease::{Flight, Landed, Leases, Origin};
use super::{EngineConfig, Request};
use crate::backend::{AlarmChange, AlarmId, Backends, ExecutionKey};
use crate::error::Result;
use crate::lifecycle::{Actor, AlarmInput, Input, Machine};

/// The pending wake-up of the driver.
type Timer = Pin<Box<Fuse<BoxFuture<'static, ()>>>>;

/// The engine's loop; run it with [`EngineDriver::run`].
pub struct EngineDriver {
    rx: mpsc::UnboundedReceiver<Request>,
    pub(super) backends: Backends,
    pub(super) config: EngineConfig,
    pub(super) machines: BTreeMap<String, Machine>,
    /// Each pipeline's next wake-up, updated whenever its machine changes; `None` for the
    /// pipelines this instance does not drive (timers are the holder's, L21).
    pub(super) wakes: BTreeMap<String, Option<Timestamp>>,
    pub(super) work: FuturesUnordered<BoxFuture<'static, Landed>>,
    /// The executions this instance runs, by key (at most one future each).
    pub(super) in_flight: BTreeMap<ExecutionKey, Flight>,
    /// The executions whose results are being recorded.
    pub(super) recording: BTreeSet<ExecutionKey>,
    /// The leases this instance holds, and when to try again for those others hold.
    pub(super) leases: Leases,
    /// When to poll next ([`EngineConfig::poll_interval`]).
    next_poll: Option<Timestamp>,
    /// Pipelines whose alarms to compare with their state (they got a new holder, L15).
    pub(super) alarm_checks: BTreeSet<String>,
}

impl std::fmt::Debug for EngineDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineDriver")
            .field("instance", &self.config.instance)
            .field("pipelines", &self.machines.keys().collect::<Vec<_>>())
            .field("leases", &self.leases.held.keys().collect::<Vec<_>>())
            .field("work_in_flight", &self.work.len())
            .finish()
    }
}

impl EngineDriver {
    pub(super) fn new(
        rx: mpsc::UnboundedReceiver<Request>,
        backends: Backends,
        config: EngineConfig,
    ) -> Self {
        EngineDriver {
            rx,
            backends,
            config,
            machines: BTreeMap::new(),
            wakes: BTreeMap::new(),
            work: FuturesUnordered::new(),
            in_flight: BTreeMap::new(),
            recording: BTreeSet::new(),
            leases: Leases::default(),
            next_poll: None,
            alarm_checks: BTreeSet::new(),
        }
    }

    /// Runs the engine until [`Engine::stop`](super::Engine::stop) or until every handle is
    /// dropped, then releases its leases. Resumes every pipeline found in the store first.
    pub async fn run(mut self) -> Result<()> {
        let mut alarms = self.backends.alarms.subscribe().fuse();
        self.resume().await?;
        let mut timer: Option<(Timestamp, Timer)> = None;
        loop {
            if !self.alarm_checks.is_empty() {
                self.check_alarms().await;
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
            let mut never = Box::pin(futures::future::pending::<()>().boxed().fuse());
            let tick = match timer.as_mut() {
                Some((_, t)) => t.as_mut(),
                None => never.as_mut(),
            };
            futures::select_biased! {
                request = self.rx.next() => match request {
                    None => {
                        self.release_leases().await;
                        return Ok(());
                    }
                    Some(Request::Stop(reply)) => {
                        self.release_leases().await;
                        let _ = reply.send(Ok(()));
                        return Ok(());
                    }
                    Some(request) => self.serve(request).await,
                },
                landed = self.work.select_next_some() => self.record_work(landed).await,
                change = alarms.select_next_some() => self.alarm_changed(&change).await,
                () = tick.fuse() => {
                    timer = None;
                    self.wake_up().await;
                }
            }
        }
    }

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
                let result = self.feed_all(&pipeline, vec![input], Origin::Outside).await;
                let _ = reply.send(result);
            }
            Request::State(pipeline, reply) => {
                let result = match self.sync(&pipeline).await {
                    Ok(()) => self.machine(&pipeline).await.map(|m| m.state().clone()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Stop(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// The earliest of the timers, the lease retries and the next poll.
    fn next_wake(&self) -> Option<Timestamp> {
        self.wakes
            .values()
            .flatten()
            .chain(self.leases.retry.values())
            .chain(&self.next_poll)
            .min()
            .copied()
    }

    /// Loads every pipeline of the store, takes the leases nobody holds and re-attaches to the
    /// work in flight of those (L20).
    async fn resume(&mut self) -> Result<()> {
        let now = self.backends.clock.now();
        for stream in self.backends.store.streams().await? {
            self.reload(&stream).await?;
            self.take_lease(&stream, now).await;
        }
        self.next_poll = self.config.poll_interval.map(|d| later(now, d));
        Ok(())
    }

    /// Does what is due: polls, retries leases, fires timers.
    async fn wake_up(&mut self) {
        let now = self.backends.clock.now();
        if self.next_poll.is_some_and(|t| t <= now) {
            self.poll(now).await;
        }
        let retries: Vec<String> = self
            .leases
            .retry
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for p in retries {
            self.leases.retry.remove(&p);
            self.take_lease(&p, now).await;
        }
        let due: Vec<String> = self
            .wakes
            .iter()
            .filter(|(_, w)| w.is_some_and(|w| w <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            match self.feed_all(&p, vec![Input::Tick], Origin::Holder).await {
                // Nothing was due after all: forget the wake-up rather than spin.
                Ok(records) if records.is_empty() => {
                    if self
                        .wakes
                        .get(&p)
                        .copied()
                        .flatten()
                        .is_some_and(|w| w <= now)
                    {
                        self.wakes.insert(p, None);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(pipeline = %p, error = %e, "timer"),
            }
        }
    }

    /// Catches up with every pipeline of the store, takes the free leases, renews its own and
    /// re-attaches to work nobody runs (L21).
    async fn poll(&mut self, now: Timestamp) {
        let mut pipelines: BTreeSet<String> = self.machines.keys().cloned().collect();
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
            }
            self.set_wake(&p, now);
        }
        self.next_poll = self.config.poll_interval.map(|d| later(now, d));
    }

    /// Records the results of work that ended (every result ready now together: one append
    /// per pipeline). Results of work started under a lease that is no longer held are
    /// dropped: the new holder re-attaches to that work (L20, L21).
    async fn record_work(&mut self, landed: Landed) {
        let mut ready = vec![landed];
        while let Some(Some(more)) = self.work.next().now_or_never() {
            ready.push(more);
        }
        let mut by_pipeline: BTreeMap<(String, u64), Vec<Input>> = BTreeMap::new();
        for landed in ready {
            let Landed::Done {
                token,
                done: (pipeline, key, result),
            } = landed
            else {
                continue;
            };
            // Only the execution tracked now: a lost lease aborted the others.
            if self.in_flight.get(&key).is_none_or(|f| f.token != token) {
                continue;
            }
            self.in_flight.remove(&key);
            by_pipeline
                .entry((pipeline, token))
                .or_default()
                .push(Input::Work { key, result });
        }
        for ((pipeline, token), inputs) in by_pipeline {
            if let Err(e) = self.feed_all(&pipeline, inputs, Origin::Work(token)).await {
                tracing::error!(pipeline = %pipeline, error = %e, "could not record work results");
            }
        }
    }

    /// The alarms the stages of `pipeline` watch (L15), from the definition in force.
    pub(super) fn watched_alarms(&self, pipeline: &str) -> Vec<(String, AlarmId)> {
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
            .filter_map(|s| Some((s.name.value.clone(), AlarmId::of_stage(s)?)))
            .collect()
    }

    /// Acts on alarms that changed while nobody drove the pipelines that got a new holder
    /// (L15).
    async fn check_alarms(&mut self) {
        for pipeline in std::mem::take(&mut self.alarm_checks) {
            for (stage, alarm) in self.watched_alarms(&pipeline) {
                match self.backends.alarms.state(&alarm).await {
                    Ok(Some(state)) => {
                        let current = self
                            .machines
                            .get(&pipeline)
                            .map(|m| m.state().stage(&stage).alarm);
                        if current != Some(state) {
                            let input = Input::Alarm(AlarmInput {
                                stage,
                                state,
                                actor: Actor::System,
                            });
                            if let Err(e) =
                                self.feed_all(&pipeline, vec![input], Origin::Holder).await
                            {
                                tracing::error!(pipeline = %pipeline, error = %e, "could not record an alarm change");
                            }
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
        let pipelines: Vec<String> = self.leases.held.keys().cloned().collect();
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
                if let Err(e) = self.feed_all(&pipeline, vec![input], Origin::Holder).await {
                    tracing::error!(pipeline = %pipeline, error = %e, "could not record an alarm change");
                }
            }
        }
    }
}

/// `t + d` (at least 1 ms later), saturating.
fn later(t: Timestamp, d: std::time::Duration) -> Timestamp {
    let d = d.max(std::time::Duration::from_millis(1));
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

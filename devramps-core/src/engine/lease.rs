//! The pipeline leases of an engine instance (L21), and the work it runs under them.
//!
//! The holder of a pipeline's lease is the one instance that starts its work, re-attaches to
//! its work in flight and fires its timers. It presents the lease's fencing token on every
//! append; taking a lease fences the stream first (an empty append with the new token), so
//! that from then on the store refuses every append of an older holder. A holder whose lease
//! is lost (renewal refused, or an append refused for its token) aborts its work futures and
//! drops their results: the new holder re-attaches to the same executions by their
//! idempotency keys (L20).

use std::collections::BTreeMap;

use futures::future::{AbortHandle, BoxFuture, FutureExt};
use jiff::{SignedDuration, Timestamp};

use super::driver::EngineDriver;
use super::execute::{self, Done};
use super::feed::ATTEMPTS;
use crate::backend::{AppendOptions, ExecutionKey, Lease};
use crate::error::Error;
use crate::lifecycle::{Command, StageState};

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

/// How a work future of the driver ended.
pub(super) enum Landed {
    /// Work started under the lease with `token` ended.
    Done {
        /// The token of the lease the work was started under.
        token: u64,
        /// Its result.
        done: Done,
    },
    /// A cancellation ended, or the work was aborted because its lease was lost.
    Nothing,
}

/// An execution this instance runs.
pub(super) struct Flight {
    /// The token of the lease it was started under.
    pub(super) token: u64,
    abort: AbortHandle,
}

/// The leases of an instance.
#[derive(Debug, Default)]
pub(super) struct Leases {
    /// Held, by pipeline.
    pub(super) held: BTreeMap<String, Lease>,
    /// Without polling: when to try again for a lease that was lost or that another instance
    /// holds (when it expires).
    pub(super) retry: BTreeMap<String, Timestamp>,
}

/// Whether half of the lease's time has passed.
fn due_for_renewal(lease: &Lease, ttl: std::time::Duration, now: Timestamp) -> bool {
    let half = SignedDuration::try_from(ttl / 2).unwrap_or(SignedDuration::MAX);
    lease.expires_at.duration_since(now) <= half
}

impl EngineDriver {
    /// Sets the pipeline's next timer: only its holder fires timers.
    pub(super) fn set_wake(&mut self, pipeline: &str, now: Timestamp) {
        let wake = if self.leases.held.contains_key(pipeline) {
            self.machines.get(pipeline).and_then(|m| m.next_wake(now))
        } else {
            None
        };
        self.wakes.insert(pipeline.to_owned(), wake);
    }

    /// The token of the pipeline's lease while this instance holds it, renewed once half of
    /// its time has passed; `None` when it holds no lease or the lease was lost.
    pub(super) async fn held_token(&mut self, pipeline: &str, now: Timestamp) -> Option<u64> {
        let lease = self.leases.held.get(pipeline)?;
        if !due_for_renewal(lease, self.config.lease_ttl, now) {
            return Some(lease.token);
        }
        let lease = lease.clone();
        match self
            .backends
            .lock
            .renew(&lease, self.config.lease_ttl, now)
            .await
        {
            Ok(renewed) => {
                let token = renewed.token;
                self.leases.held.insert(pipeline.to_owned(), renewed);
                Some(token)
            }
            Err(Error::Conflict { .. }) => {
                self.lose(pipeline);
                None
            }
            // Not known to be lost: go on while it lasts (the store still fences).
            Err(e) if now < lease.expires_at => {
                tracing::warn!(pipeline = %pipeline, error = %e, "lease renewal");
                Some(lease.token)
            }
            Err(e) => {
                tracing::warn!(pipeline = %pipeline, error = %e, "lease renewal; the lease expired");
                self.lose(pipeline);
                None
            }
        }
    }

    /// The token of the pipeline's lease: the one held, or a new one when the lease is free or
    /// expired (becoming the holder). `None` while another instance holds it.
    pub(super) async fn take_lease(&mut self, pipeline: &str, now: Timestamp) -> Option<u64> {
        if self.leases.held.contains_key(pipeline)
            && let Some(token) = self.held_token(pipeline, now).await
        {
            return Some(token);
        }
        let (instance, ttl) = (&self.config.instance, self.config.lease_ttl);
        match self
            .backends
            .lock
            .acquire(pipeline, instance, ttl, now)
            .await
        {
            Ok(Some(lease)) => self.become_holder(pipeline, lease, now).await,
            Ok(None) => {
                if self.config.poll_interval.is_none()
                    && let Ok(Some(other)) = self.backends.lock.current(pipeline, now).await
                {
                    // Without polling, try again when the other holder's lease runs out.
                    self.leases
                        .retry
                        .insert(pipeline.to_owned(), other.expires_at);
                }
                None
            }
            Err(e) => {
                tracing::warn!(pipeline = %pipeline, error = %e, "take the lease");
                if self.config.poll_interval.is_none() {
                    let retry = now.checked_add(ttl / 2).unwrap_or(Timestamp::MAX);
                    self.leases.retry.insert(pipeline.to_owned(), retry);
                }
                None
            }
        }
    }

    /// Starts driving `pipeline` under `lease`: fences the stream, then re-attaches to the
    /// work in flight, sets the timers and checks the alarms.
    async fn become_holder(&mut self, pipeline: &str, lease: Lease, now: Timestamp) -> Option<u64> {
        if !self.fence(pipeline, &lease, now).await {
            if let Err(e) = self.backends.lock.release(&lease).await {
                tracing::warn!(pipeline = %pipeline, error = %e, "release an unusable lease");
            }
            return None;
        }
        tracing::info!(pipeline = %pipeline, instance = %self.config.instance, token = lease.token, "took the lease");
        let token = lease.token;
        self.leases.retry.remove(pipeline);
        self.leases.held.insert(pipeline.to_owned(), lease);
        self.start_pending(pipeline);
        self.set_wake(pipeline, now);
        // Alarms that changed while nobody drove the pipeline are acted on now (L15).
        if !self.watched_alarms(pipeline).is_empty() {
            self.alarm_checks.insert(pipeline.to_owned());
        }
        Some(token)
    }

    /// Makes the store refuse older holders from now on: an empty append presenting the new
    /// token, after catching up. A stream nobody wrote needs none (its first append carries
    /// the token). Returns whether the lease is usable.
    async fn fence(&mut self, pipeline: &str, lease: &Lease, now: Timestamp) -> bool {
        for _ in 0..ATTEMPTS {
            if let Err(e) = self.catch_up(pipeline).await {
                tracing::warn!(pipeline = %pipeline, error = %e, "catch up before fencing");
                return false;
            }
            let Some(expected) = self.machines.get(pipeline).map(|m| m.state().applied) else {
                return false;
            };
            if expected == 0 {
                return true;
            }
            let options = AppendOptions {
                fencing_token: Some(lease.token),
            };
            match self
                .backends
                .store
                .append(pipeline, expected, Vec::new(), options)
                .await
            {
                Ok(_) => return true,
                // A lost race, or a newer holder's token: the lease service tells which.
                Err(Error::Conflict { .. }) => {
                    let renewed = self
                        .backends
                        .lock
                        .renew(lease, self.config.lease_ttl, now)
                        .await;
                    if matches!(renewed, Err(Error::Conflict { .. })) {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::warn!(pipeline = %pipeline, error = %e, "fence the stream");
                    return false;
                }
            }
        }
        false
    }

    /// After a conflict on an append that presented the lease's token: whether the lease is
    /// still held (the conflict was a lost race) or lost (a newer holder's token was
    /// accepted).
    pub(super) async fn confirm_lease(&mut self, pipeline: &str, now: Timestamp) -> bool {
        let Some(lease) = self.leases.held.get(pipeline).cloned() else {
            return false;
        };
        match self
            .backends
            .lock
            .renew(&lease, self.config.lease_ttl, now)
            .await
        {
            Ok(renewed) => {
                self.leases.held.insert(pipeline.to_owned(), renewed);
                true
            }
            Err(Error::Conflict { .. }) => {
                self.lose(pipeline);
                false
            }
            Err(e) => {
                tracing::warn!(pipeline = %pipeline, error = %e, "confirm the lease");
                true
            }
        }
    }

    /// Stops driving `pipeline`: aborts its work in flight (their results are dropped) and
    /// its timers.
    fn lose(&mut self, pipeline: &str) {
        if self.leases.held.remove(pipeline).is_none() {
            return;
        }
        tracing::info!(pipeline = %pipeline, instance = %self.config.instance, "lost the lease: stops driving");
        let keys: Vec<ExecutionKey> = self
            .in_flight
            .keys()
            .filter(|k| k.pipeline == pipeline)
            .cloned()
            .collect();
        for key in keys {
            if let Some(flight) = self.in_flight.remove(&key) {
                flight.abort.abort();
            }
        }
        self.wakes.insert(pipeline.to_owned(), None);
        if self.config.poll_interval.is_none() {
            // Nothing else would bring it back: try for the lease again at once (it may be
            // free, or ours after all), and otherwise when the new holder's lease runs out.
            let now = self.backends.clock.now();
            self.leases.retry.insert(pipeline.to_owned(), now);
        }
    }

    /// Releases every lease held (on stop).
    pub(super) async fn release_leases(&mut self) {
        for (pipeline, lease) in std::mem::take(&mut self.leases.held) {
            if let Err(e) = self.backends.lock.release(&lease).await {
                tracing::warn!(pipeline = %pipeline, error = %e, "release the lease");
            }
        }
    }

    /// Starts the work of commands just recorded: all of it as the holder (`token`), only
    /// cancellations otherwise (stopping an execution is safe from anywhere).
    pub(super) fn start_commands(
        &mut self,
        pipeline: &str,
        commands: Vec<Command>,
        token: Option<u64>,
    ) {
        if !self.machines.contains_key(pipeline) {
            return;
        }
        let mut launch = Vec::new();
        for command in commands {
            if let Command::Cancel { key } = command {
                let stop = execute::stop(&self.backends, key);
                self.work.push(Box::pin(stop.map(|()| Landed::Nothing)));
                continue;
            }
            if token.is_none() {
                continue;
            }
            let key = command.key().clone();
            if self.in_flight.contains_key(&key) {
                tracing::debug!(execution = %key, "already running");
                continue;
            }
            launch.push((
                key,
                execute::start(&self.backends, pipeline, command, false),
            ));
        }
        if let Some(token) = token {
            for (key, f) in launch {
                self.track(key, token, f);
            }
        }
    }

    /// As the holder: starts (re-attaches to) the work in flight of `pipeline` that this
    /// instance does not run yet (L20), and tells the executions of `CANCELLING`
    /// stage-deployments to stop again (the instance that recorded the cancel may have sent
    /// it before the execution started).
    pub(super) fn start_pending(&mut self, pipeline: &str) {
        // Never under a lease that ran out and was not renewed yet: it may be someone else's.
        let now = self.backends.clock.now();
        let Some(token) = self
            .leases
            .held
            .get(pipeline)
            .filter(|l| now < l.expires_at)
            .map(|l| l.token)
        else {
            return;
        };
        let Some(machine) = self.machines.get(pipeline) else {
            return;
        };
        let state = machine.state();
        let mut launch = Vec::new();
        for command in machine.pending_work() {
            let key = command.key().clone();
            let stopping = state
                .run(key.revision, &key.stage)
                .is_some_and(|r| r.state == StageState::Cancelling);
            if self.recording.contains(&key) {
                continue;
            }
            if self.in_flight.contains_key(&key) {
                if stopping {
                    let stop = execute::stop(&self.backends, key);
                    self.work.push(Box::pin(stop.map(|()| Landed::Nothing)));
                }
                continue;
            }
            launch.push((
                key,
                execute::start(&self.backends, pipeline, command, stopping),
            ));
        }
        for (key, f) in launch {
            self.track(key, token, f);
        }
    }

    /// Runs `future` as the execution `key`, under the lease with `token`.
    fn track(&mut self, key: ExecutionKey, token: u64, future: BoxFuture<'static, Option<Done>>) {
        let (future, abort) = futures::future::abortable(future);
        self.in_flight.insert(key, Flight { token, abort });
        self.work.push(Box::pin(future.map(move |r| match r {
            Ok(Some(done)) => Landed::Done { token, done },
            _ => Landed::Nothing,
        })));
    }
}

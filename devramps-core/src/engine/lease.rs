//! The pipeline leases of an engine instance (L21), and the work it runs under them.
//!
//! The holder of a pipeline's lease is the one instance that starts its work, re-attaches to
//! its work in flight and fires its timers. It presents the lease's fencing token on every
//! append; taking a lease fences the stream first (an empty append with the new token), so
//! that from then on the store refuses every append of an older holder. A holder whose lease
//! is lost (renewal refused, or an append refused for its token) aborts its work futures and
//! drops their results: the new holder re-attaches to the same executions by their
//! idempotency keys (L20).
//!
//! The decisions are small pure functions ([`renewal_due`], [`after_renewal_error`],
//! [`retry_after_failed_acquire`]); the methods of the driver carry them out.

use futures::future::{BoxFuture, FutureExt};
use jiff::{SignedDuration, Timestamp};

use super::driver::EngineDriver;
use super::execute::{self, Done};
use super::feed::ATTEMPTS;
use super::pipeline::Flight;
use crate::backend::{AppendOptions, ExecutionKey, Lease};
use crate::error::Error;
use crate::lifecycle::{Command, StageState};

/// How a work future of the driver ended.
pub(super) enum Landed {
    /// Work started under the lease with `token` ended.
    Done {
        /// The token of the lease the work was started under.
        token: u64,
        /// Its result (boxed: a work result is large, and most landings are small).
        done: Box<Done>,
    },
    /// A cancellation ended, or the work was aborted because its lease was lost.
    Nothing,
}

/// Whether a held lease must be renewed at `now`: once half of its time has passed.
pub(super) fn renewal_due(lease: &Lease, ttl: std::time::Duration, now: Timestamp) -> bool {
    let half = SignedDuration::try_from(ttl / 2).unwrap_or(SignedDuration::MAX);
    lease.expires_at.duration_since(now) <= half
}

/// What a failed renewal means for the holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RenewalVerdict {
    /// Someone else holds the lease now: stop driving.
    Lost,
    /// Not known to be lost, and not expired: go on with the lease (the store still fences).
    KeepWhileValid,
    /// Not known to be lost, but expired: stop driving.
    Expired,
}

/// What a renewal that failed with `error` at `now` means for `lease`.
pub(super) fn after_renewal_error(lease: &Lease, error: &Error, now: Timestamp) -> RenewalVerdict {
    match error {
        Error::Conflict { .. } => RenewalVerdict::Lost,
        _ if now < lease.expires_at => RenewalVerdict::KeepWhileValid,
        _ => RenewalVerdict::Expired,
    }
}

/// Without polling, when to try again for a lease that could not be taken: when the other
/// holder's lease runs out, or half a TTL later after an error of the lease service.
pub(super) fn retry_after_failed_acquire(
    other_expires: Option<Timestamp>,
    ttl: std::time::Duration,
    now: Timestamp,
) -> Timestamp {
    match other_expires {
        Some(t) => t,
        None => now.checked_add(ttl / 2).unwrap_or(Timestamp::MAX),
    }
}

impl EngineDriver {
    /// Sets the pipeline's next timer: only its holder fires timers.
    pub(super) fn set_wake(&mut self, pipeline: &str, now: Timestamp) {
        let p = self.pipeline(pipeline);
        p.wake = match (&p.lease, &p.machine) {
            (Some(_), Some(m)) => m.next_wake(now),
            _ => None,
        };
    }

    /// The token of the pipeline's lease while this instance holds it, renewed once half of
    /// its time has passed; `None` when it holds no lease or the lease was lost.
    pub(super) async fn held_token(&mut self, pipeline: &str, now: Timestamp) -> Option<u64> {
        let lease = self.pipelines.get(pipeline)?.lease.clone()?;
        if !renewal_due(&lease, self.config.lease_ttl, now) {
            return Some(lease.token);
        }
        match self
            .backends
            .lock
            .renew(&lease, self.config.lease_ttl, now)
            .await
        {
            Ok(renewed) => {
                let token = renewed.token;
                self.pipeline(pipeline).lease = Some(renewed);
                Some(token)
            }
            Err(e) => match after_renewal_error(&lease, &e, now) {
                RenewalVerdict::KeepWhileValid => {
                    tracing::warn!(pipeline = %pipeline, error = %e, "lease renewal");
                    Some(lease.token)
                }
                RenewalVerdict::Lost | RenewalVerdict::Expired => {
                    tracing::warn!(pipeline = %pipeline, error = %e, "lease renewal: the lease is lost");
                    self.lose(pipeline);
                    None
                }
            },
        }
    }

    /// The token of the pipeline's lease: the one held, or a new one when the lease is free or
    /// expired (becoming the holder). `None` while another instance holds it.
    pub(super) async fn take_lease(&mut self, pipeline: &str, now: Timestamp) -> Option<u64> {
        if !self.config.drives {
            return None;
        }
        let held = self
            .pipelines
            .get(pipeline)
            .is_some_and(|p| p.lease.is_some());
        if held && let Some(token) = self.held_token(pipeline, now).await {
            return Some(token);
        }
        let (instance, ttl) = (&self.config.instance, self.config.lease_ttl);
        let polling = self.config.poll_interval.is_some();
        match self
            .backends
            .lock
            .acquire(pipeline, instance, ttl, now)
            .await
        {
            Ok(Some(lease)) => self.become_holder(pipeline, lease, now).await,
            Ok(None) => {
                if !polling && let Ok(Some(other)) = self.backends.lock.current(pipeline, now).await
                {
                    self.pipeline(pipeline).lease_retry =
                        Some(retry_after_failed_acquire(Some(other.expires_at), ttl, now));
                }
                None
            }
            Err(e) => {
                tracing::warn!(pipeline = %pipeline, error = %e, "take the lease");
                if !polling {
                    self.pipeline(pipeline).lease_retry =
                        Some(retry_after_failed_acquire(None, ttl, now));
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
        let p = self.pipeline(pipeline);
        p.lease_retry = None;
        p.lease = Some(lease);
        self.start_pending(pipeline);
        self.set_wake(pipeline, now);
        // Alarms that changed while nobody drove the pipeline are acted on now (L15).
        if !self.watched_alarms(pipeline).is_empty() {
            self.pipeline(pipeline).alarm_check = true;
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
            let Some(expected) = self.applied(pipeline) else {
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
        let Some(lease) = self.pipelines.get(pipeline).and_then(|p| p.lease.clone()) else {
            return false;
        };
        match self
            .backends
            .lock
            .renew(&lease, self.config.lease_ttl, now)
            .await
        {
            Ok(renewed) => {
                self.pipeline(pipeline).lease = Some(renewed);
                true
            }
            Err(e) => match after_renewal_error(&lease, &e, now) {
                RenewalVerdict::Lost => {
                    self.lose(pipeline);
                    false
                }
                _ => {
                    tracing::warn!(pipeline = %pipeline, error = %e, "confirm the lease");
                    true
                }
            },
        }
    }

    /// Stops driving `pipeline`: aborts its work in flight and drops the results not yet
    /// recorded (the new holder re-attaches to that work), and stops its timers.
    pub(super) fn lose(&mut self, pipeline: &str) {
        let polling = self.config.poll_interval.is_some();
        let now = self.backends.clock.now();
        let p = self.pipeline(pipeline);
        if p.lease.take().is_none() {
            return;
        }
        for (_, flight) in std::mem::take(&mut p.in_flight) {
            flight.abort.abort();
        }
        p.drop_work_results();
        p.wake = None;
        if !polling {
            // Nothing else would bring it back: try for the lease again at once (it may be
            // free, or ours after all), and otherwise when the new holder's lease runs out.
            p.lease_retry = Some(now);
        }
        tracing::info!(pipeline = %pipeline, instance = %self.config.instance, "lost the lease: stops driving");
    }

    /// Releases every lease held (on stop).
    pub(super) async fn release_leases(&mut self) {
        let held: Vec<(String, Lease)> = self
            .pipelines
            .iter_mut()
            .filter_map(|(name, p)| Some((name.clone(), p.lease.take()?)))
            .collect();
        for (pipeline, lease) in held {
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
        let Some(p) = self.pipelines.get(pipeline) else {
            return;
        };
        let mut launch = Vec::new();
        let mut stops = Vec::new();
        for command in commands {
            if let Command::Cancel { key } = command {
                stops.push(execute::stop(&self.backends, key));
                continue;
            }
            if token.is_none() {
                continue;
            }
            let key = command.key().clone();
            if p.in_flight.contains_key(&key) {
                tracing::debug!(execution = %key, "already running");
                continue;
            }
            launch.push((
                key,
                execute::start(&self.backends, pipeline, command, false),
            ));
        }
        for stop in stops {
            self.work.push(Box::pin(stop.map(|()| Landed::Nothing)));
        }
        if let Some(token) = token {
            for (key, f) in launch {
                self.track(pipeline, key, token, f);
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
        let Some(p) = self.pipelines.get(pipeline) else {
            return;
        };
        let Some(token) = p
            .lease
            .as_ref()
            .filter(|l| now < l.expires_at)
            .map(|l| l.token)
        else {
            return;
        };
        let Some(machine) = &p.machine else {
            return;
        };
        let state = machine.state();
        let mut launch = Vec::new();
        let mut stops = Vec::new();
        for command in machine.pending_work() {
            let key = command.key().clone();
            let stopping = state
                .run(key.revision, &key.stage)
                .is_some_and(|r| r.state == StageState::Cancelling);
            if p.recording.contains(&key) {
                continue;
            }
            if p.in_flight.contains_key(&key) {
                if stopping {
                    stops.push(execute::stop(&self.backends, key));
                }
                continue;
            }
            launch.push((
                key,
                execute::start(&self.backends, pipeline, command, stopping),
            ));
        }
        for stop in stops {
            self.work.push(Box::pin(stop.map(|()| Landed::Nothing)));
        }
        for (key, f) in launch {
            self.track(pipeline, key, token, f);
        }
    }

    /// Runs `future` as the execution `key`, under the lease with `token`.
    fn track(
        &mut self,
        pipeline: &str,
        key: ExecutionKey,
        token: u64,
        future: BoxFuture<'static, Option<Done>>,
    ) {
        let (future, abort) = futures::future::abortable(future);
        self.pipeline(pipeline)
            .in_flight
            .insert(key, Flight { token, abort });
        self.work.push(Box::pin(future.map(move |r| match r {
            Ok(Some(done)) => Landed::Done {
                token,
                done: Box::new(done),
            },
            _ => Landed::Nothing,
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lease(expires_at: Timestamp) -> Lease {
        Lease {
            key: "api".into(),
            holder: "a".into(),
            token: 7,
            expires_at,
        }
    }

    #[test]
    fn renewal_is_due_once_half_the_ttl_has_passed() {
        let now = Timestamp::UNIX_EPOCH;
        let ttl = Duration::from_secs(30);
        let fresh = lease(now.checked_add(Duration::from_secs(30)).unwrap_or(now));
        assert!(!renewal_due(&fresh, ttl, now));
        let half = lease(now.checked_add(Duration::from_secs(15)).unwrap_or(now));
        assert!(renewal_due(&half, ttl, now));
        assert!(renewal_due(&lease(now), ttl, now));
    }

    #[test]
    fn a_conflict_loses_the_lease_other_errors_keep_it_while_it_lasts() {
        let now = Timestamp::UNIX_EPOCH;
        let later = now.checked_add(Duration::from_secs(10)).unwrap_or(now);
        let conflict = Error::Conflict { what: "x".into() };
        let down = Error::unavailable("lock", "renew", "timeout");
        assert_eq!(
            after_renewal_error(&lease(later), &conflict, now),
            RenewalVerdict::Lost
        );
        assert_eq!(
            after_renewal_error(&lease(later), &down, now),
            RenewalVerdict::KeepWhileValid
        );
        assert_eq!(
            after_renewal_error(&lease(now), &down, later),
            RenewalVerdict::Expired
        );
    }

    #[test]
    fn a_busy_lease_is_tried_again_when_it_runs_out_a_failed_call_after_half_a_ttl() {
        let now = Timestamp::UNIX_EPOCH;
        let ttl = Duration::from_secs(30);
        let other = now.checked_add(Duration::from_secs(12)).unwrap_or(now);
        assert_eq!(retry_after_failed_acquire(Some(other), ttl, now), other);
        assert_eq!(
            retry_after_failed_acquire(None, ttl, now).duration_since(now),
            SignedDuration::from_secs(15)
        );
    }
}

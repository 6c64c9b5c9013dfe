//! Recording inputs: catching up with the log, reading what a push needs, and feeding inputs
//! to the machine with compare-and-swap appends (L20, L21), in arrival order, with retries
//! when the store fails; observers are told after each durable append.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::driver::EngineDriver;
use super::pipeline::{Driven, Job, Origin};
use super::{Appended, PatchRequest, PushRequest, Reply};
use crate::backend::AppendOptions;
use crate::error::{Error, Result};
use crate::lifecycle::{Input, Machine, Patch, Push, Record};
use crate::pipeline::{PIPELINE_DIR, PIPELINE_FILE};

/// How many times an input is decided again after lost races before the caller gets
/// [`Error::Conflict`].
pub(super) const ATTEMPTS: usize = 5;

impl EngineDriver {
    /// The state kept about `pipeline`, created empty the first time.
    pub(super) fn pipeline(&mut self, pipeline: &str) -> &mut Driven {
        self.pipelines.entry(pipeline.to_owned()).or_default()
    }

    /// The last sequence number the machine of `pipeline` applied, when it is loaded.
    pub(super) fn applied(&self, pipeline: &str) -> Option<u64> {
        let machine = self.pipelines.get(pipeline)?.machine.as_ref()?;
        Some(machine.state().applied)
    }

    /// The machine of `pipeline`, loaded from the store the first time.
    pub(super) async fn machine(&mut self, pipeline: &str) -> Result<&mut Machine> {
        if self.applied(pipeline).is_none() {
            self.reload(pipeline).await?;
        }
        self.pipeline(pipeline)
            .machine
            .as_mut()
            .ok_or_else(|| Error::not_found(format!("pipeline `{pipeline}`")))
    }

    /// Rebuilds the machine of `pipeline` from the store.
    pub(super) async fn reload(&mut self, pipeline: &str) -> Result<()> {
        let machine = super::snapshot::load(&self.backends, pipeline).await?;
        let p = self.pipeline(pipeline);
        p.snapshot_base = machine.state().applied;
        p.machine = Some(machine);
        self.set_wake(pipeline, self.backends.clock.now());
        Ok(())
    }

    /// Brings the machine of `pipeline` up to the store's log; returns whether it changed.
    pub(super) async fn catch_up(&mut self, pipeline: &str) -> Result<bool> {
        let Some(applied) = self.applied(pipeline) else {
            self.reload(pipeline).await?;
            return Ok(true);
        };
        let events = self.backends.store.read(pipeline, applied, None).await?;
        if events.is_empty() {
            return Ok(false);
        }
        let records = super::records_of(pipeline, events)?;
        if let Some(machine) = self.pipeline(pipeline).machine.as_mut() {
            let in_force = machine.state().definition.clone();
            machine.apply(&records);
            self.check_alarms_if_redefined(pipeline, in_force.as_ref());
        }
        self.set_wake(pipeline, self.backends.clock.now());
        Ok(true)
    }

    /// Catches up and, as the holder, starts the work that others' records started.
    pub(super) async fn sync(&mut self, pipeline: &str) -> Result<()> {
        if self.catch_up(pipeline).await? {
            self.start_pending(pipeline);
        }
        Ok(())
    }

    /// Queues `job` behind the pipeline's other unrecorded inputs and records what it can now:
    /// at once when nothing waits ahead of it.
    pub(super) async fn submit(
        &mut self,
        pipeline: &str,
        job: Job,
        reply: Option<Reply<Vec<Record>>>,
    ) {
        if self.pipeline(pipeline).enqueue(job, reply) {
            self.drain(pipeline).await;
        }
    }

    /// After the backoff: tries again what the store did not take.
    pub(super) async fn retry_unrecorded(&mut self, pipeline: &str) {
        let p = self.pipeline(pipeline);
        p.backoff.expire();
        p.unpark();
        if self.applied(pipeline).is_none() {
            // Its log could not be read (when resuming, or after a failed append).
            let now = self.backends.clock.now();
            if let Err(e) = self.reload(pipeline).await {
                let due = self.pipeline(pipeline).backoff.failed(now, e.retry_after());
                tracing::warn!(pipeline = %pipeline, error = %e, retry_at = %due, "read the log; will retry");
                return;
            }
            if self.pipeline(pipeline).lease.is_none() {
                self.take_lease(pipeline, now).await;
            }
        }
        self.drain(pipeline).await;
    }

    /// Records the queued inputs of `pipeline` in order, until the queue is empty or the
    /// store fails transiently on a person's or webhook's input, which then waits for the
    /// backoff with everything behind it. A work result the store did not take is parked and
    /// tried again after the backoff; it never holds up other inputs and is never dropped
    /// while the lease it was started under is held.
    pub(super) async fn drain(&mut self, pipeline: &str) {
        while let Some(job) = self.pipeline(pipeline).queue.front().map(|q| q.job.clone()) {
            let result = match &job {
                Job::Push(push) => self.push(pipeline, push.clone()).await,
                Job::Patch(patch) => self.patch(pipeline, patch.clone()).await,
                Job::Inputs { inputs, origin } => self.feed_all(pipeline, inputs, *origin).await,
            };
            let now = self.backends.clock.now();
            let p = self.pipeline(pipeline);
            let Some(queued) = p.queue.pop_front() else {
                return;
            };
            match result {
                Err(e) if job.retried_after(&e) => {
                    let due = p.backoff.failed(now, e.retry_after());
                    tracing::warn!(pipeline = %pipeline, error = %e, retry_at = %due, "could not record; will retry");
                    if matches!(
                        job,
                        Job::Inputs {
                            origin: Origin::Work(_),
                            ..
                        }
                    ) {
                        p.parked.push(queued);
                        continue;
                    }
                    p.queue.push_front(queued);
                    return;
                }
                result => {
                    if result.is_ok() && p.parked.is_empty() {
                        p.backoff.succeeded();
                    }
                    for key in queued.job.work_keys() {
                        p.recording.remove(key);
                    }
                    if let Some(reply) = queued.reply {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    /// Reads what synthesis needs for a push and feeds it to the machine.
    pub(super) async fn push(&mut self, pipeline: &str, push: PushRequest) -> Result<Vec<Record>> {
        let input = Input::Push(self.read_push(pipeline, push).await?);
        self.feed_all(pipeline, &[input], Origin::Outside).await
    }

    /// Reads the patch's commit and feeds it to the machine (L17). It deploys on the tracked
    /// branch of the definition at that commit.
    pub(super) async fn patch(
        &mut self,
        pipeline: &str,
        patch: PatchRequest,
    ) -> Result<Vec<Record>> {
        let request = PushRequest {
            commit: patch.commit,
            ..PushRequest::default()
        };
        let mut push = self.read_push(pipeline, request).await?;
        push.branch = push
            .definition
            .as_deref()
            .and_then(|d| crate::plan::parse(d).ok())
            .map_or_else(
                || crate::pipeline::DEFAULT_TRACKED_BRANCH.to_owned(),
                |d| d.tracked_branch().to_owned(),
            );
        let input = Input::Patch(Patch {
            push,
            actor: patch.actor,
            reason: patch.reason,
        });
        self.feed_all(pipeline, &[input], Origin::Outside).await
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
        self.sync(pipeline).await?;
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

    /// Feeds inputs that arrived together: decides on the log as this instance knows it (read
    /// first unless it holds the lease), appends the records in one compare-and-swap that
    /// fails when the store's log has moved on, then starts the work they imply (L20). A lost
    /// race means: re-read, decide again (L21). `origin` says who may record the inputs.
    pub(super) async fn feed_all(
        &mut self,
        pipeline: &str,
        inputs: &[Input],
        origin: Origin,
    ) -> Result<Vec<Record>> {
        self.decide_and_append(pipeline, inputs, origin).await
    }

    async fn decide_and_append(
        &mut self,
        pipeline: &str,
        inputs: &[Input],
        origin: Origin,
    ) -> Result<Vec<Record>> {
        let now = self.backends.clock.now();
        for attempt in 0..ATTEMPTS {
            // The lease first (a lease found lost starts nothing while catching up), then the
            // log as it is in the store.
            let token = match origin {
                Origin::Outside => self.take_lease(pipeline, now).await,
                Origin::Holder | Origin::Work(_) => {
                    let held = self.held_token(pipeline, now).await;
                    let ours = match origin {
                        Origin::Work(started) => held.filter(|t| *t == started),
                        _ => held,
                    };
                    if ours.is_none() {
                        // Timers and work results are the holder's to record; a lost lease
                        // passes them on to the new holder, which re-attaches (L21).
                        tracing::debug!(pipeline = %pipeline, instance = %self.config.instance, "not the holder: inputs dropped");
                        return Ok(Vec::new());
                    }
                    ours
                }
            };
            // The holder decides on the state it has, and the compare-and-swap checks it: the
            // log moves only by its own appends unless another instance recorded a person's
            // input, and then the append fails, the log is read and the inputs are decided
            // again. Instances without the lease read first: they are behind whenever the
            // holder wrote. (One request per input instead of two on a remote store.)
            if attempt > 0 || token.is_none() {
                self.sync(pipeline).await?;
            }
            let machine = self.machine(pipeline).await?;
            let expected = machine.state().applied;
            let in_force = machine.state().definition.clone();
            let mut records = Vec::new();
            let mut commands = Vec::new();
            for input in inputs.iter().cloned() {
                let output = machine.handle(input, now);
                records.extend(output.records);
                commands.extend(output.commands);
            }
            if records.is_empty() && (commands.is_empty() || token.is_none()) {
                return Ok(Vec::new());
            }
            let payloads = records
                .iter()
                .map(Record::to_stored)
                .collect::<Result<Vec<_>>>();
            let options = AppendOptions {
                fencing_token: token,
            };
            let appended = match payloads {
                Ok(payloads) => {
                    self.backends
                        .store
                        .append(pipeline, expected, payloads, options)
                        .await
                }
                Err(e) => Err(e),
            };
            match appended {
                Ok(_) => {
                    self.snapshot_if_due(pipeline).await;
                    self.recorded(pipeline, expected, inputs, &records, now, token);
                    self.check_alarms_if_redefined(pipeline, in_force.as_ref());
                    self.start_commands(pipeline, commands, token);
                    self.set_wake(pipeline, now);
                    return Ok(records);
                }
                Err(e) => {
                    // The machine moved on but the store did not: rebuild it from the log.
                    self.pipeline(pipeline).machine = None;
                    let conflict = matches!(e, Error::Conflict { .. });
                    // A conflict is a lost race, or the store refusing our token because a
                    // newer holder wrote: the lease service tells which.
                    let fenced =
                        conflict && token.is_some() && !self.confirm_lease(pipeline, now).await;
                    self.reload(pipeline).await?;
                    // What others recorded (or an append whose answer was lost) may have
                    // started work.
                    self.start_pending(pipeline);
                    if !conflict {
                        return Err(e);
                    }
                    if fenced && origin != Origin::Outside {
                        // People's and webhooks' inputs are valid from anyone and go round
                        // again, without a token; work results and timers never do.
                        return Ok(Vec::new());
                    }
                }
            }
        }
        Err(Error::Conflict {
            what: format!("the log of `{pipeline}` kept changing while recording an input"),
        })
    }

    /// A new definition in force may watch other alarms (or be the first one): their current
    /// states are compared with the stages' on the next turn of the loop (L15). An alarm that
    /// fired before the pipeline's first deployment is acted on this way.
    fn check_alarms_if_redefined(
        &mut self,
        pipeline: &str,
        before: Option<&std::sync::Arc<crate::pipeline::PipelineDefinition>>,
    ) {
        let after = self
            .pipelines
            .get(pipeline)
            .and_then(|p| p.machine.as_ref())
            .and_then(|m| m.state().definition.as_ref());
        let same = match (before, after) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.pipeline(pipeline).alarm_check = true;
        }
    }

    /// After a successful append: traces the records and tells the observers.
    fn recorded(
        &self,
        pipeline: &str,
        expected: u64,
        inputs: &[Input],
        records: &[Record],
        now: Timestamp,
        token: Option<u64>,
    ) {
        if records.is_empty() {
            return;
        }
        for record in records {
            tracing::debug!(
                pipeline = %pipeline,
                instance = %self.config.instance,
                r#type = record.event.type_name(),
                actor = %record.actor,
                "recorded"
            );
        }
        let append = Appended {
            pipeline,
            instance: &self.config.instance,
            first_seq: expected + 1,
            inputs,
            records,
            now,
            fencing_token: token,
        };
        for observer in &self.config.observers {
            observer.appended(&append);
        }
    }
}

//! Recording inputs: catching up with the log, reading what a push needs, and feeding inputs
//! to the machine with compare-and-swap appends (L20, L21), journaled.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::driver::EngineDriver;
use super::lease::Origin;
use super::{JournalEntry, PatchRequest, PushRequest};
use crate::backend::{AppendOptions, ExecutionKey};
use crate::error::{Error, Result};
use crate::lifecycle::{Input, Machine, Patch, Push, Record};
use crate::pipeline::{PIPELINE_DIR, PIPELINE_FILE};

/// How many times an input is decided again after lost races before the caller gets
/// [`Error::Conflict`].
pub(super) const ATTEMPTS: usize = 5;

impl EngineDriver {
    /// The machine of `pipeline`, loaded from the store the first time.
    pub(super) async fn machine(&mut self, pipeline: &str) -> Result<&mut Machine> {
        if !self.machines.contains_key(pipeline) {
            self.reload(pipeline).await?;
        }
        self.machines
            .get_mut(pipeline)
            .ok_or_else(|| Error::not_found(format!("pipeline `{pipeline}`")))
    }

    /// Rebuilds the machine of `pipeline` from the store.
    pub(super) async fn reload(&mut self, pipeline: &str) -> Result<()> {
        let machine = super::snapshot::load(&self.backends, pipeline).await?;
        self.machines.insert(pipeline.to_owned(), machine);
        self.set_wake(pipeline, self.backends.clock.now());
        Ok(())
    }

    /// Brings the machine of `pipeline` up to the store's log; returns whether it changed.
    pub(super) async fn catch_up(&mut self, pipeline: &str) -> Result<bool> {
        let Some(applied) = self.machines.get(pipeline).map(|m| m.state().applied) else {
            self.reload(pipeline).await?;
            return Ok(true);
        };
        let events = self.backends.store.read(pipeline, applied, None).await?;
        if events.is_empty() {
            return Ok(false);
        }
        let parsed = super::records_of(pipeline, events);
        match (parsed, self.machines.get_mut(pipeline)) {
            (Ok(records), Some(machine)) => {
                let in_force = machine.state().definition.clone();
                machine.apply(&records);
                self.check_alarms_if_redefined(pipeline, in_force.as_ref());
            }
            (Err(e), _) => return Err(e),
            (Ok(_), None) => self.reload(pipeline).await?,
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

    /// Reads what synthesis needs for a push and feeds it to the machine.
    pub(super) async fn push(&mut self, pipeline: &str, push: PushRequest) -> Result<Vec<Record>> {
        let input = Input::Push(self.read_push(pipeline, push).await?);
        self.feed_all(pipeline, vec![input], Origin::Outside).await
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
        self.feed_all(pipeline, vec![input], Origin::Outside).await
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

    /// Feeds inputs that arrived together: decides on the log as it is in the store, appends
    /// the records in one compare-and-swap, then starts the work they imply (L20). A lost race
    /// means: re-read, decide again (L21). `origin` says who may record the inputs.
    pub(super) async fn feed_all(
        &mut self,
        pipeline: &str,
        inputs: Vec<Input>,
        origin: Origin,
    ) -> Result<Vec<Record>> {
        // The executions whose results these are still run in the log until they are
        // recorded: catching up meanwhile must not re-attach to them.
        let keys: Vec<ExecutionKey> = inputs
            .iter()
            .filter_map(|i| match i {
                Input::Work { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect();
        self.recording.extend(keys.iter().cloned());
        let result = self.decide_and_append(pipeline, &inputs, origin).await;
        for key in &keys {
            self.recording.remove(key);
        }
        result
    }

    async fn decide_and_append(
        &mut self,
        pipeline: &str,
        inputs: &[Input],
        origin: Origin,
    ) -> Result<Vec<Record>> {
        let now = self.backends.clock.now();
        for _ in 0..ATTEMPTS {
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
            self.sync(pipeline).await?;
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
                    self.snapshot_if_due(pipeline, expected).await;
                    self.recorded(pipeline, expected, inputs, &records, now, token);
                    self.check_alarms_if_redefined(pipeline, in_force.as_ref());
                    self.start_commands(pipeline, commands, token);
                    self.set_wake(pipeline, now);
                    return Ok(records);
                }
                Err(e) => {
                    // The machine moved on but the store did not: rebuild it from the log.
                    self.machines.remove(pipeline);
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
            .machines
            .get(pipeline)
            .and_then(|m| m.state().definition.as_ref());
        let same = match (before, after) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.alarm_checks.insert(pipeline.to_owned());
        }
    }

    /// After a successful append: traces the records and tells the journal.
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
        if let Some(journal) = &self.config.journal {
            journal.recorded(&JournalEntry {
                pipeline,
                instance: &self.config.instance,
                first_seq: expected + 1,
                inputs,
                records,
                now,
                fencing_token: token,
            });
        }
    }
}

//! Recording inputs: catching up with the log, reading what a push needs, and feeding inputs
//! to the machine with compare-and-swap appends (L20, L21), in arrival order, with retries
//! when the store fails; observers are told after each durable append.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::driver::EngineDriver;
use super::pipeline::{Driven, Job, Origin};
use super::{Appended, PushRequest, Reply};
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

    /// What a queued job of `pipeline` feeds: a push's or patch's commit is read from the
    /// source now, its changed paths when it is decided (against the machine's bases then).
    pub(super) async fn prepare(&mut self, pipeline: &str, job: &Job) -> Result<Item> {
        Ok(match job {
            Job::Push(push) => {
                Item::Push(Box::new(self.read_commit(pipeline, push.clone()).await?))
            }
            Job::Patch(patch) => {
                let request = PushRequest {
                    commit: patch.commit.clone(),
                    ..PushRequest::default()
                };
                let mut push = self.read_commit(pipeline, request).await?;
                push.branch = push
                    .definition
                    .as_deref()
                    .and_then(|d| crate::plan::parse_shared(d).ok())
                    .map_or_else(
                        || crate::pipeline::DEFAULT_TRACKED_BRANCH.to_owned(),
                        |d| d.tracked_branch().to_owned(),
                    );
                // L17: it deploys on the tracked branch of the definition at that commit.
                Item::Patch(Box::new(Patch {
                    push,
                    actor: patch.actor.clone(),
                    reason: patch.reason.clone(),
                }))
            }
            Job::Inputs { inputs, .. } => Item::Inputs(inputs.clone()),
        })
    }

    /// What the machine needs of a pushed commit and does not depend on the machine: its full
    /// id and the definition at it.
    async fn read_commit(&mut self, pipeline: &str, push: PushRequest) -> Result<Push> {
        let source = self.backends.source.clone();
        let commit = source.resolve(&push.commit).await?;
        let path = format!("/{PIPELINE_DIR}/{pipeline}/{PIPELINE_FILE}");
        let definition = source
            .read_file(&commit, &path)
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        Ok(Push {
            delivery: push.delivery,
            branch: push.branch,
            commit,
            tag: push.tag,
            definition,
            changed: BTreeMap::new(),
            organization: self.config.organization.clone(),
        })
    }

    /// The paths changed from each base commit the machine of `pipeline` asks for now to
    /// `commit` (a base the source cannot compare is left out). `known` keeps the answers of
    /// one append: the pushes of a batch often share their commit and bases.
    async fn changed_since_bases(
        &mut self,
        pipeline: &str,
        commit: &str,
        known: &mut BTreeMap<(String, String), Option<Vec<String>>>,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let bases = self.machine(pipeline).await?.bases();
        let source = self.backends.source.clone();
        let mut changed = BTreeMap::new();
        for base in bases {
            let key = (base, commit.to_owned());
            let paths = match known.get(&key) {
                Some(paths) => paths.clone(),
                None => {
                    let paths = source.changed_paths(&key.0, commit).await.ok();
                    known.insert(key.clone(), paths.clone());
                    paths
                }
            };
            if let Some(paths) = paths {
                changed.insert(key.0, paths);
            }
        }
        Ok(changed)
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
        let items = [Item::Inputs(inputs.to_vec())];
        let records = self.decide_and_append(pipeline, &items, origin).await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// Decides `items` in order and appends all their records in one compare-and-swap (see
    /// [`EngineDriver::feed_all`]); returns the records of each item. The changed paths of a
    /// push are read against the machine's bases when it is decided, after the items before
    /// it: a batch decides exactly as the items one after the other would.
    pub(super) async fn decide_and_append(
        &mut self,
        pipeline: &str,
        items: &[Item],
        origin: Origin,
    ) -> Result<Vec<Vec<Record>>> {
        let now = self.backends.clock.now();
        // A push is decided on the log as it is in the store, as the holder too.
        let reads_source = items.iter().any(|i| !matches!(i, Item::Inputs(_)));
        let mut known = BTreeMap::new();
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
                        return Ok(vec![Vec::new(); items.len()]);
                    }
                    ours
                }
            };
            // The holder decides on the state it has, and the compare-and-swap checks it: the
            // log moves only by its own appends unless another instance recorded a person's
            // input, and then the append fails, the log is read and the inputs are decided
            // again. Instances without the lease read first: they are behind whenever the
            // holder wrote. (One request per input instead of two on a remote store.)
            if attempt > 0 || token.is_none() || reads_source {
                self.sync(pipeline).await?;
            }
            let machine = self.machine(pipeline).await?;
            let expected = machine.state().applied;
            let in_force = machine.state().definition.clone();
            let decided = match self.decide(pipeline, items, now, &mut known).await {
                Ok(decided) => decided,
                Err(e) => {
                    // The machine may have moved on without the store: rebuild it.
                    self.pipeline(pipeline).machine = None;
                    return Err(e);
                }
            };
            let Decided {
                inputs,
                records,
                ends,
                commands,
            } = decided;
            if records.is_empty() && (commands.is_empty() || token.is_none()) {
                return Ok(vec![Vec::new(); items.len()]);
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
                    self.recorded(pipeline, expected, &inputs, &records, now, token);
                    self.check_alarms_if_redefined(pipeline, in_force.as_ref());
                    self.start_commands(pipeline, commands, token);
                    self.set_wake(pipeline, now);
                    return Ok(split(records, &ends));
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
                        return Ok(vec![Vec::new(); items.len()]);
                    }
                }
            }
        }
        Err(Error::Conflict {
            what: format!("the log of `{pipeline}` kept changing while recording an input"),
        })
    }

    /// Feeds `items` in order to the machine of `pipeline` (loaded), a push with the paths
    /// changed since the bases the machine asks for after the items before it.
    async fn decide(
        &mut self,
        pipeline: &str,
        items: &[Item],
        now: Timestamp,
        known: &mut BTreeMap<(String, String), Option<Vec<String>>>,
    ) -> Result<Decided> {
        let mut decided = Decided::default();
        for item in items {
            let fed = match item {
                Item::Inputs(inputs) => inputs.clone(),
                Item::Push(push) => {
                    let mut push = (**push).clone();
                    push.changed = self
                        .changed_since_bases(pipeline, &push.commit, known)
                        .await?;
                    vec![Input::Push(push)]
                }
                Item::Patch(patch) => {
                    let mut patch = (**patch).clone();
                    patch.push.changed = self
                        .changed_since_bases(pipeline, &patch.push.commit, known)
                        .await?;
                    vec![Input::Patch(patch)]
                }
            };
            let machine = self.machine(pipeline).await?;
            for input in fed {
                let output = machine.handle(input.clone(), now);
                decided.records.extend(output.records);
                decided.commands.extend(output.commands);
                decided.inputs.push(input);
            }
            decided.ends.push(decided.records.len());
        }
        Ok(decided)
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

/// What one queued job feeds the machine, ready to be decided with the others of its append.
#[derive(Clone, Debug)]
pub(super) enum Item {
    /// Inputs fed as they are.
    Inputs(Vec<Input>),
    /// A push, its commit read; its changed paths are filled in when it is decided.
    Push(Box<Push>),
    /// A patch (L17), likewise.
    Patch(Box<Patch>),
}

/// The inputs fed for a list of items and what the machine made of them.
#[derive(Default)]
struct Decided {
    /// The inputs, in the order fed.
    inputs: Vec<Input>,
    /// The records of all the items.
    records: Vec<Record>,
    /// Where the records of each item end in `records`.
    ends: Vec<usize>,
    /// The commands of all the items.
    commands: Vec<crate::lifecycle::Command>,
}

/// `records` cut at `ends`: the records of each item.
fn split(records: Vec<Record>, ends: &[usize]) -> Vec<Vec<Record>> {
    let mut records = records.into_iter();
    let mut start = 0;
    ends.iter()
        .map(|end| {
            let part = records.by_ref().take(end - start).collect();
            start = *end;
            part
        })
        .collect()
}

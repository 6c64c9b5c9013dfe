//! The lifecycle state machine (sans-IO): inputs in, records and commands out.
//!
//! [`Machine::handle`] decides what an input changes, emits the [`Record`]s of those changes
//! (applied to the state at once, so the state is always the fold of the records) and the
//! [`Command`]s for the work they imply. The engine persists the records before it runs the
//! commands (L20). Time comes in as `now`; the machine reads no clock.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::command::Command;
use super::record::{Event, Record};
use super::state::PipelineState;
use super::step_table::{StepTrigger, next_step_state};
use super::table::{Trigger, next_state};
use super::types::{Actor, AlarmState, Emergency, Phase, StageState, StepState, WaitingFor};
use crate::exec::{ExecutionKey, InfraPlan, Outcome, Polling, Unit};
use crate::expr::Organization;
use crate::pipeline::{ApprovalPolicy, TimeWindow};
use crate::plan::{Decision, StepKind, StepPlan};

/// A push of a commit to a branch, with what synthesis needs (read by the engine).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Push {
    /// The delivery id of the webhook, when there is one.
    pub delivery: Option<String>,
    /// The branch.
    pub branch: String,
    /// The commit.
    pub commit: String,
    /// A tag pointing at the commit, or empty.
    pub tag: String,
    /// The definition's text at the commit (`None`: the commit has no definition).
    pub definition: Option<String>,
    /// Paths changed since each base commit the machine asked for ([`Machine::bases`]).
    pub changed: BTreeMap<String, Vec<String>>,
    /// The organization context.
    pub organization: Organization,
}

/// A push that deploys nothing whatever the pipeline tracks (L2): a tag, a branch deletion, a
/// ref that is no branch. The machine records it as `push_ignored` with `reason`; its delivery
/// id is remembered, so a re-delivery is a duplicate like any other (L2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct IgnoredPush {
    /// The delivery id of the webhook, when there is one.
    pub delivery: Option<String>,
    /// The full ref pushed (`refs/tags/v1.0`, `refs/heads/feature`).
    pub git_ref: String,
    /// The commit the ref points at now (`None` when the push deleted it).
    pub commit: Option<String>,
    /// Why it deploys nothing.
    pub reason: String,
}

/// The result of a piece of work the machine asked for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum WorkResult {
    /// A build, resource validation, mirroring, step or Terraform apply ended.
    Done(Outcome),
    /// A Terraform plan is ready.
    Planned(InfraPlan),
}

/// What the machine reacts to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Input {
    /// A push (L2).
    Push(Push),
    /// A push that is no deployment whatever the pipeline (a tag, a branch deletion, a ref
    /// that is no branch): recorded as `push_ignored` with its reason, nothing resolved (L2).
    IgnoredPush(IgnoredPush),
    /// Work ended.
    Work {
        /// Which execution.
        key: ExecutionKey,
        /// How it ended.
        result: WorkResult,
    },
    /// Time passed: timers due at `now` fire (bakes, timeouts, windows).
    Tick,
    /// A person approves a waiting step (L16).
    Approve(Decide),
    /// A person rejects a waiting step (L16).
    Reject(Decide),
    /// A person retries a stage-deployment (L11).
    Retry(Operate),
    /// A person cancels a stage-deployment (L12).
    Cancel(Operate),
    /// A person changes a stage's blockers (L9).
    Control(Control),
    /// A person rolls a stage back to a revision that succeeded there (L13).
    RollBack(Operate),
    /// A person rolls a stage forward to a newer revision (L14).
    RollForward(Operate),
    /// A stage's auto-rollback alarm changed state (L15).
    Alarm(AlarmInput),
    /// A person deploys a chosen commit as a patch (L17).
    Patch(Patch),
    /// A person ends patch mode (L17).
    ReleasePatch(Person),
    /// A person approves a deployment's definition change (L18).
    ApprovePipeline(PipelineDecision),
    /// A person rejects a deployment's definition change (L18).
    RejectPipeline(PipelineDecision),
}

/// A change of a stage's auto-rollback alarm (L15).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct AlarmInput {
    /// The stage.
    pub stage: String,
    /// The alarm's new state.
    pub state: AlarmState,
    /// Who reports it (the alarm source is `system`).
    pub actor: Actor,
}

/// A patch deployment (L17): the commit's push, deployed whatever the branch head is.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Patch {
    /// The commit, with what synthesis needs (as for a push).
    pub push: Push,
    /// Who.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
}

/// A person's action on the whole pipeline.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Person {
    /// Who.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
}

/// An answer to a definition change waiting for approval (L18).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct PipelineDecision {
    /// The waiting revision.
    pub revision: u64,
    /// Who.
    pub actor: Actor,
    /// Their comment.
    pub comment: Option<String>,
}

/// A change to a stage's blockers (L9).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Control {
    /// The stage.
    pub stage: String,
    /// What to do.
    pub action: ControlAction,
    /// Who.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
}

/// The blocker operations of L9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ControlAction {
    /// Add the `STOP_PROMOTIONS` blocker.
    StopPromotions,
    /// Remove the `STOP_PROMOTIONS` blocker.
    ResumePromotions,
    /// Remove the `ROLLBACK` blocker ("unblock after rollback").
    Unblock,
    /// Let one queued revision start once despite blockers and the window (never the lock).
    Bypass {
        /// The queued revision.
        revision: u64,
    },
}

/// An approval or rejection.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Decide {
    /// Revision.
    pub revision: u64,
    /// Stage.
    pub stage: String,
    /// Step (id or name).
    pub step: String,
    /// Who.
    pub actor: Actor,
    /// Their comment.
    pub comment: Option<String>,
}

/// An operation on one stage-deployment.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Operate {
    /// Revision.
    pub revision: u64,
    /// Stage.
    pub stage: String,
    /// Who.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
}

/// What one input produced.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Output {
    /// State changes, in order (already applied to the machine's state).
    pub records: Vec<Record>,
    /// Work to start once the records are durable.
    pub commands: Vec<Command>,
}

/// The lifecycle of one pipeline.
#[derive(Clone, Debug)]
pub struct Machine {
    state: PipelineState,
    slug: String,
}

impl Machine {
    /// A machine for the pipeline `slug` with no history.
    pub fn new(slug: &str) -> Self {
        Machine {
            state: PipelineState::new(slug),
            slug: slug.to_owned(),
        }
    }

    /// A machine rebuilt from its log.
    pub fn replay<'a>(slug: &str, records: impl IntoIterator<Item = &'a Record>) -> Self {
        Machine {
            state: PipelineState::replay(slug, records),
            slug: slug.to_owned(),
        }
    }

    /// A machine for the pipeline `slug` from a snapshot its [`Machine::snapshot`] gave; fails
    /// on a snapshot of another format version or pipeline, or one that does not decode.
    pub fn from_snapshot(slug: &str, snapshot: &serde_json::Value) -> crate::Result<Self> {
        Ok(Machine {
            state: PipelineState::from_snapshot(slug, snapshot)?,
            slug: slug.to_owned(),
        })
    }

    /// The state as a snapshot, to load with [`Machine::from_snapshot`] (see
    /// [`PipelineState::to_snapshot`]).
    pub fn snapshot(&self) -> crate::Result<serde_json::Value> {
        self.state.to_snapshot()
    }

    /// Applies records written after the ones the machine has seen (by another engine instance
    /// sharing the store, L21), in log order: catching up costs what is new, not a replay.
    pub fn apply<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) {
        for record in records {
            self.state.apply(record);
        }
    }

    /// The state.
    pub fn state(&self) -> &PipelineState {
        &self.state
    }

    /// The base commits whose changes a push needs (the commits of the last successful builds).
    pub fn bases(&self) -> Vec<String> {
        let mut bases: Vec<String> = self.state.builds.values().cloned().collect();
        bases.sort();
        bases.dedup();
        bases
    }

    /// Reacts to one input at `now`.
    pub fn handle(&mut self, input: Input, now: Timestamp) -> Output {
        let mut run = Run {
            machine: self,
            now,
            out: Output::default(),
        };
        match input {
            Input::Push(push) => run.push(push),
            Input::IgnoredPush(push) => run.ignored_push(push),
            Input::Work { key, result } => run.work(&key, result),
            Input::Tick => {}
            Input::Approve(d) => run.decide(d, true),
            Input::Reject(d) => run.decide(d, false),
            Input::Retry(op) => run.retry(op),
            Input::Cancel(op) => run.cancel(op),
            Input::Control(control) => run.control(control),
            Input::RollBack(op) => run.emergency(Emergency::Rollback, op),
            Input::RollForward(op) => run.emergency(Emergency::RollForward, op),
            Input::Alarm(alarm) => run.alarm(alarm),
            Input::Patch(patch) => run.patch(patch),
            Input::ReleasePatch(person) => run.release_patch(person),
            Input::ApprovePipeline(d) => run.decide_pipeline(d, true),
            Input::RejectPipeline(d) => run.decide_pipeline(d, false),
        }
        run.advance();
        run.out
    }

    /// The earliest time at which [`Input::Tick`] changes something: a bake ends, a step times
    /// out, or a closed window opens for a queued deployment.
    pub fn next_wake(&self, now: Timestamp) -> Option<Timestamp> {
        let mut wake: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| wake = Some(wake.map_or(t, |w: Timestamp| w.min(t)));
        for deployment in self.state.active_deployments() {
            let Some(plan) = deployment.plan() else {
                continue;
            };
            for (stage_plan, run) in plan.stages.iter().zip(&deployment.stages) {
                if run.state == StageState::NotStarted
                    && run.waiting_for == Some(WaitingFor::TimeWindow)
                {
                    consider(stage_plan.deployment_time_window.next_opening(now));
                    continue;
                }
                if !run.state.holds_lock() {
                    continue;
                }
                for (step, s) in stage_plan.steps.iter().zip(&run.steps) {
                    if s.state != StepState::Running {
                        continue;
                    }
                    if let Some(deadline) = step_deadline(step, s.started_at) {
                        consider(deadline);
                    }
                }
            }
        }
        wake
    }

    /// The work in flight, as commands: after a restart the engine re-attaches to it (L20).
    /// Each is the command issued when that work started.
    pub fn pending_work(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for deployment in self.state.active_deployments() {
            let Some(plan) = deployment.plan() else {
                continue;
            };
            let revision = deployment.revision;
            for (index, run) in deployment.stages.iter().enumerate() {
                if !run.state.holds_lock() {
                    continue;
                }
                let stage = run.name.as_str();
                for (artifact, state) in &run.builds {
                    if *state == StepState::Running {
                        out.extend(self.build_command(revision, stage, artifact));
                    }
                }
                match run.phase {
                    Some(Phase::ResourceValidation) => {
                        out.extend(self.validate_command(revision, stage));
                    }
                    Some(Phase::Mirroring) => out.extend(self.mirror_command(revision, stage)),
                    _ => {}
                }
                let Some(stage_plan) = plan.stages.get(index) else {
                    continue;
                };
                for (i, (step, s)) in stage_plan.steps.iter().zip(&run.steps).enumerate() {
                    if s.state == StepState::Running && !step.kind.is_bake() {
                        out.extend(self.step_command(revision, stage, i, s.approved));
                    }
                }
            }
        }
        out
    }

    fn key(&self, revision: u64, stage: &str, attempt: u32, unit: Unit) -> ExecutionKey {
        ExecutionKey::new(&self.slug, revision, stage, attempt, unit)
    }
}

/// A bake's end, or a step's timeout (L10); approval waits have none.
fn step_deadline(step: &StepPlan, started: Option<Timestamp>) -> Option<Timestamp> {
    let started = started?;
    let minutes = match step.kind {
        StepKind::Bake { minutes } => minutes,
        _ => step.timeout_minutes?,
    };
    let minutes = i64::try_from(minutes).unwrap_or(i64::MAX / 120);
    started
        .checked_add(SignedDuration::from_mins(minutes.clamp(0, 10_000_000)))
        .ok()
}

/// One `handle` call in progress.
struct Run<'m> {
    machine: &'m mut Machine,
    now: Timestamp,
    out: Output,
}

impl Run<'_> {
    fn state(&self) -> &PipelineState {
        &self.machine.state
    }

    fn emit(&mut self, actor: Actor, event: Event) {
        let record = Record {
            at: self.now,
            actor,
            event,
        };
        self.machine.state.apply(&record);
        self.out.records.push(record);
    }

    fn command(&mut self, command: Command) {
        self.out.commands.push(command);
    }

    /// Issues a command made by the machine (none when the plan lacks what it names).
    fn issue(&mut self, command: Option<Command>) {
        self.out.commands.extend(command);
    }

    fn set_stage(
        &mut self,
        actor: Actor,
        revision: u64,
        stage: &str,
        trigger: Trigger,
        detail: StageDetail,
    ) {
        let Some(run) = self.state().run(revision, stage) else {
            return;
        };
        let Some(to) = next_state(run.state, trigger) else {
            debug_assert!(false, "no transition from {} on {trigger:?}", run.state);
            return;
        };
        let attempt = to
            .holds_lock()
            .then(|| run.attempt + u32::from(!run.state.holds_lock()));
        self.emit(
            actor,
            Event::StageState {
                revision,
                stage: stage.to_owned(),
                state: to,
                waiting_for: detail.waiting_for,
                superseded_by: detail.superseded_by,
                attempt,
                reason: detail.reason,
            },
        );
    }
}
/// Details of a stage-deployment state change.
#[derive(Clone, Debug, Default)]
struct StageDetail {
    waiting_for: Option<WaitingFor>,
    superseded_by: Option<u64>,
    reason: Option<String>,
}

impl StageDetail {
    fn never(reason: &str) -> Self {
        StageDetail {
            waiting_for: Some(WaitingFor::Never),
            reason: Some(reason.to_owned()),
            ..StageDetail::default()
        }
    }

    fn reason(reason: impl Into<String>) -> Self {
        StageDetail {
            reason: Some(reason.into()),
            ..StageDetail::default()
        }
    }
}

mod approvals;
mod commands;
mod inputs;
mod operations;
mod people;
mod phases;
mod pushes;
mod queue;
mod results;
mod steps;

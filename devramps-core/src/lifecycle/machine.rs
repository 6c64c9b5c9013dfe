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
use crate::exec::{ExecutionKey, InfraPlan, Outcome, Unit};
use crate::expr::Organization;
use crate::pipeline::{ApprovalPolicy, TimeWindow};
use crate::plan::{Decision, StepKind, StepPlan};

/// A push of a commit to a branch, with what synthesis needs (read by the engine).
#[derive(Clone, Debug, PartialEq)]
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

/// The result of a piece of work the machine asked for.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WorkResult {
    /// A build, resource validation, mirroring, step or Terraform apply ended.
    Done(Outcome),
    /// A Terraform plan is ready.
    Planned(InfraPlan),
}

/// What the machine reacts to.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// A push (L2).
    Push(Push),
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
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Person {
    /// Who.
    pub actor: Actor,
    /// Why.
    pub reason: Option<String>,
}

/// An answer to a definition change waiting for approval (L18).
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
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

/// When a Terraform step's plan waits for a person.
fn approval_policy(step: &StepPlan) -> ApprovalPolicy {
    match step.kind {
        StepKind::Terraform {
            requires_approval, ..
        } => requires_approval,
        _ => ApprovalPolicy::DestructiveChangesOnly,
    }
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

    // ----- pushes (L1, L2, L3, L6) -----

    fn push(&mut self, push: Push) {
        let actor = Actor::Webhook(push.delivery.clone().unwrap_or_else(|| "push".to_owned()));
        let tracked = push
            .definition
            .as_deref()
            .and_then(|d| crate::plan::parse(d).ok())
            .map(|d| d.tracked_branch().to_owned());
        let ignore = if push.definition.is_none() {
            Some("the commit has no pipeline definition".to_owned())
        } else if push
            .delivery
            .as_ref()
            .is_some_and(|d| self.state().deliveries.contains(d))
        {
            Some("this delivery was seen before".to_owned())
        } else if self.state().newest_commit.as_deref() == Some(push.commit.as_str()) {
            Some("the commit is already the newest accepted commit".to_owned())
        } else {
            match &tracked {
                Some(branch) if *branch != push.branch => Some(format!(
                    "branch `{}` is not the tracked branch `{branch}`",
                    push.branch
                )),
                _ if self.state().patch_mode => Some(
                    "the pipeline is in patch mode (L17): pushes are ignored until the patch is \
                     released"
                        .to_owned(),
                ),
                _ => None,
            }
        };
        if let Some(reason) = ignore {
            self.emit(
                actor,
                Event::PushIgnored {
                    commit: push.commit,
                    branch: push.branch,
                    delivery: push.delivery,
                    reason,
                },
            );
            return;
        }
        self.accept(actor, push, false);
    }

    /// Accepts a deployment of `push` (L1, L3) and sends it to the first stage's queue (L6).
    fn accept(&mut self, actor: Actor, push: Push, patch: bool) {
        let revision = self.state().last_revision + 1;
        self.emit(
            actor,
            Event::DeploymentAccepted {
                revision,
                commit: push.commit,
                branch: push.branch,
                tag: push.tag,
                delivery: push.delivery,
                definition: push.definition.unwrap_or_default(),
                changed: push.changed,
                organization: push.organization,
                patch,
            },
        );
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return;
        };
        if deployment.plan().is_none() {
            let diagnostics = deployment.synthesis_errors.clone();
            let stages: Vec<String> = deployment.stages.iter().map(|s| s.name.clone()).collect();
            self.emit(
                Actor::System,
                Event::SynthesisFailed {
                    revision,
                    diagnostics,
                },
            );
            for stage in stages {
                self.set_stage(
                    Actor::System,
                    revision,
                    &stage,
                    Trigger::Abandon,
                    StageDetail::never("synthesis failed"),
                );
            }
            return;
        }
        let first = deployment.stages.first().map(|s| s.name.clone());
        if let Some(first) = first {
            self.join_queue(revision, &first);
        }
    }

    /// `revision` becomes ready for `stage` (L6): older queued revisions are superseded.
    fn join_queue(&mut self, revision: u64, stage: &str) {
        if let Some(old) = self.state().stage(stage).queued
            && old != revision
        {
            // Only the newest survives: an older revision arriving late (a roll-forward that
            // promotes, L14) is superseded by the newer one already waiting.
            let (loser, winner) = if old < revision {
                (old, revision)
            } else {
                (revision, old)
            };
            self.set_stage(
                Actor::System,
                loser,
                stage,
                Trigger::Supersede,
                StageDetail {
                    superseded_by: Some(winner),
                    reason: Some(format!("superseded by revision {winner}")),
                    ..StageDetail::default()
                },
            );
            self.abandon_after(loser, stage, &format!("superseded by revision {winner}"));
            if loser == revision {
                return;
            }
        }
        // A deployment waiting for approval of its definition is superseded too (L18).
        let waiting: Vec<u64> = self
            .state()
            .awaiting_approval
            .range(..revision)
            .copied()
            .filter(|r| {
                self.state()
                    .deployments
                    .get(r)
                    .and_then(|d| d.stages.first())
                    .is_some_and(|s| s.name == stage)
            })
            .collect();
        for old in waiting {
            self.set_stage(
                Actor::System,
                old,
                stage,
                Trigger::Supersede,
                StageDetail {
                    superseded_by: Some(revision),
                    reason: Some(format!("superseded by revision {revision}")),
                    ..StageDetail::default()
                },
            );
            self.abandon_after(old, stage, &format!("superseded by revision {revision}"));
        }
        // Ready for the first stage, but the definition change waits for a person (L18).
        if self.awaits_pipeline_approval(revision, stage) {
            return;
        }
        match self.blocked_by(revision, stage) {
            // Free to go: it starts at once (L7).
            None => self.set_stage(
                Actor::System,
                revision,
                stage,
                Trigger::Start,
                StageDetail::default(),
            ),
            Some(waiting) => self.wait(revision, stage, waiting),
        }
    }

    /// Why a queued `revision` cannot start in `stage` now (L7), or `None` when it can.
    fn blocked_by(&self, revision: u64, stage: &str) -> Option<WaitingFor> {
        let runtime = self.state().stage(stage);
        // An emergency waiting for the lock goes first (L13, L14).
        if runtime.running.is_some() || runtime.emergency.is_some() {
            return Some(WaitingFor::Lock);
        }
        // A bypass lets its revision past blockers and the window, never past the lock (L9).
        if runtime.bypass == Some(revision) {
            return None;
        }
        if !runtime.blockers.is_empty() {
            return Some(WaitingFor::Blocker);
        }
        let window = self.window(revision, stage);
        if !window.is_open(self.now) {
            return Some(WaitingFor::TimeWindow);
        }
        None
    }

    fn window(&self, revision: u64, stage: &str) -> TimeWindow {
        self.state()
            .deployments
            .get(&revision)
            .and_then(|d| d.plan())
            .and_then(|p| p.stages.iter().find(|s| s.name == stage))
            .map_or(TimeWindow::None, |s| s.deployment_time_window)
    }

    /// Marks every later stage of `revision` `NOT_STARTED` / `NEVER`.
    fn abandon_after(&mut self, revision: u64, stage: &str, reason: &str) {
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return;
        };
        let later: Vec<String> = deployment
            .stages
            .iter()
            .skip_while(|s| s.name != stage)
            .skip(1)
            .filter(|s| {
                s.state == StageState::NotStarted && s.waiting_for != Some(WaitingFor::Never)
            })
            .map(|s| s.name.clone())
            .collect();
        for s in later {
            self.set_stage(
                Actor::System,
                revision,
                &s,
                Trigger::Abandon,
                StageDetail::never(reason),
            );
        }
    }

    // ----- driving (L4, L5, L7, L8, L10) -----

    /// Does everything that can be done now, until nothing changes.
    fn advance(&mut self) {
        for _ in 0..10_000 {
            let before = self.out.records.len() + self.out.commands.len();
            // Stages in promotion order (then any stage only older definitions had).
            let state = self.state();
            let mut stages = state.stage_order.clone();
            stages.extend(
                state
                    .stages
                    .keys()
                    .filter(|s| !state.stage_order.contains(s))
                    .cloned(),
            );
            for stage in &stages {
                self.try_start(stage);
                if let Some(revision) = self.state().stage(stage).running {
                    self.progress(revision, stage);
                }
            }
            if self.out.records.len() + self.out.commands.len() == before {
                return;
            }
        }
    }

    /// Starts the queued deployment of `stage` when the lock is free, the window open and no
    /// blocker active (L7); otherwise records what it waits for.
    fn try_start(&mut self, stage: &str) {
        if self.start_emergency(stage) {
            return;
        }
        let Some(revision) = self.state().stage(stage).queued else {
            return;
        };
        match self.blocked_by(revision, stage) {
            None => self.set_stage(
                Actor::System,
                revision,
                stage,
                Trigger::Start,
                StageDetail::default(),
            ),
            Some(waiting) => {
                let current = self
                    .state()
                    .run(revision, stage)
                    .and_then(|r| r.waiting_for);
                if current != Some(waiting) {
                    self.wait(revision, stage, waiting);
                }
            }
        }
    }
}

impl Run<'_> {
    /// Records that the queued `revision` waits for `waiting` in `stage` (L7).
    fn wait(&mut self, revision: u64, stage: &str, waiting: WaitingFor) {
        self.emit(
            Actor::System,
            Event::StageState {
                revision,
                stage: stage.to_owned(),
                state: StageState::NotStarted,
                waiting_for: Some(waiting),
                superseded_by: None,
                attempt: None,
                reason: None,
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

mod commands;
mod inputs;
mod operations;
mod progress;

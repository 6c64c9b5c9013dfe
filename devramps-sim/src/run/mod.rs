//! [`simulate`]: runs a scenario through the real engine on in-memory backends and a manual
//! clock, and reports what happened ([`simulate_with_store`]: on a given event store and lease
//! service).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use devramps_core::backend::{Backends, Clock, DynDeploymentLock, DynEventStore};
use devramps_core::engine::{Engine, EngineConfig, EngineDriver};
use devramps_core::lifecycle::{Actor, ControlAction, Person, PipelineState, Record};
use devramps_core::pipeline::{PipelineDefinition, Span};
use devramps_memory::{CallKind, InMemoryEventStore, InMemoryLock};
use futures::executor::LocalPool;
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;
use jiff::Timestamp;

use crate::action::{Action, DEFAULT_ACTOR, StoreOp};
use crate::backends::{SimHandles, sim_backends};
use crate::check::{check_pipeline, check_scenario};
use crate::collect::{Annotation, build_report};
use crate::error::{ScenarioError, SimulateError};
use crate::invariants::Invariants;
use crate::report::{EventReport, Report, format_time};
use crate::scenario::{PipelineRef, Scenario, parse_scenario};
use crate::store::{Inline, InlineStore, StoreError, check_empty};
use crate::time::add;

mod actions;
mod requests;

/// How many clock moves a simulation makes at most before it gives up (a guard against an
/// engine that keeps asking to be woken without making progress).
const MAX_STEPS: usize = 1_000_000;

/// How many times a request the engine answered with a transient error is delivered again
/// before it counts as refused.
const MAX_REDELIVERIES: u32 = 100;
/// The first delay before a request is delivered again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between deliveries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs `scenario` with `pipeline_text` as the pipeline definition at every pushed commit, and
/// reports what happened.
///
/// The engine is the real one ([`devramps_core::engine`]) on in-memory backends and a manual
/// clock starting at the scenario's `start`:
///
/// - every `push` writes a commit to an in-memory repository (its first parent is the head of
///   its branch, or for a new branch the tracked branch's head) holding the pipeline at
///   `.devramps/<slug>/pipeline.yaml` (its `pipeline_yaml`, else the parent's) and every
///   `changed` path (whose content is the commit id, so a changed `pipeline.yaml` is an
///   invalid definition at that commit), then submits the push (delivery `sim-<n>` unless
///   given, branch the tracked one unless given); a `deleted` push forgets the branch's head
///   and submits nothing (L2: deletions create nothing);
/// - unscripted steps (Terraform applies included) succeed after `step_duration`, builds after
///   `build_duration`; resource validation and mirroring take `mirror_duration` per stage
///   attempt; bakes last their `duration_minutes`; approvals wait for `approve` / `reject`;
///   secrets resolve to placeholders;
/// - `outcome` scripts the step or build of a commit's deployment (whenever it was written:
///   scripts are looked up by commit when the work starts);
/// - `alarm` goes through the in-memory alarm source when the stage watches an alarm;
/// - `patch` writes its commit (when new) beside the branch head, not as a new head;
/// - after the last event the clock runs on until nothing is pending or `run_until` is reached.
///
/// L5 and L6 are checked after every event and every clock move; breaches are the report's
/// `violations`. The same inputs always give the same report.
pub fn simulate(scenario: &Scenario, pipeline_text: &str) -> Report {
    let store: DynEventStore = Arc::new(InMemoryEventStore::new());
    let lock: DynDeploymentLock = Arc::new(InMemoryLock::new());
    Sim::new(scenario, pipeline_text, Inline(store), lock).run()
}

/// As [`simulate`], with the event log and the leases in `store` and `lock` (for example the
/// durable local store, which is both) instead of in memory. The scenario gives the same
/// report whichever store it runs on.
///
/// Each call to the store is waited for on the caller's thread before the simulation goes on
/// (so a store that works on other threads cannot make the run depend on thread timing); its
/// calls must therefore not wait for the engine's own tasks. The store's time is the virtual
/// clock's: the engine passes it to every lease call.
///
/// # Errors
///
/// [`StoreError::InUse`] when the store already holds events of any pipeline (a simulation
/// starts from an empty log, and the engine would drive every pipeline it finds there);
/// [`StoreError::Unreadable`] when it cannot be asked.
pub fn simulate_with_store(
    scenario: &Scenario,
    pipeline_text: &str,
    store: DynEventStore,
    lock: DynDeploymentLock,
) -> Result<Report, StoreError> {
    let store = Inline(store);
    check_empty(&store)?;
    Ok(Sim::new(scenario, pipeline_text, store, lock).run())
}

/// Reads the scenario at `path` and its pipeline, checks both, and runs it ([`simulate`]).
///
/// Errors: the scenario's own ([`parse_scenario`]); a pipeline file that cannot be read; the
/// pipeline's validation errors, located in the pipeline file (or, for `pipeline_yaml`, in the
/// scenario file); and names of stages, steps or artifacts the pipeline does not have.
pub fn simulate_file(path: &Path) -> Result<Report, Vec<ScenarioError>> {
    let (scenario, pipeline_text) = load(path)?;
    Ok(simulate(&scenario, &pipeline_text))
}

/// As [`simulate_file`], on `store` and `lock` ([`simulate_with_store`]).
///
/// # Errors
///
/// [`SimulateError::Scenario`] with the errors of [`simulate_file`] (the scenario is checked
/// first, the store is not touched then); [`SimulateError::Store`] when the store is in use
/// or unreadable.
pub fn simulate_file_with(
    path: &Path,
    store: DynEventStore,
    lock: DynDeploymentLock,
) -> Result<Report, SimulateError> {
    let (scenario, pipeline_text) = load(path).map_err(SimulateError::Scenario)?;
    simulate_with_store(&scenario, &pipeline_text, store, lock).map_err(SimulateError::Store)
}

/// Reads the scenario at `path` and its pipeline's text, and checks both.
fn load(path: &Path) -> Result<(Scenario, String), Vec<ScenarioError>> {
    let text = crate::files::read_text(path).map_err(|e| {
        vec![
            ScenarioError::new(
                path,
                Span {
                    line: 1,
                    column: 1,
                    offset: 0,
                    len: 0,
                },
                format!("cannot read the scenario: {e}"),
            )
            .with_help(e.help()),
        ]
    })?;
    let scenario = parse_scenario(&text, path)?;
    let pipeline_text = match &scenario.pipeline {
        PipelineRef::Inline(inline) => inline.clone(),
        PipelineRef::Path(pipeline) => crate::files::read_text(pipeline).map_err(|e| {
            let help = match e {
                crate::files::FileError::Io { .. } => {
                    "the path is relative to the scenario file's folder".to_owned()
                }
                _ => e.help(),
            };
            vec![
                ScenarioError::new(
                    path,
                    scenario.pipeline_span,
                    format!("cannot read the pipeline: {e}"),
                )
                .with_help(help),
            ]
        })?,
    };
    let definition = check_pipeline(path, &text, &scenario, &pipeline_text)?;
    check_scenario(path, &scenario, &definition)?;
    Ok((scenario, pipeline_text))
}

/// The operations on one stage-deployment.
#[derive(Clone, Copy, Debug)]
enum StageOp {
    Retry,
    Cancel,
    Rollback,
    RollForward,
}

impl StageOp {
    /// The scenario key.
    fn name(self) -> &'static str {
        match self {
            StageOp::Retry => "retry",
            StageOp::Cancel => "cancel",
            StageOp::Rollback => "rollback",
            StageOp::RollForward => "roll_forward",
        }
    }
}

/// The head of a branch of the simulated repository.
#[derive(Clone, Debug)]
struct Head {
    /// The commit.
    commit: String,
    /// The pipeline definition at it.
    pipeline: String,
}

/// One simulation in progress.
struct Sim<'s> {
    scenario: &'s Scenario,
    /// The pipeline of the first commit of a branch that has no head yet.
    pipeline_text: String,
    definition: Option<Arc<PipelineDefinition>>,
    handles: SimHandles,
    /// The backends every engine instance gets (the same store, runners and clock).
    backends: Backends,
    engine: Engine,
    /// The running engine instance's driver; dropping it kills the instance.
    driver: Option<RemoteHandle<()>>,
    /// Engine instances started so far (each restart starts one).
    instances: u32,
    /// While the engine is down: when it comes back.
    down_until: Option<Timestamp>,
    pool: LocalPool,
    /// The engine's state as of the latest step: the fold of the log up to where the engine
    /// was then ([`Sim::catch_up`]).
    state: PipelineState,
    /// The invariants of `state`, kept as it changes.
    invariants: Invariants,
    /// Pushes so far (for delivery ids).
    pushes: usize,
    /// Each branch's head and the pipeline text at it: the first parent of the branch's next
    /// commit (a branch without a head starts from the tracked branch's head).
    heads: BTreeMap<String, Head>,
    /// Commits written to the repository.
    commits: BTreeSet<String>,
    /// The simulator's own events, each after that many records of the log.
    own_events: Vec<(u64, EventReport)>,
    /// Context for records produced by a scenario event (refusals name no revision or stage).
    annotations: Vec<(u64, Annotation)>,
    violations: Vec<String>,
    seen_violations: BTreeSet<String>,
}

impl<'s> Sim<'s> {
    fn new(
        scenario: &'s Scenario,
        pipeline_text: &'s str,
        store: InlineStore,
        lock: DynDeploymentLock,
    ) -> Self {
        let (backends, handles) = sim_backends(scenario.start, &scenario.defaults, store, lock);
        let (engine, driver) = Engine::new(backends.clone(), EngineConfig::default());
        let pool = LocalPool::new();
        let mut sim = Sim {
            scenario,
            pipeline_text: pipeline_text.to_owned(),
            definition: devramps_core::plan::parse_shared(pipeline_text).ok(),
            handles,
            backends,
            engine,
            driver: None,
            instances: 1,
            down_until: None,
            pool,
            state: PipelineState::new(&scenario.slug),
            invariants: Invariants::default(),
            pushes: 0,
            heads: BTreeMap::new(),
            commits: BTreeSet::new(),
            own_events: Vec::new(),
            annotations: Vec::new(),
            violations: Vec::new(),
            seen_violations: BTreeSet::new(),
        };
        sim.spawn(driver);
        sim
    }

    fn spawn(&mut self, driver: EngineDriver) {
        let spawned = self.pool.spawner().spawn_local_with_handle(async move {
            // The driver ends with an error only when its store fails for good; the run then
            // reports whatever was recorded.
            let _ = driver.run().await;
        });
        match spawned {
            Ok(handle) => self.driver = Some(handle),
            Err(e) => self
                .violations
                .push(format!("the engine could not be started: {e}")),
        }
    }

    /// `restart`: the engine instance dies at once, as a killed process would: its driver (and
    /// every wait in flight) is dropped, nothing is stopped or released. A new instance starts
    /// after `down` ([`Sim::revive`]).
    fn kill(&mut self, down: Duration) {
        if let Some(driver) = self.driver.take() {
            // Dropping the handle cancels the driver; running the pool drops it.
            drop(driver);
            self.pool.run_until_stalled();
        }
        let back = add(self.handles.clock.now(), down);
        self.down_until = Some(back);
        if down.is_zero() {
            self.revive();
        }
    }

    /// Starts a new engine instance on the same backends (it rebuilds its state from the
    /// store and re-attaches to the work in flight).
    fn revive(&mut self) {
        if self.down_until.take().is_none() {
            return;
        }
        self.instances += 1;
        let config = EngineConfig::new(format!("engine-{}", self.instances));
        let (engine, driver) = Engine::new(self.backends.clone(), config);
        self.engine = engine;
        self.spawn(driver);
        self.settle();
    }

    /// Brings the engine back when it is down: at its time, or now if that has passed.
    fn come_back(&mut self) {
        if let Some(back) = self.down_until {
            self.advance_to(back);
            self.revive();
        }
    }

    fn run(mut self) -> Report {
        self.settle();
        for event in &self.scenario.events {
            let at = add(self.scenario.start, event.at);
            // While the engine is down, events wait and are delivered when it is back.
            // Scripts and store faults are the world's, not deliveries: they apply at once.
            let delivered = !matches!(event.action, Action::Outcome(_) | Action::StoreFault { .. });
            if self.down_until.is_some_and(|back| back <= at || delivered) {
                self.come_back();
            }
            self.advance_to(at.max(self.handles.clock.now()));
            self.apply(&event.action);
            self.settle();
        }
        if self
            .down_until
            .is_some_and(|back| back <= add(self.scenario.start, self.scenario.run_until))
        {
            self.come_back();
        }
        self.finish();
        let records = self.history();
        self.fold_rest(&records);
        let mut report = build_report(
            self.scenario.start,
            self.handles.clock.now(),
            &self.state,
            &records,
            self.own_events,
            &self.annotations,
            self.violations,
        );
        report.executions = self.handles.executions.report();
        report
    }

    /// Runs the engine until it waits for time or people, then reads its state and checks the
    /// invariants.
    fn settle(&mut self) {
        self.pool.run_until_stalled();
        if self.down_until.is_some() {
            // Nobody answers while the engine is down.
            return;
        }
        self.catch_up();
        self.check_invariants();
    }

    /// Brings [`Sim::state`] up to the engine's live state: asks the engine how far it is
    /// (catching up with the store as a state request does) and folds the records since, read
    /// from the store behind the injected faults. The engine's state is the fold of its log
    /// (L19), so this is the state a request would copy, at the cost of what is new. When the
    /// log cannot be read that way, the engine's whole state is asked for instead.
    fn catch_up(&mut self) {
        let slug = self.scenario.slug.clone();
        let Some(Ok(applied)) = self.answer_now({
            let (engine, slug) = (self.engine.clone(), slug.clone());
            async move { engine.applied(&slug).await }
        }) else {
            return;
        };
        let from = self.state.applied;
        if applied == from {
            return;
        }
        if applied > from {
            let wanted = usize::try_from(applied - from).ok();
            let records = self.handles.log.records(&slug, from, wanted).ok();
            if let Some(records) = records
                && Some(records.len()) == wanted
            {
                for record in &records {
                    self.state.apply(record);
                    self.invariants.note(&self.state, record);
                }
                return;
            }
        }
        if let Some(Ok(state)) = self.answer_now({
            let (engine, slug) = (self.engine.clone(), slug.clone());
            async move { engine.state(&slug).await }
        }) {
            self.invariants = Invariants::of_state(&state);
            self.state = state;
        }
    }

    /// Folds into [`Sim::state`] the records of the final log it has not seen yet (the engine
    /// could not say how far it was behind a store fault still pending at the end), and checks
    /// the invariants on the result, so the report's stages and deployments agree with its log.
    fn fold_rest(&mut self, records: &[Record]) {
        let seen = usize::try_from(self.state.applied).unwrap_or(usize::MAX);
        let Some(rest) = records.get(seen..).filter(|rest| !rest.is_empty()) else {
            return;
        };
        for record in rest {
            self.state.apply(record);
            self.invariants.note(&self.state, record);
        }
        self.check_invariants();
    }

    /// Checks the invariants on [`Sim::state`], keeping each breach once.
    fn check_invariants(&mut self) {
        let now = self.handles.clock.now();
        for breach in self.invariants.check(&self.state) {
            if self.seen_violations.insert(breach.clone()) {
                self.violations
                    .push(format!("{}: {breach}", format_time(now)));
            }
        }
    }

    /// Moves the clock to `t`, stopping at every deadline on the way.
    fn advance_to(&mut self, t: Timestamp) {
        for _ in 0..MAX_STEPS {
            match self.handles.clock.next_deadline() {
                Some(deadline) if deadline <= t => {
                    self.handles.clock.advance_to_next_deadline();
                    self.settle();
                }
                _ => {
                    if self.handles.clock.now() < t {
                        // Cannot fail: `t` is later than the clock.
                        let _ = self.handles.clock.set(t);
                        self.settle();
                    }
                    return;
                }
            }
        }
        self.gave_up();
    }

    /// After the last event: runs until nothing is pending or `run_until` is reached.
    fn finish(&mut self) {
        let limit = add(self.scenario.start, self.scenario.run_until);
        for _ in 0..MAX_STEPS {
            match self.handles.clock.next_deadline() {
                Some(deadline) if deadline <= limit => {
                    self.handles.clock.advance_to_next_deadline();
                    self.settle();
                }
                Some(_) => {
                    if self.handles.clock.now() < limit {
                        let _ = self.handles.clock.set(limit);
                        self.settle();
                    }
                    return;
                }
                None => return,
            }
        }
        self.gave_up();
    }

    fn gave_up(&mut self) {
        self.violations.push(format!(
            "{}: the simulation stopped after {MAX_STEPS} clock moves without settling",
            format_time(self.handles.clock.now())
        ));
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::Push(push) => self.push(push),
            Action::Outcome(outcome) => self.outcome(outcome),
            Action::Approve(answer) => self.decide(answer, true),
            Action::Reject(answer) => self.decide(answer, false),
            Action::Retry { commit, stage } => self.operate(StageOp::Retry, commit, &stage.value),
            Action::Cancel { commit, stage } => self.operate(StageOp::Cancel, commit, &stage.value),
            Action::StopPromotions { stage } => {
                self.control(&stage.value, ControlAction::StopPromotions, None)
            }
            Action::ResumePromotions { stage } => {
                self.control(&stage.value, ControlAction::ResumePromotions, None)
            }
            Action::Unblock { stage } => self.control(&stage.value, ControlAction::Unblock, None),
            Action::Bypass { stage, commit } => match self.revision_of(commit) {
                Some(revision) => self.control(
                    &stage.value,
                    ControlAction::Bypass { revision },
                    Some(commit),
                ),
                None => {
                    let context = EventReport {
                        commit: Some(commit.clone()),
                        stage: Some(stage.value.clone()),
                        ..EventReport::default()
                    };
                    self.no_deployment(context, "bypass", commit);
                }
            },
            Action::Rollback { stage, to } => self.operate(StageOp::Rollback, to, &stage.value),
            Action::RollForward { stage, to } => {
                self.operate(StageOp::RollForward, to, &stage.value)
            }
            Action::Alarm { stage, state } => self.alarm(&stage.value, *state),
            Action::Patch { commit, changed } => self.patch(commit, changed),
            Action::ReleasePatch => {
                let person = Person::new(Actor::User(DEFAULT_ACTOR.to_owned()));
                let before = self.state.applied;
                let result = self.call(|engine, slug| {
                    let person = person.clone();
                    async move { engine.release_patch(&slug, person).await }
                });
                self.answered(before, result, EventReport::default());
            }
            Action::ApprovePipeline { commit } => self.decide_pipeline(commit, true),
            Action::RejectPipeline { commit } => self.decide_pipeline(commit, false),
            Action::StoreFault { op, times } => {
                let kind = match op {
                    StoreOp::Append => CallKind::Append,
                    StoreOp::Read => CallKind::Read,
                };
                self.handles.store.fail_next(kind, *times);
            }
            Action::Restart { down } => self.kill(*down),
        }
    }

    /// Records a `refused` event of the simulator at the current time.
    fn refuse(&mut self, mut event: EventReport, reason: String) {
        event.at = self.handles.clock.now();
        event.kind = "refused".to_owned();
        event.actor = Some(Actor::User(DEFAULT_ACTOR.to_owned()).to_string());
        event.reason = Some(reason);
        self.own_events.push((self.state.applied, event));
    }

    /// The newest revision of `commit`.
    fn revision_of(&self, commit: &str) -> Option<u64> {
        self.state
            .deployments
            .values()
            .rev()
            .find(|d| d.commit == commit)
            .map(|d| d.revision)
    }

    fn tracked_branch(&self) -> String {
        self.definition.as_ref().map_or_else(
            || devramps_core::pipeline::DEFAULT_TRACKED_BRANCH.to_owned(),
            |d| d.tracked_branch().to_owned(),
        )
    }
}

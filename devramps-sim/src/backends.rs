//! The backends of a simulation: the in-memory ones (and the event store and lease service
//! it was given), wrapped so that scripted outcomes are looked up by commit when work starts,
//! and so that validation and mirroring take time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{
    ArtifactMirror, Backends, BuildRequest, Clock, DynClock, DynDeploymentLock, ExecutionKey,
    InfraPlan, InfraRequest, InfrastructureSynthesizer, MirrorRequest, Outcome, Outputs,
    ResourceValidator, Runner, SecretScope, SecretSource, StageTarget, StepRequest, StepRunners,
    Unit, ValidationRequest,
};
use devramps_core::expr::SecretString;
use devramps_core::lifecycle::{Event, PipelineState};
use devramps_memory::{
    Behavior, FaultOptions, FaultyStore, InMemoryAlarms, InMemoryMirror, InMemoryResources,
    InMemorySource, ManualClock, Match, ScriptedInfra, ScriptedRequest, ScriptedRunner,
};

use crate::action::{ScriptedResult, TerraformPlan};
use crate::executions::Executions;
use crate::scenario::Defaults;
use crate::store::{Inline, InlineStore, LogReader};
use crate::time::add;

/// One scripted outcome, keyed by commit (the revision is not known when it is written).
#[derive(Clone, Debug)]
pub(crate) struct Script {
    /// The deployment's commit.
    pub(crate) commit: String,
    /// The stage; `None` matches every stage (builds of shared artifacts).
    pub(crate) stage: Option<String>,
    /// The execution key's unit: a step or a build.
    pub(crate) unit: Unit,
    /// The attempt.
    pub(crate) attempt: u32,
    /// How it ends.
    pub(crate) result: ScriptedResult,
    /// How long it runs; `None`: the default of its kind.
    pub(crate) duration: Option<Duration>,
    /// Outputs when it succeeds.
    pub(crate) outputs: Outputs,
    /// What a Terraform plan shows; `None`: no changes.
    pub(crate) plan: Option<TerraformPlan>,
}

#[derive(Debug, Default)]
struct ScriptState {
    /// In the order written: the last matching one wins.
    scripts: Vec<Script>,
    /// Commits of the revisions seen so far, read from the log.
    commits: BTreeMap<u64, String>,
    /// By pipeline: the sequence number of the last record read for `commits`.
    read_to: BTreeMap<String, u64>,
}

/// Each pipeline's log folded as far as it was last read, with the sequence number of the
/// last record read: finding the stage-deployment running in a stage costs the records
/// appended since, not a replay of the whole log.
#[derive(Clone, Debug, Default)]
struct Folds(Arc<Mutex<BTreeMap<String, (PipelineState, u64)>>>);

impl Folds {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (PipelineState, u64)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The scripted outcomes of a simulation, shared by its runners.
#[derive(Clone, Debug)]
pub(crate) struct Scripts {
    state: Arc<Mutex<ScriptState>>,
    log: LogReader,
}

impl Scripts {
    fn lock(&self) -> MutexGuard<'_, ScriptState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a script (for work that starts afterwards).
    pub(crate) fn add(&self, script: Script) {
        self.lock().scripts.push(script);
    }

    /// The commit of `key`'s revision, read from the pipeline's log (records are appended
    /// before the work they start, L20).
    async fn commit_of(&self, key: &ExecutionKey) -> Option<String> {
        if let Some(commit) = self.lock().commits.get(&key.revision) {
            return Some(commit.clone());
        }
        // Only the records after those read before: a lookup costs what is new in the log.
        let after = self.lock().read_to.get(&key.pipeline).copied().unwrap_or(0);
        let records = self.log.records(&key.pipeline, after, None).ok()?;
        let mut state = self.lock();
        if !records.is_empty() {
            let read = u64::try_from(records.len()).unwrap_or(u64::MAX);
            state
                .read_to
                .insert(key.pipeline.clone(), after.saturating_add(read));
        }
        for record in records {
            if let Event::DeploymentAccepted {
                revision, commit, ..
            } = record.event
            {
                state.commits.insert(revision, commit);
            }
        }
        state.commits.get(&key.revision).cloned()
    }

    /// The script of the execution `key` of `commit`: the last written that matches.
    fn lookup(&self, commit: &str, key: &ExecutionKey) -> Option<Script> {
        self.lock()
            .scripts
            .iter()
            .rev()
            .find(|s| {
                s.commit == commit
                    && s.unit == key.unit
                    && s.attempt == key.attempt
                    && s.stage.as_ref().is_none_or(|stage| *stage == key.stage)
            })
            .cloned()
    }

    /// The script of `key`, whose commit is `commit` when known.
    async fn for_key(&self, key: &ExecutionKey, commit: Option<&str>) -> Option<Script> {
        let commit = match commit {
            Some(commit) => commit.to_owned(),
            None => self.commit_of(key).await?,
        };
        self.lookup(&commit, key)
    }
}

/// A behaviour of the scripted runners (for `ask_approval`: its `prepare`, which asks at once).
fn behavior(script: &Script, default: Duration) -> Behavior {
    let duration = script.duration.unwrap_or(default);
    match script.result {
        ScriptedResult::Succeed => Behavior::succeed_with(script.outputs.clone(), duration),
        ScriptedResult::Fail => Behavior::fail("scripted failure", duration),
        ScriptedResult::Hang => Behavior::hang(),
        ScriptedResult::AskApproval => Behavior::approval_required(None, Duration::ZERO),
    }
}

/// A request that may say a person approved it (steps whose `prepare` asked).
pub(crate) trait Approvable {
    /// Whether a person approved the step.
    fn approved(&self) -> bool;
}

impl Approvable for BuildRequest {
    fn approved(&self) -> bool {
        false
    }
}

impl Approvable for StepRequest {
    fn approved(&self) -> bool {
        self.approved
    }
}

/// A scripted runner whose per-execution behaviour comes from the scenario's `outcome`
/// events, looked up by the execution's commit when it starts. An approved `ask_approval`
/// step goes on in `approved` (the part after the approval: success after its duration); the
/// execution is the same, so that is no new start.
struct SimRunner<R> {
    inner: ScriptedRunner<R>,
    approved: ScriptedRunner<R>,
    scripts: Scripts,
    executions: Executions,
    default: Duration,
}

impl<R> std::fmt::Debug for SimRunner<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRunner")
            .field("inner", &self.inner)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl<R: ScriptedRequest> SimRunner<R> {
    fn new(
        name: &str,
        clock: &DynClock,
        scripts: &Scripts,
        executions: &Executions,
        default: Duration,
    ) -> Self {
        let inner = ScriptedRunner::<R>::new(name, clock.clone());
        inner.set_default(Behavior::succeed(default));
        let approved = ScriptedRunner::<R>::new(format!("{name} (approved)"), clock.clone());
        approved.set_default(Behavior::succeed(default));
        SimRunner {
            inner,
            approved,
            scripts: scripts.clone(),
            executions: executions.clone(),
            default,
        }
    }

    /// The runner that holds `key` now.
    fn holder(&self, key: &ExecutionKey) -> &ScriptedRunner<R> {
        if self.approved.request(key).is_some() {
            &self.approved
        } else {
            &self.inner
        }
    }
}

#[async_trait]
impl<R: ScriptedRequest + Approvable> Runner<R> for SimRunner<R> {
    async fn start(&self, request: R) -> Result<()> {
        let key = request.key().clone();
        if request.approved() && self.inner.request(&key).is_some() {
            if self.approved.request(&key).is_none()
                && let Some(script) = self.scripts.for_key(&key, None).await
            {
                let duration = script.duration.unwrap_or(self.default);
                self.approved.script(
                    Match::key(&key),
                    Behavior::succeed_with(script.outputs.clone(), duration),
                );
            }
            return self.approved.start(request).await;
        }
        if self.executions.begin(&key)
            && let Some(script) = self.scripts.for_key(&key, None).await
        {
            self.inner
                .script(Match::key(&key), behavior(&script, self.default));
        }
        self.inner.start(request).await
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        let outcome = self.holder(key).wait(key).await?;
        self.executions.outcome(key, &outcome);
        Ok(outcome)
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        self.holder(key).cancel(key).await
    }
}

/// The execution key of the stage-deployment running in `target`'s stage, for the work
/// that carries no key of its own (validation and mirroring), read from the log.
async fn running_key(
    log: &LogReader,
    folds: &Folds,
    target: &StageTarget,
    unit: Unit,
) -> Option<ExecutionKey> {
    let pipeline = &target.pipeline;
    // The fold as far as it was read before (taken out while the store is read; a lookup in
    // the meantime starts from the beginning), brought up to the log.
    let taken = folds.lock().remove(pipeline);
    let (mut state, after) = taken.unwrap_or_else(|| (PipelineState::new(pipeline), 0));
    let records = log.records(pipeline, after, None).ok()?;
    let read_to = after.saturating_add(u64::try_from(records.len()).unwrap_or(u64::MAX));
    for record in &records {
        state.apply(record);
    }
    let revision = state.stages.get(&target.stage).and_then(|s| s.running);
    let attempt = revision.and_then(|r| Some(state.run(r, &target.stage)?.attempt));
    folds.lock().insert(pipeline.clone(), (state, read_to));
    let (revision, attempt) = (revision?, attempt?);
    Some(ExecutionKey::new(
        target.pipeline.clone(),
        revision,
        target.stage.clone(),
        attempt,
        unit,
    ))
}

/// Resource validation that takes the scenario's `mirror_duration` (validation and
/// mirroring together: validation runs exactly once per stage attempt, mirroring once per
/// artifact, so the time is spent here and mirroring itself is instant).
#[derive(Clone, Debug)]
struct SimResources {
    inner: InMemoryResources,
    log: LogReader,
    folds: Folds,
    executions: Executions,
    clock: ManualClock,
    duration: Duration,
}

#[async_trait]
impl ResourceValidator for SimResources {
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
        let key = running_key(&self.log, &self.folds, &request.target, Unit::Validate).await;
        let now = self.clock.now();
        let until = match &key {
            Some(key) => self.executions.timed(key, now, self.duration),
            None => add(now, self.duration),
        };
        self.clock.sleep(until).await;
        let missing = self.inner.validate(request).await?;
        if let Some(key) = &key {
            let result = if missing.is_empty() {
                "SUCCEEDED"
            } else {
                "FAILED"
            };
            self.executions.end(key, result);
        }
        Ok(missing)
    }
}

/// Mirroring (instant: its time is spent in validation), seen as one execution per stage
/// attempt.
#[derive(Clone, Debug)]
struct SimMirror {
    inner: InMemoryMirror,
    log: LogReader,
    folds: Folds,
    executions: Executions,
}

#[async_trait]
impl ArtifactMirror for SimMirror {
    async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
        let key = running_key(&self.log, &self.folds, &request.target, Unit::Mirror).await;
        if let Some(key) = &key {
            self.executions.begin(key);
        }
        let result = self.inner.mirror(request).await;
        if let Some(key) = &key {
            self.executions.end(
                key,
                if result.is_ok() {
                    "SUCCEEDED"
                } else {
                    "FAILED"
                },
            );
        }
        result
    }
}

/// Terraform steps: plans show the scripted counts (default: no changes, so no approval),
/// which the step's approval policy judges; applying takes the step's duration (from the
/// first apply: applying again re-attaches) and ends as scripted (`succeed` with the scripted
/// outputs, `fail`, or `hang`).
#[derive(Clone, Debug)]
struct SimInfra {
    inner: ScriptedInfra,
    scripts: Scripts,
    executions: Executions,
    clock: ManualClock,
    default: Duration,
}

#[async_trait]
impl InfrastructureSynthesizer for SimInfra {
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
        if self.executions.begin(&request.key) {
            let script = self
                .scripts
                .for_key(&request.key, Some(&request.commit))
                .await;
            if let Some(plan) = script.and_then(|s| s.plan) {
                self.inner.script_plan(
                    Match::key(&request.key),
                    plan.create,
                    plan.update,
                    plan.delete,
                );
            }
            self.executions.end(&request.key, "PLANNED");
        }
        self.inner.plan(request).await
    }

    async fn apply(&self, request: &InfraRequest, plan: &InfraPlan) -> Result<Outputs> {
        let script = self
            .scripts
            .for_key(&request.key, Some(&request.commit))
            .await;
        let duration = script
            .as_ref()
            .and_then(|s| s.duration)
            .unwrap_or(self.default);
        let until = self
            .executions
            .timed(&request.key, self.clock.now(), duration);
        self.executions.end(&request.key, "RUNNING");
        match script.as_ref().map(|s| s.result) {
            Some(ScriptedResult::Hang) => {
                // Runs until the step's timeout: the engine then stops waiting for it.
                futures::future::pending::<()>().await;
            }
            Some(ScriptedResult::Fail) => {
                self.clock.sleep(until).await;
                self.executions.end(&request.key, "FAILED");
                return Err(devramps_core::Error::backend(
                    "simulated Terraform",
                    format!("apply `{}`", request.key),
                    "scripted failure",
                ));
            }
            _ => self.clock.sleep(until).await,
        }
        let outputs = self.inner.apply(request, plan).await?;
        self.executions.end(&request.key, "SUCCEEDED");
        Ok(match script {
            Some(s) if !s.outputs.is_empty() => s.outputs,
            _ => outputs,
        })
    }
}

/// Secrets that always exist: a simulation runs no real step, so `secret("N")` resolves to
/// the placeholder `sim-secret:N`.
#[derive(Clone, Copy, Debug)]
struct SimSecrets;

#[async_trait]
impl SecretSource for SimSecrets {
    async fn secret(&self, _scope: &SecretScope, name: &str) -> Result<Option<SecretString>> {
        Ok(Some(SecretString::new(format!("sim-secret:{name}"))))
    }
}

/// The pieces of a simulation's backends the simulator drives directly.
#[derive(Clone, Debug)]
pub(crate) struct SimHandles {
    /// Time.
    pub(crate) clock: ManualClock,
    /// The repository: the simulator writes a commit per push.
    pub(crate) source: InMemorySource,
    /// The scripted outcomes.
    pub(crate) scripts: Scripts,
    /// The stages' alarms (L15).
    pub(crate) alarms: InMemoryAlarms,
    /// The store as the engine sees it: `store_fault` events fail its next calls.
    pub(crate) store: FaultyStore<InlineStore>,
    /// The logs as the simulator reads them, behind the faults.
    pub(crate) log: LogReader,
    /// The leases.
    pub(crate) lock: Inline<DynDeploymentLock>,
    /// What the runners saw.
    pub(crate) executions: Executions,
}

/// The backends of a simulation starting at `start`, with the scenario's default durations,
/// on `store` and `lock` (each call waited for on the simulator's thread).
pub(crate) fn sim_backends(
    start: jiff::Timestamp,
    defaults: &Defaults,
    store: InlineStore,
    lock: DynDeploymentLock,
) -> (Backends, SimHandles) {
    let log = LogReader::new(store.clone());
    let store = FaultyStore::new(store, FaultOptions::default());
    let handles = SimHandles {
        clock: ManualClock::new(start),
        source: InMemorySource::new(),
        // Scripts read the log behind the faults: they are the simulator's, not the engine's.
        scripts: Scripts {
            state: Arc::default(),
            log: log.clone(),
        },
        log,
        alarms: InMemoryAlarms::new(),
        store,
        lock: Inline(lock),
        executions: Executions::default(),
    };
    let backends = engine_backends(&handles, defaults);
    (backends, handles)
}

/// The backends of the engine: the pieces of `handles` and runners on the same executions.
/// Every engine instance of a simulation (after a restart) gets these same backends.
fn engine_backends(handles: &SimHandles, defaults: &Defaults) -> Backends {
    let dyn_clock: DynClock = Arc::new(handles.clock.clone());
    let log = handles.log.clone();
    let folds = Folds::default();
    Backends {
        store: Arc::new(handles.store.clone()),
        lock: Arc::new(handles.lock.clone()),
        source: Arc::new(handles.source.clone()),
        builds: Arc::new(SimRunner::<BuildRequest>::new(
            "simulated builds",
            &dyn_clock,
            &handles.scripts,
            &handles.executions,
            defaults.build_duration,
        )),
        resources: Arc::new(SimResources {
            inner: InMemoryResources::new(),
            log: log.clone(),
            folds: folds.clone(),
            executions: handles.executions.clone(),
            clock: handles.clock.clone(),
            duration: defaults.mirror_duration,
        }),
        mirror: Arc::new(SimMirror {
            inner: InMemoryMirror::new(),
            log,
            folds,
            executions: handles.executions.clone(),
        }),
        infra: Arc::new(SimInfra {
            inner: ScriptedInfra::new(),
            scripts: handles.scripts.clone(),
            executions: handles.executions.clone(),
            clock: handles.clock.clone(),
            default: defaults.step_duration,
        }),
        steps: StepRunners::new().with_fallback(Arc::new(SimRunner::<StepRequest>::new(
            "simulated steps",
            &dyn_clock,
            &handles.scripts,
            &handles.executions,
            defaults.step_duration,
        ))),
        secrets: Arc::new(SimSecrets),
        clock: dyn_clock,
        alarms: Arc::new(handles.alarms.clone()),
    }
}

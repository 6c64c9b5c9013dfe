//! The backends of a simulation: the in-memory ones, wrapped so that scripted outcomes are
//! looked up by commit when work starts, and so that validation and mirroring take time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{
    Backends, BuildRequest, Clock, DynClock, EventStoreExt, ExecutionKey, InfraPlan, InfraRequest,
    InfrastructureSynthesizer, Outcome, Outputs, ResourceValidator, Runner, SecretScope,
    SecretSource, StageTarget, StepRequest, StepRunners,
};
use devramps_core::expr::SecretString;
use devramps_core::lifecycle::{Event, Record};
use devramps_core::pipeline::ArtifactType;

use crate::action::ScriptedResult;
use crate::scenario::Defaults;
use crate::time::add;
use devramps_memory::{
    Behavior, InMemoryAlarms, InMemoryEventStore, InMemoryLock, InMemoryMirror, InMemoryResources,
    InMemorySource, ManualClock, Match, RecordingNotifier, ScriptedInfra, ScriptedRequest,
    ScriptedRunner,
};

/// One scripted outcome, keyed by commit (the revision is not known when it is written).
#[derive(Clone, Debug)]
pub(crate) struct Script {
    /// The deployment's commit.
    pub(crate) commit: String,
    /// The stage; `None` matches every stage (builds of shared artifacts).
    pub(crate) stage: Option<String>,
    /// The execution key's step: a step key, or `build:<artifact id>`.
    pub(crate) step: String,
    /// The attempt.
    pub(crate) attempt: u32,
    /// How it ends.
    pub(crate) result: ScriptedResult,
    /// How long it runs; `None`: the default of its kind.
    pub(crate) duration: Option<Duration>,
    /// Outputs when it succeeds.
    pub(crate) outputs: Outputs,
}

#[derive(Debug, Default)]
struct ScriptState {
    /// In the order written: the last matching one wins.
    scripts: Vec<Script>,
    /// Commits of the revisions seen so far, read from the log.
    commits: BTreeMap<u64, String>,
}

/// The scripted outcomes of a simulation, shared by its runners.
#[derive(Clone, Debug)]
pub(crate) struct Scripts {
    state: Arc<Mutex<ScriptState>>,
    store: InMemoryEventStore,
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
        let events = self.store.read_all(&key.pipeline).await.ok()?;
        let mut state = self.lock();
        for event in events {
            if let Ok(Record {
                event:
                    Event::DeploymentAccepted {
                        revision, commit, ..
                    },
                ..
            }) = serde_json::from_value::<Record>(event.payload)
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
                    && s.step == key.step
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

/// A behaviour of the scripted runners.
fn behavior(script: &Script, default: Duration) -> Behavior {
    let duration = script.duration.unwrap_or(default);
    match script.result {
        ScriptedResult::Succeed => Behavior::succeed_with(script.outputs.clone(), duration),
        ScriptedResult::Fail => Behavior::fail("scripted failure", duration),
        ScriptedResult::Hang => Behavior::hang(),
    }
}

/// A scripted runner whose per-execution behaviour comes from the scenario's `outcome`
/// events, looked up by the execution's commit when it starts.
struct SimRunner<R> {
    inner: ScriptedRunner<R>,
    scripts: Scripts,
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

#[async_trait]
impl<R: ScriptedRequest> Runner<R> for SimRunner<R> {
    async fn start(&self, request: R) -> Result<()> {
        let key = request.key().clone();
        if let Some(script) = self.scripts.for_key(&key, None).await {
            self.inner
                .script(Match::key(&key), behavior(&script, self.default));
        }
        self.inner.start(request).await
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        self.inner.wait(key).await
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        self.inner.cancel(key).await
    }
}

/// Resource validation that takes the scenario's `mirror_duration` (validation and
/// mirroring together: validation runs exactly once per stage attempt, mirroring once per
/// artifact, so the time is spent here and mirroring itself is instant).
#[derive(Clone, Debug)]
struct SimResources {
    inner: InMemoryResources,
    clock: ManualClock,
    duration: Duration,
}

#[async_trait]
impl ResourceValidator for SimResources {
    async fn validate(
        &self,
        target: &StageTarget,
        artifacts: &[(String, ArtifactType)],
    ) -> Result<Vec<String>> {
        let until = add(self.clock.now(), self.duration);
        self.clock.sleep(until).await;
        self.inner.validate(target, artifacts).await
    }
}

/// Terraform steps: plans have no changes (so no approval), applying takes the step's
/// duration and ends as scripted (`succeed` with the scripted outputs, `fail`, or `hang`).
#[derive(Clone, Debug)]
struct SimInfra {
    inner: ScriptedInfra,
    scripts: Scripts,
    clock: ManualClock,
    default: Duration,
}

#[async_trait]
impl InfrastructureSynthesizer for SimInfra {
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
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
        match script.as_ref().map(|s| s.result) {
            Some(ScriptedResult::Hang) => {
                // Runs until the step's timeout: the engine then stops waiting for it.
                futures::future::pending::<()>().await;
            }
            Some(ScriptedResult::Fail) => {
                self.clock.sleep(add(self.clock.now(), duration)).await;
                return Err(devramps_core::Error::backend(
                    "simulated Terraform",
                    format!("apply `{}`", request.key),
                    "scripted failure",
                ));
            }
            _ => self.clock.sleep(add(self.clock.now(), duration)).await,
        }
        let outputs = self.inner.apply(request, plan).await?;
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
}

/// The backends of a simulation starting at `start`, with the scenario's default durations.
pub(crate) fn sim_backends(start: jiff::Timestamp, defaults: &Defaults) -> (Backends, SimHandles) {
    let clock = ManualClock::new(start);
    let dyn_clock: DynClock = Arc::new(clock.clone());
    let store = InMemoryEventStore::new();
    let source = InMemorySource::new();
    let alarms = InMemoryAlarms::new();
    let scripts = Scripts {
        state: Arc::default(),
        store: store.clone(),
    };
    let builds = ScriptedRunner::<BuildRequest>::new("simulated builds", dyn_clock.clone());
    builds.set_default(Behavior::succeed(defaults.build_duration));
    let steps = ScriptedRunner::<StepRequest>::new("simulated steps", dyn_clock.clone());
    steps.set_default(Behavior::succeed(defaults.step_duration));
    let backends = Backends {
        store: Arc::new(store),
        lock: Arc::new(InMemoryLock::new()),
        source: Arc::new(source.clone()),
        builds: Arc::new(SimRunner {
            inner: builds,
            scripts: scripts.clone(),
            default: defaults.build_duration,
        }),
        resources: Arc::new(SimResources {
            inner: InMemoryResources::new(),
            clock: clock.clone(),
            duration: defaults.mirror_duration,
        }),
        mirror: Arc::new(InMemoryMirror::new()),
        infra: Arc::new(SimInfra {
            inner: ScriptedInfra::new(),
            scripts: scripts.clone(),
            clock: clock.clone(),
            default: defaults.step_duration,
        }),
        steps: StepRunners::new().with_fallback(Arc::new(SimRunner {
            inner: steps,
            scripts: scripts.clone(),
            default: defaults.step_duration,
        })),
        secrets: Arc::new(SimSecrets),
        clock: dyn_clock,
        notifier: Arc::new(RecordingNotifier::new()),
        alarms: Arc::new(alarms.clone()),
    };
    let handles = SimHandles {
        clock,
        source,
        scripts,
        alarms,
    };
    (backends, handles)
}

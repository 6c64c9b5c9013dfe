//! Many engines on one store (L21), as a harness any store and lease service can be run
//! under (feature `testkit`).
//!
//! [`run_history`] starts three engine instances that share the store and lease service under
//! test, one scripted repository, the scripted runners and a manual clock, all on one
//! single-threaded executor. A seeded random history of pushes, repeated deliveries, people's
//! actions, clock jumps past the lease's TTL, crashes and clean restarts goes to random
//! instances. Afterwards the merged log must keep the invariants of `lifecycle.md` at every
//! prefix ([`check_log`]), fold to what every instance reports, and be reproduced record for
//! record by replaying the inputs the instances observed through one sans-IO machine
//! ([`check_journal`]); no instance may start work while another holds the pipeline's lease.
//!
//! `devramps-memory`'s own test runs it on the in-memory store with injected conflicts;
//! `devramps-aws` runs it on S3 (moto) behind a fault-injecting proxy.
//!
//! ```no_run
//! use std::sync::Arc;
//! use devramps_memory::many_engines::{Shared, run_history};
//! use devramps_memory::{InMemoryEventStore, InMemoryLock};
//!
//! let (store, lock) = (InMemoryEventStore::new(), InMemoryLock::new());
//! let history = run_history(7, |_handles| Shared {
//!     connect: Box::new(move |_instance| (Arc::new(store.clone()), Arc::new(lock.clone()))),
//!     in_flight: None,
//! });
//! assert!(history.errors.is_empty(), "{:?}", history.errors);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devramps_core::backend::{
    Backends, DynDeploymentLock, DynEventStore, EventStoreExt, ExecutionKey, Outcome, StepRunners,
    Unit,
};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{
    Actor, Control, ControlAction, Decide, Event, Operate, PipelineState, Record, StageState,
};
use futures::executor::LocalPool;
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;

use crate::{Behavior, Match, MemoryHandles, ObservedAppend, RecordingObserver, scripted_backends};

mod checks;
mod holder;
mod random;

pub use checks::{check_journal, check_log};
use holder::HolderOnly;
use random::{Rng, answerable, target};

/// The pipeline's slug.
pub const SLUG: &str = "app";
/// Its stages, in order.
pub const STAGES: [&str; 2] = ["staging", "prod"];
/// The lease TTL of every instance.
pub const TTL: Duration = Duration::from_secs(30);
/// How often an instance that does not hold the lease polls the log.
pub const POLL: Duration = Duration::from_secs(5);
/// Engine instances running at once.
pub const INSTANCES: usize = 3;
/// Random actions in one history.
pub const ACTIONS: usize = 200;

/// The pipeline every history deploys: a deploy step in both stages, a bake in prod, a
/// docker build rebuilt when `/src` changes.
pub const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1, skip: [bake] }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:SCRIPT:DEPLOY", params: { timeout: 30 } }
    - { name: Bake, id: bake, type: "DEVRAMPS:APPROVAL:BAKE", params: { duration_minutes: 2 } }
  artifacts:
    Image:
      id: image
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/src]
      params: { dockerfile: /Dockerfile }
"#;

// ----- what the store under test gives -----

/// The store and lease service under test, shared by every instance.
pub struct Shared {
    /// Connects an instance (by name) to the store and the lease service. Give each its own
    /// connection (client, caches) where the backend has one, as separate processes would
    /// have; in-memory backends give clones of one value. The harness reads the merged log at
    /// the end through a connection of its own, named `reader`.
    #[allow(clippy::type_complexity)]
    pub connect: Box<dyn FnMut(&str) -> (DynEventStore, DynDeploymentLock)>,
    /// Calls to them in flight outside the executor (see
    /// `devramps_aws::runtime::OnRuntime::in_flight`), or `None` when every call runs on the
    /// executor. The harness waits for 0 before it takes the instances to be quiet.
    pub in_flight: Option<Box<dyn Fn() -> usize>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("in_flight", &self.in_flight.as_ref().map(|n| n()))
            .finish_non_exhaustive()
    }
}

/// The configuration of instance `name`: [`TTL`], [`POLL`], observed by `journal`.
pub fn config(name: &str, journal: &RecordingObserver) -> EngineConfig {
    EngineConfig::new(name.to_owned())
        .with_lease_ttl(TTL)
        .with_poll_interval(Some(POLL))
        .with_observer(Arc::new(journal.clone()))
}

// ----- the cluster -----

/// One engine instance: its handle and its running driver (dropping the handle of the driver
/// kills it without a goodbye: a crash).
struct Slot {
    engine: Engine,
    driver: Option<RemoteHandle<devramps_core::Result<()>>>,
}

struct Cluster {
    pool: LocalPool,
    backends: Backends,
    handles: MemoryHandles,
    #[allow(clippy::type_complexity)]
    connect: Box<dyn FnMut(&str) -> (DynEventStore, DynDeploymentLock)>,
    in_flight: Option<Box<dyn Fn() -> usize>>,
    journal: RecordingObserver,
    slots: Vec<Slot>,
    started: usize,
    /// The newest commit written (`c{head}`).
    head: usize,
    /// Deliveries sent, with their commit.
    deliveries: Vec<(String, String)>,
    /// Calls answered with an error, by message.
    errors: Vec<String>,
    /// Work started by an instance that did not hold the lease.
    breaches: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    fn new(rng: &mut Rng, shared: impl FnOnce(&MemoryHandles) -> Shared) -> Cluster {
        let (backends, handles) = scripted_backends();
        let shared = shared(&handles);
        handles.source.commit(
            "c0",
            None,
            [
                ("/.devramps/app/pipeline.yaml", PIPELINE),
                ("/Dockerfile", "FROM scratch"),
                ("/src/main.rs", "0"),
            ],
        );
        handles
            .steps
            .set_default(Behavior::succeed(Duration::from_secs(20)));
        handles
            .builds
            .set_default(Behavior::succeed(Duration::from_secs(30)));
        // Per revision: some deploys fail, hang (until finished by hand, cancelled or timed
        // out) or ask for approval.
        for revision in 1..=150 {
            let deploy = Match::step("deploy").revision(revision);
            let behavior = match rng.below(10) {
                0 => Some((
                    "staging",
                    Behavior::fail("scripted", Duration::from_secs(15)),
                )),
                1 => Some(("prod", Behavior::hang())),
                2 => Some((
                    "staging",
                    Behavior::approval_required(None, Duration::from_secs(10)),
                )),
                3 => Some(("prod", Behavior::fail("scripted", Duration::from_secs(25)))),
                _ => None,
            };
            if let Some((stage, behavior)) = behavior {
                handles.steps.script(deploy.in_stage(stage), behavior);
            }
            if rng.chance(5) {
                let build = Match::unit(Unit::build("image")).revision(revision);
                let failing = Behavior::fail("scripted build failure", Duration::from_secs(20));
                handles.builds.script(build, failing);
            }
        }
        let mut cluster = Cluster {
            pool: LocalPool::new(),
            backends,
            handles,
            connect: shared.connect,
            in_flight: shared.in_flight,
            journal: RecordingObserver::new(),
            slots: Vec::new(),
            started: 0,
            head: 0,
            deliveries: Vec::new(),
            errors: Vec::new(),
            breaches: Arc::default(),
        };
        for _ in 0..INSTANCES {
            let slot = cluster.start();
            cluster.slots.push(slot);
        }
        cluster.settle();
        cluster
    }

    /// Starts a new instance (a new name each time).
    fn start(&mut self) -> Slot {
        self.started += 1;
        let name = format!("engine-{}", self.started);
        let (store, lock) = (self.connect)(&name);
        let builds = HolderOnly {
            inner: Arc::new(self.handles.builds.clone()),
            instance: name.clone(),
            lock: lock.clone(),
            breaches: self.breaches.clone(),
        };
        let steps = HolderOnly {
            inner: Arc::new(self.handles.steps.clone()),
            instance: name.clone(),
            lock: lock.clone(),
            breaches: self.breaches.clone(),
        };
        let backends = Backends {
            store,
            lock,
            builds: Arc::new(builds),
            steps: StepRunners::new().with_fallback(Arc::new(steps)),
            ..self.backends.clone()
        };
        let (engine, driver) = Engine::new(backends, config(&name, &self.journal));
        let driver = self
            .pool
            .spawner()
            .spawn_local_with_handle(driver.run())
            .expect("the driver starts");
        Slot {
            engine,
            driver: Some(driver),
        }
    }

    /// Runs the instances until none can go on, with no store or lease call in flight.
    fn settle(&mut self) {
        loop {
            self.pool.run_until_stalled();
            match &self.in_flight {
                Some(count) if count() > 0 => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                _ => return,
            }
        }
    }

    /// Runs a call on the pool; an error is kept (lost races after retries are allowed). A
    /// refusal is an answer, not an error: its `refused` record is in the log.
    fn call<T>(
        &mut self,
        future: impl std::future::Future<Output = devramps_core::Result<T>>,
    ) -> Option<T> {
        match self.pool.run_until(future) {
            Ok(value) => Some(value),
            Err(devramps_core::Error::Refused { .. }) => None,
            Err(e) => {
                self.errors.push(e.to_string());
                None
            }
        }
    }

    /// What `instance` reports (asked again when a store that injects faults failed it).
    fn state(&mut self, instance: usize) -> PipelineState {
        let mut failures = Vec::new();
        while failures.len() < 10 {
            let engine = self.slots[instance].engine.clone();
            match self.pool.run_until(async move { engine.state(SLUG).await }) {
                Ok(state) => return state,
                Err(e) => failures.push(e.to_string()),
            }
        }
        panic!("instance {instance} never reported its state: {failures:?}");
    }

    /// The merged log, read back from the store under test.
    fn log(&mut self) -> Vec<Record> {
        let (store, _) = (self.connect)("reader");
        let events = self
            .pool
            .run_until(async move { store.read_all(SLUG).await })
            .expect("the log reads");
        events
            .into_iter()
            .map(|e| serde_json::from_value(e.payload).expect("records parse"))
            .collect()
    }

    fn push(&mut self, instance: usize, delivery: String, commit: String, branch: &str) {
        let push = PushRequest::new(branch.to_owned(), commit).with_delivery(delivery);
        let engine = self.slots[instance].engine.clone();
        self.call(async move { engine.push(SLUG, push).await });
    }

    /// One random action, sent to a random instance.
    fn act(&mut self, rng: &mut Rng) {
        let i = rng.below(INSTANCES);
        let engine = self.slots[i].engine.clone();
        let person = Actor::User("ana".to_owned());
        match rng.below(100) {
            // A push of a new commit (sometimes to another branch).
            0..12 => {
                self.head += 1;
                let commit = format!("c{}", self.head);
                let parent = format!("c{}", self.head - 1);
                let content = Some(commit.clone());
                let changes = [("/src/main.rs", content)];
                self.handles
                    .source
                    .commit_changes(&commit, &parent, changes);
                let delivery = format!("d{}", self.deliveries.len());
                self.deliveries.push((delivery.clone(), commit.clone()));
                let branch = if rng.chance(10) { "feature" } else { "main" };
                self.push(i, delivery, commit, branch);
            }
            // A delivery seen before, delivered again (to any instance).
            12..16 => {
                if let Some((delivery, commit)) = rng.pick(&self.deliveries).cloned() {
                    self.push(i, delivery, commit, "main");
                }
            }
            // The newest commit again, in a new delivery.
            16..18 => {
                let delivery = format!("d{}", self.deliveries.len());
                let commit = format!("c{}", self.head);
                self.deliveries.push((delivery.clone(), commit.clone()));
                self.push(i, delivery, commit, "main");
            }
            // A person answers a waiting step or ends a bake.
            18..27 => {
                let answerable = answerable(&self.state(i));
                if let Some((revision, stage, step)) = rng.pick(&answerable).cloned() {
                    let decide = Decide::new(revision, stage, step, person);
                    let approve = rng.chance(80);
                    self.call(async move {
                        if approve {
                            engine.approve(SLUG, decide).await
                        } else {
                            engine.reject(SLUG, decide).await
                        }
                    });
                }
            }
            // A hanging step ends.
            27..35 => {
                let running = self.handles.steps.running();
                if let Some(key) = rng.pick(&running) {
                    let outcome = if rng.chance(75) {
                        Outcome::Succeeded {
                            outputs: BTreeMap::new(),
                        }
                    } else {
                        Outcome::Failed {
                            reason: "finished by hand".to_owned(),
                        }
                    };
                    self.handles
                        .steps
                        .complete(key, outcome)
                        .expect("a running step completes");
                }
            }
            // Retry or cancel; now and then an emergency rollback or roll-forward.
            35..45 => {
                let state = self.state(i);
                let kind = if rng.chance(30) {
                    2 + rng.below(2)
                } else {
                    rng.below(2)
                };
                let (revision, stage) = target(&state, kind, rng);
                let op = Operate::new(revision, stage, person).with_reason("random".to_owned());
                self.call(async move {
                    match kind {
                        0 => engine.retry(SLUG, op).await,
                        1 => engine.cancel(SLUG, op).await,
                        2 => engine.rollback(SLUG, op).await,
                        _ => engine.roll_forward(SLUG, op).await,
                    }
                });
            }
            // Stop or resume promotions, unblock after rollback, bypass.
            45..52 => {
                let state = self.state(i);
                let stage = STAGES[rng.below(STAGES.len())];
                let action = match rng.below(6) {
                    0 => ControlAction::StopPromotions,
                    1 | 2 => ControlAction::ResumePromotions,
                    3 | 4 => ControlAction::Unblock,
                    _ => ControlAction::Bypass {
                        revision: state
                            .stage(stage)
                            .queued
                            .unwrap_or(state.last_revision.max(1)),
                    },
                };
                let control = Control::new(stage.to_owned(), action, person);
                self.call(async move { engine.control(SLUG, control).await });
            }
            // Time passes a little: polls, builds and steps end, bakes run.
            52..84 => {
                if rng.chance(30) {
                    self.handles.clock.advance_to_next_deadline();
                } else {
                    let secs = 1 + rng.below(60) as u64;
                    self.handles.clock.advance(Duration::from_secs(secs));
                }
            }
            // Time jumps past the lease's TTL: every lease has expired before anyone renews.
            84..91 => {
                let secs = TTL.as_secs() + 1 + rng.below(90) as u64;
                self.handles.clock.advance(Duration::from_secs(secs));
            }
            // An instance crashes (its lease lives on until it expires) and a new one starts.
            91..96 => {
                drop(self.slots[i].driver.take());
                self.settle();
                self.slots[i] = self.start();
            }
            // An instance stops cleanly (releasing its leases) and a new one starts.
            _ => {
                self.call(async move { engine.stop().await });
                self.slots[i] = self.start();
            }
        }
        self.settle();
    }

    /// Ends what still runs: finishes hanging steps, approves waiting ones, lets time pass.
    fn wind_down(&mut self) {
        for _ in 0..400 {
            self.settle();
            let state = self.state(0);
            let busy = state
                .stages
                .values()
                .any(|s| s.running.is_some() || s.emergency.is_some());
            if !busy {
                return;
            }
            // Executions of cancelling stage-deployments are left alone: the engine must
            // stop them (L12), whichever instance recorded the cancel.
            let cancelling = |key: &ExecutionKey| {
                state
                    .run(key.revision, &key.stage)
                    .is_some_and(|r| r.state == StageState::Cancelling)
            };
            for key in self.handles.steps.running() {
                if cancelling(&key) {
                    continue;
                }
                let outcome = Outcome::Succeeded {
                    outputs: BTreeMap::new(),
                };
                self.handles
                    .steps
                    .complete(&key, outcome)
                    .expect("completes");
            }
            for (revision, stage, step) in answerable(&state) {
                let engine = self.slots[0].engine.clone();
                let decide = Decide::new(revision, stage, step, Actor::User("closer".to_owned()));
                self.call(async move { engine.approve(SLUG, decide).await });
            }
            self.handles.clock.advance(Duration::from_secs(20));
        }
        panic!("the pipeline never settled");
    }
}

/// What one history did, after [`run_history`] checked it.
#[derive(Debug)]
#[non_exhaustive]
pub struct History {
    /// The merged log.
    pub log: Vec<Record>,
    /// Every append, as the instances observed them.
    pub appends: Vec<ObservedAppend>,
    /// Calls to the engines answered with an error other than a refusal, by message: lost
    /// races after every retry ("kept changing"), a store that stayed unavailable.
    pub errors: Vec<String>,
    /// Deployments (revisions) in the log.
    pub deployments: usize,
    /// Distinct fencing tokens the appends were made under.
    pub tokens: usize,
}

/// Runs the history of `seed` with three instances on the store and lease service `shared`
/// builds (from the scripted handles, which a store that decorates the in-memory one can
/// use), winds it down until nothing runs, and checks it: [`check_log`], every instance
/// reports the fold of the merged log, [`check_journal`], no work started by an instance that
/// did not hold the lease, and the history was a real one (the lease moved, three writers,
/// inputs recorded by non-holders, at least five deployments). The caller checks
/// [`History::errors`] against what its store may answer.
///
/// # Panics
///
/// When a check fails, or an instance never reports its state.
pub fn run_history(seed: u64, shared: impl FnOnce(&MemoryHandles) -> Shared) -> History {
    let mut rng = Rng::new(seed);
    let mut cluster = Cluster::new(&mut rng, shared);
    for _ in 0..ACTIONS {
        cluster.act(&mut rng);
    }
    cluster.wind_down();
    let log = cluster.log();
    check_log(&log);
    let folded = PipelineState::replay(SLUG, &log);
    for i in 0..INSTANCES {
        assert_eq!(
            cluster.state(i),
            folded,
            "seed {seed}: instance {i} reports the fold of the merged log"
        );
    }
    let appends = cluster.journal.appends();
    check_journal(&appends, &log);
    let breaches = cluster
        .breaches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        breaches.is_empty(),
        "seed {seed}: L21: work started without the lease: {breaches:?}"
    );
    // The history was a real one: records from every kind of writer, and leadership that
    // moved.
    let tokens: BTreeSet<u64> = appends.iter().filter_map(|e| e.fencing_token).collect();
    let writers: BTreeSet<&str> = appends.iter().map(|e| e.instance.as_str()).collect();
    assert!(
        tokens.len() >= 2,
        "seed {seed}: the lease moved ({tokens:?})"
    );
    assert!(
        writers.len() >= 3,
        "seed {seed}: several writers ({writers:?})"
    );
    assert!(
        appends.iter().any(|e| e.fencing_token.is_none()),
        "seed {seed}: non-holders recorded inputs"
    );
    let deployments = folded.deployments.len();
    assert!(deployments >= 5, "seed {seed}: {deployments} deployments");
    if std::env::var("MANY_ENGINES_STATS").is_ok() {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for r in &log {
            let k = match &r.event {
                Event::StageState { stage, state, .. } => format!("{stage}:{state:?}"),
                Event::Refused { .. } => format!("refused:{}", r.event.type_name()),
                e => e.type_name().to_owned(),
            };
            *kinds.entry(k).or_default() += 1;
        }
        eprintln!("{kinds:#?}");
    }
    History {
        log,
        appends,
        errors: cluster.errors,
        deployments,
        tokens: tokens.len(),
    }
}

//! Many engines on one store (L21). Three engine instances share a store that injects random
//! compare-and-swap conflicts and latency, one lease service, one repository, the scripted
//! runners and a manual clock. Seeded random histories of pushes, repeated deliveries,
//! people's actions, clock jumps, lease expiries, crashes and restarts go to random instances.
//! Afterwards the merged log must keep the invariants of `lifecycle.md` at every prefix, fold
//! to what every instance reports, and be reproduced record for record by replaying the
//! inputs the instances journaled through one sans-IO machine. A holder fenced out by a newer
//! lease cannot write.
//!
//! More seeds: `MANY_ENGINES_SEEDS=50 cargo test -p devramps-memory --test many_engines`
//! (about 1.5 s per seed in debug); `MANY_ENGINES_STATS=1` prints what each history did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{
    AppendOptions, Backends, EventStore, EventStoreExt, ExecutionKey, Outcome, Runner, StepRunners,
    StoredEvent, Unit,
};
use devramps_core::engine::{Appended, Engine, EngineConfig, Observer, PushRequest};
use devramps_core::lifecycle::{
    Actor, Control, ControlAction, Decide, Event, Input, Machine, Operate, PipelineState, Record,
    StageState, StepState, TRANSITIONS, WaitingFor,
};
use devramps_memory::{
    Behavior, Fault, FaultOptions, FaultSchedule, FaultyLock, FaultyStore, InMemoryEventStore,
    InMemoryLock, Match, MemoryHandles, RunAction, ScriptedRequest, ScriptedStepRunner,
    scripted_backends,
};
use futures::executor::LocalPool;
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;
use jiff::Timestamp;

const SLUG: &str = "app";
const STAGES: [&str; 2] = ["staging", "prod"];
const TTL: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(5);
const INSTANCES: usize = 3;
const ACTIONS: usize = 200;

const PIPELINE: &str = r#"
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

// ----- the journal -----

/// One journaled append, owned.
#[derive(Clone, Debug)]
struct Entry {
    instance: String,
    first_seq: u64,
    inputs: Vec<Input>,
    records: Vec<Record>,
    now: Timestamp,
    token: Option<u64>,
}

/// Every instance's appends, shared by the instances of a test.
#[derive(Debug, Default)]
struct Journal {
    entries: Mutex<Vec<Entry>>,
}

impl Journal {
    fn entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Observer for Journal {
    fn appended(&self, entry: &Appended<'_>) {
        self.entries().push(Entry {
            instance: entry.instance.to_owned(),
            first_seq: entry.first_seq,
            inputs: entry.inputs.to_vec(),
            records: entry.records.to_vec(),
            now: entry.now,
            token: entry.fencing_token,
        });
    }
}

fn config(name: &str, journal: &Arc<Journal>) -> EngineConfig {
    EngineConfig::new(name.to_owned())
        .with_lease_ttl(TTL)
        .with_poll_interval(Some(POLL))
        .with_observer(journal.clone())
}

// ----- only the holder starts work -----

/// A runner decorator of one instance: every start (or re-attach) checks that the instance
/// holds the pipeline's lease at that moment (L21), and remembers it when not.
#[derive(Debug)]
struct HolderOnly<R: Send + Sync + 'static> {
    inner: Arc<dyn Runner<R>>,
    instance: String,
    lock: InMemoryLock,
    breaches: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl<R: ScriptedRequest + std::fmt::Debug> Runner<R> for HolderOnly<R> {
    async fn start(&self, request: R) -> devramps_core::Result<()> {
        let holder = self.lock.leases().into_iter().find(|l| l.key == SLUG);
        if holder.as_ref().is_none_or(|l| l.holder != self.instance) {
            let breach = format!(
                "{} started {} while the lease was {holder:?}",
                self.instance,
                request.key()
            );
            self.breaches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(breach);
        }
        self.inner.start(request).await
    }

    async fn wait(&self, key: &ExecutionKey) -> devramps_core::Result<Outcome> {
        self.inner.wait(key).await
    }

    async fn cancel(&self, key: &ExecutionKey) -> devramps_core::Result<()> {
        self.inner.cancel(key).await
    }
}

// ----- a seeded generator -----

/// xorshift64*: deterministic per seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
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
    store: FaultyStore<InMemoryEventStore>,
    journal: Arc<Journal>,
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
    fn new(seed: u64, rng: &mut Rng) -> Cluster {
        let (mut backends, handles) = scripted_backends();
        let store = FaultyStore::new(
            handles.store.clone(),
            FaultOptions {
                schedule: FaultSchedule::RandomWrites {
                    seed,
                    one_in: 5,
                    faults: vec![Fault::Conflict],
                },
                latency_yields: 2,
            },
        );
        backends.store = Arc::new(store.clone());
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
            store,
            journal: Arc::new(Journal::default()),
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
        let builds = HolderOnly {
            inner: Arc::new(self.handles.builds.clone()),
            instance: name.clone(),
            lock: self.handles.lock.clone(),
            breaches: self.breaches.clone(),
        };
        let steps = HolderOnly {
            inner: Arc::new(self.handles.steps.clone()),
            instance: name.clone(),
            lock: self.handles.lock.clone(),
            breaches: self.breaches.clone(),
        };
        let backends = Backends {
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

    fn settle(&mut self) {
        self.pool.run_until_stalled();
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

    fn state(&mut self, instance: usize) -> PipelineState {
        let engine = self.slots[instance].engine.clone();
        self.pool
            .run_until(async move { engine.state(SLUG).await })
            .expect("the state reads")
    }

    /// The merged log, read back from the store under the fault injector.
    fn log(&self) -> Vec<Record> {
        let events =
            futures::executor::block_on(self.handles.store.read_all(SLUG)).expect("the log reads");
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

/// Steps waiting for a person or baking, as (revision, stage, step).
fn answerable(state: &PipelineState) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    for d in state.active_deployments() {
        let Some(plan) = d.plan() else { continue };
        for (stage, run) in plan.stages.iter().zip(&d.stages) {
            for (step, s) in stage.steps.iter().zip(&run.steps) {
                let baking =
                    s.state == StepState::Running && step.step_type == "DEVRAMPS:APPROVAL:BAKE";
                if s.state == StepState::WaitingApproval || baking {
                    out.push((d.revision, stage.name.clone(), step.key().to_owned()));
                }
            }
        }
    }
    out
}

/// A (revision, stage) worth operating on: `kind` 0 retry, 1 cancel, 2 rollback, 3
/// roll-forward; sometimes anything (to be refused).
fn target(state: &PipelineState, kind: usize, rng: &mut Rng) -> (u64, String) {
    let fits = |revision: u64, run: &devramps_core::lifecycle::StageRun| match kind {
        0 => matches!(
            run.state,
            StageState::Failed | StageState::TimedOut | StageState::Cancelled
        ),
        1 => run.state.holds_lock() || run.waiting_for.is_some_and(|w| w != WaitingFor::Never),
        2 => state.stage(&run.name).deployed.contains(&revision),
        _ => run.state != StageState::NotStarted || run.waiting_for != Some(WaitingFor::Never),
    };
    let candidates: Vec<(u64, String)> = state
        .deployments
        .values()
        .flat_map(|d| {
            d.stages
                .iter()
                .filter(|r| fits(d.revision, r))
                .map(|r| (d.revision, r.name.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    match rng.pick(&candidates) {
        Some(t) if rng.chance(85) => t.clone(),
        _ => (
            1 + rng.below(state.last_revision.max(1) as usize) as u64,
            STAGES[rng.below(STAGES.len())].to_owned(),
        ),
    }
}

// ----- the checks -----

/// L1, L5, L6 and the transition table, at every prefix of the log.
fn check_log(log: &[Record]) {
    let mut state = PipelineState::new(SLUG);
    let mut last: BTreeMap<(u64, String), StageState> = BTreeMap::new();
    let mut revisions = 0;
    for (i, record) in log.iter().enumerate() {
        let seq = i + 1;
        match &record.event {
            Event::DeploymentAccepted { revision, .. } => {
                revisions += 1;
                assert_eq!(*revision, revisions, "L1: revisions in order at seq {seq}");
            }
            Event::StageState {
                revision,
                stage,
                state: to,
                ..
            } => {
                let from = last
                    .insert((*revision, stage.clone()), *to)
                    .unwrap_or(StageState::NotStarted);
                let edge = (from == StageState::NotStarted && *to == StageState::NotStarted)
                    || TRANSITIONS.iter().any(|(f, _, t)| *f == from && t == to);
                assert!(
                    edge,
                    "seq {seq}: revision {revision} in {stage} went {from:?} -> {to:?}, not an \
                     edge of TRANSITIONS"
                );
            }
            _ => {}
        }
        state.apply(record);
        for stage in STAGES {
            let holders: Vec<u64> = state
                .deployments
                .values()
                .filter(|d| d.stage(stage).is_some_and(|s| s.state.holds_lock()))
                .map(|d| d.revision)
                .collect();
            assert!(
                holders.len() <= 1,
                "L5 at seq {seq}: {stage} is held by {holders:?}"
            );
            let queued: Vec<u64> = state
                .deployments
                .values()
                .filter(|d| {
                    d.stage(stage).is_some_and(|s| {
                        s.state == StageState::NotStarted
                            && matches!(
                                s.waiting_for,
                                Some(
                                    WaitingFor::Lock | WaitingFor::TimeWindow | WaitingFor::Blocker
                                )
                            )
                    })
                })
                .map(|d| d.revision)
                .collect();
            assert!(
                queued.len() <= 1,
                "L6 at seq {seq}: {stage} queues {queued:?}"
            );
        }
    }
    let numbers: Vec<u64> = state.deployments.keys().copied().collect();
    assert_eq!(numbers, (1..=revisions).collect::<Vec<_>>(), "L1: 1..n");
}

/// Replaying the journaled inputs in log order through one machine gives the log, record for
/// record, and its state; holder-only inputs were recorded under a lease, with fencing tokens
/// that never go back and each belong to one instance (L21).
fn check_journal(entries: &[Entry], log: &[Record]) {
    let mut entries = entries.to_vec();
    entries.sort_by_key(|e| e.first_seq);
    let mut machine = Machine::new(SLUG);
    let mut seq = 1;
    let mut highest = 0;
    let mut owners: BTreeMap<u64, &str> = BTreeMap::new();
    for e in &entries {
        assert_eq!(
            e.first_seq, seq as u64,
            "the journal covers the log without gaps"
        );
        let mut records = Vec::new();
        for input in &e.inputs {
            records.extend(machine.handle(input.clone(), e.now).records);
        }
        assert_eq!(
            records, e.records,
            "replaying the inputs {} fed at seq {seq} gives its records",
            e.instance
        );
        let end = seq + records.len();
        assert_eq!(
            &log[seq - 1..end - 1],
            &records[..],
            "the log at seq {seq} holds the records of {}",
            e.instance
        );
        let holder_only = e
            .inputs
            .iter()
            .any(|i| matches!(i, Input::Work { .. } | Input::Tick));
        assert!(
            !holder_only || e.token.is_some(),
            "L21: {} recorded work results or timers at seq {seq} without a lease",
            e.instance
        );
        if let Some(token) = e.token {
            assert!(token >= highest, "L21: token {token} after {highest}");
            highest = token;
            let owner = owners.entry(token).or_insert(&e.instance);
            assert_eq!(
                *owner, e.instance,
                "L21: token {token} used by two instances"
            );
        }
        seq = end;
    }
    assert_eq!(seq - 1, log.len(), "every record was journaled");
    assert_eq!(
        machine.state(),
        Machine::replay(SLUG, log).state(),
        "replaying the inputs gives the log's state"
    );
}

fn run(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut cluster = Cluster::new(seed, &mut rng);
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
    check_journal(&cluster.journal.entries(), &log);
    let breaches = cluster
        .breaches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        breaches.is_empty(),
        "seed {seed}: L21: work started without the lease: {breaches:?}"
    );
    // The history was a real one: records from every kind of writer, lost races, and
    // leadership that moved.
    let entries = cluster.journal.entries().clone();
    let tokens: BTreeSet<u64> = entries.iter().filter_map(|e| e.token).collect();
    let writers: BTreeSet<&str> = entries.iter().map(|e| e.instance.as_str()).collect();
    assert!(
        tokens.len() >= 2,
        "seed {seed}: the lease moved ({tokens:?})"
    );
    assert!(
        writers.len() >= 3,
        "seed {seed}: several writers ({writers:?})"
    );
    assert!(
        entries.iter().any(|e| e.token.is_none()),
        "seed {seed}: non-holders recorded inputs"
    );
    assert!(
        !cluster.store.injected().is_empty(),
        "seed {seed}: conflicts"
    );
    let deployments = folded.deployments.len();
    assert!(deployments >= 5, "seed {seed}: {deployments} deployments");
    let unexpected: Vec<&String> = cluster
        .errors
        .iter()
        .filter(|e| !e.contains("kept changing"))
        .collect();
    assert!(unexpected.is_empty(), "seed {seed}: errors {unexpected:?}");
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
    eprintln!(
        "seed {seed}: {} records, {deployments} deployments, {} appends, {} tokens, {} \
         writers, {} injected conflicts, {} calls lost every race",
        log.len(),
        entries.len(),
        tokens.len(),
        writers.len(),
        cluster.store.injected().len(),
        cluster.errors.len()
    );
}

#[test]
fn l21_three_engines_on_one_faulty_store_keep_every_invariant_and_replay_from_their_inputs() {
    let seeds: u64 = std::env::var("MANY_ENGINES_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 1..=seeds {
        run(seed);
    }
}

// ----- a holder fenced out -----

/// A store whose appends can be held at a gate (a writer paused mid-append, as by a long GC
/// pause or a slow network), remembering how every append ended.
#[derive(Clone, Debug)]
struct GatedStore {
    inner: InMemoryEventStore,
    gate: Arc<Mutex<Gate>>,
}

#[derive(Debug, Default)]
struct Gate {
    closed: bool,
    waiting: usize,
    wakers: Vec<Waker>,
    /// Per append: the token presented, and the outcome.
    appends: Vec<(Option<u64>, Result<u64, String>)>,
}

impl GatedStore {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_closed(&self, closed: bool) {
        let wakers = {
            let mut gate = self.gate();
            gate.closed = closed;
            std::mem::take(&mut gate.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

#[async_trait]
impl EventStore for GatedStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> devramps_core::Result<u64> {
        let mut counted = false;
        futures::future::poll_fn(|cx| {
            let mut gate = self.gate();
            if !gate.closed {
                if counted {
                    gate.waiting -= 1;
                }
                return Poll::Ready(());
            }
            if !counted {
                counted = true;
                gate.waiting += 1;
            }
            gate.wakers.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let token = options.fencing_token;
        let result = self
            .inner
            .append(stream, expected_last, events, options)
            .await;
        let outcome = result.as_ref().map(|s| *s).map_err(|e| e.to_string());
        self.gate().appends.push((token, outcome));
        result
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> devramps_core::Result<Vec<StoredEvent>> {
        self.inner.read(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &str) -> devramps_core::Result<u64> {
        self.inner.last_seq(stream).await
    }

    async fn streams(&self) -> devramps_core::Result<Vec<String>> {
        self.inner.streams().await
    }
}

fn key(stage: &str, unit: Unit) -> ExecutionKey {
    ExecutionKey::new(SLUG, 1, stage, 1, unit)
}

#[test]
fn l21_a_holder_whose_lease_was_taken_over_cannot_write() {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/src/main.rs", "1"),
        ],
    );
    let journal = Arc::new(Journal::default());
    // A sees the store through a gate, and the step runner through its own view: the step
    // ends for A (its result is what A will try to write) while it still runs for B.
    let gated = GatedStore {
        inner: handles.store.clone(),
        gate: Arc::default(),
    };
    let a_runner = ScriptedStepRunner::new("A's view", Arc::new(handles.clock.clone()));
    a_runner.set_default(Behavior::hang());
    handles.steps.set_default(Behavior::hang());
    let a_backends = Backends {
        store: Arc::new(gated.clone()),
        steps: StepRunners::new().with_fallback(Arc::new(a_runner.clone())),
        ..backends.clone()
    };
    let mut pool = LocalPool::new();
    let (a, a_driver) = Engine::new(a_backends, config("a", &journal));
    let _a_driver = pool
        .spawner()
        .spawn_local_with_handle(a_driver.run())
        .expect("A starts");
    let push = PushRequest::new("main", "c1").with_delivery("d1");
    let engine = a.clone();
    pool.run_until(async move { engine.push(SLUG, push).await })
        .expect("A records the push");
    // A drives: the build, validation and mirroring pass, staging's deploy starts.
    let deploy = key("staging", Unit::step("deploy"));
    for _ in 0..100 {
        pool.run_until_stalled();
        if a_runner.running().contains(&deploy) {
            break;
        }
        handles.clock.advance(POLL);
    }
    assert!(a_runner.running().contains(&deploy), "A runs the deploy");
    let lease = handles.lock.leases();
    assert_eq!(
        (lease[0].holder.as_str(), lease[0].token),
        ("a", 1),
        "A holds the lease"
    );
    // B starts and polls; A renews on its polls, so B drives nothing.
    let (b, b_driver) = Engine::new(backends.clone(), config("b", &journal));
    let _b_driver = pool
        .spawner()
        .spawn_local_with_handle(b_driver.run())
        .expect("B starts");
    for _ in 0..8 {
        handles.clock.advance(POLL);
        pool.run_until_stalled();
    }
    assert_eq!(handles.lock.leases()[0].holder, "a", "A kept its lease");
    assert!(handles.steps.running().is_empty(), "B started nothing");
    // A learns that the deploy succeeded and goes to record it, but stalls mid-append.
    gated.set_closed(true);
    let succeeded = Outcome::Succeeded {
        outputs: BTreeMap::new(),
    };
    a_runner
        .complete(&deploy, succeeded.clone())
        .expect("completes");
    pool.run_until_stalled();
    assert_eq!(gated.gate().waiting, 1, "A's append waits at the gate");
    // A cannot renew while it stalls; past the TTL, B takes the lease over, fences the
    // stream with its token and re-attaches to the deploy (still running in B's view).
    for _ in 0..8 {
        handles.clock.advance(POLL);
        pool.run_until_stalled();
    }
    let lease = handles.lock.leases();
    assert_eq!(
        (lease[0].holder.as_str(), lease[0].token),
        ("b", 2),
        "B took the lease over with a greater token"
    );
    assert_eq!(handles.store.highest_token(SLUG), Some(2), "B fenced");
    assert!(
        handles.steps.running().contains(&deploy),
        "B re-attached to the deploy"
    );
    let before = futures::executor::block_on(a.history(SLUG)).expect("log");
    let journaled = journal.entries().len();
    let appended = gated.gate().appends.len();
    // A wakes up: its append, presenting token 1, is refused, and it does not try again (not
    // with its token, and never without: a work result is the holder's to record).
    gated.set_closed(false);
    pool.run_until_stalled();
    let appends = gated.gate().appends[appended..].to_vec();
    assert_eq!(appends.len(), 1, "A appended once more: {appends:?}");
    let (token, outcome) = appends[0].clone();
    assert_eq!(token, Some(1), "A presented its old token");
    let refusal = outcome.expect_err("the store refused A's append");
    assert!(
        refusal.contains("conflict") && refusal.contains("fencing token 1"),
        "refused for its token: {refusal}"
    );
    let after = futures::executor::block_on(a.history(SLUG)).expect("log");
    assert_eq!(after, before, "nothing of A's landed");
    assert_eq!(journal.entries().len(), journaled, "A journaled nothing");
    // A caught up and reports the log; it drives nothing any more.
    let engine = a.clone();
    let a_state = pool
        .run_until(async move { engine.state(SLUG).await })
        .expect("A's state");
    assert_eq!(a_state, PipelineState::replay(SLUG, &after));
    let staging = |s: &PipelineState| s.deployments[&1].stage("staging").map(|r| r.state);
    assert_eq!(staging(&a_state), Some(StageState::InProgress));
    // B records the deploy's result when it ends in its view, under its token.
    handles
        .steps
        .complete(&deploy, succeeded)
        .expect("completes");
    pool.run_until_stalled();
    let engine = b.clone();
    let b_state = pool
        .run_until(async move { engine.state(SLUG).await })
        .expect("B's state");
    let deploy_done = b_state.deployments[&1]
        .stage("staging")
        .is_some_and(|r| r.steps[0].state == StepState::Succeeded);
    assert!(deploy_done, "B recorded the deploy's success");
    let entries = journal.entries().clone();
    let last = entries.last().expect("B journaled");
    assert_eq!((last.instance.as_str(), last.token), ("b", Some(2)));
    assert!(
        entries
            .iter()
            .filter(|e| e.instance == "a")
            .all(|e| e.token == Some(1)),
        "A wrote only while it held the lease"
    );
    // People's inputs are still welcome at A: it records them without a token.
    let control = Control::new(
        "prod".to_owned(),
        ControlAction::StopPromotions,
        Actor::User("ana".to_owned()),
    );
    let engine = a.clone();
    let records = pool
        .run_until(async move { engine.control(SLUG, control).await })
        .expect("A records a person's input");
    assert!(!records.is_empty());
    let last = journal.entries().last().cloned().expect("journaled");
    assert_eq!((last.instance.as_str(), last.token), ("a", None));
    check_log(&futures::executor::block_on(a.history(SLUG)).expect("log"));
}

#[test]
fn l12_l21_a_cancel_recorded_by_another_instance_stops_work_the_holder_starts_later() {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/src/main.rs", "1"),
        ],
    );
    handles.builds.set_default(Behavior::hang());
    let journal = Arc::new(Journal::default());
    let mut pool = LocalPool::new();
    let mut engines = Vec::new();
    for name in ["a", "b"] {
        let (engine, driver) = Engine::new(backends.clone(), config(name, &journal));
        let driver = pool
            .spawner()
            .spawn_local_with_handle(driver.run())
            .expect("starts");
        engines.push((engine, driver));
    }
    let (a, b) = (engines[0].0.clone(), engines[1].0.clone());
    let push = |delivery: &str, branch: &str| {
        PushRequest::new(branch.to_owned(), "c1".to_owned()).with_delivery(delivery.to_owned())
    };
    // A records an ignored push and so holds the lease; nothing runs.
    let request = push("d0", "feature");
    let engine = a.clone();
    pool.run_until(async move { engine.push(SLUG, request).await })
        .expect("A records");
    assert_eq!(handles.lock.leases()[0].holder, "a");
    // B accepts a deployment (its build is running in the log, but B starts nothing) and,
    // before A has caught up, a person cancels it at B: B's cancel finds no execution.
    let request = push("d1", "main");
    let engine = b.clone();
    pool.run_until(async move { engine.push(SLUG, request).await })
        .expect("B records");
    assert!(handles.builds.started().is_empty(), "B started nothing");
    let op = Operate::new(1, "staging".to_owned(), Actor::User("ana".to_owned()));
    let engine = b.clone();
    pool.run_until(async move { engine.cancel(SLUG, op).await })
        .expect("B records the cancel");
    let build = key("staging", Unit::build("image"));
    // A polls, catches up and re-attaches to the build of a cancelling stage-deployment: it
    // starts it and stops it at once, so the cancel completes (L12).
    handles.clock.advance(POLL);
    pool.run_until_stalled();
    let log = handles.builds.log();
    let actions: Vec<_> = log
        .iter()
        .filter(|r| r.key == build)
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [RunAction::Started, RunAction::Cancelled],
        "A started and stopped the build"
    );
    let engine = b.clone();
    let state = pool
        .run_until(async move { engine.state(SLUG).await })
        .expect("state");
    let staging = state.deployments[&1].stage("staging").expect("staging");
    assert_eq!(staging.state, StageState::Cancelled);
    check_log(&futures::executor::block_on(b.history(SLUG)).expect("log"));
}

#[test]
fn l21_a_single_instance_whose_renewal_is_refused_takes_its_lease_again_and_finishes() {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/src/main.rs", "1"),
        ],
    );
    // The second call to the lease service (the first renewal) says the lease was lost.
    let lock = FaultyLock::new(
        handles.lock.clone(),
        FaultOptions {
            schedule: FaultSchedule::at_calls([(2, Fault::Conflict)]),
            latency_yields: 0,
        },
    );
    let backends = Backends {
        lock: Arc::new(lock.clone()),
        ..backends
    };
    // One instance, no polling: the default configuration.
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let mut pool = LocalPool::new();
    let _driver = pool
        .spawner()
        .spawn_local_with_handle(driver.run())
        .expect("starts");
    let push = PushRequest::new("main", "c1").with_delivery("d1");
    let e = engine.clone();
    pool.run_until(async move { e.push(SLUG, push).await })
        .expect("recorded");
    loop {
        pool.run_until_stalled();
        if handles.clock.advance_to_next_deadline().is_none() {
            break;
        }
    }
    let injected = lock.injected();
    assert_eq!(injected.len(), 1, "a renewal was refused");
    assert!(injected[0].operation.starts_with("renew"), "{injected:?}");
    let e = engine.clone();
    let state = pool
        .run_until(async move { e.state(SLUG).await })
        .expect("state");
    for stage in STAGES {
        let run = state.deployments[&1].stage(stage).expect("stage");
        assert_eq!(run.state, StageState::Succeeded, "{stage}");
    }
    let log = futures::executor::block_on(engine.history(SLUG)).expect("log");
    check_log(&log);
    assert_eq!(PipelineState::replay(SLUG, &log), state);
}

//! Model-based test of the lifecycle (proptest-state-machine): random histories of pushes, step
//! outcomes, approvals, cancels, retries, rollbacks, roll-forwards, blockers, bypasses, alarms,
//! patches, definition changes and their approval, clock jumps and crash-restarts against the real engine on the in-memory backends;
//! the invariants of lifecycle.md are checked after every transition, and failures shrink to a
//! minimal history.
//!
//! CI runs 256 cases. To search harder:
//! `PROPTEST_CASES=10000 cargo test -p devramps-memory --test lifecycle_model --release`.

use std::collections::{BTreeMap, BTreeSet};

use devramps_core::backend::{AlarmId, Backends, Outcome};
use devramps_core::engine::{Engine, EngineConfig, PatchRequest, PushRequest};
use devramps_core::lifecycle::{
    Actor, AlarmState, Control, ControlAction, Decide, Event, Machine, Operate, Person,
    PipelineDecision, PipelineState, Record, StageState, StepState, WaitingFor,
};
use devramps_memory::{Behavior, MemoryHandles, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY
  stage_defaults: { deployment_time_window: PACIFIC_WORKING_HOURS }
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1, deployment_time_window: NONE }
    - { name: qa, account_id: "111111111111", region: us-east-2, deployment_time_window: NONE, skip: [bake] }
    - { name: prod, account_id: "222222222222", region: us-west-2, auto_rollback_alarm_name: prod-alarm }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
    - { name: Check, id: check, type: "CUSTOM:CHECK" }
    - { name: Bake, id: bake, type: "DEVRAMPS:APPROVAL:BAKE", params: { duration_minutes: 20 } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/src]
      params: { dockerfile: /Dockerfile }
"#;

/// `PIPELINE` without its `check` step: moving to it is destructive and waits for a person
/// (L18); moving back is additive.
fn smaller_pipeline() -> String {
    PIPELINE.replace(
        "    - { name: Check, id: check, type: \"CUSTOM:CHECK\" }\n",
        "",
    )
}

const STAGES: [&str; 3] = ["staging", "qa", "prod"];

/// The engines of this test save a snapshot every this many records.
const SNAPSHOT_EVERY: u64 = 7;

/// What the reference model knows: which pushes must be accepted.
#[derive(Clone, Debug, Default)]
struct Model {
    commits: u64,
    newest: Option<u64>,
    deliveries: u64,
    accepted: u64,
    /// L17: pushes are ignored until the patch is released.
    patch_mode: bool,
}

#[derive(Clone, Debug)]
enum Transition {
    /// A push of a new commit (or of the newest one again), to main or another branch, with a
    /// new delivery id or a repeated one.
    Push {
        main: bool,
        same_commit: bool,
        repeat_delivery: bool,
    },
    /// The `pick`-th running step or build ends.
    Finish { pick: usize, succeed: bool },
    /// A person answers the `pick`-th waiting or baking step.
    Answer { pick: usize, approve: bool },
    /// Cancel a stage-deployment.
    Cancel { revision: u64, stage: usize },
    /// Retry a stage-deployment.
    Retry { revision: u64, stage: usize },
    /// Time moves to the next deadline (a bake ends, a timeout, a window opens).
    Jump,
    /// Time moves by some hours.
    Hours(u32),
    /// The engine crashes and a new one resumes from the store.
    Restart,
    /// An emergency rollback (L13) or roll-forward (L14) of a stage to a revision.
    Emergency {
        rollback: bool,
        revision: u64,
        stage: usize,
    },
    /// Stop or resume promotions, unblock after rollback, or bypass for a revision (L9).
    Control {
        action: u8,
        revision: u64,
        stage: usize,
    },
    /// Prod's alarm fires or clears (L15), through the alarm source.
    Alarm { firing: bool },
    /// A patch of a new commit (L17), or the release of patch mode.
    Patch { release: bool },
    /// Commits from now on carry the smaller or the full definition (L18).
    Redefine { smaller: bool },
    /// A person answers a definition change waiting for approval (L18).
    DecidePipeline { revision: u64, approve: bool },
}

struct Lifecycle;

impl ReferenceStateMachine for Lifecycle {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let revisions = state.accepted.max(1);
        prop_oneof![
            4 => (prop::bool::weighted(0.9), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
                .prop_map(|(main, same_commit, repeat_delivery)| Transition::Push { main, same_commit, repeat_delivery }),
            6 => (0..4_usize, prop::bool::weighted(0.8)).prop_map(|(pick, succeed)| Transition::Finish { pick, succeed }),
            2 => (0..3_usize, prop::bool::weighted(0.7)).prop_map(|(pick, approve)| Transition::Answer { pick, approve }),
            1 => (1..=revisions, 0..3_usize).prop_map(|(revision, stage)| Transition::Cancel { revision, stage }),
            2 => (1..=revisions, 0..3_usize).prop_map(|(revision, stage)| Transition::Retry { revision, stage }),
            3 => Just(Transition::Jump),
            1 => (1..80_u32).prop_map(Transition::Hours),
            1 => Just(Transition::Restart),
            2 => (prop::bool::ANY, 1..=revisions, 0..3_usize)
                .prop_map(|(rollback, revision, stage)| Transition::Emergency { rollback, revision, stage }),
            2 => (0..4_u8, 1..=revisions, 0..3_usize)
                .prop_map(|(action, revision, stage)| Transition::Control { action, revision, stage }),
            1 => prop::bool::ANY.prop_map(|firing| Transition::Alarm { firing }),
            1 => prop::bool::ANY.prop_map(|release| Transition::Patch { release }),
            1 => prop::bool::ANY.prop_map(|smaller| Transition::Redefine { smaller }),
            2 => (1..=revisions, prop::bool::weighted(0.7))
                .prop_map(|(revision, approve)| Transition::DecidePipeline { revision, approve }),
        ]
        .boxed()
    }

    fn apply(mut state: Model, transition: &Transition) -> Model {
        if let Transition::Push {
            main,
            same_commit,
            repeat_delivery,
        } = *transition
        {
            let commit = if same_commit && state.newest.is_some() {
                state.newest
            } else {
                state.commits += 1;
                Some(state.commits)
            };
            let new_delivery = !(repeat_delivery && state.deliveries > 0);
            if new_delivery {
                state.deliveries += 1;
            }
            // L2: only new deliveries of a new head commit of the tracked branch deploy; none in
            // patch mode (L17).
            if main && new_delivery && commit != state.newest && !state.patch_mode {
                state.accepted += 1;
                state.newest = commit;
            }
        }
        if let Transition::Patch { release } = *transition {
            if release {
                state.patch_mode = false;
            } else {
                // A new commit, deployed as a new revision whatever the mode.
                state.commits += 1;
                state.newest = Some(state.commits);
                state.accepted += 1;
                state.patch_mode = true;
            }
        }
        state
    }
}

struct Sut {
    pool: LocalPool,
    engine: Engine,
    backends: Backends,
    handles: MemoryHandles,
    /// The model's newest accepted commit before the transition being applied.
    newest: Option<u64>,
    /// The newest commit created in the repository.
    head: u64,
    /// The definition new commits carry.
    definition: String,
}

fn start(backends: &Backends, name: &str) -> (LocalPool, Engine) {
    let (engine, driver) = Engine::new(
        backends.clone(),
        // Snapshots often, so that restarts load a snapshot and the records after it.
        EngineConfig::new(name).with_snapshot_every(SNAPSHOT_EVERY),
    );
    let pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("the driver starts");
    (pool, engine)
}

impl Sut {
    fn settle(&mut self) {
        self.pool.run_until_stalled();
    }

    /// Runs one request of the engine to its answer; `what` names it when it fails.
    fn call<T, F>(&mut self, what: &str, request: impl FnOnce(Engine) -> F) -> T
    where
        F: std::future::Future<Output = devramps_core::Result<T>>,
    {
        let engine = self.engine.clone();
        self.pool
            .run_until(request(engine))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Runs an operation: carried out, or refused with `Error::Refused` (its `refused` record
    /// is in the log either way); anything else fails the test.
    fn operate<F>(&mut self, request: impl FnOnce(Engine) -> F)
    where
        F: std::future::Future<Output = devramps_core::Result<Vec<Record>>>,
    {
        let engine = self.engine.clone();
        match self.pool.run_until(request(engine)) {
            Ok(_) | Err(devramps_core::Error::Refused { .. }) => {}
            Err(e) => panic!("carried out or refused: {e}"),
        }
    }

    fn state(&mut self) -> PipelineState {
        self.call("state", |engine| async move { engine.state("app").await })
    }

    fn history(&mut self) -> Vec<Record> {
        self.call(
            "history",
            |engine| async move { engine.history("app").await },
        )
    }

    /// Writes commit `c<n>` on top of the newest one, changing the source and carrying the
    /// current definition.
    fn new_commit(&mut self, n: u64) -> String {
        let id = format!("c{n}");
        let parent = format!("c{}", self.head);
        self.handles.source.commit_changes(
            &id,
            &parent,
            [
                ("/src/main.rs", Some(id.clone())),
                (
                    "/.devramps/app/pipeline.yaml",
                    Some(self.definition.clone()),
                ),
            ],
        );
        self.head = n;
        id
    }

    /// Steps waiting for a person or baking, as (revision, stage, step).
    fn answerable(&mut self) -> Vec<(u64, String, String)> {
        let s = self.state();
        let mut out = Vec::new();
        for d in s.active_deployments() {
            let Some(plan) = d.plan() else { continue };
            for (stage, run) in plan.stages.iter().zip(&d.stages) {
                for (step, st) in stage.steps.iter().zip(&run.steps) {
                    let baking = st.state == StepState::Running
                        && step.step_type == "DEVRAMPS:APPROVAL:BAKE";
                    if st.state == StepState::WaitingApproval || baking {
                        out.push((d.revision, stage.name.clone(), step.key().to_owned()));
                    }
                }
            }
        }
        out
    }
}

struct EngineUnderTest;

impl StateMachineTest for EngineUnderTest {
    type SystemUnderTest = Sut;
    type Reference = Lifecycle;

    fn init_test(_: &Model) -> Sut {
        let (backends, handles) = scripted_backends();
        handles.source.commit(
            "c0",
            None,
            [
                ("/.devramps/app/pipeline.yaml", PIPELINE),
                ("/src/main.rs", "0"),
            ],
        );
        // Steps hang until the test ends them; builds take their default time on the clock.
        handles.steps.set_default(Behavior::hang());
        let (pool, engine) = start(&backends, "engine-0");
        Sut {
            pool,
            engine,
            backends,
            handles,
            newest: None,
            head: 0,
            definition: PIPELINE.to_owned(),
        }
    }

    fn apply(mut sut: Sut, model: &Model, transition: Transition) -> Sut {
        match transition {
            Transition::Push {
                main,
                same_commit,
                repeat_delivery,
            } => {
                // The same choice as the model: the newest accepted commit again, or a new one.
                let commit = match (sut.newest, same_commit) {
                    (Some(n), true) => format!("c{n}"),
                    _ => sut.new_commit(model.commits),
                };
                // A repeated delivery reuses the last id; a new one is the model's new count.
                let _ = repeat_delivery;
                let delivery = format!("d{}", model.deliveries);
                let push = PushRequest::new(if main { "main" } else { "feature" }, commit.clone())
                    .with_delivery(delivery);
                sut.call("the push is recorded", |engine| async move {
                    engine.push("app", push).await
                });
            }
            Transition::Finish { pick, succeed } => {
                let running = sut.handles.steps.running();
                if let Some(key) = running.get(pick % running.len().max(1)) {
                    let outcome = if succeed {
                        Outcome::Succeeded {
                            outputs: BTreeMap::new(),
                        }
                    } else {
                        Outcome::Failed {
                            reason: "scripted failure".into(),
                        }
                    };
                    sut.handles.steps.complete(key, outcome).expect("completes");
                }
            }
            Transition::Answer { pick, approve } => {
                let waiting = sut.answerable();
                if let Some((revision, stage, step)) =
                    waiting.get(pick % waiting.len().max(1)).cloned()
                {
                    let decide = Decide::new(revision, stage, step, Actor::User("prop".into()));
                    sut.call("answered or refused", |engine| async move {
                        if approve {
                            engine.approve("app", decide).await
                        } else {
                            engine.reject("app", decide).await
                        }
                    });
                }
            }
            Transition::Cancel { revision, stage } | Transition::Retry { revision, stage } => {
                let op = Operate::new(revision, STAGES[stage], Actor::User("prop".into()));
                let cancel = matches!(transition, Transition::Cancel { .. });
                sut.operate(|engine| async move {
                    if cancel {
                        engine.cancel("app", op).await
                    } else {
                        engine.retry("app", op).await
                    }
                });
            }
            Transition::Jump => {
                sut.settle();
                sut.handles.clock.advance_to_next_deadline();
            }
            Transition::Hours(h) => {
                sut.settle();
                sut.handles
                    .clock
                    .advance(std::time::Duration::from_secs(u64::from(h) * 3600));
            }
            Transition::Emergency {
                rollback,
                revision,
                stage,
            } => {
                let op = Operate::new(revision, STAGES[stage], Actor::User("prop".into()));
                sut.operate(|engine| async move {
                    if rollback {
                        engine.rollback("app", op).await
                    } else {
                        engine.roll_forward("app", op).await
                    }
                });
            }
            Transition::Control {
                action,
                revision,
                stage,
            } => {
                let action = match action {
                    0 => ControlAction::StopPromotions,
                    1 => ControlAction::ResumePromotions,
                    2 => ControlAction::Unblock,
                    _ => ControlAction::Bypass { revision },
                };
                let control = Control::new(STAGES[stage], action, Actor::User("prop".into()));
                sut.operate(|engine| async move { engine.control("app", control).await });
            }
            Transition::Alarm { firing } => {
                let alarm = AlarmId {
                    name: "prod-alarm".into(),
                    account_id: "222222222222".into(),
                    region: "us-west-2".into(),
                };
                let state = if firing {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                };
                sut.handles.alarms.set(alarm, state);
            }
            Transition::Patch { release } => {
                if release {
                    let person = Person::new(Actor::User("prop".into()));
                    sut.operate(|engine| async move { engine.release_patch("app", person).await });
                } else {
                    let id = sut.new_commit(model.commits);
                    let patch = PatchRequest::new(id, Actor::User("prop".into()));
                    sut.call("the patch is recorded", |engine| async move {
                        engine.patch("app", patch).await
                    });
                }
            }
            Transition::Redefine { smaller } => {
                sut.definition = if smaller {
                    smaller_pipeline()
                } else {
                    PIPELINE.to_owned()
                };
            }
            Transition::DecidePipeline { revision, approve } => {
                let decision = PipelineDecision::new(revision, Actor::User("prop".into()));
                sut.operate(|engine| async move {
                    if approve {
                        engine.approve_pipeline("app", decision).await
                    } else {
                        engine.reject_pipeline("app", decision).await
                    }
                });
            }
            Transition::Restart => {
                sut.settle();
                sut.call("stops", |engine| async move { engine.stop().await });
                let (pool, engine) = start(&sut.backends, "engine-restarted");
                sut.pool = pool;
                sut.engine = engine;
            }
        }
        sut.settle();
        sut.newest = model.newest;
        // L19: the engine's live state is the fold of its log.
        let live = sut.state();
        let log = sut.history();
        assert_eq!(
            Machine::replay("app", &log).state(),
            &live,
            "replaying the log gives the live state"
        );
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        // `check_invariants` gets `&Sut`; the reads need `&mut`, so work on a fresh pool over
        // the same engine (the driver keeps running in the SUT's pool, which is idle now).
        let store = sut.handles.store.clone();
        let records: Vec<Record> = futures::executor::block_on(async {
            use devramps_core::backend::EventStoreExt;
            store.read_all("app").await
        })
        .expect("the log reads")
        .into_iter()
        .map(|e| Record::from_stored("app", e).expect("records parse"))
        .collect();
        let state = Machine::replay("app", &records).state().clone();
        check_snapshots(&state, &records);
        check(&state, &records, model);
    }
}

/// Loading a snapshot and the records after it gives the state of a full replay (`replayed`),
/// also from a snapshot of a state itself loaded from a snapshot (whose plans are not
/// synthesized yet). The cuts move with the history's length, so over the transitions of a case
/// they fall everywhere; restarts (engines save a snapshot every [`SNAPSHOT_EVERY`] records)
/// check the same through the engine.
fn check_snapshots(replayed: &PipelineState, records: &[Record]) {
    let n = records.len();
    let (first, second) = (n / 2, 3 * n / 4);
    let snapshot = Machine::replay("app", &records[..first])
        .snapshot()
        .expect("a state saves");
    let mut loaded = Machine::from_snapshot("app", &snapshot).expect("its snapshot loads");
    assert_eq!(loaded.state().applied, first as u64);
    loaded.apply(&records[first..second]);
    let again = loaded.snapshot().expect("a loaded state saves");
    let mut chained = Machine::from_snapshot("app", &again).expect("it loads");
    chained.apply(&records[second..]);
    loaded.apply(&records[second..]);
    assert_eq!(
        loaded.state(),
        replayed,
        "snapshot at {first} + tail == replay of {n}"
    );
    assert_eq!(
        chained.state(),
        replayed,
        "snapshots at {first} and {second} + tail == replay of {n}"
    );
}

fn check(state: &PipelineState, records: &[Record], model: &Model) {
    // L1: revisions 1..n without gaps, and every push the model expects accepted is there.
    let revisions: Vec<u64> = state.deployments.keys().copied().collect();
    assert_eq!(
        revisions,
        (1..=model.accepted).collect::<Vec<_>>(),
        "revisions are 1..n and nothing accepted is lost"
    );
    let built: BTreeSet<u64> = records
        .iter()
        .filter_map(|r| match r.event {
            Event::BuildStarted { revision, .. } => Some(revision),
            _ => None,
        })
        .collect();
    for stage in STAGES {
        // L5: at most one running stage-deployment per stage.
        let holders: Vec<u64> = state
            .deployments
            .values()
            .filter(|d| d.stage(stage).is_some_and(|s| s.state.holds_lock()))
            .map(|d| d.revision)
            .collect();
        assert!(holders.len() <= 1, "stage {stage} is held by {holders:?}");
        // L6: at most one queued deployment per stage.
        let queued: Vec<u64> = state
            .deployments
            .values()
            .filter(|d| {
                d.stage(stage).is_some_and(|s| {
                    s.state == StageState::NotStarted
                        && matches!(
                            s.waiting_for,
                            Some(WaitingFor::Lock | WaitingFor::TimeWindow | WaitingFor::Blocker)
                        )
                })
            })
            .map(|d| d.revision)
            .collect();
        assert!(queued.len() <= 1, "stage {stage} queues {queued:?}");
    }
    for d in state.deployments.values() {
        // L18: a deployment waiting for approval of its definition has started nowhere.
        if d.awaits_approval() {
            assert!(
                d.stages.iter().all(|s| s.attempt == 0),
                "revision {} waits for pipeline approval but has started",
                d.revision
            );
        }
        // L4/L6: a deployment skipped in the first stage was never built.
        if d.stages
            .first()
            .is_some_and(|s| s.state == StageState::Skipped)
        {
            assert!(
                !built.contains(&d.revision),
                "revision {} was skipped in the first stage but built",
                d.revision
            );
        }
        // Stage k+1 never runs a revision that did not succeed in stage k (a rollback or
        // roll-forward may have run it there again since).
        for pair in d.stages.windows(2) {
            if pair[1].attempt > 0 {
                assert!(
                    state.stage(&pair[0].name).deployed.contains(&d.revision),
                    "revision {} ran in {} without succeeding in {}",
                    d.revision,
                    pair[1].name,
                    pair[0].name
                );
            }
        }
    }
    check_operations(records);
    // Replay is deterministic (the live state is compared with the replay in `apply`).
    let again = Machine::replay("app", records);
    assert_eq!(again.state(), state);
}

/// The invariants of the operations, checked on the log as it was written:
/// - a blocked stage starts nothing except a bypassed revision, a rollback or a roll-forward (L9);
/// - a rollback target had succeeded in that stage (L13);
/// - after a rollback (or any other success) the stage's current revision is that revision.
fn check_operations(records: &[Record]) {
    let mut state = PipelineState::new("app");
    let mut succeeded: BTreeSet<(u64, String)> = BTreeSet::new();
    for (i, record) in records.iter().enumerate() {
        if let Event::StageState {
            revision,
            stage,
            state: to,
            ..
        } = &record.event
        {
            let before = state.stage(stage);
            let from = state.run(*revision, stage).map(|r| r.state);
            let starts = to.holds_lock() && !from.is_some_and(StageState::holds_lock);
            if starts && *to == StageState::InProgress {
                assert!(
                    before.blockers.is_empty() || before.bypass == Some(*revision),
                    "record {}: revision {revision} started in blocked `{stage}` ({:?})",
                    i + 1,
                    before.blockers
                );
            }
            if *to == StageState::RollingBack {
                assert!(
                    succeeded.contains(&(*revision, stage.clone())),
                    "record {}: rollback of `{stage}` to revision {revision}, which never \
                     succeeded there",
                    i + 1
                );
            }
        }
        state.apply(record);
        if let Event::StageState {
            revision,
            stage,
            state: to,
            ..
        } = &record.event
            && matches!(
                to,
                StageState::Succeeded | StageState::RolledBack | StageState::RolledForward
            )
        {
            succeeded.insert((*revision, stage.clone()));
            assert_eq!(
                state.stage(stage).current,
                Some(*revision),
                "record {}: `{stage}` ended {to} with revision {revision} but reports another",
                i + 1
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        max_shrink_iters: 4096,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_lifecycle_keeps_its_invariants(sequential 1..40 => EngineUnderTest);
}

#[test]
fn the_live_state_equals_the_replayed_log_after_a_busy_history() {
    let mut sut = EngineUnderTest::init_test(&Model::default());
    let mut model = Model::default();
    let script = [
        Transition::Push {
            main: true,
            same_commit: false,
            repeat_delivery: false,
        },
        Transition::Push {
            main: true,
            same_commit: false,
            repeat_delivery: false,
        },
        Transition::Finish {
            pick: 0,
            succeed: true,
        },
        Transition::Push {
            main: true,
            same_commit: false,
            repeat_delivery: false,
        },
        Transition::Jump,
        Transition::Finish {
            pick: 0,
            succeed: true,
        },
        Transition::Restart,
        Transition::Finish {
            pick: 0,
            succeed: false,
        },
        Transition::Retry {
            revision: 1,
            stage: 0,
        },
        Transition::Jump,
    ];
    for t in script {
        model = Lifecycle::apply(model, &t);
        sut = EngineUnderTest::apply(sut, &model, t);
        EngineUnderTest::check_invariants(&sut, &model);
    }
    let live = sut.state();
    let log = sut.history();
    assert_eq!(
        Machine::replay("app", &log).state(),
        &live,
        "the live state is the fold of the log"
    );
}

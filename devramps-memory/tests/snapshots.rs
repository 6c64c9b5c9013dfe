//! Snapshots and the stored record format: the engine saves a snapshot every N records and
//! loads the latest one plus the records after it; a snapshot it cannot use means a full replay;
//! a log written before records carried a format version still loads; a record of a newer
//! version is refused with an error naming it.

use std::time::Duration;

use devramps_core::backend::{AppendOptions, Backends, EventStore, EventStoreExt, Snapshot};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Machine, PipelineState, RECORD_VERSION, Record, StageState};
use devramps_memory::{Behavior, InMemoryEventStore, MemoryHandles, scripted_backends};
use futures::executor::{LocalPool, block_on};
use futures::task::LocalSpawnExt;
use serde_json::json;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
    - { name: Check, id: check, type: "CUSTOM:CHECK" }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/src]
      params: { dockerfile: /Dockerfile }
"#;

/// How many pushes the histories of these tests have.
const PUSHES: usize = 6;

/// A running engine.
struct Rig {
    pool: LocalPool,
    engine: Engine,
}

impl Rig {
    fn start(backends: &Backends, snapshot_every: u64) -> Rig {
        let (engine, driver) = Engine::new(
            backends.clone(),
            EngineConfig::default().with_snapshot_every(snapshot_every),
        );
        let pool = LocalPool::new();
        pool.spawner()
            .spawn_local(async move {
                let _ = driver.run().await;
            })
            .expect("the driver starts");
        Rig { pool, engine }
    }

    fn settle(&mut self, handles: &MemoryHandles) {
        loop {
            self.pool.run_until_stalled();
            if handles.clock.advance_to_next_deadline().is_none() {
                return;
            }
        }
    }

    fn push(&mut self, commit: &str) {
        let request =
            PushRequest::new("main", commit.to_owned()).with_delivery(format!("d-{commit}"));
        self.pool
            .run_until(self.engine.push("app", request))
            .expect("the push is recorded");
    }

    fn state(&mut self) -> devramps_core::Result<PipelineState> {
        self.pool.run_until(self.engine.state("app"))
    }

    fn stop(mut self) {
        self.pool
            .run_until(self.engine.stop())
            .expect("the engine stops");
    }
}

/// Backends whose repository has commits `c1..=c{PUSHES}` (every other one changing `/src`),
/// and an engine (snapshot every `snapshot_every` records) that pushed and ran them all.
fn history(snapshot_every: u64) -> (Backends, MemoryHandles) {
    let (backends, handles) = scripted_backends();
    handles
        .steps
        .set_default(Behavior::succeed(Duration::from_secs(60)));
    for i in 1..=PUSHES {
        let parent = (i > 1).then(|| format!("c{}", i - 1));
        let src = format!("/src/{}.rs", i / 2);
        handles.source.commit(
            &format!("c{i}"),
            parent.as_deref(),
            [
                ("/.devramps/app/pipeline.yaml", PIPELINE),
                ("/Dockerfile", "FROM scratch"),
                (src.as_str(), "fn main() {}"),
            ],
        );
    }
    let mut rig = Rig::start(&backends, snapshot_every);
    for i in 1..=PUSHES {
        rig.push(&format!("c{i}"));
        if i % 2 == 0 {
            rig.settle(&handles);
        }
    }
    rig.settle(&handles);
    rig.stop();
    (backends, handles)
}

fn log(store: &InMemoryEventStore) -> Vec<Record> {
    block_on(store.read_all("app"))
        .expect("the log reads")
        .into_iter()
        .map(|e| Record::from_stored("app", e).expect("a record"))
        .collect()
}

fn replayed(store: &InMemoryEventStore) -> PipelineState {
    Machine::replay("app", &log(store)).state().clone()
}

/// A restarted engine's state, which it loads from the store.
fn loaded(backends: &Backends) -> PipelineState {
    let mut rig = Rig::start(backends, 0);
    let state = rig.state().expect("the state loads");
    rig.stop();
    state
}

#[test]
fn the_engine_saves_snapshots_and_loads_the_latest_plus_the_tail() {
    let (backends, handles) = history(5);
    let records = log(&handles.store);
    assert!(
        records.len() > 20,
        "a long enough history: {}",
        records.len()
    );
    let state = replayed(&handles.store);
    assert!(
        state.deployments.values().any(|d| d
            .stage("prod")
            .is_some_and(|s| s.state == StageState::Succeeded)),
        "deployments went through: {state:?}"
    );
    let snapshot = block_on(handles.store.load_snapshot("app"))
        .expect("the snapshot loads")
        .expect("the engine saved a snapshot");
    assert!(
        snapshot.seq >= 5 && snapshot.seq <= records.len() as u64,
        "snapshot at {} of {}",
        snapshot.seq,
        records.len()
    );
    // The snapshot alone is the fold of the records up to its seq.
    let seq = usize::try_from(snapshot.seq).expect("small");
    let machine = Machine::from_snapshot("app", &snapshot.state).expect("it decodes");
    assert_eq!(
        machine.state(),
        Machine::replay("app", &records[..seq]).state()
    );
    // A snapshot that is not at the end of the log: the restart must read the tail too.
    if snapshot.seq == records.len() as u64 {
        let earlier = Machine::replay("app", &records[..seq - 3]);
        let state = earlier.snapshot().expect("saves");
        block_on(handles.store.save_snapshot(
            "app",
            Snapshot {
                seq: snapshot.seq - 3,
                state,
            },
        ))
        .expect("saved");
    }
    assert_eq!(loaded(&backends), state, "snapshot + tail == full replay");
}

#[test]
fn the_engine_saves_no_snapshot_when_told_not_to() {
    let (_, handles) = history(0);
    assert_eq!(
        block_on(handles.store.load_snapshot("app")).expect("loads"),
        None
    );
}

#[test]
fn an_unusable_snapshot_means_a_full_replay() {
    let (backends, handles) = history(5);
    let state = replayed(&handles.store);
    let last = block_on(handles.store.last_seq("app")).expect("last seq");
    // A snapshot of the first 4 records, marked: a delivery no record names. Were it used, the
    // loaded state would show the mark.
    let mut good = Machine::replay("app", &log(&handles.store)[..4])
        .snapshot()
        .expect("saves");
    good["deliveries"]
        .as_array_mut()
        .expect("a list")
        .push(json!("mark"));
    block_on(handles.store.save_snapshot(
        "app",
        Snapshot {
            seq: 4,
            state: good.clone(),
        },
    ))
    .expect("saved");
    let used = loaded(&backends);
    assert!(
        used.deliveries.contains("mark"),
        "a usable snapshot is used"
    );
    assert!(!state.deliveries.contains("mark"));
    let mut newer = good.clone();
    newer["v"] = json!(devramps_core::lifecycle::SNAPSHOT_VERSION + 1);
    let mut unversioned = good.clone();
    unversioned
        .as_object_mut()
        .expect("an object")
        .shift_remove("v");
    let mut broken = good.clone();
    broken["deployments"] = json!("not a list");
    let mut other = good.clone();
    other["slug"] = json!("other");
    let cases = [
        ("a newer version", 4, newer),
        ("no version", 4, unversioned),
        ("a state that does not decode", 4, broken),
        ("another pipeline's state", 4, other),
        ("not JSON of a state", last, json!([1, 2, 3])),
        // A state of 4 records said to be the fold of 2: its tail would be applied twice.
        ("a seq that is not its state's", 2, good),
    ];
    for (what, seq, state_json) in cases {
        block_on(handles.store.save_snapshot(
            "app",
            Snapshot {
                seq,
                state: state_json,
            },
        ))
        .expect("saved");
        assert_eq!(loaded(&backends), state, "{what}: a full replay");
    }
}

#[test]
fn a_log_written_without_record_versions_still_loads() {
    let (_, handles) = history(0);
    let stored = block_on(handles.store.read_all("app")).expect("the log reads");
    assert!(
        stored
            .iter()
            .all(|e| e.payload["v"] == json!(RECORD_VERSION)),
        "the engine writes the version"
    );
    // The same log as written before records carried a version, in a fresh store.
    let old = InMemoryEventStore::new();
    let payloads = stored
        .into_iter()
        .map(|e| {
            let mut payload = e.payload;
            payload
                .as_object_mut()
                .expect("an object")
                .shift_remove("v");
            payload
        })
        .collect();
    block_on(old.append("app", 0, payloads, AppendOptions::default())).expect("appended");
    let backends = Backends {
        store: std::sync::Arc::new(old.clone()),
        ..scripted_backends().0
    };
    assert_eq!(loaded(&backends), replayed(&handles.store));
    assert_eq!(replayed(&old), replayed(&handles.store));
}

#[test]
fn a_record_of_a_newer_version_is_refused_naming_its_seq() {
    let (backends, handles) = history(0);
    let last = block_on(handles.store.last_seq("app")).expect("last seq");
    let mut record = block_on(handles.store.read("app", last - 1, None)).expect("reads")[0]
        .payload
        .clone();
    record["v"] = json!(RECORD_VERSION + 1);
    block_on(
        handles
            .store
            .append("app", last, vec![record], AppendOptions::default()),
    )
    .expect("appended");
    // The driver loads every pipeline when it starts: it stops with the error.
    let (_engine, driver) = Engine::new(backends, EngineConfig::default());
    let error = block_on(driver.run()).expect_err("the log has a record it cannot read");
    let message = error.to_string();
    assert!(
        message.contains(&format!("record {}", last + 1)),
        "{message}"
    );
    assert!(
        message.contains(&format!("version {}", RECORD_VERSION + 1)),
        "{message}"
    );
}

//! A scenario gives the same report whichever store it runs on: every scenario under
//! `tests/scenarios/` on a fresh durable local store (an SQLite file in a temporary folder)
//! against the in-memory run, and the refusal of a store that already holds events.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use devramps_core::backend::{DynDeploymentLock, DynEventStore};
use devramps_local::store::LocalStore;
use devramps_sim::{SimulateError, StoreError, simulate_file, simulate_file_with, to_json};

/// Every scenario file under `tests/scenarios/`, sorted.
fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// A new local store in `dir`, as the simulator takes it.
fn local_store(dir: &Path, name: &str) -> (LocalStore, DynEventStore, DynDeploymentLock) {
    let store = LocalStore::open(dir.join(format!("{name}.sqlite")))
        .unwrap_or_else(|e| panic!("open the local store for {name}: {e}"));
    (store.clone(), Arc::new(store.clone()), Arc::new(store))
}

#[test]
fn every_scenario_gives_the_same_report_on_the_local_store_as_in_memory() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let files = scenarios();
    assert!(files.len() >= 30, "the scenarios were not found: {files:?}");
    let mut ran_with_restart = false;
    let mut ran_with_store_fault = false;
    for path in &files {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("a name");
        let text = std::fs::read_to_string(path).expect("the scenario");
        let (local, store, lock) = local_store(dir.path(), name);
        let memory = simulate_file(path).unwrap_or_else(|e| panic!("{name} is invalid: {e:?}"));
        let durable = simulate_file_with(path, store, lock)
            .unwrap_or_else(|e| panic!("{name} on the local store: {e}"));
        let (memory, durable) = (to_json(&memory), to_json(&durable));
        assert_eq!(memory, durable, "{name}: the reports differ");
        // The log really went to the file: a run that recorded anything left it there.
        let streams = futures::executor::block_on(async {
            devramps_core::backend::EventStore::streams(&local).await
        })
        .expect("list the streams");
        let report: serde_json::Value = serde_json::from_str(&durable).expect("JSON");
        if !report["deployments"].as_array().is_none_or(Vec::is_empty) {
            assert!(
                !streams.is_empty(),
                "{name}: nothing was written to the local store"
            );
        }
        ran_with_restart |= text.contains("restart");
        ran_with_store_fault |= text.contains("store_fault");
    }
    assert!(
        ran_with_restart && ran_with_store_fault,
        "restart and store_fault scenarios ran"
    );
}

#[test]
fn a_store_that_already_holds_events_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = scenarios()
        .into_iter()
        .find(|p| p.ends_with("l13-rollback.yaml"))
        .expect("l13-rollback.yaml");
    let (local, store, lock) = local_store(dir.path(), "used");
    simulate_file_with(&path, store.clone(), lock.clone()).expect("the first run");
    let read_all = || {
        futures::executor::block_on(async {
            let mut all = Vec::new();
            for stream in devramps_core::backend::EventStore::streams(&local).await? {
                let events =
                    devramps_core::backend::EventStoreExt::read_all(&local, &stream).await?;
                all.push((stream, events));
            }
            Ok::<_, devramps_core::Error>(all)
        })
        .expect("read the store")
    };
    let before = read_all();
    assert!(!before.is_empty(), "the first run wrote events");
    match simulate_file_with(&path, store, lock) {
        Err(SimulateError::Store(StoreError::InUse { pipelines })) => {
            let names: Vec<&String> = before.iter().map(|(s, _)| s).collect();
            assert_eq!(pipelines.iter().collect::<Vec<_>>(), names);
            let message = SimulateError::Store(StoreError::InUse { pipelines }).to_string();
            assert!(
                message.contains("already holds events") && message.contains("empty log"),
                "{message}"
            );
        }
        other => panic!("a used store must be refused, got {other:?}"),
    }
    assert_eq!(read_all(), before, "the refused run wrote nothing");
}

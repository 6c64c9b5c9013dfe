//! `devramps simulate --store`: the real binary with the event log and the leases in memory
//! (the default) or in a local store file.

mod common;

use common::*;

const PIPELINE: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
    - name: prod
      account_id: "222222222222"
      region: us-east-1
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
  artifacts: {}
"#;

/// Two pushes, an engine restart while the first deploys and a store that fails for a while.
const SCENARIO: &str = "pipeline: .devramps/api/pipeline.yaml\n\
    events:\n  \
      - push: { commit: c1 }\n  \
      - at: 2m\n    restart: { down: 1m }\n  \
      - at: 4m\n    store_fault: { op: append, times: 2 }\n  \
      - at: 5m\n    push: { commit: c2 }\n";

fn scenario_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", PIPELINE);
    write(dir.path(), "sim.yaml", SCENARIO);
    dir
}

#[test]
fn a_sqlite_store_gives_the_report_of_memory_and_keeps_the_log() {
    let dir = scenario_dir();
    let memory = devramps(dir.path(), &["simulate", "sim.yaml", "--format", "json"]);
    assert_eq!(code(&memory), 0, "{}", stderr(&memory));
    let explicit = devramps(
        dir.path(),
        &[
            "simulate", "sim.yaml", "--format", "json", "--store", "memory:",
        ],
    );
    assert_eq!(code(&explicit), 0, "{}", stderr(&explicit));
    assert_eq!(stdout(&explicit), stdout(&memory));

    let db = dir.path().join("state/sim.sqlite");
    let store = format!("sqlite:{}", db.display());
    let sqlite = devramps(
        dir.path(),
        &[
            "simulate", "sim.yaml", "--format", "json", "--store", &store,
        ],
    );
    assert_eq!(code(&sqlite), 0, "{}", stderr(&sqlite));
    assert_eq!(stderr(&sqlite), "");
    assert_eq!(
        stdout(&sqlite),
        stdout(&memory),
        "the same report on sqlite"
    );
    let report = json(&sqlite);
    assert_eq!(report["deployments"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["stages"]["prod"]["current_commit"], "c2");

    // The log is in the file, readable by the local store.
    assert!(read_log(&db).len() > 10, "the log went to the file");
}

#[test]
fn a_sqlite_store_that_holds_events_is_refused() {
    let dir = scenario_dir();
    let db = dir.path().join("used.sqlite");
    let store = format!("sqlite:{}", db.display());
    let first = devramps(dir.path(), &["simulate", "sim.yaml", "--store", &store]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let before = read_log(&db);
    assert!(!before.is_empty(), "the first run wrote the log");

    let again = devramps(dir.path(), &["simulate", "sim.yaml", "--store", &store]);
    assert_eq!(code(&again), 2, "{}", stdout(&again));
    assert_eq!(stdout(&again), "", "nothing on stdout");
    let message = stderr(&again);
    assert!(
        message.contains(&format!("--store {store}"))
            && message.contains("already holds events (pipeline `api`)")
            && message.contains("a simulation starts from an empty log")
            && message.contains("help:"),
        "{message}"
    );
    assert_eq!(read_log(&db), before, "the refused run wrote nothing");
}

/// The events of the pipeline `api` in the store file `db`.
fn read_log(db: &std::path::Path) -> Vec<devramps_core::backend::StoredEvent> {
    let local = devramps_local::store::LocalStore::open(db).expect("open the file");
    futures::executor::block_on(async {
        devramps_core::backend::EventStoreExt::read_all(&local, "api").await
    })
    .expect("read the log")
}

#[test]
fn bad_or_unavailable_stores_are_usage_errors() {
    let dir = scenario_dir();
    for (url, expected) in [
        // A bucket that does not exist (moto when `scripts/test` runs the tests).
        (
            "s3://devramps-no-such-bucket/prefix",
            "s3://devramps-no-such-bucket/prefix:",
        ),
        ("postgres://x", "unknown store `postgres://x`"),
        ("sqlite:", "needs a path"),
    ] {
        let output = devramps(dir.path(), &["simulate", "sim.yaml", "--store", url]);
        assert_eq!(code(&output), 2, "{url}: {}", stdout(&output));
        assert_eq!(stdout(&output), "", "{url}");
        assert!(
            stderr(&output).contains(expected),
            "{url}: {}",
            stderr(&output)
        );
    }
    // A file that is not a store: the local store's error, naming the file.
    write(dir.path(), "notes.sqlite", "not a database, just text\n");
    let output = devramps(
        dir.path(),
        &["simulate", "sim.yaml", "--store", "sqlite:notes.sqlite"],
    );
    assert_eq!(code(&output), 2, "{}", stdout(&output));
    assert!(
        stderr(&output).contains("notes.sqlite"),
        "{}",
        stderr(&output)
    );
}

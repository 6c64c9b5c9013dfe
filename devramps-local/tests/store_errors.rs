//! [`LocalStore`]'s errors: files it must refuse to open, damage it must report naming the
//! stream and seq, and SQLite's busy lock as a transient error.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use devramps_core::Error;
use devramps_core::backend::{AppendOptions, EventStore, EventStoreExt};
use devramps_local::store::{BUSY_TIMEOUT, LocalStore, SCHEMA_VERSION};
use futures::executor::block_on;
use rusqlite::Connection;
use serde_json::json;

fn open_err(path: &std::path::Path) -> String {
    match LocalStore::open(path) {
        Ok(store) => panic!("{} must be refused, opened {store:?}", path.display()),
        Err(e) => {
            assert!(matches!(e, Error::Backend { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "this is not a database, just a text file of some length\n".repeat(20),
    )
    .unwrap();
    let message = open_err(&path);
    assert!(message.contains("not an SQLite database"), "{message}");
    assert!(message.contains("notes.txt"), "names the file: {message}");
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE users (name TEXT)")
        .unwrap();
    let message = open_err(&path);
    assert!(message.contains("not a devramps store"), "{message}");
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(LocalStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE devramps_schema SET version = ?1",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    let message = open_err(&path);
    assert!(
        message.contains(&format!("schema version {}", SCHEMA_VERSION + 1))
            && message.contains(&format!("reads version {SCHEMA_VERSION}"))
            && message.contains("upgrade devramps"),
        "{message}"
    );
}

#[test]
fn a_damaged_payload_is_reported_with_its_stream_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = LocalStore::open(&path).unwrap();
    block_on(store.append(
        "api",
        0,
        vec![json!(1), json!(2), json!(3)],
        AppendOptions::default(),
    ))
    .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE events SET payload = '{oops' WHERE seq = 2", [])
        .unwrap();
    let err = block_on(store.read_all("api")).unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("event 2 of stream `api` is not valid JSON")
            && message.contains("state.db"),
        "{message}"
    );
    assert_eq!(
        block_on(store.read("api", 2, None)).unwrap().len(),
        1,
        "the events after the damage still read"
    );
}

#[test]
fn a_gap_in_a_stream_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = LocalStore::open(&path).unwrap();
    block_on(store.append(
        "api",
        0,
        vec![json!(1), json!(2), json!(3)],
        AppendOptions::default(),
    ))
    .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM events WHERE seq = 2", [])
        .unwrap();
    let message = block_on(store.read_all("api")).unwrap_err().to_string();
    assert!(
        message.contains("stream `api` has no event 2 (the next one is 3)"),
        "{message}"
    );
}

#[test]
fn a_write_lock_held_too_long_is_unavailable_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = LocalStore::open(&path).unwrap();
    let mut other = Connection::open(&path).unwrap();
    let holding = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let started = Instant::now();
    let err =
        block_on(store.append("api", 0, vec![json!(1)], AppendOptions::default())).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() >= BUSY_TIMEOUT - Duration::from_millis(100),
        "the writer waited for the lock: {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("append to stream `api`"), "{err}");
    drop(holding);
    assert_eq!(
        block_on(store.last_seq("api")).unwrap(),
        0,
        "nothing written"
    );
    assert_eq!(
        block_on(store.append("api", 0, vec![json!(1)], AppendOptions::default())).unwrap(),
        1,
        "the retry goes through once the lock is free"
    );
}

//! Opening the file: the connection's settings, the schema and its version.

use std::path::Path;

use devramps_core::Error;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{BUSY_TIMEOUT, Failure};

/// The version of the schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The tables of [`SCHEMA_VERSION`]; see the module docs of `store`.
const SCHEMA: &str = "
CREATE TABLE devramps_schema (version INTEGER NOT NULL);
CREATE TABLE streams (
    name TEXT PRIMARY KEY NOT NULL,
    last_seq INTEGER NOT NULL,
    highest_token INTEGER
) WITHOUT ROWID;
CREATE TABLE events (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE TABLE snapshots (
    stream TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE leases (
    key TEXT PRIMARY KEY NOT NULL,
    last_token INTEGER NOT NULL,
    holder TEXT,
    token INTEGER,
    expires_s INTEGER,
    expires_ns INTEGER
) WITHOUT ROWID;
";

/// Opens (creating when needed) the store at `path`: parent directories, file, WAL mode,
/// `synchronous=FULL`, the busy timeout, and the schema, checked or created in one
/// transaction so that processes opening a new file together create it once.
pub(super) fn open(path: &Path) -> Result<Connection, Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Failure::Said(Error::Backend {
                backend: format!("local store `{}`", path.display()),
                operation: "open".to_owned(),
                message: format!("cannot create the directory `{}`: {e}", parent.display()),
                source: Some(Box::new(e)),
            })
        })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(refuse(
            path,
            format!(
                "SQLite would not use a write-ahead log (journal mode is `{mode}`); put the \
                 store on a local file system"
            ),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has_schema = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'devramps_schema'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if has_schema {
        let versions: Vec<i64> = tx
            .prepare("SELECT version FROM devramps_schema")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        match versions.as_slice() {
            [v] if *v == i64::from(SCHEMA_VERSION) => {}
            [v] if *v > i64::from(SCHEMA_VERSION) => {
                return Err(refuse(
                    path,
                    format!(
                        "the file has schema version {v}, written by a newer devramps; this \
                         one reads version {SCHEMA_VERSION}: upgrade devramps"
                    ),
                ));
            }
            other => {
                return Err(refuse(
                    path,
                    format!(
                        "the file's schema version is unreadable ({other:?} in \
                         `devramps_schema`); restore the file from a backup"
                    ),
                ));
            }
        }
    } else {
        let tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| row.get(0),
        )?;
        if tables > 0 {
            return Err(refuse(
                path,
                "the file is an SQLite database but not a devramps store (it has no \
                 `devramps_schema` table); give another path"
                    .to_owned(),
            ));
        }
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT INTO devramps_schema (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )?;
    }
    tx.commit()?;
    Ok(conn)
}

fn refuse(path: &Path, message: String) -> Failure {
    Failure::Said(Error::Backend {
        backend: format!("local store `{}`", path.display()),
        operation: "open".to_owned(),
        message,
        source: None,
    })
}

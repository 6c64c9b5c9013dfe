//! The local store: one SQLite database file that is both the [`EventStore`] (event streams,
//! fencing tokens, snapshots) and the [`DeploymentLock`] (leases) of one machine.
//!
//! ```no_run
//! use devramps_core::backend::{AppendOptions, EventStore, EventStoreExt};
//! use devramps_local::store::LocalStore;
//!
//! # fn main() -> devramps_core::Result<()> {
//! let store = LocalStore::open(".devramps/state.db")?;
//! futures::executor::block_on(async {
//!     let last = store.last_seq("api").await?;
//!     store
//!         .append("api", last, vec![serde_json::json!({"type": "hello"})], AppendOptions::default())
//!         .await?;
//!     println!("{} events", store.read_all("api").await?.len());
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # The file
//!
//! SQLite (the bundled library, so every build has the same version), in WAL mode. Tables:
//!
//! | table | columns | what |
//! |---|---|---|
//! | `devramps_schema` | `version` | one row: the schema version (1). A newer file is refused with a message naming both versions; an SQLite file without this table but with other tables is refused as "not a devramps store". |
//! | `streams` | `name`, `last_seq`, `highest_token` | one row per stream that was appended to (an empty append presenting a fencing token makes a row with `last_seq` 0, which [`EventStore::streams`] does not list) |
//! | `events` | `stream`, `seq`, `payload` | the events, keyed by (stream, seq); `payload` is the event's JSON text |
//! | `snapshots` | `stream`, `seq`, `state` | the latest snapshot of each stream |
//! | `leases` | `key`, `last_token`, `holder`, `token`, `expires_s`, `expires_ns` | per key: the last token ever issued (it only grows) and the current grant, if any (`holder` is NULL once released) |
//!
//! # Durability
//!
//! Every write is one SQLite transaction, committed with `synchronous=FULL`: the WAL is
//! fsynced before `append`, `acquire`, `renew`, `release` or `save_snapshot` returns. What was
//! acknowledged survives a `kill -9` of the process at any point (and a power loss, as far as
//! the disk honours fsync); a transaction that was not committed when the process died leaves
//! nothing behind, so a multi-event append is stored whole or not at all.
//!
//! # Several processes
//!
//! Any number of processes (and [`LocalStore`] values) may open the same file. Every write
//! takes SQLite's write lock at its start (`BEGIN IMMEDIATE`), so the compare-and-swap of
//! `append` and the read-modify-write of a lease are serialized across processes; readers are
//! not blocked by a writer (WAL). A writer waits up to [`BUSY_TIMEOUT`] for the lock; past
//! that the call fails with the transient [`Error::Unavailable`](devramps_core::Error) and may
//! be retried. Inside one process, the calls of one [`LocalStore`] (and its clones) share one
//! connection and run one at a time on the `blocking` thread pool, so the store works under any
//! executor (tokio, `futures::executor`, ...). The file must be on a local file system (WAL
//! needs shared memory between the processes; network file systems do not give it).
//!
//! # Errors
//!
//! | what | error |
//! |---|---|
//! | the write lock was not had within [`BUSY_TIMEOUT`] (SQLite `BUSY` or `LOCKED`) | [`Error::Unavailable`](devramps_core::Error) |
//! | a compare-and-swap or fencing refusal, a lost lease | [`Error::Conflict`](devramps_core::Error) |
//! | a payload that is not JSON, a gap in a stream (the file was changed by something else) | [`Error::Backend`](devramps_core::Error) naming the file, stream and seq |
//! | any other SQLite or file-system failure | [`Error::Backend`](devramps_core::Error) naming the file and the operation, with SQLite's error as its source |

mod events;
mod lease;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devramps_core::Error;
use rusqlite::Connection;
use rusqlite::ffi::ErrorCode;

#[cfg(doc)]
use devramps_core::backend::{DeploymentLock, EventStore};

pub use schema::SCHEMA_VERSION;

/// How long a call waits for another process's write to finish before failing with
/// [`Error::Unavailable`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The durable event store and lease service of one machine, in one SQLite file.
///
/// See the [module docs](self) for the file's layout, durability and what several processes
/// on one file may expect. Clones share one connection.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The backend's name in errors: "local store `PATH`".
    name: String,
    conn: Mutex<Connection>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// Opens the store in the file at `path`, creating the file, its parent directories and
    /// the schema when they do not exist.
    ///
    /// This blocks (it opens the file and may wait for another process's write lock, up to
    /// [`BUSY_TIMEOUT`]); call it before the async work starts, or on a blocking thread.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the directories or the file cannot be created or opened, when
    /// the file is not an SQLite database or not a devramps store, or when it was written by a
    /// newer devramps (schema version above [`SCHEMA_VERSION`]); [`Error::Unavailable`] when
    /// another process held the write lock for longer than [`BUSY_TIMEOUT`].
    pub fn open(path: impl AsRef<Path>) -> devramps_core::Result<LocalStore> {
        let path = path.as_ref().to_path_buf();
        let name = format!("local store `{}`", path.display());
        let conn = schema::open(&path).map_err(|f| f.into_error(&name, "open"))?;
        Ok(LocalStore {
            inner: Arc::new(Inner {
                path,
                name,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The file this store is in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the connection, on the `blocking` thread pool; a failure is reported as
    /// `operation` failing.
    async fn call<T, F>(&self, operation: impl Into<String>, f: F) -> devramps_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let inner = self.inner.clone();
        let operation = operation.into();
        blocking::unblock(move || {
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn).map_err(|failure| failure.into_error(&inner.name, &operation))
        })
        .await
    }
}

/// What went wrong inside a call: SQLite's error (mapped with the call's context afterwards)
/// or an error already said in the contract's terms.
#[derive(Debug)]
enum Failure {
    Sql(rusqlite::Error),
    Said(Error),
    /// A permanent failure of the call, said in words: an [`Error::Backend`].
    Message(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sql(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Said(error)
    }
}

impl Failure {
    /// The contract's error for this failure of `operation` on the store named `backend`.
    fn into_error(self, backend: &str, operation: &str) -> Error {
        match self {
            Failure::Said(error) => error,
            Failure::Message(message) => Error::backend(backend, operation, message),
            Failure::Sql(error) => match error.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable {
                    backend: backend.to_owned(),
                    operation: operation.to_owned(),
                    message: format!(
                        "another process held the database's write lock for more than {}s \
                         ({error}); try again",
                        BUSY_TIMEOUT.as_secs()
                    ),
                    retry_after: None,
                    source: Some(Box::new(error)),
                },
                Some(ErrorCode::NotADatabase) => Error::Backend {
                    backend: backend.to_owned(),
                    operation: operation.to_owned(),
                    message: format!(
                        "the file is not an SQLite database ({error}); give the path of a \
                         devramps store or of a file that does not exist yet"
                    ),
                    source: Some(Box::new(error)),
                },
                _ => Error::backend_from(backend, operation, error),
            },
        }
    }
}

/// A corrupt-file error: `what` was found, and what it means.
fn corrupt(what: String) -> Failure {
    Failure::Message(format!(
        "{what}; the file was changed by something other than devramps, restore it from a \
         backup"
    ))
}

//! The event store: each pipeline's append-only log (L19), written with compare-and-swap (L21).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One stored event: its sequence number in the stream (1, 2, 3, ...) and its JSON payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the stream, starting at 1, without gaps.
    pub seq: u64,
    /// The event, as the lifecycle serialized it.
    pub payload: serde_json::Value,
}

/// Options of [`EventStore::append`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// The fencing token of the writer's lease. The store remembers the highest token it has
    /// accepted for the stream and refuses appends that present a lower one.
    pub fencing_token: Option<u64>,
}

/// A saved fold of a stream up to `seq`, so that loading need not replay from the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last event included.
    pub seq: u64,
    /// The folded state, as the lifecycle serialized it.
    pub state: serde_json::Value,
}

/// Durable, ordered storage of event streams (one per pipeline).
///
/// # Contract
///
/// - `append(stream, expected_last, events, ..)` writes all `events` after sequence number
///   `expected_last` (0 for an empty stream) and returns the new last sequence number, or fails
///   with [`Error::Conflict`] and writes nothing when the stream's last sequence number is not
///   `expected_last`. Appends are atomic: all events or none. Appending an empty list checks
///   `expected_last` and writes nothing.
/// - With `fencing_token: Some(t)`, an append fails with [`Error::Conflict`] (writing nothing)
///   when a higher token was accepted for the stream before; otherwise `t` becomes the
///   stream's highest accepted token.
/// - Sequence numbers start at 1 and have no gaps; `read(stream, after, limit)` returns the
///   events with `seq > after` in order (at most `limit`), and an unknown stream is empty.
/// - What `append` acknowledged is durable: every later `read`, by any instance sharing the
///   store, sees it.
/// - `streams` lists every stream with at least one event, sorted.
/// - Snapshots are optional: a store without them fails `save_snapshot` with
///   [`Error::NotSupported`] and returns `Ok(None)` from `load_snapshot`.
#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// Appends events with compare-and-swap on the last sequence number.
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64>;

    /// Reads the events after `after`, in order.
    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>>;

    /// The last sequence number of a stream (0 when empty).
    async fn last_seq(&self, stream: &str) -> Result<u64>;

    /// Every non-empty stream, sorted.
    async fn streams(&self) -> Result<Vec<String>>;

    /// Saves a snapshot of a stream.
    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        let _ = (stream, snapshot);
        Err(Error::not_supported(
            "snapshots",
            std::any::type_name::<Self>(),
        ))
    }

    /// The latest snapshot of a stream, if any.
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        let _ = stream;
        Ok(None)
    }
}

/// A shared [`EventStore`].
pub type DynEventStore = Arc<dyn EventStore>;

/// Conveniences over any [`EventStore`].
#[async_trait]
pub trait EventStoreExt: EventStore {
    /// Every event of a stream, in order.
    async fn read_all(&self, stream: &str) -> Result<Vec<StoredEvent>> {
        self.read(stream, 0, None).await
    }
}

impl<T: EventStore + ?Sized> EventStoreExt for T {}

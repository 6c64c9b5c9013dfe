//! [`InMemoryEventStore`]: event streams held in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_core::{Error, Result};

#[derive(Debug, Default)]
struct Stream {
    events: Vec<StoredEvent>,
    highest_token: Option<u64>,
    snapshot: Option<Snapshot>,
}

impl Stream {
    fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.seq)
    }
}

/// An [`EventStore`] held in memory: the embedded default and the store of simulations.
///
/// It keeps the whole contract: compare-and-swap appends that are atomic (an append either
/// writes every event or nothing), fencing tokens per stream (a failed append accepts no
/// token), sequence numbers from 1 without gaps, streams listed in sorted order, and
/// snapshots (the latest saved one per stream is kept). Every operation takes one mutex, so
/// concurrent callers see a single total order of appends.
///
/// Clones share the same streams, as several engine instances would share one store.
/// Nothing survives the process.
///
/// ```
/// use devramps_core::backend::{AppendOptions, EventStore};
/// use devramps_memory::InMemoryEventStore;
///
/// let store = InMemoryEventStore::new();
/// let other_instance = store.clone();
/// futures::executor::block_on(async {
///     let last = store
///         .append("api", 0, vec![serde_json::json!({"type": "Pushed"})], AppendOptions::default())
///         .await
///         .unwrap();
///     assert_eq!(last, 1);
///     assert_eq!(other_instance.last_seq("api").await.unwrap(), 1);
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryEventStore {
    streams: Arc<Mutex<BTreeMap<String, Stream>>>,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryEventStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Stream>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The highest fencing token accepted for `stream`, if any (for tests and inspection).
    pub fn highest_token(&self, stream: &str) -> Option<u64> {
        self.lock().get(stream).and_then(|s| s.highest_token)
    }

    /// The number of events in every stream together.
    pub fn total_events(&self) -> usize {
        self.lock().values().map(|s| s.events.len()).sum()
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        let mut streams = self.lock();
        let (last, highest) = streams
            .get(stream)
            .map_or((0, None), |s| (s.last_seq(), s.highest_token));
        if last != expected_last {
            return Err(Error::Conflict {
                what: format!(
                    "append to stream `{stream}` expected last seq {expected_last} but it is \
                     {last}; re-read the stream and decide again"
                ),
            });
        }
        if let (Some(token), Some(highest)) = (options.fencing_token, highest)
            && token < highest
        {
            return Err(Error::Conflict {
                what: format!(
                    "append to stream `{stream}` presented fencing token {token} but token \
                     {highest} was accepted before; the writer's lease was lost"
                ),
            });
        }
        if events.is_empty() && options.fencing_token.is_none() {
            return Ok(last);
        }
        let entry = streams.entry(stream.to_owned()).or_default();
        if let Some(token) = options.fencing_token {
            entry.highest_token = Some(token.max(highest.unwrap_or(0)));
        }
        entry.events.extend(
            events
                .into_iter()
                .zip(last + 1..)
                .map(|(payload, seq)| StoredEvent { seq, payload }),
        );
        Ok(entry.last_seq())
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let streams = self.lock();
        let Some(s) = streams.get(stream) else {
            return Ok(Vec::new());
        };
        // Seqs are 1..=n at indices 0..n, so the events after `after` start at index `after`.
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(s.events.len());
        let rest = &s.events[start..];
        let take = limit.unwrap_or(rest.len()).min(rest.len());
        Ok(rest[..take].to_vec())
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        Ok(self.lock().get(stream).map_or(0, Stream::last_seq))
    }

    async fn streams(&self) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .iter()
            .filter(|(_, s)| !s.events.is_empty())
            .map(|(name, _)| name.clone())
            .collect())
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        let mut streams = self.lock();
        let last = streams.get(stream).map_or(0, Stream::last_seq);
        if snapshot.seq > last {
            return Err(Error::Conflict {
                what: format!(
                    "snapshot of stream `{stream}` at seq {} is ahead of its last seq {last}",
                    snapshot.seq
                ),
            });
        }
        streams.entry(stream.to_owned()).or_default().snapshot = Some(snapshot);
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        Ok(self.lock().get(stream).and_then(|s| s.snapshot.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::executor::block_on;
    use serde_json::json;

    use super::*;

    #[test]
    fn clones_share_streams() {
        let a = InMemoryEventStore::new();
        let b = a.clone();
        block_on(async {
            a.append("s", 0, vec![json!(1)], AppendOptions::default())
                .await
                .unwrap();
            assert_eq!(b.read("s", 0, None).await.unwrap()[0].payload, json!(1));
            assert_eq!(b.streams().await.unwrap(), ["s"]);
        });
        assert_eq!(a.total_events(), 1);
    }

    #[test]
    fn fencing_token_is_remembered_only_on_success() {
        let store = InMemoryEventStore::new();
        let fenced = |t| AppendOptions {
            fencing_token: Some(t),
        };
        block_on(async {
            store
                .append("s", 0, vec![json!(1)], fenced(3))
                .await
                .unwrap();
            assert!(
                store
                    .append("s", 0, vec![json!(2)], fenced(9))
                    .await
                    .is_err()
            );
            assert_eq!(store.highest_token("s"), Some(3));
            // An empty append still checks and records its token.
            store.append("s", 1, vec![], fenced(4)).await.unwrap();
            assert_eq!(store.highest_token("s"), Some(4));
            assert_eq!(store.last_seq("s").await.unwrap(), 1);
        });
    }

    #[test]
    fn snapshot_ahead_of_the_log_is_refused() {
        let store = InMemoryEventStore::new();
        let snapshot = Snapshot {
            seq: 1,
            state: json!({}),
        };
        block_on(async {
            let err = store.save_snapshot("s", snapshot).await.unwrap_err();
            assert!(matches!(err, Error::Conflict { .. }), "{err}");
            assert_eq!(store.load_snapshot("s").await.unwrap(), None);
        });
    }
}

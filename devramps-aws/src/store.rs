//! [`S3EventStore`]: each stream is a chain of immutable batch objects.
//!
//! # Layout
//!
//! An append writes exactly one object, the batch
//! `streams/<s>/log/<n>-<first>.json` (`n` = 1, 2, 3, ... the batch's place in the chain,
//! `first` = the seq of its first event; both zero-padded to 20 digits, so keys sort in chain
//! order), holding its events, `first`, `count` and `token`: the highest fencing token the
//! stream had accepted once this batch is in. One object per append makes an append atomic.
//!
//! # Why races are safe
//!
//! - *Compare-and-swap.* A writer that saw batch `n` as the last writes batch `n + 1` with
//!   `If-None-Match: *`. Everything in the key (`n + 1` and `first` = end of batch `n` + 1)
//!   follows from batch `n`, so every writer racing after batch `n` PUTs the same key and S3
//!   lets exactly one create it; the others get 412, re-read, and answer
//!   [`Error::Conflict`] when the last seq is no longer what they expected.
//! - *Fencing.* The highest accepted token lives in the chain itself, in the last batch. An
//!   append with token `t` is refused when the last batch's token is higher; otherwise it
//!   writes `max(t, token)` into its batch. An empty append that raises the token writes an
//!   empty batch (a *fence batch*), which is how the engine's new lease holder fences a stream
//!   (an empty append with its new token). The check and the write cannot be separated by a
//!   racer: an old holder that read batch `n` (token `t_old`) before the new holder wrote its
//!   fence batch `n + 1` PUTs the same key `n + 1` and gets 412; re-reading, it sees the higher
//!   token and is refused. So a token lower than one accepted before is never written after
//!   it, across any number of processes, without a separate fence object.
//! - *Ambiguous writes.* When a PUT times out or its connection drops, the store reads the key
//!   back and compares the bytes (each batch carries a random writer nonce, so equal bytes
//!   mean this very write) before it answers: nothing is reported lost that landed, and
//!   nothing is written twice.
//!
//! # Caching
//!
//! Batches are immutable: an instance fetches each one at most once and keeps it (and the keys
//! it listed) in memory; later reads list only the keys after the last one known
//! (`start-after`). An append after this instance's own append goes straight to the next key
//! without listing (a 412 sends it to re-list), so an append usually costs one PUT.
//!
//! # Snapshots
//!
//! `streams/<s>/snapshot.json` holds the latest snapshot and, when the saving instance knew
//! it, its *anchor*: the number, first and last seq of the batch the snapshot ends with. An
//! instance that loads a snapshot before knowing anything of the chain starts its chain at
//! the anchor, so reading the tail after the snapshot lists only the keys after the anchor
//! (`start-after`) instead of the whole chain; the first of them must start right after the
//! anchor's end. A read of events before the anchor lists the chain from the start.

//! # Objects the store did not write
//!
//! A key under `log/` that is not `<n>-<first>.json`, a batch number that skips one, a batch
//! whose `first` does not follow on from the one before (a gap or an overlap), or a body that
//! is not a batch, fails the call with [`Error::Backend`] naming the object's key: never a
//! panic and never a silently shortened log. Objects outside `<prefix>/` are not looked at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::s3::{Condition, Put};
use crate::{S3Location, decode_segment, encode_segment};

/// How many times an append re-reads the chain after losing a race to a write that did not
/// decide its outcome (another writer's fence batch) before it answers [`Error::Conflict`].
const APPEND_ROUNDS: usize = 16;

/// An [`EventStore`] on S3 (with snapshots and fencing tokens); see the [module](self) docs.
/// Clones share their cache.
#[derive(Clone, Debug)]
pub struct S3EventStore {
    location: S3Location,
    chains: Arc<Mutex<HashMap<String, Chain>>>,
}

/// What an instance knows of one stream's chain.
#[derive(Debug, Default)]
struct Chain {
    /// Whether `keys` was ever listed (else the chain may have batches not known here).
    listed: bool,
    /// How many batches come before `keys[0]` and are not known here: 0 after a listing
    /// from the start; the anchor's place after loading a snapshot that names one.
    offset: u64,
    /// The last seq of `keys[0]` when it is a snapshot's anchor (its body not read): the
    /// batch after it must start right after.
    anchor_end: Option<u64>,
    /// The batches' keys in chain order (`keys[i]` is batch `offset + i + 1`).
    keys: Vec<BatchKey>,
    /// The bodies fetched so far, by batch number.
    bodies: HashMap<u64, Arc<Batch>>,
}

#[derive(Clone, Debug)]
struct BatchKey {
    n: u64,
    first: u64,
    key: String,
}

/// The body of a batch object.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    first: u64,
    count: u64,
    /// The highest fencing token accepted for the stream once this batch is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<u64>,
    /// A random nonce of the writing call, so that equal bytes read back mean this write.
    writer: String,
    events: Vec<serde_json::Value>,
}

/// What a snapshot object holds: the snapshot, and the batch it ends with (`anchor`), so
/// that a new instance lists only the batches after it (older objects have no anchor).
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    seq: u64,
    state: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anchor: Option<Anchor>,
}

/// The batch a snapshot ends with: its number, first and last seq.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Anchor {
    n: u64,
    first: u64,
    end: u64,
}

/// The end of a chain: last batch number, last seq, highest token.
#[derive(Clone, Copy, Debug, Default)]
struct Tip {
    n: u64,
    last: u64,
    token: Option<u64>,
}

fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(t);
    h.write_u32(std::process::id());
    format!("{:016x}{:08x}", h.finish(), std::process::id())
}

impl S3EventStore {
    /// A store at `location`. Several instances (in one process or many) may share a location.
    pub fn new(location: S3Location) -> Self {
        S3EventStore {
            location,
            chains: Arc::default(),
        }
    }

    /// Where it stores.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    fn stream_dir(&self, stream: &str) -> String {
        self.location
            .key(&format!("streams/{}", encode_segment(stream)))
    }

    fn log_prefix(&self, stream: &str) -> String {
        format!("{}/log/", self.stream_dir(stream))
    }

    fn batch_key(&self, stream: &str, n: u64, first: u64) -> String {
        format!("{}{n:020}-{first:020}.json", self.log_prefix(stream))
    }

    fn chains(&self) -> std::sync::MutexGuard<'_, HashMap<String, Chain>> {
        self.chains.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bad_object(&self, stream: &str, key: &str, what: impl std::fmt::Display) -> Error {
        Error::backend(
            "s3",
            format!("read stream `{stream}`"),
            format!(
                "object `{}` was not written by this store or is damaged: {what}; move it out \
                 of the prefix or restore it",
                self.location.url(key)
            ),
        )
    }

    /// Lists the batch keys after the last one known, checks they continue the chain, and
    /// records them.
    async fn refresh(&self, stream: &str) -> Result<()> {
        let prefix = self.log_prefix(stream);
        let (last_known, anchor) = {
            let chains = self.chains();
            let chain = chains.get(stream);
            let last_known = chain.and_then(|c| c.keys.last().cloned());
            // The anchor is the last key known: the next batch starts right after its end.
            let anchor = chain
                .filter(|c| c.keys.len() == 1)
                .and_then(|c| c.anchor_end);
            (last_known, anchor)
        };
        let listed = self
            .location
            .list(&prefix, last_known.as_ref().map(|k| k.key.as_str()), false)
            .await?;
        let mut previous = last_known.clone();
        let mut new = Vec::with_capacity(listed.len());
        for key in listed {
            let parsed = key
                .strip_prefix(&prefix)
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|name| name.split_once('-'))
                .filter(|(n, first)| n.len() == 20 && first.len() == 20)
                .and_then(|(n, first)| Some((n.parse::<u64>().ok()?, first.parse::<u64>().ok()?)));
            let Some((n, first)) = parsed else {
                return Err(self.bad_object(
                    stream,
                    &key,
                    "its name is not `<20-digit batch number>-<20-digit first seq>.json`",
                ));
            };
            let (want_n, min_first) = previous.as_ref().map_or((1, 1), |p| (p.n + 1, p.first));
            if n != want_n {
                return Err(self.bad_object(
                    stream,
                    &key,
                    format_args!(
                        "batch {n} where batch {want_n} was expected (a gap in the chain)"
                    ),
                ));
            }
            if new.is_empty()
                && let Some(end) = anchor
                && first != end + 1
            {
                return Err(self.bad_object(
                    stream,
                    &key,
                    format_args!(
                        "its first seq {first} does not follow seq {end}, the end of the batch the snapshot names"
                    ),
                ));
            }
            if first < min_first || (n == 1 && first != 1) {
                return Err(self.bad_object(
                    stream,
                    &key,
                    format_args!(
                        "its first seq {first} goes backwards (expected at least {min_first})"
                    ),
                ));
            }
            let batch = BatchKey { n, first, key };
            previous = Some(batch.clone());
            new.push(batch);
        }
        let mut chains = self.chains();
        let chain = chains.entry(stream.to_owned()).or_default();
        // Another call may have extended (or reset) the chain meanwhile; keep what continues
        // it, and only that.
        let known = chain.offset + chain.keys.len() as u64;
        let mut new = new.into_iter().filter(|k| k.n > known).peekable();
        if new.peek().is_none_or(|k| k.n == known + 1) {
            chain.keys.extend(new);
            chain.listed = true;
        }
        Ok(())
    }

    /// The body of batch `n` (1-based), fetched once and checked against its key and the
    /// batch after it.
    async fn batch(&self, stream: &str, n: u64) -> Result<Arc<Batch>> {
        let (key, next_first) = {
            let chains = self.chains();
            let chain = chains.get(stream);
            if let Some(body) = chain.and_then(|c| c.bodies.get(&n)) {
                return Ok(body.clone());
            }
            let keys = chain.map(|c| c.keys.as_slice()).unwrap_or_default();
            let index = n
                .checked_sub(chain.map_or(0, |c| c.offset) + 1)
                .and_then(|i| usize::try_from(i).ok());
            let Some(key) = index.and_then(|i| keys.get(i)) else {
                return Err(Error::backend(
                    "s3",
                    format!("read stream `{stream}`"),
                    format!("batch {n} is not known"),
                ));
            };
            let next_first = index
                .and_then(|i| keys.get(i + 1))
                .map(|k| (k.first, k.key.clone()));
            (key.clone(), next_first)
        };
        let Some((bytes, _)) = self.location.get(&key.key).await? else {
            return Err(self.bad_object(
                stream,
                &key.key,
                "it was listed but is gone (batches are never deleted)",
            ));
        };
        let batch: Batch = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad_object(
                stream,
                &key.key,
                format_args!("its body is not a batch: {e}"),
            )
        })?;
        if batch.first != key.first || batch.count != batch.events.len() as u64 {
            return Err(self.bad_object(
                stream,
                &key.key,
                format_args!(
                    "its body says first {} and count {} with {} events, its name says first {}",
                    batch.first,
                    batch.count,
                    batch.events.len(),
                    key.first
                ),
            ));
        }
        if let Some((next_first, next_key)) = next_first
            && batch.first + batch.count != next_first
        {
            return Err(self.bad_object(
                stream,
                &next_key,
                format_args!(
                    "it starts at seq {next_first} but the batch before it ends at seq {} (a gap or an overlap)",
                    batch.first + batch.count - 1
                ),
            ));
        }
        let batch = Arc::new(batch);
        self.chains()
            .entry(stream.to_owned())
            .or_default()
            .bodies
            .insert(n, batch.clone());
        Ok(batch)
    }

    /// The end of the chain as known here (listing first when `fresh` or never listed).
    async fn tip(&self, stream: &str, fresh: bool) -> Result<Tip> {
        let listed = self.chains().get(stream).is_some_and(|c| c.listed);
        if fresh || !listed {
            self.refresh(stream).await?;
        }
        let n = self
            .chains()
            .get(stream)
            .map_or(0, |c| c.offset + c.keys.len() as u64);
        if n == 0 {
            return Ok(Tip::default());
        }
        let batch = self.batch(stream, n).await?;
        Ok(Tip {
            n,
            last: batch.first + batch.count - 1,
            token: batch.token,
        })
    }

    /// The batch known here (with its body) that ends exactly at `seq`: the anchor of a
    /// snapshot at `seq`. `None` when it is not known (the snapshot is then saved without one).
    fn anchor(&self, stream: &str, seq: u64) -> Option<Anchor> {
        let chains = self.chains();
        let chain = chains.get(stream)?;
        let key = chain.keys.iter().rev().find(|k| k.first <= seq)?;
        let body = chain.bodies.get(&key.n)?;
        (body.count > 0 && body.first + body.count - 1 == seq).then_some(Anchor {
            n: key.n,
            first: key.first,
            end: seq,
        })
    }

    /// After loading a snapshot with `anchor`: an instance that knows nothing of the chain yet
    /// starts it at the anchor, so that reading the tail lists only the batches after it (a
    /// read of earlier events lists from the start; see [`EventStore::read`] here).
    fn start_at(&self, stream: &str, anchor: Anchor) {
        if anchor.n == 0 || anchor.first == 0 || anchor.end < anchor.first {
            return;
        }
        let key = self.batch_key(stream, anchor.n, anchor.first);
        let mut chains = self.chains();
        let chain = chains.entry(stream.to_owned()).or_default();
        if chain.listed || !chain.keys.is_empty() {
            return;
        }
        chain.offset = anchor.n - 1;
        chain.anchor_end = Some(anchor.end);
        chain.keys.push(BatchKey {
            n: anchor.n,
            first: anchor.first,
            key,
        });
    }

    fn conflict(stream: &str, what: String) -> Error {
        Error::Conflict {
            what: format!("append to `{stream}`: {what}"),
        }
    }
}

#[async_trait]
impl EventStore for S3EventStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        let writer = nonce();
        // The cached tip first; any doubt (a mismatch that could be staleness, a lost PUT)
        // re-lists. Seqs and tokens only grow, so a cached tip already past `expected_last` or
        // already above the token decides the conflict without listing.
        let mut fresh = false;
        for _ in 0..APPEND_ROUNDS {
            let tip = self.tip(stream, fresh).await?;
            if let (Some(t), Some(accepted)) = (options.fencing_token, tip.token)
                && t < accepted
            {
                return Err(Self::conflict(
                    stream,
                    format!(
                        "fencing token {t} is lower than token {accepted}, accepted before (a newer lease holder writes this stream)"
                    ),
                ));
            }
            if tip.last != expected_last {
                if tip.last < expected_last && !fresh {
                    fresh = true;
                    continue;
                }
                return Err(Self::conflict(
                    stream,
                    format!(
                        "expected last seq {expected_last}, the stream is at {}",
                        tip.last
                    ),
                ));
            }
            let raises = options
                .fencing_token
                .is_some_and(|t| tip.token.is_none_or(|a| t > a));
            if events.is_empty() && !raises {
                if !fresh {
                    fresh = true;
                    continue;
                }
                return Ok(tip.last);
            }
            let batch = Batch {
                first: tip.last + 1,
                count: events.len() as u64,
                token: options.fencing_token.max(tip.token),
                writer: writer.clone(),
                events: events.clone(),
            };
            let body = serde_json::to_vec(&batch).map_err(|e| {
                Error::backend_from("s3", format!("encode an append to `{stream}`"), e)
            })?;
            let n = tip.n + 1;
            let key = self.batch_key(stream, n, batch.first);
            match self.location.put_if(&key, body, Condition::Absent).await? {
                Put::Written(_) => {
                    let last = tip.last + batch.count;
                    let mut chains = self.chains();
                    let chain = chains.entry(stream.to_owned()).or_default();
                    if chain.offset + chain.keys.len() as u64 == tip.n {
                        chain.keys.push(BatchKey {
                            n,
                            first: batch.first,
                            key,
                        });
                    }
                    chain.bodies.insert(n, Arc::new(batch));
                    return Ok(last);
                }
                Put::Lost => fresh = true,
            }
        }
        Err(Self::conflict(
            stream,
            format!("lost {APPEND_ROUNDS} races in a row to other writers; re-read and try again"),
        ))
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        // Known from a snapshot's anchor on, but asked for earlier events: list from the start.
        if let Some(c) = self.chains().get_mut(stream)
            && c.offset > 0
            && c.keys.first().is_none_or(|k| after + 1 < k.first)
        {
            (c.offset, c.anchor_end, c.listed) = (0, None, false);
            c.keys.clear();
        }
        self.refresh(stream).await?;
        let keys: Vec<BatchKey> = self
            .chains()
            .get(stream)
            .map(|c| c.keys.clone())
            .unwrap_or_default();
        let limit = limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if out.len() >= limit {
                break;
            }
            // Batches that end at or before `after` (known from the next key) are skipped
            // unread.
            if keys.get(i + 1).is_some_and(|next| next.first <= after + 1) {
                continue;
            }
            let batch = self.batch(stream, key.n).await?;
            for (seq, payload) in (batch.first..).zip(&batch.events) {
                if seq > after && out.len() < limit {
                    out.push(StoredEvent {
                        seq,
                        payload: payload.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        Ok(self.tip(stream, true).await?.last)
    }

    async fn streams(&self) -> Result<Vec<String>> {
        let prefix = self.location.key("streams/");
        let dirs = self.location.list(&prefix, None, true).await?;
        let mut out = Vec::new();
        for dir in dirs {
            let segment = dir
                .strip_prefix(&prefix)
                .and_then(|s| s.strip_suffix('/'))
                .unwrap_or(&dir);
            let Some(stream) = decode_segment(segment) else {
                return Err(Error::backend(
                    "s3",
                    "list streams",
                    format!(
                        "`{}` is not a stream this store wrote (bad name encoding)",
                        self.location.url(&dir)
                    ),
                ));
            };
            if self.tip(&stream, true).await?.last > 0 {
                out.push(stream);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        let key = format!("{}/snapshot.json", self.stream_dir(stream));
        let body = SnapshotBody {
            anchor: self.anchor(stream, snapshot.seq),
            seq: snapshot.seq,
            state: snapshot.state,
        };
        let body = serde_json::to_vec(&body).map_err(|e| {
            Error::backend_from("s3", format!("encode a snapshot of `{stream}`"), e)
        })?;
        self.location.put_plain(&key, body).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        let key = format!("{}/snapshot.json", self.stream_dir(stream));
        let Some((bytes, _)) = self.location.get(&key).await? else {
            return Ok(None);
        };
        let body: SnapshotBody = serde_json::from_slice(&bytes).map_err(|e| {
            self.bad_object(
                stream,
                &key,
                format_args!("its body is not a snapshot: {e}"),
            )
        })?;
        if let Some(anchor) = body.anchor {
            self.start_at(stream, anchor);
        }
        Ok(Some(Snapshot {
            seq: body.seq,
            state: body.state,
        }))
    }
}

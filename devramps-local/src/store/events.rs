//! [`EventStore`] on the `streams`, `events` and `snapshots` tables.

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Failure, LocalStore, corrupt};

/// The largest number SQLite's INTEGER holds; sequence numbers and tokens must fit.
const MAX: u64 = i64::MAX as u64;

/// `(last_seq, highest_token)` of a stream, `(0, None)` when it has no row.
fn stream_row(conn: &Connection, stream: &str) -> rusqlite::Result<(u64, Option<u64>)> {
    Ok(conn
        .prepare_cached("SELECT last_seq, highest_token FROM streams WHERE name = ?1")?
        .query_row([stream], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or((0, None)))
}

fn too_large(what: &str, value: u64) -> Failure {
    Failure::Message(format!("{what} {value} is above the store's limit {MAX}"))
}

/// The compare-and-swap append of the contract, in one `BEGIN IMMEDIATE` transaction.
fn append(
    conn: &mut Connection,
    stream: &str,
    expected_last: u64,
    events: &[serde_json::Value],
    token: Option<u64>,
) -> Result<u64, Failure> {
    if let Some(token) = token.filter(|t| *t > MAX) {
        return Err(too_large("fencing token", token));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (last, highest) = stream_row(&tx, stream)?;
    if last != expected_last {
        return Err(Error::Conflict {
            what: format!(
                "append to stream `{stream}` expected last seq {expected_last} but it is \
                 {last}; re-read the stream and decide again"
            ),
        }
        .into());
    }
    if let (Some(token), Some(highest)) = (token, highest)
        && token < highest
    {
        return Err(Error::Conflict {
            what: format!(
                "append to stream `{stream}` presented fencing token {token} but token \
                 {highest} was accepted before; the writer's lease was lost"
            ),
        }
        .into());
    }
    if events.is_empty() && token.is_none() {
        return Ok(last);
    }
    let new_last = last + events.len() as u64;
    if new_last > MAX {
        return Err(too_large("sequence number", new_last));
    }
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO events (stream, seq, payload) VALUES (?1, ?2, ?3)")?;
        for (seq, event) in (last + 1..).zip(events) {
            let payload = serde_json::to_string(event)
                .map_err(|e| Failure::Message(format!("cannot encode event {seq}: {e}")))?;
            insert.execute(params![stream, seq, payload])?;
        }
    }
    let highest = match (token, highest) {
        (Some(t), Some(h)) => Some(t.max(h)),
        (t, h) => t.or(h),
    };
    tx.prepare_cached(
        "INSERT INTO streams (name, last_seq, highest_token) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET last_seq = ?2, highest_token = ?3",
    )?
    .execute(params![stream, new_last, highest])?;
    tx.commit()?;
    Ok(new_last)
}

/// The events of `stream` after `after`, checked to be contiguous and to be JSON.
fn read(
    conn: &Connection,
    stream: &str,
    after: u64,
    limit: Option<usize>,
) -> Result<Vec<StoredEvent>, Failure> {
    let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let mut select = conn.prepare_cached(
        "SELECT seq, payload FROM events WHERE stream = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = select.query(params![stream, after.min(MAX), limit])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: u64 = row.get(0)?;
        let expected = after + events.len() as u64 + 1;
        if seq != expected {
            return Err(corrupt(format!(
                "stream `{stream}` has no event {expected} (the next one is {seq})"
            )));
        }
        let text: String = row.get(1)?;
        let payload = serde_json::from_str(&text).map_err(|e| {
            corrupt(format!(
                "event {seq} of stream `{stream}` is not valid JSON ({e})"
            ))
        })?;
        events.push(StoredEvent { seq, payload });
    }
    Ok(events)
}

#[async_trait]
impl EventStore for LocalStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        let s = stream.to_owned();
        self.call(format!("append to stream `{stream}`"), move |conn| {
            append(conn, &s, expected_last, &events, options.fencing_token)
        })
        .await
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let s = stream.to_owned();
        self.call(format!("read stream `{stream}`"), move |conn| {
            read(conn, &s, after, limit)
        })
        .await
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        let s = stream.to_owned();
        self.call(format!("read the last seq of `{stream}`"), move |conn| {
            Ok(stream_row(conn, &s)?.0)
        })
        .await
    }

    async fn streams(&self) -> Result<Vec<String>> {
        self.call("list the streams", |conn| {
            let mut select =
                conn.prepare_cached("SELECT name FROM streams WHERE last_seq > 0 ORDER BY name")?;
            let names = select
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
        .await
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        let s = stream.to_owned();
        self.call(format!("save a snapshot of `{stream}`"), move |conn| {
            let state = serde_json::to_string(&snapshot.state)
                .map_err(|e| Failure::Message(format!("cannot encode the snapshot: {e}")))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (last, _) = stream_row(&tx, &s)?;
            if snapshot.seq > last {
                return Err(Error::Conflict {
                    what: format!(
                        "snapshot of stream `{s}` at seq {} is ahead of its last seq {last}",
                        snapshot.seq
                    ),
                }
                .into());
            }
            tx.prepare_cached(
                "INSERT INTO snapshots (stream, seq, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (stream) DO UPDATE SET seq = ?2, state = ?3",
            )?
            .execute(params![s, snapshot.seq, state])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        let s = stream.to_owned();
        self.call(format!("load the snapshot of `{stream}`"), move |conn| {
            let row: Option<(u64, String)> = conn
                .prepare_cached("SELECT seq, state FROM snapshots WHERE stream = ?1")?
                .query_row([&s], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((seq, text)) = row else {
                return Ok(None);
            };
            let state = serde_json::from_str(&text).map_err(|e| {
                corrupt(format!(
                    "the snapshot of stream `{s}` at seq {seq} is not valid JSON ({e})"
                ))
            })?;
            Ok(Some(Snapshot { seq, state }))
        })
        .await
    }
}

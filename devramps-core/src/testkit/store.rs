//! Conformance cases of [`EventStore`]: each checks one clause of its `# Contract`.
//!
//! Run them all with [`store_conformance_tests!`](crate::store_conformance_tests). Every case
//! expects a fresh, empty store and panics with a message naming the violated clause.

use serde_json::{Value, json};

use crate::Error;
use crate::backend::{AppendOptions, EventStore, EventStoreExt, Snapshot, StoredEvent};

use super::{Capabilities, ok};

fn event(n: u64) -> Value {
    json!({ "type": "Conformance", "n": n })
}

fn events(from: u64, count: u64) -> Vec<Value> {
    (from..from + count).map(event).collect()
}

fn fenced(token: u64) -> AppendOptions {
    AppendOptions {
        fencing_token: Some(token),
    }
}

#[track_caller]
fn assert_not_supported<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::NotSupported { .. }) => {}
        other => {
            panic!("{what}: the capability is off, expected Error::NotSupported, got {other:?}")
        }
    }
}

/// Without fencing, an append presenting a token fails loudly and writes nothing.
async fn fencing_refused(store: &dyn EventStore, s: &str) {
    let before = seqs(store, s).await;
    assert_not_supported(
        store
            .append(s, before.len() as u64, events(100, 1), fenced(1))
            .await,
        "append with a fencing token",
    );
    assert_eq!(
        seqs(store, s).await,
        before,
        "a refused fenced append writes nothing"
    );
}

/// The stream listing, or `None` (checked to fail loudly) without the capability.
async fn listed(store: &dyn EventStore, caps: &Capabilities) -> Option<Vec<String>> {
    if caps.list_streams {
        Some(ok(store.streams().await, "streams"))
    } else {
        assert_not_supported(store.streams().await, "streams");
        None
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected Error::Conflict, got {other:?}"),
    }
}

async fn seqs(store: &dyn EventStore, stream: &str) -> Vec<u64> {
    ok(store.read_all(stream).await, "read_all")
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// Appending to an empty stream expects 0, numbers events from 1 and returns the last number;
/// expecting anything else on an empty stream is a conflict.
pub async fn append_to_empty_stream(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/empty";
    assert_conflict(
        store
            .append(s, 1, events(1, 1), AppendOptions::default())
            .await,
        "append to an empty stream expecting last seq 1",
    );
    let last = ok(
        store
            .append(s, 0, events(1, 2), AppendOptions::default())
            .await,
        "append to an empty stream expecting 0",
    );
    assert_eq!(
        last, 2,
        "append of 2 events to an empty stream must return 2"
    );
    let read = ok(store.read_all(s).await, "read_all");
    assert_eq!(
        read,
        vec![
            StoredEvent {
                seq: 1,
                payload: event(1)
            },
            StoredEvent {
                seq: 2,
                payload: event(2)
            },
        ],
        "events must be stored with seq 1, 2 and their payloads unchanged"
    );
    assert_eq!(
        ok(store.last_seq(s).await, "last_seq"),
        2,
        "last_seq after 2 events"
    );
}

/// An append whose expected last sequence number is stale (or ahead) fails with
/// [`Error::Conflict`] and writes nothing.
pub async fn cas_conflict_writes_nothing(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/cas";
    ok(
        store
            .append(s, 0, events(1, 2), AppendOptions::default())
            .await,
        "first append",
    );
    for stale in [0, 1, 3, 10] {
        assert_conflict(
            store
                .append(s, stale, events(100, 1), AppendOptions::default())
                .await,
            &format!("append expecting {stale} when the stream's last seq is 2"),
        );
    }
    assert_eq!(
        seqs(store, s).await,
        [1, 2],
        "a conflicting append must write nothing"
    );
    assert_eq!(
        ok(store.last_seq(s).await, "last_seq"),
        2,
        "last_seq after conflicts"
    );
    let last = ok(
        store
            .append(s, 2, events(3, 1), AppendOptions::default())
            .await,
        "append with the right expected seq after conflicts",
    );
    assert_eq!(last, 3, "the next append continues at 3");
}

/// A batch is written entirely or not at all: a successful batch is read back whole and in
/// order, and a refused batch (conflict or fencing) leaves no event of it behind.
pub async fn append_is_atomic(store: &dyn EventStore, caps: &Capabilities) {
    let s = "conformance/atomic";
    let last = ok(
        store
            .append(s, 0, events(1, 5), AppendOptions::default())
            .await,
        "append of a batch of 5",
    );
    assert_eq!(last, 5, "a batch of 5 on an empty stream ends at 5");
    let payloads: Vec<Value> = ok(store.read_all(s).await, "read_all")
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(
        payloads,
        events(1, 5),
        "a batch is stored whole and in order"
    );
    assert_conflict(
        store
            .append(s, 3, events(10, 4), AppendOptions::default())
            .await,
        "stale batch",
    );
    if caps.fencing {
        ok(
            store.append(s, 5, events(6, 1), fenced(7)).await,
            "append with token 7",
        );
        assert_conflict(
            store.append(s, 6, events(20, 3), fenced(6)).await,
            "fenced-off batch",
        );
    } else {
        fencing_refused(store, s).await;
        ok(
            store
                .append(s, 5, events(6, 1), AppendOptions::default())
                .await,
            "append of one more",
        );
    }
    assert_eq!(
        seqs(store, s).await,
        [1, 2, 3, 4, 5, 6],
        "refused batches must leave nothing"
    );
}

/// `read(stream, after, limit)` returns the events with `seq > after`, in order, at most
/// `limit` of them.
pub async fn read_after_and_limit(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/read";
    ok(
        store
            .append(s, 0, events(1, 6), AppendOptions::default())
            .await,
        "append 6",
    );
    let got = |after, limit| async move {
        let read = ok(store.read(s, after, limit).await, "read");
        read.into_iter().map(|e| e.seq).collect::<Vec<u64>>()
    };
    assert_eq!(got(0, None).await, [1, 2, 3, 4, 5, 6], "read after 0");
    assert_eq!(got(4, None).await, [5, 6], "read after 4");
    assert_eq!(
        got(6, None).await,
        Vec::<u64>::new(),
        "read after the last seq"
    );
    assert_eq!(
        got(60, None).await,
        Vec::<u64>::new(),
        "read after beyond the last seq"
    );
    assert_eq!(got(1, Some(2)).await, [2, 3], "read after 1, limit 2");
    assert_eq!(
        got(5, Some(10)).await,
        [6],
        "limit larger than what is left"
    );
    assert_eq!(
        got(0, Some(0)).await,
        Vec::<u64>::new(),
        "limit 0 reads nothing"
    );
    let read = ok(store.read(s, 2, Some(1)).await, "read");
    assert_eq!(
        read[0].payload,
        event(3),
        "read returns the payload of seq 3"
    );
}

/// Sequence numbers run 1, 2, 3, ... without gaps across appends of various sizes.
pub async fn seq_contiguous(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/contiguous";
    let mut last = 0;
    for size in [1, 3, 0, 2, 5, 1] {
        let new_last = ok(
            store
                .append(s, last, events(last + 1, size), AppendOptions::default())
                .await,
            &format!("append of {size} after {last}"),
        );
        assert_eq!(
            new_last,
            last + size,
            "append of {size} after {last} returns the new last"
        );
        last = new_last;
    }
    let all = ok(store.read_all(s).await, "read_all");
    let expected: Vec<StoredEvent> = (1..=last)
        .map(|n| StoredEvent {
            seq: n,
            payload: event(n),
        })
        .collect();
    assert_eq!(
        all, expected,
        "seqs must be contiguous from 1 with their payloads"
    );
    assert_eq!(ok(store.last_seq(s).await, "last_seq"), last, "last_seq");
}

/// A stream never written is empty: no events, last seq 0, not listed, no snapshot.
pub async fn unknown_stream_is_empty(store: &dyn EventStore, caps: &Capabilities) {
    let s = "conformance/never-written";
    assert!(
        ok(store.read(s, 0, None).await, "read").is_empty(),
        "unknown stream reads empty"
    );
    assert_eq!(
        ok(store.last_seq(s).await, "last_seq"),
        0,
        "unknown stream's last seq"
    );
    if let Some(streams) = listed(store, caps).await {
        assert!(
            !streams.iter().any(|x| x == s),
            "unknown stream is listed: {streams:?}"
        );
    }
    assert_eq!(
        ok(store.load_snapshot(s).await, "load_snapshot"),
        None,
        "unknown snapshot"
    );
}

/// `streams` lists every non-empty stream, sorted; streams are independent logs.
pub async fn streams_sorted_and_independent(store: &dyn EventStore, caps: &Capabilities) {
    for (s, count) in [
        ("conformance/b", 2),
        ("conformance/a", 1),
        ("conformance/c/x", 3),
    ] {
        let last = ok(
            store
                .append(s, 0, events(1, count), AppendOptions::default())
                .await,
            &format!("append to {s}"),
        );
        assert_eq!(
            last, count,
            "every stream numbers its own events from 1 ({s})"
        );
    }
    ok(
        store
            .append(
                "conformance/empty-append",
                0,
                vec![],
                AppendOptions::default(),
            )
            .await,
        "empty append to a new stream",
    );
    if let Some(streams) = listed(store, caps).await {
        let mut sorted = streams.clone();
        sorted.sort();
        assert_eq!(streams, sorted, "streams must be sorted");
        let ours: Vec<&str> = streams
            .iter()
            .map(String::as_str)
            .filter(|s| s.starts_with("conformance/"))
            .collect();
        assert_eq!(
            ours,
            ["conformance/a", "conformance/b", "conformance/c/x"],
            "every non-empty stream is listed once; an empty append creates no stream"
        );
    }
    assert_eq!(
        seqs(store, "conformance/a").await,
        [1],
        "streams are independent"
    );
}

/// A fencing token lower than one accepted before is refused (writing nothing); equal and
/// higher tokens are accepted; tokens are per stream; a failed append accepts no token.
pub async fn fencing_tokens(store: &dyn EventStore, caps: &Capabilities) {
    let (s, other) = ("conformance/fenced", "conformance/fenced-other");
    if !caps.fencing {
        return fencing_refused(store, s).await;
    }
    ok(
        store.append(s, 0, events(1, 1), fenced(5)).await,
        "append with token 5",
    );
    assert_conflict(
        store.append(s, 1, events(2, 1), fenced(4)).await,
        "token 4 after 5",
    );
    assert_eq!(
        seqs(store, s).await,
        [1],
        "a fenced-off append writes nothing"
    );
    ok(
        store.append(s, 1, events(2, 1), fenced(5)).await,
        "same token 5 again",
    );
    ok(
        store.append(s, 2, events(3, 1), fenced(9)).await,
        "higher token 9",
    );
    assert_conflict(
        store.append(s, 3, events(4, 1), fenced(5)).await,
        "token 5 after 9",
    );
    assert_conflict(
        store.append(s, 3, vec![], fenced(8)).await,
        "an empty append is fenced too (token 8 after 9)",
    );
    ok(
        store.append(other, 0, events(1, 1), fenced(1)).await,
        "tokens are per stream",
    );
    // A CAS conflict writes nothing, so its token is not accepted either.
    assert_conflict(
        store.append(other, 0, events(9, 1), fenced(50)).await,
        "stale with 50",
    );
    ok(
        store.append(other, 1, events(2, 1), fenced(2)).await,
        "token 2 after a failed append presenting 50 (a failed append accepts no token)",
    );
    assert_eq!(seqs(store, s).await, [1, 2, 3], "fenced stream content");
}

/// An empty append presenting a higher token records the token without writing anything: a new
/// lease holder fences the stream this way before it writes (L21), so the old holder's next
/// append is refused.
pub async fn empty_append_fences(store: &dyn EventStore, caps: &Capabilities) {
    let s = "conformance/fence-empty";
    if !caps.fencing {
        ok(
            store
                .append(s, 0, events(1, 1), AppendOptions::default())
                .await,
            "an unfenced append",
        );
        return fencing_refused(store, s).await;
    }
    ok(
        store.append(s, 0, events(1, 1), fenced(1)).await,
        "the first holder writes with token 1",
    );
    ok(
        store.append(s, 1, vec![], fenced(2)).await,
        "the new holder fences with an empty append of token 2",
    );
    assert_eq!(seqs(store, s).await, [1], "an empty append writes nothing");
    assert_conflict(
        store.append(s, 1, events(2, 1), fenced(1)).await,
        "the old holder (token 1) after the fence",
    );
    ok(
        store.append(s, 1, events(2, 1), fenced(2)).await,
        "the new holder writes",
    );
    assert_eq!(seqs(store, s).await, [1, 2]);
}

/// Appending an empty list checks the expected last seq and writes nothing.
pub async fn empty_append_checks_expected(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/empty-batch";
    assert_eq!(
        ok(
            store.append(s, 0, vec![], AppendOptions::default()).await,
            "empty append at 0"
        ),
        0,
        "an empty append to an empty stream returns 0"
    );
    assert_conflict(
        store.append(s, 1, vec![], AppendOptions::default()).await,
        "empty append expecting 1 on an empty stream",
    );
    ok(
        store
            .append(s, 0, events(1, 2), AppendOptions::default())
            .await,
        "append 2",
    );
    assert_eq!(
        ok(
            store.append(s, 2, vec![], AppendOptions::default()).await,
            "empty append at 2"
        ),
        2,
        "an empty append returns the unchanged last seq"
    );
    assert_conflict(
        store.append(s, 1, vec![], AppendOptions::default()).await,
        "stale empty append",
    );
    assert_eq!(seqs(store, s).await, [1, 2], "empty appends write nothing");
}

/// Two writers appending concurrently with the same expected seq: exactly one wins, the
/// other gets [`Error::Conflict`], and only the winner's events are stored.
pub async fn concurrent_appends_one_wins(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/race";
    ok(
        store
            .append(s, 0, events(1, 1), AppendOptions::default())
            .await,
        "first append",
    );
    let a = store.append(
        s,
        1,
        vec![json!({"writer": "a"}); 2],
        AppendOptions::default(),
    );
    let b = store.append(
        s,
        1,
        vec![json!({"writer": "b"}); 3],
        AppendOptions::default(),
    );
    let (a, b) = futures::future::join(a, b).await;
    let (winner, last) = match (&a, &b) {
        (Ok(last), Err(Error::Conflict { .. })) => ("a", *last),
        (Err(Error::Conflict { .. }), Ok(last)) => ("b", *last),
        _ => panic!("exactly one concurrent append must win, the other conflict: {a:?} / {b:?}"),
    };
    let read = ok(store.read(s, 1, None).await, "read");
    assert_eq!(
        read.len() as u64 + 1,
        last,
        "the winner's return value is the new last seq"
    );
    assert!(
        read.iter()
            .all(|e| e.payload == json!({ "writer": winner })),
        "only the winner's events are stored: {read:?}"
    );
}

/// Snapshots either round-trip (latest saved wins, per stream) or are unsupported:
/// `save_snapshot` fails with [`Error::NotSupported`] and `load_snapshot` returns `None`.
pub async fn snapshot_roundtrip_or_not_supported(store: &dyn EventStore, _: &Capabilities) {
    let s = "conformance/snap";
    ok(
        store
            .append(s, 0, events(1, 3), AppendOptions::default())
            .await,
        "append 3",
    );
    let first = Snapshot {
        seq: 2,
        state: json!({ "folded": 2 }),
    };
    match store.save_snapshot(s, first.clone()).await {
        Err(Error::NotSupported { .. }) => {
            assert_eq!(
                ok(store.load_snapshot(s).await, "load_snapshot"),
                None,
                "a store without snapshots loads None"
            );
            return;
        }
        other => ok(other, "save_snapshot"),
    }
    assert_eq!(
        ok(store.load_snapshot(s).await, "load"),
        Some(first),
        "snapshot round-trip"
    );
    let second = Snapshot {
        seq: 3,
        state: json!({ "folded": 3 }),
    };
    ok(
        store.save_snapshot(s, second.clone()).await,
        "second save_snapshot",
    );
    assert_eq!(
        ok(store.load_snapshot(s).await, "load"),
        Some(second),
        "latest snapshot wins"
    );
    assert_eq!(
        ok(
            store.load_snapshot("conformance/snap-other").await,
            "load other"
        ),
        None,
        "snapshots are per stream"
    );
    assert_eq!(
        seqs(store, s).await,
        [1, 2, 3],
        "snapshots do not change the log"
    );
}

/// The store a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject<B: EventStore>(backend: &B) -> &dyn EventStore {
    backend
}

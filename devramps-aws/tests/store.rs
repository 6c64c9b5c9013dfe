//! S3EventStore beyond the kit, on moto: racing instances, fencing races, objects the store did
//! not write, snapshots, and the cache of immutable batches.

#![allow(clippy::unwrap_used)]

mod support;

use devramps_aws::{S3EventStore, S3Location};
use devramps_core::Error;
use devramps_core::backend::{AppendOptions, EventStore, EventStoreExt, Snapshot};
use serde_json::json;

fn fenced(token: u64) -> AppendOptions {
    AppendOptions {
        fencing_token: Some(token),
    }
}

async fn instance(bucket: &str, counter: Option<support::Counter>) -> S3EventStore {
    S3EventStore::new(S3Location::new(
        support::client(counter).await,
        bucket,
        "team/state",
    ))
}

/// Appends `rounds` single events from `writer`, re-reading the last seq on each conflict.
async fn writer(store: S3EventStore, name: &'static str, rounds: usize) -> usize {
    let mut conflicts = 0;
    for i in 0..rounds {
        loop {
            let last = store.last_seq("api").await.unwrap();
            let event = json!({ "writer": name, "i": i });
            match store
                .append(
                    "api",
                    last,
                    vec![event.clone(), event],
                    AppendOptions::default(),
                )
                .await
            {
                Ok(new) => {
                    assert_eq!(new, last + 2);
                    break;
                }
                Err(Error::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
    conflicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_appends_leave_no_gap_and_no_duplicate() {
    let bucket = support::fresh_bucket().await;
    let (a, b) = (instance(&bucket, None).await, instance(&bucket, None).await);
    let rounds = 15;
    let (ca, cb) = tokio::join!(
        tokio::spawn(writer(a, "a", rounds)),
        tokio::spawn(writer(b, "b", rounds))
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    // A third instance, with nothing cached, reads what is durable.
    let events = instance(&bucket, None).await.read_all("api").await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=(4 * rounds as u64)).collect::<Vec<_>>());
    for writer in ["a", "b"] {
        let mut mine: Vec<u64> = events
            .iter()
            .filter(|e| e.payload["writer"] == writer)
            .map(|e| e.payload["i"].as_u64().unwrap())
            .collect();
        mine.dedup();
        assert_eq!(
            mine,
            (0..rounds as u64).collect::<Vec<_>>(),
            "each of {writer}'s appends is stored once, whole and in order"
        );
    }
    // Pairs stay together: an append is atomic.
    for pair in events.chunks(2) {
        assert_eq!(pair[0].payload, pair[1].payload);
    }
    eprintln!("conflicts: a {ca}, b {cb}");
}

#[tokio::test]
async fn old_holder_is_fenced_out_even_when_it_read_before_the_fence() {
    let bucket = support::fresh_bucket().await;
    let (old, new) = (instance(&bucket, None).await, instance(&bucket, None).await);
    old.append("api", 0, vec![json!(1)], fenced(1))
        .await
        .unwrap();
    // The old holder has read the tip (and cached it) before the new holder fences.
    assert_eq!(old.last_seq("api").await.unwrap(), 1);
    assert_eq!(new.append("api", 1, vec![], fenced(2)).await.unwrap(), 1);
    let refused = old.append("api", 1, vec![json!("late")], fenced(1)).await;
    assert!(
        matches!(&refused, Err(Error::Conflict { what }) if what.contains("token")),
        "the old holder's append after the fence: {refused:?}"
    );
    // Racing the fence itself: whichever lands first, the log never holds the old token's
    // event after the new token was accepted.
    for round in 0..5u64 {
        let last = new.last_seq("api").await.unwrap();
        let (t_old, t_new) = (10 + 2 * round, 11 + 2 * round);
        old.append("api", last, vec![], fenced(t_old))
            .await
            .unwrap();
        let fence = async {
            // The new holder fences like the engine: re-reading on a conflict.
            let mut expected = last;
            loop {
                match new.append("api", expected, vec![], fenced(t_new)).await {
                    Ok(_) => return,
                    Err(Error::Conflict { .. }) => expected = new.last_seq("api").await.unwrap(),
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let (a, ()) = tokio::join!(
            old.append("api", last, vec![json!({ "token": t_old })], fenced(t_old)),
            fence
        );
        let stored = new.read("api", last, None).await.unwrap();
        match a {
            Ok(seq) => assert_eq!(stored.len() as u64, seq - last, "landed before the fence"),
            Err(Error::Conflict { .. }) => assert!(stored.is_empty(), "{stored:?}"),
            Err(e) => panic!("{e}"),
        }
        let after = old
            .append(
                "api",
                new.last_seq("api").await.unwrap(),
                vec![json!("after the fence")],
                fenced(t_old),
            )
            .await;
        assert!(matches!(after, Err(Error::Conflict { .. })), "{after:?}");
    }
    let events = instance(&bucket, None).await.read_all("api").await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.payload != json!("late") && e.payload != json!("after the fence")),
        "{events:?}"
    );
}

#[tokio::test]
async fn snapshots_round_trip_across_instances_and_latest_wins() {
    let bucket = support::fresh_bucket().await;
    let (a, b) = (instance(&bucket, None).await, instance(&bucket, None).await);
    a.append(
        "api",
        0,
        vec![json!(1), json!(2), json!(3)],
        AppendOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(b.load_snapshot("api").await.unwrap(), None);
    let first = Snapshot {
        seq: 2,
        state: json!({ "z": 1, "a": [1, 2] }),
    };
    a.save_snapshot("api", first.clone()).await.unwrap();
    assert_eq!(b.load_snapshot("api").await.unwrap(), Some(first.clone()));
    let loaded = b.load_snapshot("api").await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&loaded.state).unwrap(),
        r#"{"z":1,"a":[1,2]}"#,
        "key order survives"
    );
    let second = Snapshot {
        seq: 3,
        state: json!({ "n": 3 }),
    };
    b.save_snapshot("api", second.clone()).await.unwrap();
    assert_eq!(a.load_snapshot("api").await.unwrap(), Some(second));
    // The tail after the snapshot.
    let tail = a.read("api", loaded.seq, None).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
}

#[tokio::test]
async fn an_instance_fetches_each_batch_once() {
    let bucket = support::fresh_bucket().await;
    let writer = instance(&bucket, None).await;
    let mut last = 0;
    for i in 0..5 {
        last = writer
            .append(
                "api",
                last,
                vec![json!(i), json!(i)],
                AppendOptions::default(),
            )
            .await
            .unwrap();
    }
    let counter = support::Counter::default();
    let reader = instance(&bucket, Some(counter.clone())).await;
    assert_eq!(reader.read_all("api").await.unwrap().len(), 10);
    assert_eq!(counter.gets(), 5, "the first read fetches the 5 batches");
    assert_eq!(reader.read_all("api").await.unwrap().len(), 10);
    assert_eq!(reader.last_seq("api").await.unwrap(), 10);
    assert_eq!(counter.gets(), 5, "reading again fetches nothing again");
    writer
        .append("api", last, vec![json!("new")], AppendOptions::default())
        .await
        .unwrap();
    assert_eq!(reader.read("api", 0, None).await.unwrap().len(), 11);
    assert_eq!(counter.gets(), 6, "only the new batch is fetched");
    assert_eq!(reader.read("api", 10, None).await.unwrap().len(), 1);
    assert_eq!(counter.gets(), 6);

    // The writer's own appends cost one request each once it knows the chain.
    let own = support::Counter::default();
    let appender = instance(&bucket, Some(own.clone())).await;
    let mut last = appender.last_seq("api").await.unwrap();
    let before = own.all.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..4 {
        last = appender
            .append("api", last, vec![json!(i)], AppendOptions::default())
            .await
            .unwrap();
    }
    let requests = own.all.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(requests, 4, "one PUT per append");
}

/// Appends 6 batches of 2 events (seqs 1..=12) and saves a snapshot at seq 8 (the end of batch
/// 4), from `writer`.
async fn six_batches_and_a_snapshot(writer: &S3EventStore) {
    let mut last = 0;
    for i in 0..6 {
        last = writer
            .append("api", last, vec![json!(i), json!(i)], fenced(1))
            .await
            .unwrap();
    }
    let snapshot = Snapshot {
        seq: 8,
        state: json!({ "upto": 8 }),
    };
    writer.save_snapshot("api", snapshot).await.unwrap();
}

#[tokio::test]
async fn a_new_instance_reads_the_tail_after_a_snapshot_without_listing_the_whole_chain() {
    let bucket = support::fresh_bucket().await;
    six_batches_and_a_snapshot(&instance(&bucket, None).await).await;
    let counter = support::Counter::default();
    let reader = instance(&bucket, Some(counter.clone())).await;
    let snapshot = reader.load_snapshot("api").await.unwrap().unwrap();
    assert_eq!(snapshot.seq, 8);
    let tail = reader.read("api", snapshot.seq, None).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [9, 10, 11, 12]
    );
    // The snapshot, one LIST after its anchor (batch 4), batches 5 and 6: not batches 1 to 4.
    assert_eq!(
        counter.gets(),
        3,
        "GETs: the snapshot and the 2 tail batches"
    );
    assert_eq!(counter.all.load(std::sync::atomic::Ordering::SeqCst), 4);
    // Appending and reading from the start still see the whole chain.
    assert_eq!(
        reader
            .append("api", 12, vec![json!("new")], fenced(1))
            .await
            .unwrap(),
        13
    );
    let all = reader.read_all("api").await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=13).collect::<Vec<_>>()
    );
    // A token below the one accepted is still refused by an instance that started at the anchor.
    let late = instance(&bucket, None).await;
    late.load_snapshot("api").await.unwrap();
    assert!(matches!(
        late.append("api", 13, vec![json!("old")], fenced(0)).await,
        Err(Error::Conflict { .. })
    ));
}

#[tokio::test]
async fn a_gap_right_after_a_snapshots_anchor_is_named() {
    let bucket = support::fresh_bucket().await;
    let writer = instance(&bucket, None).await;
    let mut last = 0;
    for i in 0..2 {
        last = writer
            .append(
                "api",
                last,
                vec![json!(i), json!(i)],
                AppendOptions::default(),
            )
            .await
            .unwrap();
    }
    let snapshot = Snapshot {
        seq: last,
        state: json!({}),
    };
    writer.save_snapshot("api", snapshot).await.unwrap();
    // Batch 3 starting at seq 7: seqs 5 and 6 are missing.
    let key = format!("team/state/streams/api/log/{:020}-{:020}.json", 3, 7);
    let body = json!({ "first": 7, "count": 1, "writer": "x", "events": [1] }).to_string();
    support::put_raw(&bucket, &key, &body).await;
    let reader = instance(&bucket, None).await;
    reader.load_snapshot("api").await.unwrap();
    let error = reader.read("api", 4, None).await.unwrap_err().to_string();
    assert!(error.contains(&key), "{error}");
}

//! A bucket holding objects the store did not write: every call that meets one fails with an
//! error naming the object, never a panic and never a silently shortened log; objects outside
//! the prefix are not looked at.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::Error;
use devramps_core::backend::{AppendOptions, DeploymentLock, EventStore, EventStoreExt};
use serde_json::json;

const LOG: &str = "pfx/streams/api/log/";

fn batch_key(n: u64, first: u64) -> String {
    format!("{LOG}{n:020}-{first:020}.json")
}

/// A bucket whose stream `api` has 2 good batches (seqs 1..=3) written by the store.
async fn bucket_with_two_batches() -> (String, S3EventStore) {
    let bucket = support::fresh_bucket().await;
    let store = S3EventStore::new(S3Location::from_env(bucket.clone(), "pfx").await);
    store
        .append("api", 0, vec![json!(1), json!(2)], AppendOptions::default())
        .await
        .unwrap();
    store
        .append("api", 2, vec![json!(3)], AppendOptions::default())
        .await
        .unwrap();
    (bucket, store)
}

async fn fresh_store(bucket: &str) -> S3EventStore {
    S3EventStore::new(S3Location::from_env(bucket, "pfx").await)
}

#[track_caller]
fn assert_names(result: Result<impl std::fmt::Debug, Error>, key: &str, what: &str) {
    match result {
        Err(e @ Error::Backend { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(key),
                "{what}: the error must name `{key}`: {message}"
            );
        }
        other => panic!("{what}: expected an error naming `{key}`, got {other:?}"),
    }
}

#[tokio::test]
async fn corrupt_json_in_a_batch_is_named() {
    let (bucket, _) = bucket_with_two_batches().await;
    let key = batch_key(3, 4);
    support::put_raw(&bucket, &key, "{not json").await;
    let store = fresh_store(&bucket).await;
    assert_names(store.read_all("api").await, &key, "read");
    assert_names(store.last_seq("api").await, &key, "last_seq");
    assert_names(
        store
            .append("api", 3, vec![json!(4)], AppendOptions::default())
            .await,
        &key,
        "append",
    );
    // A read that ends before the bad batch still reads the good ones.
    assert_eq!(store.read("api", 0, Some(3)).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_body_that_disagrees_with_its_name_is_named() {
    let (bucket, _) = bucket_with_two_batches().await;
    let key = batch_key(3, 4);
    let body = json!({"first": 9, "count": 1, "writer": "x", "events": [1]});
    support::put_raw(&bucket, &key, &body.to_string()).await;
    assert_names(
        fresh_store(&bucket).await.read_all("api").await,
        &key,
        "read",
    );
}

#[tokio::test]
async fn a_gap_in_seqs_is_named() {
    let (bucket, _) = bucket_with_two_batches().await;
    // Batch 3 claims to start at seq 6: seqs 4 and 5 are missing.
    let key = batch_key(3, 6);
    let body = json!({"first": 6, "count": 1, "writer": "x", "events": ["six"]});
    support::put_raw(&bucket, &key, &body.to_string()).await;
    let result = fresh_store(&bucket).await.read_all("api").await;
    assert_names(result, &key, "read over a gap in seqs");
}

#[tokio::test]
async fn a_gap_in_batch_numbers_is_named() {
    let (bucket, _) = bucket_with_two_batches().await;
    let key = batch_key(5, 4);
    let body = json!({"first": 4, "count": 1, "writer": "x", "events": [4]});
    support::put_raw(&bucket, &key, &body.to_string()).await;
    let store = fresh_store(&bucket).await;
    assert_names(store.read_all("api").await, &key, "read");
    assert_names(store.streams().await, &key, "streams");
}

#[tokio::test]
async fn a_wrongly_named_object_is_named() {
    let (bucket, _) = bucket_with_two_batches().await;
    for name in ["notes.txt", "00000000000000000003.json", "3-4.json"] {
        let key = format!("{LOG}{name}");
        support::put_raw(&bucket, &key, "{}").await;
        assert_names(
            fresh_store(&bucket).await.read_all("api").await,
            &key,
            "read",
        );
        // Take it away again so the next name is the first bad one.
        support::client(None)
            .await
            .delete_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn objects_outside_the_prefix_are_not_looked_at() {
    let (bucket, _) = bucket_with_two_batches().await;
    support::put_raw(&bucket, "other/streams/api/log/junk", "junk").await;
    support::put_raw(&bucket, "pfx-not-this/streams/api/log/junk", "junk").await;
    support::put_raw(&bucket, "readme.txt", "hello").await;
    let store = fresh_store(&bucket).await;
    assert_eq!(store.read_all("api").await.unwrap().len(), 3);
    assert_eq!(store.streams().await.unwrap(), ["api"]);
}

#[tokio::test]
async fn a_corrupt_snapshot_is_named() {
    let (bucket, store) = bucket_with_two_batches().await;
    let key = "pfx/streams/api/snapshot.json";
    support::put_raw(&bucket, key, "[1, 2").await;
    assert_names(store.load_snapshot("api").await, key, "load_snapshot");
}

#[tokio::test]
async fn a_corrupt_lease_is_named() {
    let bucket = support::fresh_bucket().await;
    let key = "pfx/leases/api%2Fprod.json";
    support::put_raw(&bucket, key, "{\"holder\": 3}").await;
    let lock = S3Lock::new(S3Location::from_env(bucket.clone(), "pfx").await);
    let now = jiff::Timestamp::constant(1_767_632_400, 0);
    let ttl = Duration::from_secs(30);
    assert_names(
        lock.acquire("api/prod", "a", ttl, now).await,
        key,
        "acquire",
    );
    assert_names(lock.current("api/prod", now).await, key, "current");
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    support::endpoint();
    let bucket = support::fresh_bucket_name();
    let store = S3EventStore::new(S3Location::from_env(bucket.clone(), "pfx").await);
    let result = store
        .append("api", 0, vec![json!(1)], AppendOptions::default())
        .await;
    match result {
        Err(e @ Error::Backend { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&bucket) && message.contains("bucket does not exist"),
                "{message}"
            );
        }
        other => panic!("a missing bucket: {other:?}"),
    }
}

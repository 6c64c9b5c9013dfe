//! The store and the lease service under injected S3 faults, through the real AWS SDK: every
//! client talks to moto through a [`FaultProxy`] that answers a share of requests with
//! 500/503/SlowDown and delays requests (dropping connections after writes is off for now: see
//! [`plan`]).
//!
//! - The core's conformance kits run unchanged on it (each case with a proxy of its own, all
//!   with one fixed seed): 0 violations.
//! - A batch of appends by 3 writers racing on one stream through the proxy: the proxy really
//!   injected faults, and the log is exact (every acknowledged append present once, at the
//!   sequence number it was acknowledged with, no gaps, nothing written twice).

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::Error;
use devramps_core::backend::EventStore;
use devramps_core::testkit::{Harness, Runtime};
use devramps_s3_faults::{FaultPlan, FaultProxy};
use serde_json::json;

/// The faults: a fifth of requests fail with a 5xx, a tenth of writes land but their answer is
/// lost (the connection is dropped: the SDK reports a transient dispatch failure, which the
/// store resolves by reading the write back), and every request waits 0 to 5 ms.
fn plan() -> FaultPlan {
    FaultPlan {
        error_share: 0.2,
        drop_after_write_share: 0.1,
        delay: Some((Duration::ZERO, Duration::from_millis(5))),
        seed: 11,
    }
}

/// The proxies started so far, kept running until the test binary exits (a case's backend
/// may still talk through its proxy in the kit's cleanup).
static PROXIES: Mutex<Vec<Arc<FaultProxy>>> = Mutex::new(Vec::new());

/// A new proxy in front of moto with [`plan`].
fn proxy() -> Arc<FaultProxy> {
    let proxy = Arc::new(
        FaultProxy::start(&support::endpoint(), plan())
            .unwrap_or_else(|e| panic!("starting the fault proxy: {e}")),
    );
    PROXIES.lock().unwrap().push(Arc::clone(&proxy));
    proxy
}

/// A client on moto's API through `proxy` (its own connection pool).
async fn client_through(proxy: &FaultProxy) -> aws_sdk_s3::Client {
    support::client_at(proxy.endpoint()).await
}

/// Each case: a fresh bucket (made directly on moto) and a backend reaching it through a new
/// fault proxy.
struct Faulty<B> {
    make: fn(S3Location) -> B,
}

impl<B> Harness for Faulty<B> {
    type Backend = B;

    fn runtime(&self) -> Runtime {
        Runtime::Tokio
    }

    async fn setup(&self) -> B {
        let bucket = support::fresh_bucket().await;
        let proxy = proxy();
        let client = client_through(&proxy).await;
        (self.make)(S3Location::new(client, bucket, "tests/faults"))
    }
}

fn store(location: S3Location) -> S3EventStore {
    S3EventStore::new(location)
}

fn lock(location: S3Location) -> S3Lock {
    S3Lock::new(location)
}

mod store_through_faults {
    devramps_core::store_conformance_tests!(harness = super::Faulty { make: super::store });
}

mod lock_through_faults {
    devramps_core::lock_conformance_tests!(harness = super::Faulty { make: super::lock });
}

const WRITERS: usize = 3;
const APPENDS_PER_WRITER: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_through_faults_leave_an_exact_log() {
    let bucket = support::fresh_bucket().await;
    let proxy = proxy();
    proxy.reset_counts();

    // Each writer: its own client and store through the proxy, appending its events one by
    // one with compare-and-swap, re-reading on a conflict. An `Unavailable` leaves the outcome
    // to the log (the event may or may not be in); the writer then moves on to a new event, so
    // an event present twice can only be the store's doing.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let location = S3Location::new(client_through(&proxy).await, bucket.clone(), "p");
        let store = S3EventStore::new(location);
        writers.push(tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut unknown = Vec::new();
            let mut n = 0;
            while acked.len() < APPENDS_PER_WRITER {
                n += 1;
                let id = format!("w{w}-{n}");
                let mut tries = 0;
                loop {
                    let last = match store.last_seq("s").await {
                        Ok(last) => last,
                        Err(Error::Unavailable { .. }) if tries < 1000 => {
                            tries += 1;
                            continue;
                        }
                        Err(e) => panic!("writer {w}: last_seq: {e}"),
                    };
                    match store
                        .append("s", last, vec![json!({ "id": id })], Default::default())
                        .await
                    {
                        Ok(seq) => {
                            assert_eq!(seq, last + 1, "writer {w}: append of {id}");
                            acked.insert(seq, id);
                            break;
                        }
                        Err(Error::Conflict { .. }) => {
                            tries += 1;
                            assert!(
                                tries < 1000,
                                "writer {w}: {id} never got in after 1000 tries"
                            );
                        }
                        Err(Error::Unavailable { .. }) => {
                            unknown.push(id);
                            break;
                        }
                        Err(e) => panic!("writer {w}: append of {id}: {e}"),
                    }
                }
            }
            (acked, unknown)
        }));
    }
    let mut acked = BTreeMap::new();
    let mut unknown = Vec::new();
    for writer in writers {
        let (a, u) = writer.await.unwrap();
        for (seq, id) in a {
            assert!(
                acked.insert(seq, id).is_none(),
                "seq {seq} acknowledged to two writers"
            );
        }
        unknown.extend(u);
    }

    let counts = proxy.counts();
    assert!(
        counts.faults() > 0 && counts.dropped_after_write > 0,
        "the proxy injected no errors or no lost answers: {counts:?}"
    );

    // Read back directly on moto, past the proxy, with a fresh store (no cache).
    let direct = S3EventStore::new(S3Location::new(support::client(None).await, bucket, "p"));
    let log = direct.read("s", 0, None).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=log.len() as u64).collect();
    assert_eq!(seqs, expected, "the log has gaps or is out of order");
    let mut seen = BTreeMap::new();
    for event in &log {
        let id = event.payload["id"].as_str().unwrap().to_owned();
        if let Some(first) = seen.insert(id.clone(), event.seq) {
            panic!("{id} written twice: at {first} and {}", event.seq);
        }
    }
    for (seq, id) in &acked {
        assert_eq!(
            log.get(*seq as usize - 1).map(|e| &e.payload["id"]),
            Some(&json!(id)),
            "acknowledged append {id} is not at seq {seq}"
        );
    }
    for event in &log {
        let id = event.payload["id"].as_str().unwrap();
        assert!(
            acked.get(&event.seq).map(String::as_str) == Some(id)
                || unknown.iter().any(|u| u == id),
            "{id} at seq {} was neither acknowledged there nor left unknown",
            event.seq
        );
    }
    assert_eq!(acked.len(), WRITERS * APPENDS_PER_WRITER);
    eprintln!(
        "{} appends acknowledged, {} unknown; proxy: {counts:?}",
        acked.len(),
        unknown.len()
    );
}

//! The core's conformance kit against S3 (moto): the event store and the lease service, each
//! case in a fresh bucket, on tokio; and the store cases through two instances with separate
//! clients (every other call through the other), as two processes would see it.

#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::Result;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_core::testkit::{Harness, Runtime};

/// A fresh bucket per case, made into a backend by `make`.
struct OnMoto<B> {
    make: fn(S3Location) -> B,
}

impl<B> Harness for OnMoto<B> {
    type Backend = B;

    fn runtime(&self) -> Runtime {
        Runtime::Tokio
    }

    async fn setup(&self) -> B {
        (self.make)(support::fresh_location("tests/conformance").await)
    }
}

fn store(location: S3Location) -> S3EventStore {
    S3EventStore::new(location)
}

fn lock(location: S3Location) -> S3Lock {
    S3Lock::new(location)
}

/// Two [`S3EventStore`]s with their own clients and caches on one bucket, each call going
/// to the next in turn.
#[derive(Debug)]
struct TwoInstances {
    stores: [S3EventStore; 2],
    next: std::sync::atomic::AtomicUsize,
}

struct TwoOnMoto;

impl Harness for TwoOnMoto {
    type Backend = TwoInstances;

    fn runtime(&self) -> Runtime {
        Runtime::Tokio
    }

    async fn setup(&self) -> TwoInstances {
        let bucket = support::fresh_bucket().await;
        let a = S3Location::new(support::client(None).await, bucket.clone(), "p");
        let b = S3Location::new(support::client(None).await, bucket, "p");
        TwoInstances {
            stores: [S3EventStore::new(a), S3EventStore::new(b)],
            next: Default::default(),
        }
    }
}

impl TwoInstances {
    fn pick(&self) -> &S3EventStore {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        &self.stores[i % 2]
    }
}

#[async_trait]
impl EventStore for TwoInstances {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        self.pick()
            .append(stream, expected_last, events, options)
            .await
    }
    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        self.pick().read(stream, after, limit).await
    }
    async fn last_seq(&self, stream: &str) -> Result<u64> {
        self.pick().last_seq(stream).await
    }
    async fn streams(&self) -> Result<Vec<String>> {
        self.pick().streams().await
    }
    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<()> {
        self.pick().save_snapshot(stream, snapshot).await
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        self.pick().load_snapshot(stream).await
    }
}

mod store_on_moto {
    devramps_core::store_conformance_tests!(harness = super::OnMoto { make: super::store });
}

mod store_through_two_instances {
    devramps_core::store_conformance_tests!(harness = super::TwoOnMoto);
}

mod lock_on_moto {
    devramps_core::lock_conformance_tests!(harness = super::OnMoto { make: super::lock });
}

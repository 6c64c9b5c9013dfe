//! The conformance kit of `devramps_core::testkit` against [`LocalStore`]: as an event store
//! and as a lease service, each case on a fresh file in a temporary directory, on
//! `futures::executor` and on tokio; and the event-store cases through two handles on the same
//! file (every other call through the other), as two processes would see it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{AppendOptions, EventStore, Snapshot, StoredEvent};
use devramps_core::testkit::{Harness, Runtime};
use devramps_local::store::LocalStore;
use tempfile::TempDir;

/// A fresh store per case in its own temporary directory (the kit makes a harness per case;
/// the directory goes with it), made into a backend by `wrap`, run on `runtime`.
struct OnFile<B> {
    runtime: Runtime,
    wrap: fn(&TempDir) -> B,
    dir: TempDir,
}

fn one(dir: &TempDir) -> LocalStore {
    LocalStore::open(dir.path().join("nested/dir/state.db")).unwrap()
}

fn two(dir: &TempDir) -> TwoHandles {
    TwoHandles {
        handles: [one(dir), one(dir)],
        next: Default::default(),
    }
}

impl<B> OnFile<B> {
    fn new(runtime: Runtime, wrap: fn(&TempDir) -> B) -> Self {
        OnFile {
            runtime,
            wrap,
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl<B> Harness for OnFile<B> {
    type Backend = B;

    fn runtime(&self) -> Runtime {
        self.runtime
    }

    async fn setup(&self) -> B {
        (self.wrap)(&self.dir)
    }
}

/// Two [`LocalStore`]s on one file, each call going to the next handle in turn.
#[derive(Debug)]
struct TwoHandles {
    handles: [LocalStore; 2],
    next: std::sync::atomic::AtomicUsize,
}

impl TwoHandles {
    fn pick(&self) -> &LocalStore {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        &self.handles[i % 2]
    }
}

#[async_trait]
impl EventStore for TwoHandles {
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

mod store_on_futures_executor {
    devramps_core::store_conformance_tests!(
        harness = super::OnFile::new(devramps_core::testkit::Runtime::Futures, super::one)
    );
}

mod store_on_tokio {
    devramps_core::store_conformance_tests!(
        harness = super::OnFile::new(devramps_core::testkit::Runtime::Tokio, super::one)
    );
}

mod store_through_two_handles {
    devramps_core::store_conformance_tests!(
        harness = super::OnFile::new(devramps_core::testkit::Runtime::Futures, super::two)
    );
}

mod lock_on_futures_executor {
    devramps_core::lock_conformance_tests!(
        harness = super::OnFile::new(devramps_core::testkit::Runtime::Futures, super::one)
    );
}

mod lock_on_tokio {
    devramps_core::lock_conformance_tests!(
        harness = super::OnFile::new(devramps_core::testkit::Runtime::Tokio, super::one)
    );
}

#[test]
fn reopened_store_keeps_everything() {
    use devramps_core::backend::{DeploymentLock, EventStoreExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let now = jiff::Timestamp::constant(1_767_632_400, 123_456_789);
    let lease = futures::executor::block_on(async {
        let store = LocalStore::open(&path).unwrap();
        let fenced = AppendOptions {
            fencing_token: Some(3),
        };
        store
            .append("api", 0, vec![serde_json::json!({"a": [1, 2]}); 3], fenced)
            .await
            .unwrap();
        let snapshot = Snapshot {
            seq: 2,
            state: serde_json::json!({"z": 1, "a": 2}),
        };
        store.save_snapshot("api", snapshot).await.unwrap();
        let ttl = Duration::from_secs(30);
        store
            .acquire("api/prod", "engine-a", ttl, now)
            .await
            .unwrap()
            .unwrap()
    });
    let store = LocalStore::open(&path).unwrap();
    futures::executor::block_on(async {
        assert_eq!(store.read_all("api").await.unwrap().len(), 3);
        let snapshot = store.load_snapshot("api").await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_string(&snapshot.state).unwrap(),
            r#"{"z":1,"a":2}"#,
            "payloads keep their key order"
        );
        let stale = AppendOptions {
            fencing_token: Some(2),
        };
        let refused = store.append("api", 3, vec![], stale).await;
        assert!(
            matches!(refused, Err(devramps_core::Error::Conflict { .. })),
            "the highest token survives a reopen: {refused:?}"
        );
        assert_eq!(
            store.current("api/prod", now).await.unwrap(),
            Some(lease),
            "the lease survives a reopen, to the nanosecond"
        );
    });
}

//! A custom event store in a few dozen lines, proven by the conformance kit, then used for a
//! whole deployment: the embedding story of `devramps-core` in one file.
//!
//! ```sh
//! cargo run -p devramps-examples --example custom_store
//! ```
//!
//! `tests/examples_run.rs` runs this file's store through every case of the kit
//! (`devramps_core::store_conformance_tests!`) and its `run` function.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{AppendOptions, Backends, EventStore, StoredEvent};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::StageState;
use devramps_core::{Error, Result};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

/// One stream: its events and the highest fencing token it accepted.
#[derive(Debug, Default)]
struct Stream {
    events: Vec<serde_json::Value>,
    fence: u64,
}

/// An event store over a map in a mutex: a stand-in for your database. What makes it a store
/// is the contract of [`EventStore`]: compare-and-swap on the last sequence number, fencing
/// tokens, and reads in order.
#[derive(Clone, Debug, Default)]
pub struct MapStore {
    streams: Arc<Mutex<BTreeMap<String, Stream>>>,
}

#[async_trait]
impl EventStore for MapStore {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let s = streams.entry(stream.to_owned()).or_default();
        let last = s.events.len() as u64;
        let fenced = options.fencing_token.is_some_and(|t| t < s.fence);
        if last != expected_last || fenced {
            // A lost race or an older lease holder: the engine re-reads and decides again.
            return Err(Error::Conflict {
                what: format!("`{stream}` is at {last}, not {expected_last}, or fenced"),
            });
        }
        s.fence = s.fence.max(options.fencing_token.unwrap_or(0));
        s.events.extend(events);
        Ok(s.events.len() as u64)
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let events = streams.get(stream).map_or(&[][..], |s| &s.events[..]);
        let from = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(events.len());
        let events = events[from..].iter().take(limit.unwrap_or(usize::MAX));
        Ok((after + 1..)
            .zip(events)
            .map(|(seq, payload)| StoredEvent {
                seq,
                payload: payload.clone(),
            })
            .collect())
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams.get(stream).map_or(0, |s| s.events.len() as u64))
    }

    async fn streams(&self) -> Result<Vec<String>> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(streams
            .iter()
            .filter(|(_, s)| !s.events.is_empty())
            .map(|(k, _)| k.clone())
            .collect())
    }
    // Snapshots are optional: the trait's defaults say "not supported", and the engine then
    // replays the log when it loads a pipeline.
}

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, type: "CUSTOM:DEPLOY" }
  artifacts: {}
"#;

/// Deploys one push to prod with `store` holding the log, and every other piece from the
/// scripted in-memory bundle (which fakes the work: never deploy with it). Returns the final
/// state of each stage and the number of records in `store`.
pub fn run(store: MapStore) -> (StageState, StageState, u64) {
    let (scripted, handles) = devramps_memory::scripted_backends();
    handles
        .source
        .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let backends = Backends {
        store: Arc::new(store.clone()),
        ..scripted
    };
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("the driver starts");
    let push = PushRequest::new("main", "c1");
    pool.run_until(engine.push("app", push))
        .expect("the push is recorded");
    // The scripted runners finish on the manual clock: move it until nothing is due.
    loop {
        pool.run_until_stalled();
        if handles.clock.advance_to_next_deadline().is_none() {
            break;
        }
    }
    let state = pool.run_until(engine.state("app")).expect("state");
    let d = &state.deployments[&1];
    let stage = |name: &str| d.stage(name).map_or(StageState::NotStarted, |s| s.state);
    let records = pool.run_until(store.last_seq("app")).expect("last seq");
    (stage("staging"), stage("prod"), records)
}

fn main() {
    let (staging, prod, records) = run(MapStore::default());
    println!("staging: {staging:?}, prod: {prod:?}; {records} records in the custom store");
}

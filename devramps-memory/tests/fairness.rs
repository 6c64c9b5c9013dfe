//! The driver's loop is fair: a storm of requests cannot starve the results of work.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use devramps_core::backend::Backends;
use devramps_core::engine::{Appended, Engine, EngineConfig, Observer, PushRequest};
use devramps_core::lifecycle::{Event, StepState};
use devramps_memory::{FaultOptions, FaultyStore, InMemoryEventStore, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
  artifacts: {}
"#;

/// Notes how many store calls had been made when the step's success was recorded.
#[derive(Debug)]
struct CallsAtSuccess {
    store: FaultyStore<InMemoryEventStore>,
    seen: Mutex<Option<u64>>,
}

impl Observer for CallsAtSuccess {
    fn appended(&self, append: &Appended<'_>) {
        let succeeded = append.records.iter().any(|r| {
            matches!(
                &r.event,
                Event::StepState { step, state: StepState::Succeeded, .. } if step == "deploy"
            )
        });
        if succeeded {
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.store.calls());
        }
    }
}

#[test]
fn a_storm_of_requests_does_not_starve_a_work_result() {
    const STORM: u64 = 300;
    let (base, handles) = scripted_backends();
    handles
        .source
        .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let store = FaultyStore::new(handles.store.clone(), FaultOptions::default());
    let observer = Arc::new(CallsAtSuccess {
        store: store.clone(),
        seen: Mutex::new(None),
    });
    let backends = Backends {
        store: Arc::new(store.clone()),
        ..base
    };
    let config = EngineConfig::new("engine-1").with_observer(observer.clone());
    let (engine, driver) = Engine::new(backends, config);
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn the driver");
    pool.run_until(engine.push("app", PushRequest::new("main", "c1")))
        .expect("push accepted");
    pool.run_until_stalled();
    // The step runs for a minute. A storm of requests is in the driver's channel when the
    // step ends: each request future is polled once, which sends it, and then waits.
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut storm: Vec<_> = (0..STORM)
        .map(|_| {
            let e = engine.clone();
            Box::pin(async move { e.state("app").await })
        })
        .collect();
    for request in &mut storm {
        assert!(request.as_mut().poll(&mut cx).is_pending(), "sent, waiting");
    }
    handles.clock.advance(std::time::Duration::from_secs(60));
    let before = store.calls();
    pool.run_until_stalled();
    let at_success = observer
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .expect("the step's success was recorded");
    let total = store.calls() - before;
    // Each `state` request reads the store once; the result waits for at most a burst of them.
    let served_first = at_success - before;
    assert!(
        total >= STORM,
        "every request was served: {total} store calls"
    );
    assert!(
        served_first < STORM / 4,
        "the work result waited behind {served_first} of {STORM} requests' store calls"
    );
}

//! The engine on the in-memory backends and a manual clock, on `futures::executor`.

use std::cell::RefCell;
use std::rc::Rc;

use devramps_core::backend::{Clock, Unit};
use devramps_core::engine::{Engine, EngineConfig, IgnoredPush, PushRequest};
use devramps_core::lifecycle::{Actor, Decide, Event, PipelineState, StageState};
use devramps_memory::{MemoryHandles, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1, skip: [bake] }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Infra, id: infra, type: "DEVRAMPS:TERRAFORM:SYNTHESIZE", params: { source: /infra, requires_approval: NEVER } }
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY", params: { cluster: "${{ steps.infra.cluster }}", db: "${{ stage_secret(\"DB\") }}" } }
    - { name: Bake, id: bake, type: "DEVRAMPS:APPROVAL:BAKE", params: { duration_minutes: 30 } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: { dockerfile: /Dockerfile }
"#;

/// Runs `pool` and the manual clock until nothing can progress.
fn settle(pool: &mut LocalPool, handles: &MemoryHandles, done: &Rc<RefCell<bool>>) {
    for _ in 0..10_000 {
        pool.run_until_stalled();
        if *done.borrow() && handles.clock.advance_to_next_deadline().is_none() {
            pool.run_until_stalled();
            return;
        }
        if !*done.borrow() {
            continue;
        }
    }
}

fn setup() -> (LocalPool, Engine, MemoryHandles) {
    let (backends, handles) = scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/Dockerfile", "FROM scratch"),
        ],
    );
    handles
        .secrets
        .set_stage("app", "staging", "DB", "postgres://staging");
    handles
        .secrets
        .set_stage("app", "prod", "DB", "postgres://prod");
    handles.infra.script_outputs(
        devramps_memory::Match::step("infra"),
        [("cluster".to_owned(), serde_json::json!("c-1"))].into(),
    );
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn the driver");
    (pool, engine, handles)
}

fn state(pool: &mut LocalPool, engine: &Engine) -> PipelineState {
    let slot = Rc::new(RefCell::new(None));
    let (e, s) = (engine.clone(), slot.clone());
    pool.spawner()
        .spawn_local(async move {
            *s.borrow_mut() = Some(e.state("app").await.expect("state"));
        })
        .expect("spawn");
    pool.run_until_stalled();
    slot.borrow_mut().take().expect("answered")
}

#[test]
fn a_push_deploys_to_prod_through_every_phase() {
    let (mut pool, engine, handles) = setup();
    let done = Rc::new(RefCell::new(false));
    let (e, d) = (engine.clone(), done.clone());
    pool.spawner()
        .spawn_local(async move {
            let push = PushRequest::new("main", "c1").with_delivery("d1");
            e.push("app", push).await.expect("push accepted");
            *d.borrow_mut() = true;
        })
        .expect("spawn");
    settle(&mut pool, &handles, &done);
    let s = state(&mut pool, &engine);
    let d = &s.deployments[&1];
    assert_eq!(
        d.stage("staging").expect("staging").state,
        StageState::Succeeded
    );
    assert_eq!(d.stage("prod").expect("prod").state, StageState::Succeeded);
    // The bake ran 30 minutes in prod only; the build 2 minutes? The scripted defaults decide.
    let elapsed = handles
        .clock
        .now()
        .duration_since(devramps_memory::DEFAULT_START);
    assert!(
        elapsed >= jiff::SignedDuration::from_mins(30),
        "prod baked 30 minutes: {elapsed:?}"
    );
    // The step got its stage secret and the Terraform output, resolved just before it ran.
    let deploy_requests: Vec<_> = handles
        .steps
        .started()
        .into_iter()
        .filter(|k| k.unit == Unit::step("deploy"))
        .collect();
    assert_eq!(deploy_requests.len(), 2);
    let prod = deploy_requests
        .iter()
        .find(|k| k.stage == "prod")
        .expect("prod deploy");
    let request = handles.steps.request(prod).expect("request kept");
    assert_eq!(
        request.params.expose_json(),
        serde_json::json!({"cluster": "c-1", "db": "postgres://prod"})
    );
    assert!(
        !format!("{request:?}").contains("postgres://prod"),
        "the secret never prints"
    );
    // The log replays to the same state.
    let log = futures::executor::block_on(engine.history("app")).expect("history");
    let replayed = devramps_core::lifecycle::Machine::replay("app", &log);
    assert_eq!(replayed.state(), &s);
    assert!(
        log.iter()
            .any(|r| matches!(r.event, Event::BuildStarted { .. }))
    );
}

#[test]
fn an_approval_answered_through_the_engine_lets_a_bake_end_early() {
    let (mut pool, engine, handles) = setup();
    let done = Rc::new(RefCell::new(false));
    let (e, d) = (engine.clone(), done.clone());
    pool.spawner()
        .spawn_local(async move {
            let push = PushRequest::new("main", "c1");
            e.push("app", push).await.expect("push");
            *d.borrow_mut() = true;
        })
        .expect("spawn");
    // Advance until prod bakes.
    for _ in 0..1000 {
        pool.run_until_stalled();
        let s = state(&mut pool, &engine);
        let baking = s
            .deployments
            .get(&1)
            .and_then(|d| d.stage("prod"))
            .is_some_and(|p| {
                p.steps
                    .get(2)
                    .is_some_and(|b| b.state == devramps_core::lifecycle::StepState::Running)
            });
        if baking {
            break;
        }
        handles.clock.advance_to_next_deadline();
    }
    let e = engine.clone();
    pool.spawner()
        .spawn_local(async move {
            let decide = Decide::new(1, "prod", "bake", Actor::User("ana".into()));
            e.approve("app", decide).await.expect("approve");
        })
        .expect("spawn");
    pool.run_until_stalled();
    let s = state(&mut pool, &engine);
    assert_eq!(
        s.deployments[&1].stage("prod").expect("prod").state,
        StageState::Succeeded
    );
}

/// Runs the pool and the clock until `until` holds or nothing can progress.
fn drive_until(
    pool: &mut LocalPool,
    engine: &Engine,
    handles: &MemoryHandles,
    until: impl Fn(&PipelineState) -> bool,
) -> PipelineState {
    for _ in 0..10_000 {
        pool.run_until_stalled();
        let s = state(pool, engine);
        if until(&s) {
            return s;
        }
        if handles.clock.advance_to_next_deadline().is_none() {
            return s;
        }
    }
    state(pool, engine)
}

#[test]
fn l20_after_a_restart_the_engine_resumes_from_the_store_and_reattaches_to_running_work() {
    let (backends, handles) = devramps_memory::scripted_backends();
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/Dockerfile", "FROM scratch"),
        ],
    );
    handles.secrets.set_stage("app", "staging", "DB", "s");
    handles.secrets.set_stage("app", "prod", "DB", "p");
    handles.infra.script_outputs(
        devramps_memory::Match::step("infra"),
        [("cluster".to_owned(), serde_json::json!("c"))].into(),
    );
    // First engine: runs until prod's deploy step is running, then stops (a crash).
    let (engine, driver) = Engine::new(backends.clone(), EngineConfig::default());
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn");
    let e = engine.clone();
    pool.spawner()
        .spawn_local(async move {
            let push = PushRequest::new("main", "c1").with_delivery("d1");
            e.push("app", push).await.expect("push");
        })
        .expect("spawn");
    let running = |s: &PipelineState| {
        s.deployments
            .get(&1)
            .and_then(|d| d.stage("prod"))
            .is_some_and(|p| {
                p.steps
                    .get(1)
                    .is_some_and(|st| st.state == devramps_core::lifecycle::StepState::Running)
            })
    };
    let before = drive_until(&mut pool, &engine, &handles, running);
    assert!(running(&before), "prod's deploy step runs before the crash");
    pool.run_until(engine.stop()).expect("stops");
    drop(pool);
    // Second engine on the same backends: nothing accepted is lost, the step is re-attached.
    let (engine, driver) = Engine::new(backends, EngineConfig::new("engine-2"));
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn");
    let after_restart = state(&mut pool, &engine);
    assert_eq!(
        after_restart, before,
        "the new engine's state is the replayed log"
    );
    let done = drive_until(&mut pool, &engine, &handles, |s| {
        s.deployments
            .get(&1)
            .and_then(|d| d.stage("prod"))
            .is_some_and(|p| p.state == StageState::Succeeded)
    });
    assert_eq!(
        done.deployments[&1].stage("prod").expect("prod").state,
        StageState::Succeeded
    );
    let reattached = handles
        .steps
        .log()
        .iter()
        .filter(|r| r.key.stage == "prod" && r.key.unit == Unit::step("deploy"))
        .count();
    assert!(
        reattached >= 2,
        "started once, re-attached after the restart (log: {reattached} entries)"
    );
    let starts = handles
        .steps
        .started()
        .into_iter()
        .filter(|k| k.stage == "prod" && k.unit == Unit::step("deploy"))
        .count();
    assert_eq!(
        starts, 1,
        "the step ran once: the restart re-attached with the same idempotency key"
    );
}

#[test]
fn the_engine_runs_on_tokio_too() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let (backends, handles) = devramps_memory::scripted_backends();
        handles
            .source
            .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
        handles.secrets.set_stage("app", "staging", "DB", "s");
        handles.secrets.set_stage("app", "prod", "DB", "p");
        handles.infra.script_outputs(
            devramps_memory::Match::step("infra"),
            [("cluster".to_owned(), serde_json::json!("c"))].into(),
        );
        let (engine, driver) = Engine::new(backends, EngineConfig::default());
        let task = tokio::spawn(driver.run());
        let push = PushRequest::new("main", "c1");
        engine.push("app", push).await.expect("push");
        for _ in 0..10_000 {
            let s = engine.state("app").await.expect("state");
            if s.deployments[&1]
                .stage("prod")
                .is_some_and(|p| p.state == StageState::Succeeded)
            {
                break;
            }
            tokio::task::yield_now().await;
            if handles.clock.next_deadline().is_some() {
                // Let the driver and the runners reach their sleeps before time moves.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                handles.clock.advance_to_next_deadline();
            }
        }
        let s = engine.state("app").await.expect("state");
        assert_eq!(
            s.deployments[&1].stage("prod").expect("prod").state,
            StageState::Succeeded
        );
        engine.stop().await.expect("stop");
        task.await.expect("joins").expect("runs cleanly");
    });
}

#[test]
fn l2_a_tag_push_is_recorded_unresolved_and_its_redelivery_is_a_duplicate_after_a_restart() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let (backends, handles) = devramps_memory::scripted_backends();
        handles
            .source
            .commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
        // A commit the source does not know: resolving it would fail the call.
        let unknown = "9999999999999999999999999999999999999999";
        let tag = IgnoredPush::new("refs/tags/v1", "tag `v1` was pushed: tags deploy nothing")
            .with_delivery("d-tag")
            .with_commit(unknown);
        let (engine, driver) = Engine::new(backends.clone(), EngineConfig::default());
        let task = tokio::spawn(driver.run());
        let records = engine
            .record_ignored_push("app", tag.clone())
            .await
            .expect("recorded without resolving the commit");
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(matches!(
            &records[0].event,
            Event::PushIgnored { commit, git_ref: Some(r), reason, delivery, .. }
                if commit == unknown && r == "refs/tags/v1"
                    && reason.contains("tags deploy nothing")
                    && delivery.as_deref() == Some("d-tag")
        ));
        engine.stop().await.expect("stop");
        task.await.expect("joins").expect("runs cleanly");

        // Another engine over the same store: the delivery is remembered.
        let (engine, driver) = Engine::new(backends, EngineConfig::default());
        let task = tokio::spawn(driver.run());
        let again = engine
            .record_ignored_push("app", tag)
            .await
            .expect("recorded");
        assert!(matches!(
            &again[0].event,
            Event::PushIgnored { reason, .. } if reason.contains("delivery was seen before")
        ));
        let push = PushRequest::new("main", "c1").with_delivery("d-tag");
        let same_delivery = engine.push("app", push).await.expect("push");
        assert!(matches!(
            &same_delivery[0].event,
            Event::PushIgnored { reason, .. } if reason.contains("delivery was seen before")
        ));
        let history = engine.history("app").await.expect("history");
        assert_eq!(
            history
                .iter()
                .map(|r| r.event.type_name())
                .collect::<Vec<_>>(),
            ["push_ignored"; 3],
            "nothing deployed"
        );
        assert_eq!(engine.state("app").await.expect("state").last_revision, 0);
        engine.stop().await.expect("stop");
        task.await.expect("joins").expect("runs cleanly");
    });
}

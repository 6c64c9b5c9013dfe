//! Notifications of a real engine (devramps-memory's scripted backends, a manual clock) through
//! [`NotifyingObserver`], the delivery task and [`SlackNotifier`] to an HTTP server on
//! 127.0.0.1: what the definition in force subscribes to is sent, once per record, across a
//! restart with another engine instance on the same store.

mod notify_server;

use std::sync::Arc;
use std::time::Duration;

use devramps_core::backend::Backends;
use devramps_core::engine::{Engine, EngineConfig, NotifyingObserver, PushRequest};
use devramps_core::lifecycle::StageState;
use devramps_local::notify::{SlackNotifier, SlackOptions, spawn_notifications};
use devramps_memory::{Behavior, Match, MemoryHandles, scripted_backends};
use notify_server::{Answer, Webhook};

fn pipeline(events: &str) -> String {
    format!(
        r##"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  notifications:
    slack: {{ channel: "#deploys", events: [{events}] }}
  stages:
    - {{ name: staging, account_id: "111111111111", region: us-east-1 }}
  steps:
    - {{ name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }}
  artifacts: {{}}
"##
    )
}

/// An engine instance with a notifying observer posting to `hook`.
fn start(
    backends: &Backends,
    instance: &str,
    hook: &Webhook,
) -> (Engine, tokio::task::JoinHandle<()>) {
    let (observer, appends) = NotifyingObserver::new(64);
    let mut options = SlackOptions::default();
    options.backoff = Duration::from_millis(10);
    let slack = SlackNotifier::with_options(&hook.url, options).expect("url");
    spawn_notifications(appends, backends.store.clone(), Arc::new(slack));
    let config = EngineConfig::new(instance).with_observer(Arc::new(observer));
    let (engine, driver) = Engine::new(backends.clone(), config);
    let task = tokio::spawn(async move {
        let _ = driver.run().await;
    });
    (engine, task)
}

/// Pushes `commit` as revision `revision` and drives the clock until its stage failed.
async fn deploy_and_fail(engine: &Engine, handles: &MemoryHandles, commit: &str, revision: u64) {
    let push = PushRequest::new("main", commit).with_delivery(format!("d-{commit}"));
    engine.push("app", push).await.expect("push accepted");
    for _ in 0..2_000 {
        let state = engine.state("app").await.expect("state");
        let failed = state
            .run(revision, "staging")
            .is_some_and(|r| r.state == StageState::Failed);
        if failed {
            return;
        }
        handles.clock.advance_to_next_deadline();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("revision {revision} did not fail in staging");
}

/// Waits (real time) until `hook` received `n` deliveries, then a little more for extras.
async fn delivered(hook: &Webhook, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..500 {
        if hook.delivered().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    hook.delivered()
}

#[tokio::test]
async fn subscribed_events_are_sent_once_per_record_across_a_restart() {
    let hook = Webhook::start().await;
    hook.script([Answer::status(500)]); // The first delivery is retried once.
    let (backends, handles) = scripted_backends();
    handles.steps.script(
        Match::step("deploy"),
        Behavior::fail("exit status 1", Duration::from_secs(5)),
    );
    let yaml = pipeline("stage_failed");
    handles.source.commit(
        "c1",
        None,
        [("/.devramps/app/pipeline.yaml", yaml.as_str())],
    );
    handles.source.commit(
        "c2",
        Some("c1"),
        [("/.devramps/app/pipeline.yaml", yaml.as_str())],
    );
    let quiet = pipeline("approval_required");
    handles.source.commit(
        "c3",
        Some("c2"),
        [("/.devramps/app/pipeline.yaml", quiet.as_str())],
    );

    let (first, task) = start(&backends, "first", &hook);
    deploy_and_fail(&first, &handles, "c1", 1).await;
    let sent = delivered(&hook, 1).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let text = sent[0]["text"].as_str().expect("text");
    assert!(
        text.contains("`app`") && text.contains("`staging`"),
        "{text}"
    );
    assert!(
        text.contains("revision 1") && text.contains("commit `c1`"),
        "{text}"
    );
    assert!(
        text.contains("step `deploy`") && text.contains("exit status 1"),
        "{text}"
    );
    assert_eq!(sent[0]["channel"], "#deploys");

    // "Restart": the first instance stops; another takes over the same store once its lease
    // has expired. Its observer sees only its own appends; its task reads the rest.
    task.abort();
    drop(first);
    handles.clock.advance(Duration::from_secs(120));
    let (second, _task) = start(&backends, "second", &hook);
    deploy_and_fail(&second, &handles, "c2", 2).await;
    let sent = delivered(&hook, 2).await;
    assert_eq!(
        sent.len(),
        2,
        "one message per failure, none again: {sent:#?}"
    );
    assert!(
        sent[1]["text"]
            .as_str()
            .expect("text")
            .contains("revision 2")
    );

    // The definition in force now subscribes to approval_required only: a failure is quiet.
    deploy_and_fail(&second, &handles, "c3", 3).await;
    let sent = delivered(&hook, 3).await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(hook.requests().len(), 3, "the 500, then two deliveries");
}

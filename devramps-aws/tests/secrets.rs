//! [`SecretsManagerSource`] on moto: names per scope, the TTL cache (counted with
//! [`AwsStages::requests`]), missing and deleted secrets as `Ok(None)`, binary secrets refused,
//! values never in `Debug` output or errors; and end to end, a step whose param uses
//! `${{ secret("DB_URL") }}` fails, naming the secret, once the secret is deleted, with the
//! value nowhere in the engine's events.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use devramps_aws::stage::{Principal, Service};
use devramps_aws::{AwsStages, SecretsManagerSource};
use devramps_core::backend::{Clock, SecretScope, SecretSource};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{PipelineState, StageState};
use devramps_memory::{MemoryHandles, scripted_backends};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", support::fresh_bucket_name())
}

async fn stages() -> AwsStages {
    support::endpoint();
    AwsStages::from_env().await
}

async fn create(stages: &AwsStages, id: &str, value: &str) {
    stages
        .base_secrets(&stages.base_region())
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {id}: {e:?}\n{}", support::HOW_TO_START_MOTO));
}

fn secret_requests(stages: &AwsStages) -> u64 {
    let key = (Principal::Base, Service::SecretsManager);
    stages.requests().get(&key).copied().unwrap_or(0)
}

#[tokio::test]
async fn organization_and_stage_secrets_are_read_by_their_names_and_cached() {
    let stages = stages().await;
    let org = unique("acme");
    let source =
        SecretsManagerSource::new(stages.clone(), &org).with_ttl(Duration::from_millis(500));
    create(&stages, &format!("devramps/{org}/API_KEY"), "org-value-1").await;
    create(
        &stages,
        &format!("devramps/{org}/api/prod/DB"),
        "stage-value-1",
    )
    .await;
    let stage = SecretScope::Stage {
        pipeline: "api".into(),
        stage: "prod".into(),
    };
    let before = secret_requests(&stages);
    let org_value = source
        .secret(&SecretScope::Organization, "API_KEY")
        .await
        .unwrap();
    assert_eq!(org_value.unwrap().expose(), "org-value-1");
    let stage_value = source.secret(&stage, "DB").await.unwrap();
    assert_eq!(stage_value.unwrap().expose(), "stage-value-1");
    // Another stage, or the organization, does not see the stage's secret.
    let staging = SecretScope::Stage {
        pipeline: "api".into(),
        stage: "staging".into(),
    };
    assert!(source.secret(&staging, "DB").await.unwrap().is_none());
    assert!(
        source
            .secret(&SecretScope::Organization, "DB")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(secret_requests(&stages) - before, 4);

    // Within the TTL: no request, even after the value changed.
    stages
        .base_secrets(&stages.base_region())
        .put_secret_value()
        .secret_id(format!("devramps/{org}/API_KEY"))
        .secret_string("org-value-2")
        .send()
        .await
        .unwrap();
    let before = secret_requests(&stages) - 4; // PutSecretValue counted, not a read
    let cached = source
        .secret(&SecretScope::Organization, "API_KEY")
        .await
        .unwrap();
    assert_eq!(cached.unwrap().expose(), "org-value-1");
    assert_eq!(secret_requests(&stages) - before, 4, "read from the cache");
    // After it: one request, and the new value.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let fresh = source
        .secret(&SecretScope::Organization, "API_KEY")
        .await
        .unwrap();
    assert_eq!(fresh.unwrap().expose(), "org-value-2");
    assert_eq!(
        secret_requests(&stages) - before,
        5,
        "read again after the TTL"
    );

    // The values never show in Debug output.
    let debug = format!("{source:?}");
    for value in ["org-value-1", "org-value-2", "stage-value-1"] {
        assert!(!debug.contains(value), "{debug}");
    }
}

#[tokio::test]
async fn deleted_and_scheduled_for_deletion_secrets_are_none_and_binary_ones_refused() {
    let stages = stages().await;
    let org = unique("acme");
    let client = stages.base_secrets(&stages.base_region());
    let source = SecretsManagerSource::new(stages.clone(), &org).with_ttl(Duration::ZERO);
    let org_scope = SecretScope::Organization;
    for name in ["GONE", "SCHEDULED"] {
        create(
            &stages,
            &format!("devramps/{org}/{name}"),
            "value-of-the-deleted",
        )
        .await;
        assert!(source.secret(&org_scope, name).await.unwrap().is_some());
    }
    client
        .delete_secret()
        .secret_id(format!("devramps/{org}/GONE"))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    client
        .delete_secret()
        .secret_id(format!("devramps/{org}/SCHEDULED"))
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert!(source.secret(&org_scope, "GONE").await.unwrap().is_none());
    assert!(
        source
            .secret(&org_scope, "SCHEDULED")
            .await
            .unwrap()
            .is_none()
    );
    assert!(source.secret(&org_scope, "NEVER").await.unwrap().is_none());

    client
        .create_secret()
        .name(format!("devramps/{org}/BINARY"))
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
            b"binary-secret-bytes".to_vec(),
        ))
        .send()
        .await
        .unwrap();
    let error = source.secret(&org_scope, "BINARY").await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("binary"), "{message}");
    assert!(
        message.contains(&format!("devramps/{org}/BINARY")),
        "{message}"
    );
    assert!(!message.contains("binary-secret-bytes"), "{message}");
    assert!(!format!("{error:?}").contains("binary-secret-bytes"));

    let refused = source.secret(&org_scope, "a/b").await.unwrap_err();
    assert!(refused.to_string().contains("cannot be part"), "{refused}");
}

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: prod, account_id: "222222222222", region: us-west-2 }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY", params: { db: "${{ secret(\"DB_URL\") }}" } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: { dockerfile: /Dockerfile }
"#;

async fn until(
    engine: &Engine,
    handles: &MemoryHandles,
    what: &str,
    done: impl Fn(&PipelineState) -> bool,
) -> PipelineState {
    for _ in 0..1500 {
        if let Ok(state) = engine.state("app").await
            && done(&state)
        {
            return state;
        }
        // Only short waits (scripted builds and steps take a minute): never the step's
        // timeout, which would fire while the secret's read is in flight in real time.
        if let Some(next) = handles.clock.next_deadline()
            && next.duration_since(handles.clock.now()) <= jiff::SignedDuration::from_mins(10)
        {
            handles.clock.advance_to_next_deadline();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{what}: never happened; {:#?}",
        engine.state("app").await.ok()
    );
}

fn prod(state: &PipelineState, revision: u64) -> Option<StageState> {
    state
        .deployments
        .get(&revision)
        .and_then(|d| d.stage("prod"))
        .map(|s| s.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_secret_was_deleted_fails_naming_it_and_the_value_is_in_no_event() {
    let stages = stages().await;
    let org = unique("acme");
    let value = "postgres://user:hunter2-secret@db";
    let id = format!("devramps/{org}/DB_URL");
    create(&stages, &id, value).await;
    let source = SecretsManagerSource::new(stages.clone(), &org).with_ttl(Duration::ZERO);

    let (mut backends, handles) = scripted_backends();
    backends.secrets = Arc::new(source.clone());
    handles.source.commit(
        "c1",
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/Dockerfile", "FROM scratch"),
        ],
    );
    handles.source.commit(
        "c2",
        Some("c1"),
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/Dockerfile", "FROM scratch"),
        ],
    );
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let driving = tokio::spawn(driver.run());

    engine
        .push("app", PushRequest::new("main", "c1").with_delivery("d1"))
        .await
        .unwrap();
    until(
        &engine,
        &handles,
        "revision 1 succeeds with the secret",
        |s| prod(s, 1) == Some(StageState::Succeeded),
    )
    .await;

    // The secret is deleted (scheduled for deletion, as the console does by default).
    stages
        .base_secrets(&stages.base_region())
        .delete_secret()
        .secret_id(&id)
        .send()
        .await
        .unwrap();
    engine
        .push("app", PushRequest::new("main", "c2").with_delivery("d2"))
        .await
        .unwrap();
    let failed = until(&engine, &handles, "revision 2 fails in prod", |s| {
        prod(s, 2) == Some(StageState::Failed)
    })
    .await;
    assert_eq!(prod(&failed, 2), Some(StageState::Failed));
    let history = engine.history("app").await.unwrap();
    let records: Vec<serde_json::Value> = history
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let step_failed = records
        .iter()
        .find(|r| r["type"] == "step_state" && r["revision"] == 2 && r["state"] == "FAILED")
        .unwrap_or_else(|| panic!("no failed step in {records:#?}"));
    let reason = step_failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("DB_URL") && reason.contains("does not exist"),
        "the step's failure names the missing secret: {reason}"
    );
    eprintln!("the step failed: {reason}");
    let log = serde_json::to_string(&history).unwrap();
    assert!(!log.contains(value), "the value is in no event");
    assert!(!log.contains("hunter2"), "not even in part");
    assert!(log.contains("DB_URL"), "{log}");
    assert!(!format!("{source:?}").contains("hunter2"));

    engine.stop().await.unwrap();
    driving.await.unwrap().unwrap();
}

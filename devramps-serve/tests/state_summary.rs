//! The pipeline's state answer kept between requests and brought up to date with the records
//! appended since is the answer made afresh from the engine's state, through a pipeline's
//! life: pushes, supersession, approvals, blockers, cancellation, retry, rollback.

mod common;

use std::net::SocketAddr;

use common::Server;
use devramps_serve::{ServeConfig, router};

/// The state answer of the kept server, and of a new router over the same engine.
async fn kept_and_afresh(server: &Server) -> (String, String) {
    let path = "/api/v1/pipelines/app";
    let kept = server
        .client
        .get(server.url(path))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let app = router(server.engine.clone(), ServeConfig::new(&server.backends));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let serving = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    let afresh = server
        .client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("GET afresh")
        .text()
        .await
        .expect("body");
    serving.abort();
    (kept, afresh)
}

async fn check(server: &Server, after: &str) -> serde_json::Value {
    let (kept, afresh) = kept_and_afresh(server).await;
    assert_eq!(
        kept, afresh,
        "after {after}: the kept answer differs from a fresh one"
    );
    serde_json::from_str(&kept).expect("JSON")
}

async fn operate(server: &Server, operation: &str, body: &str) {
    let (status, answer) = server
        .post(&format!("/api/v1/pipelines/app/{operation}"), None, body)
        .await;
    assert!(
        status == 200 || status == 409,
        "{operation}: {status} {answer}"
    );
}

#[tokio::test]
async fn the_kept_state_answer_follows_the_log_as_a_fresh_one_does() {
    let server = Server::start(|c| c).await;
    server.push("c1").await;
    let first = check(&server, "the first push").await;
    assert_eq!(first["deployments"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["approvals"], serde_json::json!([]));

    operate(
        &server,
        "approve",
        r#"{"stage": "staging", "step": "bake", "revision": 1}"#,
    )
    .await;
    let approved = check(&server, "approving the staging bake").await;
    assert_eq!(
        approved["deployments"][0]["stages"]["staging"]["state"],
        "SUCCEEDED"
    );

    server.push("c2").await;
    check(&server, "a second push").await;
    operate(&server, "stop-promotions", r#"{"stage": "prod"}"#).await;
    let stopped = check(&server, "stopping promotions into prod").await;
    assert_ne!(stopped["stages"]["prod"]["blockers"], serde_json::json!([]));
    operate(&server, "resume-promotions", r#"{"stage": "prod"}"#).await;
    check(&server, "resuming promotions").await;
    operate(&server, "cancel", r#"{"stage": "staging", "revision": 2}"#).await;
    check(&server, "cancelling staging").await;
    operate(&server, "retry", r#"{"stage": "staging", "revision": 2}"#).await;
    check(&server, "retrying staging").await;
    server.push(common::SHA1).await;
    server.push(common::SHA2).await;
    check(&server, "two more pushes").await;
    operate(
        &server,
        "approve",
        r#"{"stage": "prod", "step": "bake", "revision": 1}"#,
    )
    .await;
    check(&server, "approving the prod bake").await;
    operate(&server, "rollback", r#"{"stage": "prod", "to": 1}"#).await;
    check(&server, "a rollback").await;
    operate(&server, "unblock", r#"{"stage": "prod"}"#).await;
    let last = check(&server, "unblocking").await;
    assert!(
        last["deployments"].as_array().map_or(0, Vec::len) >= 4,
        "{last}"
    );
    // Asked again without a change: the same answer.
    check(&server, "nothing").await;
}

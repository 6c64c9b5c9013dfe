//! The operations API over a real server on 127.0.0.1: state, events, operations, tokens,
//! problem details.

mod common;

use common::Server;
use devramps_serve::{Role, Tokens, new_token};
use serde_json::Value;

#[tokio::test]
async fn the_state_shows_the_report_sections_and_an_approved_bake_moves_on() {
    let server = Server::start(|c| c).await;
    assert_eq!(server.get("/healthz", None).await.0, 200);
    assert_eq!(server.get("/readyz", None).await.0, 200);
    server.push("c1").await;

    let (status, list) = server.get("/api/v1/pipelines", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["pipelines"], serde_json::json!(["app"]));

    let (status, state) = server.get("/api/v1/pipelines/app", None).await;
    assert_eq!(status, 200, "{state}");
    let keys: Vec<&str> = state
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["slug", "stages", "deployments", "approvals"]);
    assert_eq!(state["deployments"][0]["revision"], 1);
    assert_eq!(
        state["deployments"][0]["stages"]["staging"]["state"],
        "IN_PROGRESS"
    );
    assert_eq!(
        state["deployments"][0]["stages"]["prod"]["state"],
        "NOT_STARTED"
    );
    assert!(state["stages"]["staging"]["current_revision"].is_null());

    // The bake waits for its time (nobody advances the clock) or a person.
    let (status, done) = server
        .post(
            "/api/v1/pipelines/app/approve",
            None,
            r#"{"stage": "staging", "step": "bake", "revision": 1, "reason": "looks good"}"#,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let records = done["records"].as_array().expect("records");
    assert!(!records.is_empty());
    assert_eq!(records[0]["actor"], "user:local", "the caller is the actor");

    let (_, one) = server.get("/api/v1/pipelines/app/revisions/1", None).await;
    assert_eq!(one["revision"], 1);
    assert_eq!(one["stages"]["staging"]["state"], "SUCCEEDED", "{one}");
    let (status, _) = server.get("/api/v1/pipelines/app/revisions/9", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn refusals_are_409_with_the_rule_and_bad_input_gets_problem_details() {
    let server = Server::start(|c| c).await;
    server.push("c1").await;
    let op = "/api/v1/pipelines/app";
    // Nothing failed in staging: retry is refused by L11.
    let (status, body) = server
        .post(
            &format!("{op}/retry"),
            None,
            r#"{"stage": "staging", "revision": 1}"#,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["rule"], "L11", "{body}");
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(body["status"], 409);

    let cases: [(&str, &str, u16); 6] = [
        (
            "/api/v1/pipelines/nope/cancel",
            r#"{"stage": "staging"}"#,
            404,
        ),
        (&format!("{op}/cancel") as &str, r#"{"stage": "qa"}"#, 404),
        (&format!("{op}/cancel"), r#"{"stage": "#, 400),
        (
            &format!("{op}/cancel"),
            r#"{"stage": "staging", "colour": 1}"#,
            400,
        ),
        (&format!("{op}/rollback"), r#"{"stage": "prod"}"#, 400),
        (&format!("{op}/retry"), r#"{"stage": "prod"}"#, 404),
    ];
    for (path, body, expected) in cases {
        let response = server
            .client
            .post(server.url(path))
            .body(body.to_owned())
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), expected, "{path} {body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: Value = response.json().await.expect("JSON");
        assert_eq!(problem["status"], expected);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (status, _) = server.get("/api/v1/pipelines/nope", None).await;
    assert_eq!(status, 404);
    let (status, body) = server.get("/api/v1/nowhere", None).await;
    assert_eq!((status, &body["route"]), (404, &Value::Bool(false)));
    // Nothing was half-applied: only the refusal was recorded after the push.
    let (_, state) = server.get(op, None).await;
    assert_eq!(
        state["deployments"][0]["stages"]["staging"]["state"],
        "IN_PROGRESS"
    );
}

#[tokio::test]
async fn tokens_give_roles_and_names() {
    let (viewer, viewer_line) = new_token(Role::Viewer, "vera").expect("token");
    let (operator, operator_line) = new_token(Role::Operator, "otto").expect("token");
    let tokens = Tokens::parse(&format!("{viewer_line}\n{operator_line}\n"), "t").expect("ok");
    let server = Server::start(move |c| c.with_tokens(tokens)).await;
    server.push("c1").await;
    let state = "/api/v1/pipelines/app";
    assert_eq!(server.get("/healthz", None).await.0, 200, "no token needed");
    assert_eq!(server.get(state, None).await.0, 401);
    assert_eq!(server.get(state, Some("drt_wrong")).await.0, 401);
    assert_eq!(server.get("/metrics", None).await.0, 401);
    assert_eq!(server.get(state, Some(&viewer)).await.0, 200);
    let approve = format!("{state}/approve");
    let body = r#"{"stage": "staging", "step": "bake", "revision": 1, "reason": "ok"}"#;
    let (status, problem) = server.post(&approve, Some(&viewer), body).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(server.post(&approve, None, body).await.0, 401);
    let (status, done) = server.post(&approve, Some(&operator), body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["records"][0]["actor"], "user:otto");
    let (_, events) = server
        .get(&format!("{state}/events?after=0&limit=1000"), Some(&viewer))
        .await;
    let approved = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "approved" && e["actor"] == "user:otto");
    assert!(approved.is_some(), "{events}");
}

#[tokio::test]
async fn the_event_log_pages_by_sequence_number() {
    let server = Server::start(|c| c).await;
    server.push("c1").await;
    server.push("c2").await;
    let path = "/api/v1/pipelines/app/events";
    let (_, all) = server.get(path, None).await;
    let last = all["last_seq"].as_u64().expect("last_seq");
    assert!(last >= 4, "{all}");
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = server
            .get(&format!("{path}?after={after}&limit=3"), None)
            .await;
        assert_eq!(status, 200);
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 3);
        seen.extend(events.iter().map(|e| e["seq"].as_u64().expect("seq")));
        after = page["next"].as_u64().expect("next");
        if after == last {
            break;
        }
    }
    assert_eq!(
        seen,
        (1..=last).collect::<Vec<_>>(),
        "every record once, in order"
    );
    assert_eq!(server.get(&format!("{path}?limit=0"), None).await.0, 400);
    assert_eq!(server.get(&format!("{path}?after=x"), None).await.0, 400);
}

#[tokio::test]
async fn the_event_stream_sends_the_log_then_each_new_record_and_ends_at_shutdown() {
    use futures::StreamExt;
    let server = Server::start(|c| c).await;
    server.push("c1").await;
    let response = server
        .client
        .get(server.url("/api/v1/pipelines/app/events/stream?after=0"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read_until = |text: &String, needle: &str| text.contains(needle);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !read_until(&text, "event: deployment_accepted") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the log within 10 s")
            .expect("open")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("id: 1\n"), "{text}");
    // A new record arrives on the open stream.
    server.push("c2").await;
    while !text.contains("\"commit\":\"c2\"") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the new record within 10 s")
            .expect("open")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    server.shutdown.trigger();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ends when the server shuts down");
    assert_eq!(server.get("/readyz", None).await.0, 503);
}

#[tokio::test]
async fn metrics_count_stage_deployments_by_state() {
    let server = Server::start(|c| c).await;
    server.push("c1").await;
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(
            "devramps_stage_deployments{pipeline=\"app\",stage=\"staging\",state=\"IN_PROGRESS\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE devramps_step_duration_seconds histogram"));
}

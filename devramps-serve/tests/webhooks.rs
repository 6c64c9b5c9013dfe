//! `POST /webhooks/github` over a real server on 127.0.0.1: signed pushes start deployments
//! once, and bad input is answered before anything is parsed or recorded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{SHA1, SHA2, Server};
use devramps_github::webhook::{WebhookSecrets, sign};

const SECRET: &str = "s3cret";

fn push_body(after: &str, git_ref: &str) -> String {
    format!(
        r#"{{"ref": "{git_ref}", "before": "{SHA1}", "after": "{after}", "created": false,
            "deleted": false, "forced": false, "repository": {{"full_name": "o/app"}},
            "pusher": {{"name": "octocat"}}}}"#
    )
}

async fn server() -> Server {
    let secrets = WebhookSecrets::from_lines(&format!("old\n{SECRET}\n")).expect("secrets");
    Server::start(move |c| {
        c.with_webhook_secrets(secrets)
            .with_body_timeout(Duration::from_millis(700))
    })
    .await
}

async fn deliver(
    server: &Server,
    event: &str,
    delivery: &str,
    body: &str,
    secret: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = server
        .client
        .post(server.url("/webhooks/github"))
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(secret) = secret {
        request = request.header(
            "x-hub-signature-256",
            sign(secret.as_bytes(), body.as_bytes()),
        );
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn deployments(server: &Server) -> usize {
    let (_, state) = server.get("/api/v1/pipelines/app", None).await;
    state["deployments"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_signed_push_deploys_once_and_a_replay_is_a_duplicate() {
    let server = server().await;
    let body = push_body(SHA1, "refs/heads/main");
    let (status, answer) = deliver(&server, "push", "d-1", &body, Some(SECRET)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["pipelines"]["app"]["revision"], 1, "{answer}");

    let (status, answer) = deliver(&server, "push", "d-1", &body, Some(SECRET)).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &serde_json::json!(true))
    );
    assert_eq!(deployments(&server).await, 1, "nothing accepted twice");

    // The old secret still verifies (rotation); a new delivery of a new commit deploys.
    let body = push_body(SHA2, "refs/heads/main");
    let (status, answer) = deliver(&server, "push", "d-2", &body, Some("old")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["pipelines"]["app"]["revision"], 2);

    // Pushes that deploy nothing are accepted with the reason.
    let other = push_body(SHA1, "refs/heads/feature");
    let (status, answer) = deliver(&server, "push", "d-3", &other, Some(SECRET)).await;
    assert_eq!(status, 202);
    assert!(
        answer["pipelines"]["app"]["ignored"]
            .as_str()
            .is_some_and(|r| r.contains("tracked"))
    );
    // A tag push is recorded in the pipeline's log with its reason and ref (L2); its
    // re-delivery is a duplicate.
    let tag = push_body(SHA2, "refs/tags/v1");
    let (status, answer) = deliver(&server, "push", "d-4", &tag, Some(SECRET)).await;
    assert_eq!(status, 202);
    assert!(
        answer["pipelines"]["app"]["ignored"]
            .as_str()
            .is_some_and(|r| r.contains("tag")),
        "{answer}"
    );
    let (status, answer) = deliver(&server, "push", "d-4", &tag, Some(SECRET)).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &serde_json::json!(true))
    );
    let (_, events) = server.get("/api/v1/pipelines/app/events", None).await;
    let tag_records: Vec<&serde_json::Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e.to_string().contains("refs/tags/v1"))
        .collect();
    assert_eq!(tag_records.len(), 2, "the tag and its duplicate: {events}");
    let ping = r#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
    assert_eq!(
        deliver(&server, "ping", "d-5", ping, Some(SECRET)).await.0,
        202
    );
    assert_eq!(deployments(&server).await, 2);

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("devramps_webhook_deliveries_total{result=\"accepted\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("{result=\"duplicate\"} 2"), "{metrics}");
    assert!(metrics.contains("{result=\"ignored\"} 1"), "{metrics}");
}

#[tokio::test]
async fn bad_signatures_and_bodies_are_refused_and_record_nothing() {
    let server = server().await;
    let body = push_body(SHA1, "refs/heads/main");
    assert_eq!(deliver(&server, "push", "d-1", &body, None).await.0, 401);
    assert_eq!(
        deliver(&server, "push", "d-1", &body, Some("wrong"))
            .await
            .0,
        401
    );
    let (status, problem) = deliver(&server, "push", "d-1", "{not json", Some(SECRET)).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 1")),
        "{problem}"
    );
    let no_after = r#"{"ref": "refs/heads/main", "repository": {"full_name": "o/a"}}"#;
    assert_eq!(
        deliver(&server, "push", "d-1", no_after, Some(SECRET))
            .await
            .0,
        400
    );
    assert_eq!(
        deliver(&server, "", "d-1", &body, Some(SECRET)).await.0,
        400
    );
    let (status, _) = server.get("/api/v1/pipelines/app", None).await;
    assert_eq!(status, 404, "nothing was recorded");
    // The same delivery id, signed now, is not a duplicate: nothing was recorded before.
    assert_eq!(
        deliver(&server, "push", "d-1", &body, Some(SECRET)).await.0,
        202
    );
}

#[tokio::test]
async fn without_a_secret_every_webhook_is_refused() {
    let server = Server::start(|c| c).await;
    let body = push_body(SHA1, "refs/heads/main");
    assert_eq!(
        deliver(&server, "push", "d-1", &body, Some(SECRET)).await.0,
        401
    );
}

/// Sends `head` and then `body_part` on a raw connection and reads the answer's status line.
fn raw(server: &Server, head: &str, body_part: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    let _ = stream.write_all(body_part);
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn head(extra: &str) -> String {
    format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: d-9\r\nX-Hub-Signature-256: sha256={}\r\n{extra}\r\n",
        "0".repeat(64)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_25_mib_is_413_before_it_is_read_and_a_slow_body_times_out() {
    let server = server().await;
    let started = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| {
        raw(
            &server,
            &head("Content-Length: 30000000\r\n"),
            b"{\"ref\": ",
        )
    });
    assert!(status.contains(" 413 "), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without the rest"
    );

    // Chunked, with no length: judged while reading.
    let status = tokio::task::block_in_place(|| {
        let mut chunks = Vec::new();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..27 {
            chunks.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunks.extend_from_slice(&chunk);
            chunks.extend_from_slice(b"\r\n");
        }
        raw(&server, &head("Transfer-Encoding: chunked\r\n"), &chunks)
    });
    assert!(status.contains(" 413 "), "{status}");

    // A client that never finishes its body.
    let started = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| {
        raw(&server, &head("Content-Length: 100\r\n"), b"{\"ref\":")
    });
    assert!(status.contains(" 408 "), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, _) = server.get("/api/v1/pipelines/app", None).await;
    assert_eq!(status, 404, "nothing was recorded");
}

#[tokio::test]
async fn a_server_of_one_repository_ignores_the_webhooks_of_another() {
    let secrets = WebhookSecrets::from_lines(&format!("{SECRET}\n")).expect("secrets");
    let server = Server::start(move |c| {
        c.with_webhook_secrets(secrets)
            .with_repository(Some("O/App".to_owned()))
    })
    .await;
    let other = push_body(SHA1, "refs/heads/main").replace("o/app", "someone/else");
    let (status, answer) = deliver(&server, "push", "d-1", &other, Some(SECRET)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["ignored"], "a delivery from someone/else: this server serves O/App",
        "{answer}"
    );
    assert_eq!(deployments(&server).await, 0, "nothing deployed");
    // Its own repository's push deploys (names compared case-insensitively, as GitHub does).
    let own = push_body(SHA1, "refs/heads/main");
    let (status, answer) = deliver(&server, "push", "d-2", &own, Some(SECRET)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["pipelines"]["app"]["revision"], 1, "{answer}");
    // An organization's ping names no repository: answered as usual.
    let ping = r#"{"zen": "Half measures are as bad as nothing at all.", "hook_id": 2}"#;
    assert_eq!(
        deliver(&server, "ping", "d-3", ping, Some(SECRET)).await.0,
        202
    );
}

//! [`SlackNotifier`] against a real HTTP server on 127.0.0.1: message content, retries of
//! 5xx and 429 (with `Retry-After`), giving up, 4xx, and secrets.

mod notify_server;

use std::time::{Duration, Instant};

use devramps_core::engine::{Notification, NotificationEvent, Notifier, NotifyConfig};
use devramps_core::lifecycle::Actor;
use devramps_local::notify::{SlackNotifier, SlackOptions};
use notify_server::{Answer, Webhook};

fn fast() -> SlackOptions {
    let mut options = SlackOptions::default();
    options.backoff = Duration::from_millis(20);
    options.attempts = 4;
    options
}

fn failed() -> Notification {
    Notification::new(
        NotificationEvent::StageFailed,
        "2026-01-05T17:00:00Z".parse().expect("ts"),
        Actor::System,
    )
    .with_stage(7, "prod")
    .with_commit("0123456789abcdef")
    .with_reason("step `deploy` failed: exit 1 <boom>")
}

fn config() -> NotifyConfig {
    NotifyConfig::new("#deploys", [NotificationEvent::StageFailed])
}

#[tokio::test]
async fn a_message_names_the_pipeline_stage_revision_commit_and_reason() {
    let hook = Webhook::start().await;
    let slack = SlackNotifier::with_options(&hook.url, fast()).expect("url");
    slack
        .notify("api", &failed(), &config())
        .await
        .expect("delivered");
    let requests = hook.requests();
    assert_eq!(requests.len(), 1);
    let (path, body, _) = &requests[0];
    assert_eq!(path, "/services/T000/B000/SECRETTOKEN");
    assert_eq!(body["channel"], "#deploys");
    let text = body["text"].as_str().expect("text");
    for part in [
        "Stage failed",
        "`api`",
        "`prod`",
        "revision 7",
        "0123456789abcdef",
        "exit 1 &lt;boom&gt;",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert_eq!(body["blocks"][0]["text"]["text"], text);
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_honouring_retry_after() {
    let hook = Webhook::start().await;
    hook.script([
        Answer::status(500),
        Answer::status(429).header("Retry-After", "1"),
    ]);
    let slack = SlackNotifier::with_options(&hook.url, fast()).expect("url");
    let started = Instant::now();
    slack
        .notify("api", &failed(), &config())
        .await
        .expect("delivered on the third try");
    let statuses: Vec<u16> = hook.requests().iter().map(|r| r.2).collect();
    assert_eq!(statuses, [500, 429, 200]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as Retry-After said"
    );
    assert_eq!(hook.delivered().len(), 1);
}

#[tokio::test]
async fn it_gives_up_after_its_attempts_and_fails_at_once_on_a_client_error() {
    let hook = Webhook::start().await;
    hook.script((0..4).map(|_| Answer::status(503)));
    let slack = SlackNotifier::with_options(&hook.url, fast()).expect("url");
    let err = slack
        .notify("api", &failed(), &config())
        .await
        .expect_err("gives up");
    let message = err.to_string();
    assert!(message.contains("gave up after 4 attempts"), "{message}");
    assert!(
        !message.contains("SECRETTOKEN"),
        "the webhook URL never shows: {message}"
    );
    assert_eq!(hook.requests().len(), 4);

    hook.script([Answer::status(400)]);
    let err = slack
        .notify("api", &failed(), &config())
        .await
        .expect_err("client error");
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(hook.requests().len(), 5, "no retry of a 4xx");
    assert!(!format!("{slack:?}").contains("SECRETTOKEN"));
}

#[tokio::test]
async fn connection_failures_are_retried_then_reported_without_the_url() {
    // A port nobody listens on: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/services/SECRETTOKEN");
    let slack = SlackNotifier::with_options(&url, fast()).expect("url");
    let err = slack
        .notify("api", &failed(), &config())
        .await
        .expect_err("nobody listens");
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert!(!err.to_string().contains("SECRETTOKEN"), "{err}");
}

#[tokio::test]
async fn a_secret_given_to_the_notifier_never_leaves() {
    let hook = Webhook::start().await;
    let slack = SlackNotifier::with_options(&hook.url, fast())
        .expect("url")
        .with_secrets(["hunter2".to_owned()]);
    let n = failed().with_reason("connect to postgres://app:hunter2@db failed");
    slack.notify("api", &n, &config()).await.expect("delivered");
    let body = hook.requests()[0].1.to_string();
    assert!(!body.contains("hunter2"), "{body}");
    assert!(body.contains("postgres://app:[REDACTED]@db"), "{body}");
}

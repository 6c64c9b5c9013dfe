//! `POST /webhooks/github`: GitHub webhooks, authenticated by their signature only.
//!
//! In order, so that nothing is read or parsed that need not be: the size (from
//! `Content-Length`, then while reading: 413 without reading the rest), the body within
//! [`ServeConfig::body_timeout`](crate::ServeConfig::body_timeout) (408 for a client too slow),
//! the signature (401), the parse (400). A push to a branch is submitted to every pipeline
//! defined at the pushed commit (the engine records an untracked branch, a delivery seen
//! before, a commit already accepted, with the reason: L2); 200 `{"duplicate": true}` when
//! every pipeline had seen the delivery (the log knows deliveries, across restarts), else
//! 202 with what each pipeline did. Other deliveries (`ping`, tags, deletions, pull requests,
//! other events) start nothing: 202 with the reason, logged through `tracing`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use devramps_core::backend::SourceRepositoryExt;
use devramps_core::lifecycle::{Event, Record};
use devramps_github::webhook::{self, Webhook, WebhookError};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value, json};

use crate::config::MAX_WEBHOOK_BODY;
use crate::error::Problem;
use crate::routes::{Access, AppState, Route};

/// The reason the engine records for a delivery seen before (L2).
const SEEN_BEFORE: &str = "this delivery was seen before";

/// The webhook routes.
pub(crate) fn routes() -> Vec<Route> {
    vec![Route {
        method: Method::POST,
        path: "/webhooks/github".to_owned(),
        access: Access::Public,
        handler: post(github),
    }]
}

/// Their OpenAPI path items.
pub(crate) fn openapi() -> Vec<(String, Value)> {
    let problem = |d: &str| {
        json!({ "description": d, "content": { "application/problem+json": {
            "schema": { "$ref": "#/components/schemas/Problem" } } } })
    };
    vec![(
        "/webhooks/github".to_owned(),
        json!({ "post": {
            "summary": "GitHub webhooks (X-Hub-Signature-256 with a secret of --webhook-secret-file; no token)",
            "security": [],
            "parameters": [
                { "name": "X-GitHub-Event", "in": "header", "required": true, "schema": { "type": "string" } },
                { "name": "X-GitHub-Delivery", "in": "header", "required": true, "schema": { "type": "string" } },
                { "name": "X-Hub-Signature-256", "in": "header", "required": true, "schema": { "type": "string" } }
            ],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
            "responses": {
                "202": { "description": "accepted (also a delivery that starts nothing, with its reason)" },
                "200": { "description": "`{\"duplicate\": true}`: a delivery seen before" },
                "400": problem("a malformed body or a missing header"),
                "401": problem("a missing or wrong signature"),
                "408": problem("the body did not arrive in time"),
                "413": problem("a body over 25 MiB"),
            }
        }}),
    )]
}

fn refused(app: &AppState, result: &'static str, e: &WebhookError) -> Response {
    app.config.metrics.webhook(result);
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    Problem::new(status, e.to_string()).into_response()
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn github(State(app): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let declared = header_str(&parts.headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(size) = declared.filter(|s| *s > MAX_WEBHOOK_BODY as u64) {
        let e = WebhookError::TooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            limit: MAX_WEBHOOK_BODY,
        };
        return refused(&app, "too_large", &e);
    }
    let body = match read_body(&app, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(secrets) = &app.config.webhook_secrets else {
        app.config.metrics.webhook("bad_signature");
        return Problem::unauthorized(
            "this server has no webhook secret (--webhook-secret-file): every delivery is refused",
        )
        .into_response();
    };
    let signature = header_str(&parts.headers, "x-hub-signature-256");
    if let Err(e) = secrets.verify(signature, &body) {
        return refused(&app, "bad_signature", &e);
    }
    let event = header_str(&parts.headers, "x-github-event").unwrap_or_default();
    let delivery = header_str(&parts.headers, "x-github-delivery").unwrap_or_default();
    let hook = match webhook::parse(event, delivery, &body) {
        Ok(hook) => hook,
        Err(e) => return refused(&app, "malformed", &e),
    };
    // A server of one repository acts on its deliveries only (GitHub names are
    // case-insensitive); an organization's ping names none and is answered as usual.
    if let (Some(served), Some(from)) = (&app.config.repository, hook.repository())
        && !served.eq_ignore_ascii_case(from)
    {
        return ignore(
            &app,
            delivery,
            &format!("a delivery from {from}: this server serves {served}"),
        );
    }
    match hook {
        Webhook::Push(push) => match push.request() {
            Ok(request) => submit(&app, request).await,
            // A tag or a branch deletion: in the log of every pipeline with its reason (L2).
            Err(ignored) => match ignored.push_record() {
                Some(record) => record_ignored(&app, record).await,
                None => ignore(&app, delivery, &ignored.reason),
            },
        },
        Webhook::Ping(ping) => ignore(&app, delivery, &format!("ping: {}", ping.zen)),
        Webhook::PullRequest(pr) => ignore(
            &app,
            delivery,
            &format!(
                "pull_request #{} {:?}: ephemeral environments are not served yet",
                pr.number, pr.action
            ),
        ),
        Webhook::Ignored(ignored) => ignore(&app, delivery, &ignored.reason),
        _ => ignore(&app, delivery, "an event this server does not act on"),
    }
}

/// The body, at most [`MAX_WEBHOOK_BODY`] bytes, within the body timeout.
async fn read_body(app: &AppState, body: Body) -> Result<axum::body::Bytes, Response> {
    let limited = Limited::new(body, MAX_WEBHOOK_BODY);
    match tokio::time::timeout(app.config.body_timeout, limited.collect()).await {
        Err(_) => {
            app.config.metrics.webhook("timeout");
            Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    app.config.body_timeout.as_secs_f64()
                ),
            )
            .into_response())
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let e = WebhookError::TooLarge {
                size: MAX_WEBHOOK_BODY + 1,
                limit: MAX_WEBHOOK_BODY,
            };
            Err(refused(app, "too_large", &e))
        }
        Ok(Err(e)) => {
            app.config.metrics.webhook("malformed");
            Err(Problem::bad_request(format!("cannot read the body: {e}")).into_response())
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn ignore(app: &AppState, delivery: &str, reason: &str) -> Response {
    app.config.metrics.webhook("ignored");
    tracing::info!(delivery, reason, "webhook accepted, starts nothing");
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "accepted": true, "delivery": delivery, "ignored": reason })),
    )
        .into_response()
}

/// The pipelines a push goes to: those defined at its commit (or, when the source cannot
/// read the commit or there is none, every pipeline the store knows, which records why it
/// deploys nothing).
async fn pipelines_for(app: &AppState, commit: &str) -> Vec<String> {
    let mut slugs = if commit.is_empty() {
        Vec::new()
    } else {
        app.config
            .source
            .pipeline_slugs(commit)
            .await
            .unwrap_or_default()
    };
    if slugs.is_empty() {
        slugs = app.config.store.streams().await.unwrap_or_default();
    }
    slugs
}

/// Records a push that is no deployment (a tag, a branch deletion) in every pipeline's log.
async fn record_ignored(app: &AppState, record: devramps_core::engine::IgnoredPush) -> Response {
    let delivery = record.delivery.clone().unwrap_or_default();
    let slugs = pipelines_for(app, record.commit.as_deref().unwrap_or_default()).await;
    if slugs.is_empty() {
        return ignore(app, &delivery, &record.reason);
    }
    let mut outcome = Map::new();
    let mut all_seen = true;
    for slug in &slugs {
        match app.engine.record_ignored_push(slug, record.clone()).await {
            Ok(records) => {
                let (seen, what) = summarize(&records);
                all_seen &= seen;
                outcome.insert(slug.to_string(), what);
            }
            Err(e) => {
                app.config.metrics.webhook("error");
                return Problem::from(e).into_response();
            }
        }
    }
    answer(app, &delivery, all_seen, outcome)
}

/// Submits a push to every pipeline of [`pipelines_for`] its commit.
async fn submit(app: &AppState, request: devramps_core::engine::PushRequest) -> Response {
    let delivery = request.delivery.clone().unwrap_or_default();
    let slugs = pipelines_for(app, &request.commit).await;
    if slugs.is_empty() {
        return ignore(
            app,
            &delivery,
            &format!("commit {} defines no pipeline", request.commit),
        );
    }
    let mut outcome = Map::new();
    let mut all_seen = true;
    for slug in &slugs {
        let records = match app.engine.push(slug, request.clone()).await {
            Ok(records) => records,
            Err(e) => {
                app.config.metrics.webhook("error");
                return Problem::from(e).into_response();
            }
        };
        let (seen, what) = summarize(&records);
        all_seen &= seen;
        outcome.insert(slug.to_string(), what);
    }
    answer(app, &delivery, all_seen, outcome)
}

/// 200 `{"duplicate": true}` when every pipeline had seen the delivery, else 202 with what
/// each pipeline did.
fn answer(app: &AppState, delivery: &str, all_seen: bool, outcome: Map<String, Value>) -> Response {
    if all_seen {
        app.config.metrics.webhook("duplicate");
        return (
            StatusCode::OK,
            axum::Json(json!({ "duplicate": true, "delivery": delivery })),
        )
            .into_response();
    }
    app.config.metrics.webhook("accepted");
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "accepted": true, "delivery": delivery, "pipelines": outcome })),
    )
        .into_response()
}

/// Whether the records say the delivery was seen before, and what they did.
fn summarize(records: &[Record]) -> (bool, Value) {
    for record in records {
        match &record.event {
            Event::DeploymentAccepted { revision, .. } => {
                return (false, json!({ "revision": revision }));
            }
            Event::PushIgnored { reason, .. } => {
                return (reason == SEEN_BEFORE, json!({ "ignored": reason }));
            }
            _ => {}
        }
    }
    (false, json!({}))
}

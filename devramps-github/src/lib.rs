//! GitHub for devramps: the front door of a deployment (webhooks), the repository read over
//! the REST API, and commit statuses.
//!
//! - [`webhook`]: verify `X-Hub-Signature-256` ([`webhook::WebhookSecrets::verify`], size
//!   first, several secrets for rotation, constant-time), then [`webhook::parse`] a delivery
//!   into a [`webhook::Webhook`]: a push gives the engine's
//!   [`PushRequest`](devramps_core::engine::PushRequest) through
//!   [`webhook::Push::request`] (tags and branch deletions are [`webhook::Ignored`] with the
//!   reason); `ping` is answered; `pull_request` opened / reopened / synchronize / closed are
//!   kept for ephemeral environments; any other event is ignored with a reason.
//!   [`webhook::WebhookError::status`] gives the HTTP answer (401, 400, 413).
//! - [`GitHubSource`]: the engine's [`SourceRepository`](devramps_core::backend::SourceRepository)
//!   over the REST API, through a [`GitHubClient`] with personal tokens or GitHub App
//!   installation tokens ([`Auth`]); rate limits are waited out, answers for a commit cached.
//! - [`status`]: [`CommitStatuses`], one commit status per stage (`devramps/<pipeline>/<stage>`)
//!   posted by a task of its own, fed by an engine observer that never waits; updates
//!   coalesced, never the same status twice.
//!
//! A server's handler, in short. Every push goes to each pipeline of its repository: a branch
//! push through [`Engine::push`](devramps_core::engine::Engine::push) (the engine ignores an
//! untracked branch, a seen delivery, a commit already accepted, and logs why), a tag or a
//! branch deletion through
//! [`Engine::record_ignored_push`](devramps_core::engine::Engine::record_ignored_push) with
//! [`webhook::Ignored::push_record`] (logged as `push_ignored` with its reason and ref, nothing
//! resolved; its delivery id is remembered, so a re-delivery is a duplicate, L2):
//!
//! ```
//! use devramps_core::engine::Engine;
//! use devramps_github::webhook::{self, Webhook, WebhookSecrets};
//!
//! async fn handle(engine: &Engine, pipelines: &[&str], secrets: &WebhookSecrets,
//!                 signature: Option<&str>, event: &str, delivery: &str,
//!                 body: &[u8]) -> u16 {
//!     if let Err(e) = secrets.verify(signature, body) {
//!         return e.status(); // 401 or 413: nothing parsed
//!     }
//!     let push = match webhook::parse(event, delivery, body) {
//!         Err(e) => return e.status(), // 400
//!         Ok(Webhook::Push(push)) => push,
//!         Ok(_) => return 202, // ping, pull_request, other events: nothing to log
//!     };
//!     for pipeline in pipelines {
//!         let recorded = match push.request() {
//!             Ok(request) => engine.push(pipeline, request).await,
//!             Err(ignored) => match ignored.push_record() {
//!                 Some(record) => engine.record_ignored_push(pipeline, record).await,
//!                 None => Ok(Vec::new()),
//!             },
//!         };
//!         if recorded.is_err() {
//!             return 503; // GitHub delivers again; the delivery id makes it safe
//!         }
//!     }
//!     202
//! }
//! # let secrets = WebhookSecrets::from_lines("s3cret\n").unwrap();
//! # let body = br#"{"ref": "refs/tags/v1", "after": "0123456789012345678901234567890123456789",
//! #                 "repository": {"full_name": "acme/shop"}}"#;
//! # let Ok(Webhook::Push(push)) = webhook::parse("push", "d-1", body) else { panic!() };
//! # let record = push.request().unwrap_err().push_record().unwrap();
//! # assert_eq!(record.git_ref, "refs/tags/v1");
//! # assert_eq!(record.delivery.as_deref(), Some("d-1"));
//! # let _ = handle; // driven against a real engine in tests/ignored_push.rs
//! ```
#![forbid(unsafe_code)]

mod auth;
mod client;
mod source;
pub mod status;
pub mod webhook;

pub use auth::{AppAuth, Auth, REFRESH_BEFORE_EXPIRY};
pub use client::{DEFAULT_MAX_RATE_WAIT, GITHUB_API, GitHubClient};
pub use source::{COMPARE_FILE_CAP, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, GitHubSource};
pub use status::{CommitStatusObserver, CommitStatuses, StatusPoster};

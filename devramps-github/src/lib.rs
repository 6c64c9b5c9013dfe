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
//!
//! A server's handler, in short:
//!
//! ```
//! use devramps_github::webhook::{self, Webhook, WebhookSecrets};
//!
//! fn handle(secrets: &WebhookSecrets, signature: Option<&str>, event: &str, delivery: &str,
//!           body: &[u8]) -> u16 {
//!     if let Err(e) = secrets.verify(signature, body) {
//!         return e.status(); // 401 or 413: nothing parsed
//!     }
//!     match webhook::parse(event, delivery, body) {
//!         Err(e) => e.status(), // 400
//!         Ok(Webhook::Push(push)) => match push.request() {
//!             Ok(_request) => 202, // engine.push(pipeline, request) for each pipeline
//!             Err(_ignored) => 202, // a tag or a deletion: recorded with its reason
//!         },
//!         Ok(_) => 202,
//!     }
//! }
//!
//! let secrets = WebhookSecrets::from_lines("s3cret\n").unwrap();
//! let body = br#"{"ref": "refs/tags/v1", "after": "0123456789012345678901234567890123456789",
//!                 "repository": {"full_name": "acme/shop"}}"#;
//! let signature = webhook::sign(b"s3cret", body);
//! assert_eq!(handle(&secrets, Some(&signature), "push", "d-1", body), 202);
//! assert_eq!(handle(&secrets, Some("sha256=00"), "push", "d-1", body), 401);
//! ```
#![forbid(unsafe_code)]

pub mod webhook;

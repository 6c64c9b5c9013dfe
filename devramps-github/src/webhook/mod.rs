//! GitHub webhooks: verify the signature, then parse the delivery into what the engine needs.
//!
//! ```
//! use devramps_github::webhook::{self, Webhook, WebhookSecrets};
//!
//! let secrets = WebhookSecrets::from_lines("new-secret\nold-secret\n").unwrap();
//! let body = br#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
//! let signature = webhook::sign(b"old-secret", body);
//! secrets.verify(Some(&signature), body).unwrap();
//! let hook = webhook::parse("ping", "d-1", body).unwrap();
//! assert!(matches!(hook, Webhook::Ping(_)));
//! ```

mod json;
mod pull_request;
mod push;
mod signature;

pub use pull_request::{PullRequestAction, PullRequestEvent};
pub use push::Push;
pub use signature::{WebhookSecrets, check_size, sign};

use json::Json;

/// The largest body accepted: 25 MiB, GitHub's own cap on webhook payloads.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// A parsed webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Webhook {
    /// A `push` event (a branch, a tag or a deletion: see [`Push::request`]).
    Push(Push),
    /// A `ping`, sent when the webhook is created.
    Ping(Ping),
    /// A `pull_request` event with an action ephemeral environments use.
    PullRequest(PullRequestEvent),
    /// An event nothing here acts on (another event type, or an action of `pull_request` that
    /// changes nothing): accepted, with the reason.
    Ignored(Ignored),
}

impl Webhook {
    /// The delivery id (`X-GitHub-Delivery`).
    pub fn delivery(&self) -> &str {
        match self {
            Webhook::Push(p) => &p.delivery,
            Webhook::Ping(p) => &p.delivery,
            Webhook::PullRequest(p) => &p.delivery,
            Webhook::Ignored(i) => &i.delivery,
        }
    }

    /// The repository's `owner/name`, when the payload names one (an organization's `ping`
    /// does not).
    pub fn repository(&self) -> Option<&str> {
        match self {
            Webhook::Push(p) => Some(&p.repository),
            Webhook::Ping(p) => p.repository.as_deref(),
            Webhook::PullRequest(p) => Some(&p.repository),
            Webhook::Ignored(i) => i.repository.as_deref(),
        }
    }
}

/// A `ping` delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ping {
    /// The delivery id.
    pub delivery: String,
    /// GitHub's zen line.
    pub zen: String,
    /// The webhook's id.
    pub hook_id: Option<u64>,
    /// The repository, absent for an organization's webhook.
    pub repository: Option<String>,
}

/// A delivery, or a push, that starts nothing, and why (L2: recorded with its reason).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ignored {
    /// The event type (`X-GitHub-Event`).
    pub event: String,
    /// The delivery id.
    pub delivery: String,
    /// The repository's `owner/name`, when the payload names one.
    pub repository: Option<String>,
    /// The git ref of a push (`refs/tags/v1`), when it is one.
    pub git_ref: Option<String>,
    /// The commit a push points at, when there is one (not for a deletion).
    pub commit: Option<String>,
    /// Why nothing starts.
    pub reason: String,
}

/// Why a delivery was refused. [`status`](WebhookError::status) gives the HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The body is larger than [`MAX_BODY`] (413).
    #[error("the webhook body is {size} bytes, over the limit of {limit} bytes (GitHub's cap)")]
    TooLarge {
        /// The size seen (from `Content-Length` or read so far).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No `X-Hub-Signature-256` header (401).
    #[error("the webhook has no `X-Hub-Signature-256` header: set a secret on the GitHub webhook")]
    MissingSignature,
    /// The header is not `sha256=<64 hex digits>` (401).
    #[error("the `X-Hub-Signature-256` header is malformed: {reason}")]
    MalformedSignature {
        /// What is wrong with it.
        reason: String,
    },
    /// The signature matches none of the secrets (401).
    #[error(
        "the `X-Hub-Signature-256` signature matches none of the {secrets} webhook secret(s): \
         the secret on GitHub differs from the secret file, or the body was altered"
    )]
    SignatureMismatch {
        /// How many secrets were tried.
        secrets: usize,
    },
    /// A required header is missing or empty (400).
    #[error("the webhook has no `{header}` header")]
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// The body is not JSON (400).
    #[error("the `{event}` webhook body is not JSON, at line {line} column {column}: {message}")]
    Json {
        /// The event type.
        event: String,
        /// serde_json's line (1-based).
        line: usize,
        /// serde_json's column (1-based).
        column: usize,
        /// What serde_json said.
        message: String,
    },
    /// A field the event needs is missing or has the wrong type (400).
    #[error("the `{event}` webhook body has no {expected} at `{path}`")]
    Field {
        /// The event type.
        event: String,
        /// The JSON path of the field (`repository.full_name`).
        path: String,
        /// What was expected there (`string`, `boolean`, ...).
        expected: &'static str,
    },
    /// No usable webhook secret was configured (a server configuration error, 500).
    #[error("{reason}")]
    NoSecret {
        /// What is wrong.
        reason: String,
    },
}

impl WebhookError {
    /// The HTTP status to answer with: 413, 401, 400, or 500 for a configuration error.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::TooLarge { .. } => 413,
            WebhookError::MissingSignature
            | WebhookError::MalformedSignature { .. }
            | WebhookError::SignatureMismatch { .. } => 401,
            WebhookError::MissingHeader { .. }
            | WebhookError::Json { .. }
            | WebhookError::Field { .. } => 400,
            WebhookError::NoSecret { .. } => 500,
        }
    }
}

/// Parses a delivery whose signature was verified ([`WebhookSecrets::verify`]): `event` is
/// the `X-GitHub-Event` header, `delivery` the `X-GitHub-Delivery` header, `body` the JSON
/// body (`application/json` webhooks; form-encoded ones are not taken).
///
/// Every event type is answered: `push`, `ping` and the `pull_request` actions `opened`,
/// `reopened`, `synchronize` and `closed` are parsed; anything else is
/// [`Webhook::Ignored`] with the reason. Only the fields used are read, so GitHub may add
/// fields freely. Never panics.
pub fn parse(event: &str, delivery: &str, body: &[u8]) -> Result<Webhook, WebhookError> {
    check_size(body.len())?;
    let event = event.trim();
    let delivery = delivery.trim();
    if event.is_empty() {
        return Err(WebhookError::MissingHeader {
            header: "X-GitHub-Event",
        });
    }
    if delivery.is_empty() {
        return Err(WebhookError::MissingHeader {
            header: "X-GitHub-Delivery",
        });
    }
    let json = Json::parse(event, body)?;
    match event {
        "push" => push::parse(delivery, &json).map(Webhook::Push),
        "ping" => Ok(Webhook::Ping(Ping {
            delivery: delivery.to_owned(),
            zen: json.opt_str("zen")?.unwrap_or_default().to_owned(),
            hook_id: json.opt_u64("hook_id")?,
            repository: json.opt_str("repository.full_name")?.map(str::to_owned),
        })),
        "pull_request" => pull_request::parse(delivery, &json),
        other => Ok(Webhook::Ignored(Ignored {
            event: other.to_owned(),
            delivery: delivery.to_owned(),
            repository: json
                .opt_str("repository.full_name")
                .ok()
                .flatten()
                .map(str::to_owned),
            git_ref: None,
            commit: None,
            reason: format!("`{other}` events start nothing"),
        })),
    }
}

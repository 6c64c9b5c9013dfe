//! [`SlackNotifier`]: messages to a Slack incoming webhook, with retries.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::engine::{Notification, NotificationEvent, Notifier, NotifyConfig};
use devramps_core::{Error, Result};

/// The environment variable [`SlackNotifier::from_env`] reads the webhook URL from.
pub const SLACK_WEBHOOK_ENV: &str = "DEVRAMPS_SLACK_WEBHOOK_URL";

/// The backend name in errors.
const BACKEND: &str = "slack";

/// How a [`SlackNotifier`] retries.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SlackOptions {
    /// Attempts per message, the first included (default 5).
    pub attempts: u32,
    /// The wait after the first failure, doubled after each (default 500 ms).
    pub backoff: Duration,
    /// The longest wait, also for a `Retry-After` (default 30 s).
    pub max_backoff: Duration,
    /// How long one request may take (default 10 s).
    pub timeout: Duration,
}

impl Default for SlackOptions {
    fn default() -> Self {
        SlackOptions {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Posts notifications to a Slack incoming webhook as `{"channel", "text", "blocks"}`.
///
/// Transient failures (connection errors, HTTP 429 and 5xx) are retried with exponential
/// backoff, honouring `Retry-After`; after [`SlackOptions::attempts`] the message is given up
/// with an error. Other answers (4xx) fail at once. The webhook URL holds a token: it is never
/// printed, not even by `Debug`. Messages are built only from the notification (whose reasons
/// the engine has redacted) and every text of [`SlackNotifier::with_secrets`] is replaced by
/// `[REDACTED]` before sending.
#[derive(Clone)]
pub struct SlackNotifier {
    client: reqwest::Client,
    url: reqwest::Url,
    options: SlackOptions,
    secrets: Vec<String>,
}

impl fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("host", &self.url.host_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SlackNotifier {
    /// A notifier posting to `webhook_url` (`https://hooks.slack.com/services/...`).
    pub fn new(webhook_url: &str) -> Result<Self> {
        Self::with_options(webhook_url, SlackOptions::default())
    }

    /// A notifier posting to `webhook_url`, retrying as `options` say.
    pub fn with_options(webhook_url: &str, options: SlackOptions) -> Result<Self> {
        let url = reqwest::Url::parse(webhook_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::backend(
                    BACKEND,
                    "read the webhook URL",
                    format!(
                        "it is not an http(s) URL (set {SLACK_WEBHOOK_ENV} to the incoming \
                         webhook's URL)"
                    ),
                )
            })?;
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::backend_from(BACKEND, "build the HTTP client", e))?;
        Ok(SlackNotifier {
            client,
            url,
            options,
            secrets: Vec::new(),
        })
    }

    /// The notifier of the webhook URL in `DEVRAMPS_SLACK_WEBHOOK_URL`; `None` when it is not
    /// set or empty.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(SLACK_WEBHOOK_ENV) {
            Ok(url) if !url.trim().is_empty() => Self::new(url.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// Texts never to send (secret values the embedder knows), replaced by `[REDACTED]`.
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Self {
        self.secrets
            .extend(secrets.into_iter().filter(|s| !s.is_empty()));
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self
    }

    /// The JSON body posted for `notification` of `pipeline`.
    pub fn message(
        &self,
        pipeline: &str,
        notification: &Notification,
        config: &NotifyConfig,
    ) -> serde_json::Value {
        let text = self.redact(&text(pipeline, notification));
        serde_json::json!({
            "channel": config.channel,
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        })
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[REDACTED]");
        }
        text
    }

    /// The wait before attempt `attempt + 1` (`attempt` from 1), or the server's
    /// `Retry-After`, at most [`SlackOptions::max_backoff`].
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .options
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        retry_after
            .unwrap_or(exponential)
            .min(self.options.max_backoff)
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn notify(
        &self,
        pipeline: &str,
        notification: &Notification,
        config: &NotifyConfig,
    ) -> Result<()> {
        let body = self.message(pipeline, notification, config);
        let operation = format!(
            "post the `{}` notification of `{pipeline}` to `{}`",
            notification.event, config.channel
        );
        let attempts = self.options.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let retry_after = match self.client.post(self.url.clone()).json(&body).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let answer = response.text().await.unwrap_or_default();
                    let answer: String = answer.chars().take(200).collect();
                    last = format!("HTTP {status}: {answer}");
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(Error::backend(BACKEND, operation, last));
                    }
                    retry_after
                }
                Err(e) => {
                    // The error may name the URL, which holds the webhook's token.
                    last = describe(e);
                    None
                }
            };
            if attempt < attempts {
                let delay = self.delay(attempt, retry_after);
                tracing::debug!(attempt, ?delay, error = %last, "slack notification failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
        Err(Error::backend(
            BACKEND,
            operation,
            format!("gave up after {attempts} attempts; the last: {last}"),
        ))
    }
}

/// A transport error, without its URL.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// The message's text (Slack mrkdwn).
fn text(pipeline: &str, n: &Notification) -> String {
    let headline = match n.event {
        NotificationEvent::StageFailed => ":x: Stage failed",
        NotificationEvent::ApprovalRequired => ":raised_hand: Approval required",
        NotificationEvent::StageAutoRolledBack => ":rewind: Stage rolled back by its alarm",
        NotificationEvent::StageRolledBack => ":rewind: Stage rolled back",
        NotificationEvent::StageRolledForward => ":fast_forward: Stage rolled forward",
        _ => "DevRamps",
    };
    let mut out = format!("*{headline}*: pipeline `{}`", escape(pipeline));
    if let Some(stage) = &n.stage {
        out.push_str(&format!(", stage `{}`", escape(stage)));
    }
    if let Some(step) = &n.step {
        out.push_str(&format!(", step `{}`", escape(step)));
    }
    let mut details = Vec::new();
    if let Some(revision) = n.revision {
        details.push(format!("revision {revision}"));
    }
    if let Some(commit) = &n.commit {
        details.push(format!("commit `{}`", escape(commit)));
    }
    details.push(format!("by {}", escape(&n.actor.to_string())));
    out.push_str(&format!("\n{}", details.join(", ")));
    if let Some(reason) = &n.reason {
        out.push_str(&format!("\n>{}", escape(reason).replace('\n', "\n>")));
    }
    out
}

/// Text with Slack's control characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

//! [`ServeConfig`]: what the router needs besides the engine, and [`Shutdown`].

use std::sync::Arc;
use std::time::Duration;

use devramps_core::backend::{Backends, DynEventStore, DynSourceRepository};
use devramps_github::webhook::WebhookSecrets;
use tokio::sync::watch;

use crate::auth::Tokens;
use crate::metrics::Metrics;

/// The default of [`ServeConfig::body_timeout`]: 30 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest webhook body accepted: 25 MiB, GitHub's own cap.
pub const MAX_WEBHOOK_BODY: usize = devramps_github::webhook::MAX_BODY;

/// How the router serves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The engine's event store: pipelines are its streams; the event log is paged from it.
    pub store: DynEventStore,
    /// The engine's source repository: a push is recorded for each pipeline defined at the
    /// pushed commit.
    pub source: DynSourceRepository,
    /// The repository served (`owner/name`): webhooks of another repository are accepted
    /// and ignored with that reason (202); `None`: every repository's.
    pub repository: Option<String>,
    /// The accepted bearer tokens; `None`: only callers on a loopback address, as `admin`
    /// named `local`.
    pub tokens: Option<Tokens>,
    /// The webhook secrets (several during a rotation); `None`: every webhook is refused
    /// (401).
    pub webhook_secrets: Option<WebhookSecrets>,
    /// How long a request body may take to arrive (a slow client is answered 408).
    pub body_timeout: Duration,
    /// How often an event stream looks for new records when nothing woke it.
    pub stream_poll: Duration,
    /// The metrics (also an observer to give the engine).
    pub metrics: Arc<Metrics>,
    /// Tells the readiness check and the event streams that the server stops.
    pub shutdown: Shutdown,
}

impl ServeConfig {
    /// The defaults over the store and source of `backends`: no tokens (loopback only), no
    /// webhook secret, fresh metrics.
    pub fn new(backends: &Backends) -> Self {
        ServeConfig {
            store: backends.store.clone(),
            source: backends.source.clone(),
            repository: None,
            tokens: None,
            webhook_secrets: None,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            stream_poll: Duration::from_millis(500),
            metrics: Arc::new(Metrics::new()),
            shutdown: Shutdown::new(),
        }
    }

    /// With the repository served (`owner/name`), or `None` for every repository's
    /// webhooks.
    pub fn with_repository(mut self, repository: Option<String>) -> Self {
        self.repository = repository;
        self
    }

    /// With bearer tokens.
    pub fn with_tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// With the webhook secrets.
    pub fn with_webhook_secrets(mut self, secrets: WebhookSecrets) -> Self {
        self.webhook_secrets = Some(secrets);
        self
    }

    /// With the body timeout.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// With these metrics (the observer given to the engine).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// With this shutdown signal.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }
}

/// A shutdown signal shared by the server's parts: once triggered, the readiness check
/// answers 503 and the event streams end, so a graceful shutdown does not wait for them.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// Not triggered.
    pub fn new() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Triggers it (again: no effect).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether it was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once triggered.
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

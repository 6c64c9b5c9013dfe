//! Notifications (Slack and the like), sent for the events a pipeline subscribes to.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::pipeline::NotificationEvent;

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// What happened.
    pub event: NotificationEvent,
    /// Pipeline slug.
    pub pipeline: String,
    /// Stage, where one applies.
    pub stage: Option<String>,
    /// Revision.
    pub revision: u64,
    /// Commit.
    pub commit: String,
    /// A sentence for people (the failure cause, what waits for approval).
    pub message: String,
}

/// Delivers notifications.
///
/// # Contract
///
/// `notify` delivers at least once; a failure is reported but never stops a deployment.
#[async_trait]
pub trait Notifier: Send + Sync + Debug + 'static {
    /// Sends a notification.
    async fn notify(&self, notification: &Notification) -> Result<()>;
}

/// A shared [`Notifier`].
pub type DynNotifier = Arc<dyn Notifier>;

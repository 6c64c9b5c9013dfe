//! [`RecordingNotifier`]: a notifier that keeps what it was asked to send.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{Notification, Notifier};
use devramps_core::{Error, Result};

#[derive(Debug, Default)]
struct State {
    sent: Vec<Notification>,
    failing: bool,
}

/// A [`Notifier`] that records every notification, in order. It can be made to fail (to check
/// that a failed notification never stops a deployment); failed sends are not recorded.
/// Clones share the record.
#[derive(Clone, Debug, Default)]
pub struct RecordingNotifier {
    state: Arc<Mutex<State>>,
}

impl RecordingNotifier {
    /// Records and succeeds.
    pub fn new() -> Self {
        RecordingNotifier::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every notification delivered, in order.
    pub fn notifications(&self) -> Vec<Notification> {
        self.lock().sent.clone()
    }

    /// Makes every later send fail with [`Error::Backend`] (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(&self, notification: &Notification) -> Result<()> {
        let mut state = self.lock();
        if state.failing {
            return Err(Error::backend(
                "recording notifier",
                format!(
                    "send {} for `{}`",
                    notification.event, notification.pipeline
                ),
                "the notifier was set to fail",
            ));
        }
        state.sent.push(notification.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use devramps_core::pipeline::NotificationEvent;
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn records_in_order_and_can_fail() {
        let notifier = RecordingNotifier::new();
        let n = Notification {
            event: NotificationEvent::StageFailed,
            pipeline: "api".into(),
            stage: Some("prod".into()),
            revision: 4,
            commit: "c4".into(),
            message: "step deploy failed".into(),
        };
        block_on(notifier.notify(&n)).unwrap();
        notifier.set_failing(true);
        assert!(block_on(notifier.notify(&n)).is_err());
        assert_eq!(notifier.notifications(), [n]);
    }
}

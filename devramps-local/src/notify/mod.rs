//! Notifications as an engine observer: [`spawn_notifications`] runs the task that delivers
//! what a [`NotifyingObserver`](devramps_core::engine::NotifyingObserver) hands it, and
//! [`SlackNotifier`] posts to a Slack incoming webhook.
//!
//! ```no_run
//! # async fn f(store: devramps_core::backend::DynEventStore) -> devramps_core::Result<()> {
//! use std::sync::Arc;
//! use devramps_core::engine::NotifyingObserver;
//! use devramps_local::notify::{SlackNotifier, spawn_notifications};
//!
//! let (observer, appends) = NotifyingObserver::new(1024);
//! if let Some(slack) = SlackNotifier::from_env()? {
//!     spawn_notifications(appends, store, Arc::new(slack));
//! }
//! // ...and `observer` goes into `EngineConfig::observers`.
//! # let _ = observer; Ok(()) }
//! ```
//!
//! The task folds each pipeline's log ([`PipelineNotifications`]) to know the subscription of
//! the definition in force and the commits; when an append does not follow the last one it saw
//! (records of another instance, or from before a restart), it reads the missing records from
//! the store first and folds them without notifying: their own appender did. Deliveries are
//! sequential, in log order per pipeline. It needs a tokio runtime.

mod slack;

use std::collections::HashMap;

use devramps_core::backend::DynEventStore;
use devramps_core::engine::{AppendedRecords, DynNotifier, PipelineNotifications, read_records};
use futures::StreamExt;
use futures::channel::mpsc;

pub use slack::{SLACK_WEBHOOK_ENV, SlackNotifier, SlackOptions};

/// Spawns the delivery task on the current tokio runtime; it ends when every sender of
/// `appends` (the observers) is dropped.
pub fn spawn_notifications(
    appends: mpsc::Receiver<AppendedRecords>,
    store: DynEventStore,
    notifier: DynNotifier,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(deliver(appends, store, notifier))
}

/// Delivers the notifications of every append received, in order.
pub async fn deliver(
    mut appends: mpsc::Receiver<AppendedRecords>,
    store: DynEventStore,
    notifier: DynNotifier,
) {
    let mut folds: HashMap<String, PipelineNotifications> = HashMap::new();
    while let Some(batch) = appends.next().await {
        let pipeline = batch.pipeline.as_str();
        let fold = folds
            .entry(batch.pipeline.clone())
            .or_insert_with(|| PipelineNotifications::new(pipeline));
        if fold.next_seq() < batch.first_seq
            && let Err(e) = catch_up(fold, &store, pipeline, batch.first_seq).await
        {
            tracing::warn!(pipeline, error = %e, "cannot read the log to catch up: the notifications of this append are dropped");
            continue;
        }
        let mut due = Vec::new();
        for (seq, record) in (batch.first_seq..).zip(&batch.records) {
            if let Some(n) = fold.apply(seq, record) {
                due.push(n);
            }
        }
        for (notification, config) in due {
            if let Err(e) = notifier.notify(pipeline, &notification, &config).await {
                tracing::warn!(pipeline, event = %notification.event, error = %e, "notification not delivered");
            }
        }
    }
}

/// Folds the records of `pipeline` from `fold`'s next one up to (not including) `until`,
/// read from the store; transient failures are retried a few times.
async fn catch_up(
    fold: &mut PipelineNotifications,
    store: &DynEventStore,
    pipeline: &str,
    until: u64,
) -> devramps_core::Result<()> {
    let next = fold.next_seq();
    read_records(
        store,
        pipeline,
        "notifications",
        next,
        until,
        tokio::time::sleep,
        |seq, record| {
            let _ = fold.apply(seq, record);
        },
    )
    .await
}

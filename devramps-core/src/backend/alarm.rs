//! Alarm sources: state changes of the named alarms that stages watch for automatic rollback
//! (L15).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::exec::AlarmState;
use crate::pipeline::Stage;

/// Which alarm: its name, in an account and region (a stage's `auto_rollback_alarm_name` lives
/// in the stage's account and region).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlarmId {
    /// The alarm's name.
    pub name: String,
    /// The AWS account.
    pub account_id: String,
    /// The AWS region.
    pub region: String,
}

impl AlarmId {
    /// The alarm `stage` watches (its `auto_rollback_alarm_name`, in the stage's account and
    /// region), if it watches one.
    pub fn of_stage(stage: &Stage) -> Option<AlarmId> {
        Some(AlarmId {
            name: stage.auto_rollback_alarm_name.as_ref()?.value.clone(),
            account_id: stage.account_id.value.clone(),
            region: stage.region.value.clone(),
        })
    }
}

/// One state change of an alarm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmChange {
    /// The alarm.
    pub alarm: AlarmId,
    /// Its new state.
    pub state: AlarmState,
}

/// Where alarm state changes come from (for example CloudWatch alarms forwarded by EventBridge).
///
/// # Contract
///
/// - `subscribe` returns a stream of every change that happens after the call, in the order
///   they happened; each call is an independent subscription, and several engine instances may
///   each hold one. A change may be delivered more than once (the engine ignores a state the
///   stage already has); the stream ends only when the source is shut down.
/// - `state` returns an alarm's current state, or `Ok(None)` when the source does not know the
///   alarm. The engine reads it when it (re)starts, so that a change missed while it was down is
///   still acted on.
#[async_trait]
pub trait AlarmSource: Send + Sync + Debug + 'static {
    /// The changes from now on.
    fn subscribe(&self) -> BoxStream<'static, AlarmChange>;

    /// An alarm's current state.
    async fn state(&self, alarm: &AlarmId) -> Result<Option<AlarmState>>;
}

/// A shared [`AlarmSource`].
pub type DynAlarmSource = Arc<dyn AlarmSource>;

/// Forwards every method, so `Arc<A>` and `Box<A>` (including `Arc<dyn AlarmSource>`) are
/// alarm sources too.
macro_rules! forward_alarm_source {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: AlarmSource + ?Sized> AlarmSource for $pointer<T> {
            fn subscribe(&self) -> BoxStream<'static, AlarmChange> {
                (**self).subscribe()
            }

            async fn state(&self, alarm: &AlarmId) -> Result<Option<AlarmState>> {
                (**self).state(alarm).await
            }
        }
    )*};
}

forward_alarm_source!(Arc, Box);

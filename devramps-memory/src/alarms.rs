//! [`InMemoryAlarms`]: alarms whose state a test or the simulator sets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{AlarmChange, AlarmId, AlarmSource};
use devramps_core::lifecycle::AlarmState;
use futures::channel::mpsc;
use futures::stream::{BoxStream, StreamExt};

#[derive(Debug, Default)]
struct State {
    alarms: BTreeMap<AlarmId, AlarmState>,
    subscribers: Vec<mpsc::UnboundedSender<AlarmChange>>,
}

/// An [`AlarmSource`] whose alarms change when [`InMemoryAlarms::set`] says so. Every
/// subscription sees every change made after it subscribed, in order. Clones share the alarms.
#[derive(Clone, Debug, Default)]
pub struct InMemoryAlarms {
    state: Arc<Mutex<State>>,
}

impl InMemoryAlarms {
    /// No alarms known.
    pub fn new() -> Self {
        InMemoryAlarms::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets an alarm's state and tells every subscriber, even when the state is unchanged (a
    /// source may repeat itself; the engine must not care).
    pub fn set(&self, alarm: AlarmId, state: AlarmState) {
        let mut inner = self.lock();
        inner.alarms.insert(alarm.clone(), state);
        let change = AlarmChange { alarm, state };
        inner
            .subscribers
            .retain(|tx| tx.unbounded_send(change.clone()).is_ok());
    }

    /// How many subscriptions are live.
    pub fn subscribers(&self) -> usize {
        let mut inner = self.lock();
        inner.subscribers.retain(|tx| !tx.is_closed());
        inner.subscribers.len()
    }
}

#[async_trait]
impl AlarmSource for InMemoryAlarms {
    fn subscribe(&self) -> BoxStream<'static, AlarmChange> {
        let (tx, rx) = mpsc::unbounded();
        self.lock().subscribers.push(tx);
        rx.boxed()
    }

    async fn state(&self, alarm: &AlarmId) -> Result<Option<AlarmState>> {
        Ok(self.lock().alarms.get(alarm).copied())
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    fn id(name: &str) -> AlarmId {
        AlarmId {
            name: name.into(),
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn subscribers_see_later_changes_in_order_and_state_reads_the_last() {
        let alarms = InMemoryAlarms::new();
        alarms.set(id("a"), AlarmState::Alarm); // before anyone listens
        let mut first = alarms.subscribe();
        alarms.set(id("a"), AlarmState::Ok);
        let mut second = alarms.subscribe();
        alarms.set(id("b"), AlarmState::Alarm);
        let got: Vec<_> =
            block_on(async { vec![first.next().await, first.next().await, second.next().await] });
        let states: Vec<_> = got
            .into_iter()
            .map(|c| c.map(|c| (c.alarm.name, c.state)))
            .collect();
        assert_eq!(
            states,
            [
                Some(("a".to_owned(), AlarmState::Ok)),
                Some(("b".to_owned(), AlarmState::Alarm)),
                Some(("b".to_owned(), AlarmState::Alarm)),
            ]
        );
        assert_eq!(
            block_on(alarms.state(&id("a"))).ok().flatten(),
            Some(AlarmState::Ok)
        );
        assert_eq!(block_on(alarms.state(&id("c"))).ok().flatten(), None);
        drop(first);
        assert_eq!(alarms.subscribers(), 1);
    }
}

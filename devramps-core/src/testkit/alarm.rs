//! Conformance cases of [`AlarmSource`](crate::backend::AlarmSource): states read back, subscriptions see later changes.
//!
//! Run them all with [`alarm_conformance_tests!`](crate::alarm_conformance_tests) over an
//! [`AlarmFixture`].

use std::fmt;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::Result;
use crate::backend::{AlarmChange, AlarmId, DynAlarmSource};
use crate::lifecycle::AlarmState;

use super::{Capabilities, Time, ok, until};

/// Sets an alarm's state at its origin (CloudWatch's `SetAlarmState`, an in-memory setter).
pub type SetAlarm =
    Box<dyn Fn(AlarmId, AlarmState) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// An alarm source under test, and a way to change its alarms.
pub struct AlarmFixture {
    /// The source.
    pub source: DynAlarmSource,
    /// Sets an alarm's state; the source then reports the change. The cases use alarms named
    /// `conformance-*`.
    pub set: SetAlarm,
    /// How time passes while a change travels to the subscribers.
    pub time: Time,
}

impl fmt::Debug for AlarmFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlarmFixture")
            .field("source", &self.source)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

/// The fixture a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject(fixture: &AlarmFixture) -> &AlarmFixture {
    fixture
}

fn alarm(name: &str) -> AlarmId {
    AlarmId {
        name: format!("conformance-{name}"),
        account_id: "111111111111".to_owned(),
        region: "us-east-1".to_owned(),
    }
}

async fn set(f: &AlarmFixture, id: &AlarmId, state: AlarmState) {
    ok(
        (f.set)(id.clone(), state).await,
        &format!("set {} to {state:?}", id.name),
    );
}

/// The next change of `alarm` on `changes` that differs from `previous` (a source may repeat
/// itself).
async fn next_change(
    f: &AlarmFixture,
    changes: &mut BoxStream<'static, AlarmChange>,
    alarm: &AlarmId,
    previous: Option<AlarmState>,
) -> AlarmState {
    let what = format!("the next change of {}", alarm.name);
    let next = async {
        loop {
            match changes.next().await {
                Some(c) if &c.alarm == alarm && Some(c.state) != previous => return c.state,
                Some(_) => {}
                None => panic!("{what}: the subscription ended"),
            }
        }
    };
    until(&f.time, &what, next).await
}

/// An alarm the source does not know has no state.
pub async fn unknown_alarm_has_no_state(f: &AlarmFixture, _: &Capabilities) {
    let state = ok(f.source.state(&alarm("never-set")).await, "state");
    assert_eq!(state, None, "an unknown alarm has no state");
}

/// `state` returns the state last set.
pub async fn state_reads_back_what_was_set(f: &AlarmFixture, _: &Capabilities) {
    let id = alarm("read-back");
    for state in [AlarmState::Alarm, AlarmState::Ok, AlarmState::Alarm] {
        set(f, &id, state).await;
        assert_eq!(
            ok(f.source.state(&id).await, "state"),
            Some(state),
            "after setting {state:?}"
        );
    }
}

/// A subscription sees every change made after it subscribed, in order.
pub async fn subscription_sees_later_changes_in_order(f: &AlarmFixture, _: &Capabilities) {
    let id = alarm("ordered");
    let mut changes = f.source.subscribe();
    set(f, &id, AlarmState::Alarm).await;
    set(f, &id, AlarmState::Ok).await;
    let first = next_change(f, &mut changes, &id, None).await;
    assert_eq!(first, AlarmState::Alarm, "the first change first");
    let second = next_change(f, &mut changes, &id, Some(first)).await;
    assert_eq!(second, AlarmState::Ok, "then the second");
}

/// Two subscriptions each see the same change.
pub async fn subscriptions_are_independent(f: &AlarmFixture, _: &Capabilities) {
    let id = alarm("shared");
    let mut a = f.source.subscribe();
    let mut b = f.source.subscribe();
    set(f, &id, AlarmState::Alarm).await;
    assert_eq!(
        next_change(f, &mut a, &id, None).await,
        AlarmState::Alarm,
        "subscriber a"
    );
    assert_eq!(
        next_change(f, &mut b, &id, None).await,
        AlarmState::Alarm,
        "subscriber b"
    );
}

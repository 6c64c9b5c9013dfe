//! [`ManualClock`]: time that moves only when told to.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::Clock;
use devramps_core::{Error, Result};
use jiff::Timestamp;

/// `t + d`, saturating at [`Timestamp::MAX`].
pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

#[derive(Debug)]
struct State {
    now: Timestamp,
    next_id: u64,
    /// Pending sleepers by (deadline, registration id), so the earliest comes first and ties
    /// wake in registration order.
    sleepers: BTreeMap<(Timestamp, u64), Waker>,
}

/// A [`Clock`] that moves only when [`advance`](ManualClock::advance)d or
/// [`set`](ManualClock::set), for tests and simulation.
///
/// `sleep_until(t)` completes at once when `t` is not after [`now`](Clock::now); otherwise it
/// registers as a pending sleeper and completes when the clock is moved to `t` or later.
/// [`next_deadline`](ManualClock::next_deadline) tells a simulator where the next sleeper
/// wakes, so it can jump straight there. Clones share the same time and sleepers.
///
/// ```
/// use std::time::Duration;
/// use devramps_core::backend::Clock;
/// use devramps_memory::ManualClock;
/// use futures::FutureExt;
///
/// let clock = ManualClock::new("2026-01-05T17:00:00Z".parse().unwrap());
/// let deadline = clock.now() + Duration::from_secs(60);
/// let mut sleep = clock.sleep_until(deadline);
/// assert!((&mut sleep).now_or_never().is_none());
/// assert_eq!(clock.next_deadline(), Some(deadline));
/// clock.advance(Duration::from_secs(60));
/// assert!(sleep.now_or_never().is_some());
/// assert_eq!(clock.pending_sleepers(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    state: Arc<Mutex<State>>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            state: Arc::new(Mutex::new(State {
                now: start,
                next_id: 0,
                sleepers: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward by `by` (saturating at [`Timestamp::MAX`]) and wakes every
    /// sleeper whose deadline is reached. Returns the new time.
    pub fn advance(&self, by: Duration) -> Timestamp {
        let state = self.lock();
        let to = add(state.now, by);
        Self::move_to(state, to)
    }

    /// Moves the clock to `t` and wakes every sleeper whose deadline is reached. Time never
    /// goes backwards: a `t` before the current time fails with [`Error::Backend`] and leaves
    /// the clock unchanged.
    pub fn set(&self, t: Timestamp) -> Result<()> {
        let state = self.lock();
        if t < state.now {
            return Err(Error::backend(
                "manual clock",
                format!("set the time to {t}"),
                format!("the clock reads {}; time never goes backwards", state.now),
            ));
        }
        Self::move_to(state, t);
        Ok(())
    }

    /// Moves the clock to the earliest pending deadline, waking the sleepers due then.
    /// Returns that deadline, or `None` (clock unchanged) when nothing sleeps.
    pub fn advance_to_next_deadline(&self) -> Option<Timestamp> {
        let state = self.lock();
        let next = state.sleepers.keys().next().map(|(t, _)| *t)?;
        let to = next.max(state.now);
        Some(Self::move_to(state, to))
    }

    fn move_to(mut state: MutexGuard<'_, State>, to: Timestamp) -> Timestamp {
        state.now = to;
        // Deadlines after `to` stay; `(to, u64::MAX)` sorts after every `(to, id)`.
        let later = state.sleepers.split_off(&(to, u64::MAX));
        let due = std::mem::replace(&mut state.sleepers, later);
        drop(state);
        for waker in due.into_values() {
            waker.wake();
        }
        to
    }

    /// The deadline of the earliest pending sleeper.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.lock().sleepers.keys().next().map(|(t, _)| *t)
    }

    /// How many sleepers wait for a deadline not yet reached.
    pub fn pending_sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }

    /// A future completing when the clock reaches `deadline` (what
    /// [`Clock::sleep_until`] awaits), as a named, `Unpin` type.
    pub fn sleep(&self, deadline: Timestamp) -> Sleep {
        Sleep {
            clock: self.clone(),
            deadline,
            id: None,
        }
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.lock().now
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        self.sleep(deadline).await;
    }
}

/// The future of [`ManualClock::sleep`]. Dropping it unregisters the sleeper.
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    clock: ManualClock,
    deadline: Timestamp,
    id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut state = this.clock.lock();
        if state.now >= this.deadline {
            if let Some(id) = this.id.take() {
                state.sleepers.remove(&(this.deadline, id));
            }
            return Poll::Ready(());
        }
        let id = match this.id {
            Some(id) => id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                this.id = Some(id);
                id
            }
        };
        match state.sleepers.get_mut(&(this.deadline, id)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                state
                    .sleepers
                    .insert((this.deadline, id), cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock.lock().sleepers.remove(&(self.deadline, id));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::FutureExt;

    use super::*;

    fn start() -> Timestamp {
        Timestamp::constant(1_767_632_400, 0)
    }

    #[test]
    fn past_deadline_completes_at_once() {
        let clock = ManualClock::new(start());
        assert!(clock.sleep_until(start()).now_or_never().is_some());
        assert_eq!(clock.pending_sleepers(), 0);
    }

    #[test]
    fn sleepers_wake_in_deadline_order_and_next_deadline_tracks_them() {
        let clock = ManualClock::new(start());
        let t1 = add(start(), Duration::from_secs(10));
        let t2 = add(start(), Duration::from_secs(20));
        let mut late = clock.sleep(t2);
        let mut early = clock.sleep(t1);
        assert!((&mut late).now_or_never().is_none());
        assert!((&mut early).now_or_never().is_none());
        assert_eq!(clock.pending_sleepers(), 2);
        assert_eq!(clock.next_deadline(), Some(t1));
        assert_eq!(clock.advance_to_next_deadline(), Some(t1));
        assert_eq!(clock.now(), t1);
        assert!((&mut early).now_or_never().is_some());
        assert!((&mut late).now_or_never().is_none());
        assert_eq!(clock.next_deadline(), Some(t2));
        clock.advance(Duration::from_secs(100));
        assert!(late.now_or_never().is_some());
        assert_eq!(clock.advance_to_next_deadline(), None);
    }

    #[test]
    fn dropped_sleeper_is_unregistered() {
        let clock = ManualClock::new(start());
        let mut sleep = clock.sleep(add(start(), Duration::from_secs(5)));
        assert!((&mut sleep).now_or_never().is_none());
        assert_eq!(clock.pending_sleepers(), 1);
        drop(sleep);
        assert_eq!(clock.pending_sleepers(), 0);
        assert_eq!(clock.next_deadline(), None);
    }

    #[test]
    fn set_never_goes_backwards() {
        let clock = ManualClock::new(start());
        let later = add(start(), Duration::from_secs(1));
        clock.set(later).unwrap();
        assert!(clock.set(start()).is_err());
        assert_eq!(clock.now(), later);
        clock.set(later).unwrap();
    }

    #[test]
    fn advance_saturates() {
        let clock = ManualClock::new(start());
        assert_eq!(clock.advance(Duration::MAX), Timestamp::MAX);
    }

    #[test]
    fn sleep_wakes_a_waiting_task() {
        let clock = ManualClock::new(start());
        let deadline = add(start(), Duration::from_secs(30));
        let waiter = clock.clone();
        let advancer = clock.clone();
        futures::executor::block_on(async move {
            let sleep = waiter.sleep_until(deadline);
            let advance = async move {
                while advancer.pending_sleepers() == 0 {
                    crate::fault::yield_now().await;
                }
                advancer.advance(Duration::from_secs(30));
            };
            futures::join!(sleep, advance);
        });
        assert_eq!(clock.now(), deadline);
    }
}

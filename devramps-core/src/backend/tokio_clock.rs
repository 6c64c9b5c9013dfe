//! [`TokioClock`] (feature `tokio`): real time, for an engine running on tokio.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use super::Clock;

/// A [`Clock`] of real time for tokio: `now` reads the system clock (through jiff) and
/// `sleep_until` sleeps with `tokio::time`, so it must be awaited inside a tokio runtime with
/// time enabled.
///
/// The system clock may be set back; `now` never is: it answers the latest time it has
/// answered when the system clock reads earlier. `sleep_until(t)` completes once `now` reaches
/// `t` (at once when `t` is past), sleeping again when the system clock was set back during
/// the sleep. Clones share what they have answered.
///
/// ```
/// use std::sync::Arc;
/// use devramps_core::backend::{Clock, DynClock, TokioClock};
///
/// let clock: DynClock = Arc::new(TokioClock::new());
/// let before = clock.now();
/// assert!(clock.now() >= before);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TokioClock {
    latest: Arc<Mutex<Option<Timestamp>>>,
}

impl TokioClock {
    /// A clock reading the system's time.
    pub fn new() -> Self {
        TokioClock::default()
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let system = Timestamp::now();
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = latest.map_or(system, |l| l.max(system));
        *latest = Some(now);
        now
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        loop {
            let left = deadline.duration_since(self.now());
            if left.is_zero() || left.is_negative() {
                return;
            }
            // A deadline further than `Duration` can say is never reached: sleep in long
            // steps.
            let left = Duration::try_from(left).unwrap_or(Duration::from_secs(86_400));
            tokio::time::sleep(left).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn sleeps_in_real_time_until_the_deadline() {
        let clock = TokioClock::new();
        let start = clock.now();
        let started = Instant::now();
        let deadline = start + Duration::from_millis(50);
        clock.sleep_until(deadline).await;
        assert!(clock.now() >= deadline, "woke at or after the deadline");
        assert!(
            started.elapsed() >= Duration::from_millis(45),
            "really slept: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_past_deadline_completes_at_once() {
        let clock = TokioClock::new();
        let started = Instant::now();
        clock
            .sleep_until(clock.now() - Duration::from_secs(60))
            .await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn now_reads_the_system_clock_and_never_goes_back() {
        let clock = TokioClock::new();
        let system = Timestamp::now();
        let now = clock.now();
        let drift = now.duration_since(system).abs();
        assert!(drift < jiff::SignedDuration::from_secs(5), "{drift:?}");
        // Pretend the clock answered a time ahead of the system clock (as if the system
        // clock was then set back): it keeps answering at least that.
        let ahead = system + Duration::from_secs(3_600);
        *clock.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(ahead);
        assert_eq!(clock.now(), ahead, "now never goes backwards");
        assert_eq!(clock.clone().now(), ahead, "clones share it");
    }
}

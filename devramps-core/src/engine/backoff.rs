//! [`Backoff`]: when to try again after a store or lease call failed (pure, on the backends'
//! clock).
//!
//! The first retry comes within a second, each later one waits twice as long, capped at a
//! minute; a backend's own `retry_after` hint is honoured up to the cap. Success resets it.

use std::time::Duration;

use jiff::Timestamp;

/// The first delay.
pub(crate) const FIRST: Duration = Duration::from_millis(500);
/// The longest delay.
pub(crate) const CAP: Duration = Duration::from_secs(60);

/// The retry state of one pipeline's failing calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
    until: Option<Timestamp>,
}

impl Backoff {
    /// The delay after `failures` failures in a row (1 for the first), or the backend's hint.
    pub(crate) fn delay(failures: u32, hint: Option<Duration>) -> Duration {
        let doubled = FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        hint.unwrap_or(doubled).min(CAP)
    }

    /// Notes a failure at `now`; returns when to try again.
    pub(crate) fn failed(&mut self, now: Timestamp, hint: Option<Duration>) -> Timestamp {
        self.failures = self.failures.saturating_add(1);
        let delay = Self::delay(self.failures, hint).max(Duration::from_millis(1));
        let at = now.checked_add(delay).unwrap_or(Timestamp::MAX);
        self.until = Some(at);
        at
    }

    /// Notes a success: the next failure starts again from the first delay.
    pub(crate) fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    /// The wait is over (the retry is being made): no time is due any more, but the next
    /// failure still waits longer than the last.
    pub(crate) fn expire(&mut self) {
        self.until = None;
    }

    /// When the next try is due, while backing off.
    pub(crate) fn until(&self) -> Option<Timestamp> {
        self.until
    }

    /// Whether calls must wait at `now`.
    pub(crate) fn waiting(&self, now: Timestamp) -> bool {
        self.until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_is_within_a_second_and_the_delay_doubles_up_to_a_minute() {
        let delays: Vec<u64> = (1..=10)
            .map(|n| Backoff::delay(n, None).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [
                500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000
            ]
        );
        assert_eq!(Backoff::delay(u32::MAX, None), CAP);
    }

    #[test]
    fn a_hint_is_honoured_up_to_the_cap() {
        let hint = Some(Duration::from_secs(3));
        assert_eq!(Backoff::delay(1, hint), Duration::from_secs(3));
        assert_eq!(Backoff::delay(1, Some(Duration::from_secs(600))), CAP);
    }

    #[test]
    fn success_resets_and_waiting_ends_at_the_due_time() {
        let now = Timestamp::UNIX_EPOCH;
        let mut b = Backoff::default();
        assert!(!b.waiting(now));
        let due = b.failed(now, None);
        assert_eq!(due.duration_since(now).as_millis(), 500);
        assert!(b.waiting(now) && !b.waiting(due));
        let second = b.failed(due, None);
        assert_eq!(second.duration_since(due).as_millis(), 1000);
        b.succeeded();
        assert_eq!(b.until(), None);
        assert_eq!(b.failed(now, None).duration_since(now).as_millis(), 500);
    }
}

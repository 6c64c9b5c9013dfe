//! Small helpers on the virtual clock's timestamps.

use std::time::Duration;

use jiff::Timestamp;

/// `t + d`, saturating at [`Timestamp::MAX`].
pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

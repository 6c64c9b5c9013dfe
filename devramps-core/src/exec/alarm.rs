//! The state of an alarm, as an [`AlarmSource`](crate::backend::AlarmSource) reports it and
//! the machine reacts to it (L15).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of a stage's auto-rollback alarm (L15).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AlarmState {
    /// The alarm is quiet.
    #[default]
    Ok,
    /// The alarm fires.
    Alarm,
}

impl AlarmState {
    /// The spelling of `scenario-format.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//! The deployment lifecycle of `lifecycle.md`: its states and names, and the time windows (L8).

mod table;
mod types;
mod window;

pub use table::{TRANSITIONS, Trigger, mermaid, next_state};
pub use types::{Actor, Blocker, Phase, StageState, StepState, WaitingFor};
pub use window::PACIFIC_ZONE;

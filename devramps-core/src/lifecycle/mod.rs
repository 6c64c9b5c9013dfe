//! The deployment lifecycle of `lifecycle.md`: its states and names, and the time windows (L8).

mod machine;
mod record;
mod state;
mod table;
mod types;
mod window;

pub use machine::{
    Command, Control, ControlAction, Decide, Input, Machine, Operate, Output, Push, WorkResult,
};
pub use record::{Event, Record};
pub use state::{Deployment, PipelineState, StageRun, StageRuntime, StepRun};
pub use table::{TRANSITIONS, Trigger, mermaid, next_state};
pub use types::{Actor, Blocker, Phase, StageState, StepState, WaitingFor};
pub use window::PACIFIC_ZONE;

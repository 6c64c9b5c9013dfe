//! The deployment lifecycle of `lifecycle.md`: its states and names, and the time windows (L8).

mod accepted;
mod envelope;
mod machine;
mod record;
mod snapshot;
mod state;
mod table;
mod types;
mod window;

pub use envelope::RECORD_VERSION;
pub use machine::{
    AlarmInput, Command, Control, ControlAction, Decide, Input, Machine, Operate, Output, Patch,
    Person, PipelineDecision, Push, WorkResult,
};
pub use record::{Event, Record};
pub use snapshot::SNAPSHOT_VERSION;
pub use state::{Deployment, PipelineState, StageRun, StageRuntime, StepRun};
pub use table::{TRANSITIONS, Trigger, mermaid, next_state};
pub use types::{Actor, AlarmState, Blocker, Emergency, Phase, StageState, StepState, WaitingFor};
pub use window::PACIFIC_ZONE;

//! The deployment lifecycle of `lifecycle.md`: its states and names, and the time windows (L8).

mod accepted;
mod command;
mod describe;
mod diagram;
mod envelope;
mod machine;
mod record;
mod snapshot;
mod state;
mod step_table;
mod table;
mod types;
mod window;

pub use command::{BuildWork, Command, InfraWork, MirrorWork, StepOutputs, StepWork, ValidateWork};
pub use describe::describe;
pub use diagram::{diagram, step_mermaid};
pub use envelope::RECORD_VERSION;
pub use machine::{
    AlarmInput, Control, ControlAction, Decide, IgnoredPush, Input, Machine, Operate, Output,
    Patch, Person, PipelineDecision, Push, WorkResult,
};
pub use record::{Event, Record};
pub use snapshot::SNAPSHOT_VERSION;
pub use state::{Deployment, PipelineState, StageRun, StageRuntime, StepRun};
pub use step_table::{STEP_TRANSITIONS, StepTransition, StepTrigger, next_step_state, step_edge};
pub use table::{TRANSITIONS, Trigger, mermaid, next_state};
pub use types::{Actor, AlarmState, Blocker, Emergency, Phase, StageState, StepState, WaitingFor};
pub use window::PACIFIC_ZONE;

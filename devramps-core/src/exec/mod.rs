//! The vocabulary the lifecycle machine and the backends share: typed execution identities
//! ([`ExecutionKey`], [`Unit`]), the requests the engine sends to the backends, and how
//! executions end ([`Outcome`], [`InfraPlan`]). No behaviour lives here; the backend traits
//! are in [`crate::backend`], which re-exports these types.

mod alarm;
mod image;
mod key;
mod outcome;
mod request;

pub use alarm::AlarmState;
pub use image::ImageRef;
pub use key::{ExecutionKey, Unit};
pub use outcome::{
    ChangeAction, DEFAULT_POLL_INTERVAL_MS, InfraPlan, LogEntry, Outcome, Outputs, Polling,
    ResourceChange,
};
pub use request::{
    BuildRequest, InfraRequest, MirrorRequest, StageArtifact, StageTarget, StepRequest,
    TerraformState, ValidationRequest,
};

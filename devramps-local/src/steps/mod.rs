//! Custom steps (`CUSTOM:*`): step registries and the process runner that speaks the DevRamps
//! step protocol (reference §9.3).

mod registry;

pub use registry::StepRegistry;

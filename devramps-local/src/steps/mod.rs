//! Custom steps (`CUSTOM:*`): step registries and the process runner that speaks the DevRamps
//! step protocol (reference §9.3).
//!
//! A [`StepRegistry`] says where a registry lives and which command starts it (by default its
//! `start-step-registry` npm script); a [`CustomStepRunner`] runs the steps of one or more
//! registries as process groups that outlive the engine, keeping what it needs to re-attach
//! under a state directory.
//!
//! ```no_run
//! # async fn demo() -> devramps_core::Result<()> {
//! use devramps_core::backend::{ExecutionKey, Runner, StepRequest, Unit};
//! use devramps_core::expr::FinalValue;
//! use devramps_local::steps::{CustomStepRunner, StepRegistry};
//!
//! let runner = CustomStepRunner::new(
//!     ".devramps/steps",
//!     vec![StepRegistry::npm("examples/step-registry")],
//! );
//! let key = ExecutionKey::new("app", 1, "prod", 1, Unit::step("hello"));
//! let params = FinalValue::Plain(serde_json::json!({ "message": "hi" }));
//! runner.start(StepRequest::new(key.clone(), "CUSTOM:ECHO", params)).await?;
//! println!("{:?}", runner.wait(&key).await?);
//! for line in runner.logs(&key).await? {
//!     println!("{} {}", line.level, line.message);
//! }
//! # Ok(())
//! # }
//! ```

mod layout;
mod metadata;
pub(crate) mod process;
mod protocol;
mod registry;
mod routing;
mod runner;
mod supervise;

pub use metadata::{
    CatalogEntry, METADATA_TIMEOUT, MetadataError, ParamViolation, StepCatalog, StepMetadata,
    ViolationKind, parse_metadata_result, synthesize_metadata, synthesize_metadata_within,
};
pub use registry::StepRegistry;
pub use runner::{CustomStepOptions, CustomStepRunner};

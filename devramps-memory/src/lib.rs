//! In-memory backends for devramps: real implementations of the core's backend contracts
//! that keep their state in memory, for embedding, tests and simulation, plus a manual clock,
//! scripted runners and fault-injecting decorators. The scenario reader of `devramps simulate`
//! lives in `devramps-sim`, which builds on this crate.
//!
//! Every backend here keeps its contract (the event store and the lock pass the conformance
//! kit of `devramps_core::testkit`); cloning a backend shares its state; iteration order is
//! deterministic; nothing reads the system clock, spawns a task or needs a particular async
//! runtime.
//!
//! [`scripted_backends`] builds the whole bundle on a [`ManualClock`], with scripted builds and
//! steps (each succeeds a minute after it starts unless scripted otherwise; never deploy with
//! it), and returns typed handles to script it:
//!
//! ```
//! use std::time::Duration;
//!
//! use devramps_core::backend::{ExecutionKey, Outcome, StepRequest, Unit};
//! use devramps_core::expr::FinalValue;
//! use devramps_memory::{Behavior, Match, scripted_backends};
//!
//! let (bundle, handles) = scripted_backends();
//! handles.steps.script(
//!     Match::step("deploy").in_stage("prod"),
//!     Behavior::fail("health check failed", Duration::from_secs(300)),
//! );
//! let key = ExecutionKey::new("api", 1, "prod", 1, Unit::step("deploy"));
//! let runner = bundle.steps.get("DEVRAMPS:ECS:DEPLOY").unwrap();
//! futures::executor::block_on(async {
//!     runner
//!         .start(StepRequest::new(
//!             key.clone(),
//!             "DEVRAMPS:ECS:DEPLOY",
//!             FinalValue::Plain(serde_json::json!({})),
//!         ))
//!         .await
//!         .unwrap();
//!     // The step runs for five minutes of the manual clock.
//!     handles.clock.advance(Duration::from_secs(300));
//!     let outcome = runner.wait(&key).await.unwrap();
//!     assert_eq!(outcome, Outcome::Failed { reason: "health check failed".into() });
//! });
//! assert_eq!(handles.steps.started(), [key]);
//! ```
#![forbid(unsafe_code)]

mod alarms;
mod bundle;
mod clock;
pub mod fault;
mod infra;
mod lock;
#[cfg(feature = "testkit")]
pub mod many_engines;
mod mirror;
mod observer;
mod resources;
mod runner;
mod script;
mod secrets;
mod source;
mod store;

pub use alarms::InMemoryAlarms;
pub use bundle::{DEFAULT_START, MemoryHandles, scripted_backends};
pub use clock::{ManualClock, Sleep};
pub use fault::{
    CallKind, Fault, FaultOptions, FaultSchedule, FaultyLock, FaultyStore, InjectedFault,
};
pub use infra::{PlanCounts, ScriptedInfra};
pub use lock::InMemoryLock;
pub use mirror::InMemoryMirror;
pub use observer::{ObservedAppend, RecordingObserver};
pub use resources::InMemoryResources;
pub use runner::{
    Behavior, CANCELLED_REASON, DEFAULT_DURATION, RunAction, RunRecord, ScriptedBuildRunner,
    ScriptedRequest, ScriptedRunner, ScriptedStepRunner,
};
pub use script::Match;
pub use secrets::InMemorySecrets;
pub use source::InMemorySource;
pub use store::InMemoryEventStore;

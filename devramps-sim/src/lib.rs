//! The simulator behind `devramps simulate`: scenario files, a run of the real engine on the
//! in-memory backends of `devramps-memory` (or any given event store and lease service) and a
//! virtual clock, and the report.
//!
//! It is a crate of its own so that an embedder who wants the in-memory backends does not
//! compile a scenario reader: `devramps-memory` never depends on it.
//!
//! - [`parse_scenario`] reads a scenario (the pipeline under test, a virtual clock, scripted
//!   events) into a typed [`Scenario`], reporting every problem as a [`ScenarioError`] with its
//!   line and column.
//! - [`Report`] is what a run produced, as `--format json` prints it ([`to_json`]) or as a
//!   readable timeline ([`render_text`]).
//! - [`simulate`] (and [`simulate_file`]) runs a scenario through the real engine on
//!   in-memory backends and a manual clock, and returns its [`Report`];
//!   [`simulate_with_store`] (and [`simulate_file_with`]) does the same with the event log and
//!   the leases in a given store, such as the durable local one: the report is the same.
//! - [`waiting_approvals`], [`waiting_revision`] and [`stage_revision`] read what an operator
//!   needs from a pipeline's state (`devramps status`, the operations, `devramps serve`).
//! - [`random`]: property-based testing of the lifecycle rules: proptest strategies of random
//!   histories of a pipeline, invariant checks over a report, and a scenario writer.
//! - [`parse_duration`] and [`format_duration`] read and write durations such as `1h30m`.
//!
//! The format is specified in `shared/spec/scenario-format.md`; state names are those of the
//! lifecycle rules.
#![forbid(unsafe_code)]

mod action;
mod backends;
mod check;
mod collect;
mod duration;
mod error;
mod executions;
pub mod files;
mod invariants;
pub mod random;
mod read_events;
mod reader;
mod render;
mod report;
mod run;
mod scenario;
mod status;
mod store;
mod time;

pub use action::{
    ACTION_KEYS, Action, AlarmState, Answer, DEFAULT_ACTOR, Push, ScriptedOutcome, ScriptedResult,
    StepRef, StoreOp, TerraformPlan,
};
pub use collect::{deployment_report, log_report, stage_summaries};
pub use duration::{format_duration, parse_duration};
pub use error::{ScenarioError, SimulateError};
pub use invariants::history_violations;
pub use render::render_text;
pub use report::{
    BuildReport, DeploymentReport, EventReport, ExecutionReport, Report, StageMap, StageReport,
    StageSummary, Synthesis, format_time, to_json,
};
pub use run::{simulate, simulate_file, simulate_file_with, simulate_with_store};
pub use scenario::{
    DEFAULT_RUN_UNTIL, DEFAULT_SCENARIO_START, DEFAULT_SLUG, Defaults, PipelineRef, Scenario,
    ScenarioEvent, parse_scenario,
};
pub use status::{
    ApprovalReport, build_execution, deployment_approvals, has_stage, stage_revision,
    step_execution, waiting_approvals, waiting_revision,
};
pub use store::StoreError;

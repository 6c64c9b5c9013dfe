//! Property-based testing of lifecycle rules: random histories of a pipeline as proptest
//! strategies, invariant checks over a run's report, and the scenario writer that turns any
//! history (a shrunk failure first of all) into a scenario file a person can read and re-run.
//!
//! - [`Histories`] gives, for a pipeline, a proptest strategy of [`Scenario`]s: pushes (the
//!   tracked branch and another, repeated deliveries and commits, branch deletions, changed
//!   paths that do and do not touch `rebuild_when_changed`, a broken definition, other
//!   definitions), scripted step and build outcomes (succeed, fail, hang, ask for approval,
//!   Terraform plans of each kind), people's operations, alarms, clock jumps across windows and
//!   daylight-saving changes, store faults and engine restarts. [`HistoryConfig`] sets how many
//!   events and how often each kind comes.
//! - [`Checker`] checks the lifecycle rules ([`RULES`]) after every event of a report;
//!   [`Property`] (any closure over the scenario and its report, or [`property`] over each
//!   event) adds the user's own. [`check_run`] runs both.
//! - [`write_scenario`] writes a [`Scenario`] as the YAML text that
//!   [`parse_scenario`](crate::parse_scenario) reads back to the same scenario.
//! - [`run_random`] runs many histories through proptest's runner from a seed, as
//!   `devramps simulate --random` does; [`Coverage`] sums up what they reached.
//!
//! ```
//! use devramps_sim::random::{check_run, HistoryConfig, Histories};
//! use proptest::test_runner::{Config, TestRunner};
//!
//! let pipeline = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  stages:\n    - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n    - { name: prod, account_id: \"222222222222\", region: us-west-2 }\n  steps:\n    - { name: Deploy, type: \"CUSTOM:DEPLOY\" }\n  artifacts: {}\n";
//! let histories = Histories::new(pipeline, HistoryConfig::default()).unwrap();
//! let mut runner = TestRunner::new(Config { cases: 4, failure_persistence: None, ..Config::default() });
//! runner.run(&histories.strategy(), |scenario| {
//!     let report = devramps_sim::simulate(&scenario, pipeline);
//!     let violations = check_run(&scenario, pipeline, &report, &[]);
//!     proptest::prop_assert!(violations.is_empty(), "{violations:?}");
//!     Ok(())
//! }).unwrap();
//! ```

mod checks;
mod coverage;
mod fold;
mod runner;
mod strategy;
mod write;

pub use checks::{Checker, Property, RULES, Violation, property};
pub use coverage::Coverage;
pub use runner::{Failure, RandomOutcome, run_random, seeded_rng};
pub use strategy::{Histories, HistoryConfig, Weights, interesting_starts};
pub use write::write_scenario;

use crate::report::Report;
use crate::scenario::Scenario;

/// Every violation of the lifecycle rules ([`Checker`]) and of `properties` in `report`, the
/// report of `scenario` run with `pipeline_text`: the lifecycle rules' first, in the order
/// found, then each property's.
pub fn check_run(
    scenario: &Scenario,
    pipeline_text: &str,
    report: &Report,
    properties: &[&dyn Property],
) -> Vec<Violation> {
    let mut violations = Checker::check_report(scenario, pipeline_text, report);
    for property in properties {
        violations.extend(property.check(scenario, report));
    }
    violations
}

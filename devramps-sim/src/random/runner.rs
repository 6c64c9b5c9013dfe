//! [`run_random`]: many random histories of one pipeline through proptest's runner, every
//! invariant checked, the first failure shrunk.

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::run::simulate;
use crate::scenario::Scenario;

use super::checks::{Property, Violation};
use super::coverage::Coverage;
use super::strategy::Histories;

/// How many shrinking steps a failure gets at most.
const MAX_SHRINK_ITERS: u32 = 2_048;

/// How a run of random histories ended.
#[derive(Clone, Debug)]
pub enum RandomOutcome {
    /// Every history kept every invariant; what they reached.
    Passed(Coverage),
    /// A history broke an invariant.
    Failed(Failure),
}

/// A history that broke an invariant, shrunk.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The shrunk history.
    pub scenario: Scenario,
    /// What it breaks (never empty).
    pub violations: Vec<Violation>,
}

/// The deterministic random generator of `seed`: the same seed gives the same histories.
pub fn seeded_rng(seed: u64) -> TestRng {
    let mut bytes = [0_u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs `count` random histories of `histories` (whose pipeline text is `pipeline_text`)
/// through the simulator, each checked by the lifecycle rules and `properties`
/// ([`check_run`](super::check_run)); generation is deterministic from `seed`. On the first
/// history that breaks something, proptest shrinks it to a minimal one, which is returned.
/// `progress` is told how many histories have passed, after each one.
pub fn run_random(
    histories: &Histories,
    pipeline_text: &str,
    count: u32,
    seed: u64,
    properties: &[&dyn Property],
    progress: &mut dyn FnMut(u32),
) -> RandomOutcome {
    let config = Config {
        cases: count,
        failure_persistence: None,
        max_shrink_iters: MAX_SHRINK_ITERS,
        max_shrink_time: 0,
        fork: false,
        timeout: 0,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, seeded_rng(seed));
    let coverage = std::cell::RefCell::new(Coverage::default());
    let failing = std::cell::Cell::new(false);
    let progress = std::cell::RefCell::new(progress);
    let result = runner.run(&histories.strategy(), |scenario| {
        let report = simulate(&scenario, pipeline_text);
        let violations = super::check_run(&scenario, pipeline_text, &report, properties);
        if let Some(first) = violations.first() {
            failing.set(true);
            return Err(TestCaseError::fail(first.to_string()));
        }
        if !failing.get() {
            let mut coverage = coverage.borrow_mut();
            coverage.add(scenario.events.len(), &report);
            let passed = u32::try_from(coverage.histories).unwrap_or(u32::MAX);
            (progress.borrow_mut())(passed);
        }
        Ok(())
    });
    match result {
        Ok(()) => RandomOutcome::Passed(coverage.into_inner()),
        Err(TestError::Fail(_, scenario)) => {
            let report = simulate(&scenario, pipeline_text);
            let violations = super::check_run(&scenario, pipeline_text, &report, properties);
            RandomOutcome::Failed(Failure {
                scenario,
                violations,
            })
        }
        Err(TestError::Abort(reason)) => RandomOutcome::Failed(Failure {
            scenario: Scenario {
                events: Vec::new(),
                ..empty_scenario(pipeline_text)
            },
            violations: vec![Violation::new("runner", None, reason.to_string())],
        }),
    }
}

fn empty_scenario(pipeline_text: &str) -> Scenario {
    Scenario {
        pipeline: crate::scenario::PipelineRef::Inline(pipeline_text.to_owned()),
        pipeline_span: devramps_core::pipeline::Span::UNKNOWN,
        slug: crate::scenario::DEFAULT_SLUG.to_owned(),
        start: crate::scenario::DEFAULT_SCENARIO_START,
        defaults: crate::scenario::Defaults::default(),
        run_until: crate::scenario::DEFAULT_RUN_UNTIL,
        events: Vec::new(),
    }
}

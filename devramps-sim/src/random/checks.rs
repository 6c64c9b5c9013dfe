//! Invariant checks over a [`Report`]: the lifecycle rules that its event log shows, checked
//! after every event ([`Checker`]), plus properties of the user's own ([`Property`]).

use std::collections::BTreeMap;
use std::fmt;

use devramps_core::pipeline::TimeWindow;
use devramps_core::plan::parse_shared;

use crate::action::Action;
use crate::report::{EventReport, Report};
use crate::scenario::Scenario;

use super::fold::Fold;

/// The rules [`Checker`] checks, by id, with what each checks.
pub const RULES: &[(&str, &str)] = &[
    (
        "L1",
        "revisions are accepted as 1, 2, 3, ... in order; each stage reports as current the \
         last revision that ended SUCCEEDED, ROLLED_BACK or ROLLED_FORWARD there",
    ),
    (
        "L3",
        "nothing is built for a deployment whose synthesis failed",
    ),
    (
        "L5",
        "at most one stage-deployment per stage holds the lock (IN_PROGRESS, CANCELLING, \
         ROLLING_BACK, ROLLING_FORWARD)",
    ),
    (
        "L6",
        "at most one deployment waits in a stage's queue; a stage-deployment is never SKIPPED \
         after it started; a deployment SKIPPED in the first stage is never built",
    ),
    (
        "L8",
        "a stage-deployment's first start (not a retry, rollback or roll-forward) is inside \
         its stage's time window, unless bypassed",
    ),
    (
        "L9",
        "nothing starts in a stage while a blocker is active, except a bypassed revision, a \
         rollback or a roll-forward",
    ),
    (
        "L10",
        "a stage-deployment starts (or rolls forward) in a stage only after its revision \
         succeeded in the previous stage",
    ),
    (
        "L11",
        "a retry starts only when no newer revision has started or is queued in that stage",
    ),
    (
        "L13",
        "a rollback targets a revision that succeeded in that stage before; a finished \
         rollback leaves ROLLBACK blockers on the stage and the next one",
    ),
    (
        "L14",
        "a roll-forward targets a revision newer than the stage's current one",
    ),
    (
        "L15",
        "an alarm on an idle stage adds the ALARM blocker, and OK removes it; an alarm while a \
         stage-deployment is IN_PROGRESS cancels it",
    ),
    ("L17", "no push is accepted in patch mode"),
    (
        "L18",
        "a deployment waiting for approval of its definition starts nowhere",
    ),
    (
        "L20",
        "no execution is started twice (a retry is a new attempt, with a new key)",
    ),
];

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule: a lifecycle rule id (`L5`) or a user property's name.
    pub rule: String,
    /// The sequence number of the event at which it shows, when it shows at one (`None`: it
    /// shows in the report as a whole, for example its executions).
    pub seq: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl Violation {
    /// A violation of `rule` at event `seq`.
    pub fn new(rule: impl Into<String>, seq: Option<u64>, message: impl Into<String>) -> Self {
        Violation {
            rule: rule.into(),
            seq,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    /// `L5 at seq 12: stage `prod` is held by revisions 2 and 3 at once`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "{} at seq {seq}: {}", self.rule, self.message),
            None => write!(f, "{}: {}", self.rule, self.message),
        }
    }
}

/// A property of the user's own, checked over the whole run (the scenario and its report)
/// beside the lifecycle rules.
///
/// Any `Fn(&Scenario, &Report) -> Vec<Violation>` is a property; [`property`] names one.
pub trait Property {
    /// The violations of this property in `report`, the report of `scenario`.
    fn check(&self, scenario: &Scenario, report: &Report) -> Vec<Violation>;
}

impl<F: Fn(&Scenario, &Report) -> Vec<Violation>> Property for F {
    fn check(&self, scenario: &Scenario, report: &Report) -> Vec<Violation> {
        self(scenario, report)
    }
}

/// A property named `rule` that looks at every event of the report in order: `f` gets the
/// scenario, the events before the one it looks at, and that event, and returns what is wrong
/// with it, if anything. Each violation names `rule` and that event's `seq`.
///
/// ```
/// use devramps_sim::random::{Property, property};
///
/// // A push on Friday after 15:00 (Los Angeles) never reaches prod before Monday.
/// let weekend_freeze = property("friday-freeze", |_, before, event| {
///     use jiff::civil::Weekday;
///     let la = |t: jiff::Timestamp| t.in_tz("America/Los_Angeles").ok();
///     if event.kind != "stage_state" || event.stage.as_deref() != Some("prod")
///         || event.state.as_deref() != Some("IN_PROGRESS") {
///         return None;
///     }
///     let accepted = before.iter().find(|e| e.kind == "deployment_accepted"
///         && e.revision == event.revision)?;
///     let (pushed, started) = (la(accepted.at)?, la(event.at)?);
///     let friday_late = pushed.weekday() == Weekday::Friday && pushed.hour() >= 15;
///     let same_weekend = started.date().since(pushed.date()).ok()?.get_days() < 3;
///     (friday_late && same_weekend).then(|| "pushed Friday after 15:00, in prod before Monday".to_owned())
/// });
/// # let _ = &weekend_freeze;
/// ```
pub fn property<F>(rule: &str, f: F) -> impl Property
where
    F: Fn(&Scenario, &[EventReport], &EventReport) -> Option<String>,
{
    let rule = rule.to_owned();
    move |scenario: &Scenario, report: &Report| -> Vec<Violation> {
        report
            .events
            .iter()
            .enumerate()
            .filter_map(|(i, event)| {
                f(scenario, &report.events[..i], event)
                    .map(|message| Violation::new(rule.as_str(), Some(event.seq), message))
            })
            .collect()
    }
}

/// What the checks need to know of the pipeline: stage order and windows, where every
/// definition the scenario uses agrees on them (where they do not, the rules that need them
/// are not checked, rather than checked against the wrong definition).
#[derive(Clone, Debug, Default)]
pub(crate) struct PipelineFacts {
    /// The stages in order, when every definition has the same ones.
    pub(crate) stages: Option<Vec<String>>,
    /// Each stage's window, for the stages whose window every definition agrees on.
    pub(crate) windows: BTreeMap<String, TimeWindow>,
}

impl PipelineFacts {
    fn of(pipeline_text: &str, scenario: &Scenario) -> Self {
        let mut texts = vec![pipeline_text];
        for event in &scenario.events {
            if let Action::Push(push) = &event.action
                && let Some(text) = &push.pipeline_yaml
            {
                texts.push(text);
            }
        }
        let mut facts: Option<PipelineFacts> = None;
        let mut windows_agree: BTreeMap<String, Option<TimeWindow>> = BTreeMap::new();
        for text in texts {
            // An invalid definition fails synthesis: it runs nothing, so it does not count.
            let Ok(definition) = parse_shared(text) else {
                continue;
            };
            let stages: Vec<String> = definition
                .stages
                .iter()
                .map(|s| s.name.value.clone())
                .collect();
            for stage in &definition.stages {
                let window = definition.effective_window(stage);
                windows_agree
                    .entry(stage.name.value.clone())
                    .and_modify(|w| {
                        if *w != Some(window) {
                            *w = None;
                        }
                    })
                    .or_insert(Some(window));
            }
            match &mut facts {
                None => {
                    facts = Some(PipelineFacts {
                        stages: Some(stages),
                        windows: BTreeMap::new(),
                    });
                }
                Some(f) => {
                    if f.stages.as_ref() != Some(&stages) {
                        f.stages = None;
                    }
                }
            }
        }
        let mut facts = facts.unwrap_or_default();
        facts.windows = windows_agree
            .into_iter()
            .filter_map(|(stage, w)| w.map(|w| (stage, w)))
            .collect();
        facts
    }
}

/// The lifecycle checks of one run, fed the report's events one by one: each event is checked
/// against the events before it, so a violation is found at the first event that shows it.
///
/// ```
/// use std::path::Path;
/// use devramps_sim::{parse_scenario, simulate};
/// use devramps_sim::random::Checker;
///
/// let pipeline = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  stages:\n    - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n  steps:\n    - { name: Deploy, type: \"CUSTOM:DEPLOY\" }\n  artifacts: {}\n";
/// let scenario = parse_scenario("pipeline: p.yaml\nevents:\n  - push: { commit: c1 }\n", Path::new("s.yaml")).unwrap();
/// let report = simulate(&scenario, pipeline);
/// assert_eq!(Checker::check_report(&scenario, pipeline, &report), vec![]);
/// ```
#[derive(Debug)]
pub struct Checker {
    fold: Fold,
    violations: Vec<Violation>,
}

impl Checker {
    /// The checks of a run of `scenario` with `pipeline_text` as its pipeline.
    pub fn new(scenario: &Scenario, pipeline_text: &str) -> Self {
        Checker {
            fold: Fold::new(PipelineFacts::of(pipeline_text, scenario)),
            violations: Vec::new(),
        }
    }

    /// Checks the next event of the log (events must come in order); returns the violations
    /// it shows.
    pub fn observe(&mut self, event: &EventReport) -> Vec<Violation> {
        let found = self.fold.observe(event);
        self.violations.extend(found.iter().cloned());
        found
    }

    /// Ends the log: checks what can only be checked at its end (rules that say "then", the
    /// stages' current revisions, the executions, the engine's own checks) against the whole
    /// `report`, and returns every violation found, in the order found.
    pub fn finish(mut self, report: &Report) -> Vec<Violation> {
        let found = self.fold.finish(report);
        self.violations.extend(found);
        for breach in &report.violations {
            let rule = breach
                .split_once(": L")
                .and_then(|(_, rest)| rest.split(':').next())
                .map_or_else(|| "engine".to_owned(), |n| format!("L{n}"));
            self.violations.push(Violation::new(
                rule,
                None,
                format!("the engine found: {breach}"),
            ));
        }
        self.violations
    }

    /// Every violation of the lifecycle rules in `report`, the report of `scenario` run with
    /// `pipeline_text`.
    pub fn check_report(
        scenario: &Scenario,
        pipeline_text: &str,
        report: &Report,
    ) -> Vec<Violation> {
        let mut checker = Checker::new(scenario, pipeline_text);
        for event in &report.events {
            checker.observe(event);
        }
        checker.finish(report)
    }
}

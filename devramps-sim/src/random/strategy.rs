//! [`Histories`]: proptest strategies of random histories of one pipeline, each a
//! [`Scenario`].
//!
//! A history is generated as a list of abstract events (a kind of event and small numbers
//! that pick a stage, a step, a commit of the history so far, ...) and then resolved, in
//! order, into scenario events against the pipeline and what the history has pushed before.
//! Proptest shrinks the list (dropping events, then simplifying each one), and every shrunk
//! list resolves again into a valid scenario: names always come from the pipeline, commits
//! from the pushes before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use devramps_core::pipeline::{PipelineDefinition, Spanned, StepParams};
use devramps_core::plan::check;
use jiff::Timestamp;
use proptest::prelude::*;

use crate::action::{
    Action, AlarmState, Answer, DEFAULT_ACTOR, Push, ScriptedOutcome, ScriptedResult, StepRef,
    StoreOp, TerraformPlan,
};
use crate::scenario::{
    DEFAULT_RUN_UNTIL, DEFAULT_SCENARIO_START, DEFAULT_SLUG, Defaults, PipelineRef, Scenario,
    ScenarioEvent,
};

/// How many events a history has and how often each kind of event comes. A weight of 0 turns
/// a kind off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The fewest events of a history (default 1).
    pub min_events: usize,
    /// The most events of a history (default 50).
    pub max_events: usize,
    /// How often each kind of event comes.
    pub weights: Weights,
    /// Other definitions of the pipeline (YAML texts) that a push may carry
    /// (`push.pipeline_yaml`), to exercise definition updates (L18); empty by default. A push
    /// may also carry the original again.
    pub definitions: Vec<String>,
    /// Where the virtual clock may start; the first is where shrinking goes. Default:
    /// [`interesting_starts`].
    pub starts: Vec<Timestamp>,
    /// Whether the steps whose outputs other steps read (`${{ steps.X.NAME }}`) give them
    /// (default `true`). An unscripted step succeeds with no outputs, so without this every
    /// step that reads one fails. With it, the push of a new commit comes with a `succeed`
    /// outcome scripting those outputs for each such step in every stage (unless the history
    /// already scripted that step's first attempt), and a drawn `succeed` carries them too.
    pub script_outputs: bool,
}

/// The relative weights of the kinds of events (see [`HistoryConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// Pushes: tracked and other branches, branch deletions, repeated deliveries and commits,
    /// changed paths that do and do not touch `rebuild_when_changed`, a broken definition.
    pub push: u32,
    /// Scripted step and build outcomes (succeed, fail, hang, ask for approval, Terraform
    /// plans).
    pub outcome: u32,
    /// Approve or reject a step.
    pub answer: u32,
    /// Retry or cancel a stage-deployment.
    pub retry_cancel: u32,
    /// Emergency rollback or roll-forward.
    pub emergency: u32,
    /// Stop or resume promotions, unblock, bypass.
    pub control: u32,
    /// Alarms firing or clearing.
    pub alarm: u32,
    /// Patch, release the patch.
    pub patch: u32,
    /// Approve or reject a pipeline definition update.
    pub pipeline_decision: u32,
    /// Transient store faults.
    pub store_fault: u32,
    /// Engine restarts.
    pub restart: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            push: 8,
            outcome: 6,
            answer: 4,
            retry_cancel: 3,
            emergency: 2,
            control: 3,
            alarm: 2,
            patch: 1,
            pipeline_decision: 1,
            store_fault: 1,
            restart: 1,
        }
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            min_events: 1,
            max_events: 50,
            weights: Weights::default(),
            definitions: Vec::new(),
            starts: interesting_starts(),
            script_outputs: true,
        }
    }
}

/// Starts of the virtual clock around the edges of time windows and daylight-saving changes
/// in `America/Los_Angeles`: Monday 09:00 (the scenario default), Monday 08:59, Friday 15:30
/// and 16:59, a Saturday, the Friday before the spring-forward weekend (2026-03-08) and the
/// Monday after, the Friday before the fall-back weekend (2026-11-01) and the Monday after.
pub fn interesting_starts() -> Vec<Timestamp> {
    let mut starts = vec![DEFAULT_SCENARIO_START];
    for text in [
        "2026-01-05T16:59:00Z",
        "2026-01-09T23:30:00Z",
        "2026-01-10T00:59:00Z",
        "2026-01-10T18:00:00Z",
        "2026-03-06T23:00:00Z",
        "2026-03-09T15:30:00Z",
        "2026-10-30T23:00:00Z",
        "2026-11-02T16:30:00Z",
    ] {
        if let Ok(start) = text.parse() {
            starts.push(start);
        }
    }
    starts
}

/// What the strategies need to know of a pipeline.
#[derive(Debug)]
struct Shape {
    text: String,
    stages: Vec<String>,
    /// Stages that watch an alarm (all stages when none does).
    alarm_stages: Vec<String>,
    steps: Vec<StepShape>,
    /// Artifact ids with a path that touches them.
    artifacts: Vec<(String, Option<String>)>,
    /// Each step whose outputs other steps read (by its key), with those outputs' names.
    outputs: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug)]
struct StepShape {
    key: String,
    terraform: bool,
    /// Waits for a person by itself (bake, test gate, Terraform).
    approvable: bool,
}

impl Shape {
    fn of(text: &str, definition: &PipelineDefinition) -> Shape {
        let stages: Vec<String> = definition
            .stages
            .iter()
            .map(|s| s.name.value.clone())
            .collect();
        let mut alarm_stages: Vec<String> = definition
            .stages
            .iter()
            .filter(|s| s.auto_rollback_alarm_name.is_some())
            .map(|s| s.name.value.clone())
            .collect();
        if alarm_stages.is_empty() {
            alarm_stages = stages.clone();
        }
        let steps = definition
            .steps
            .iter()
            .map(|s| {
                let terraform = matches!(s.typed, StepParams::Terraform(_));
                let approvable =
                    terraform || matches!(s.typed, StepParams::Bake(_) | StepParams::TestGate(_));
                StepShape {
                    key: s.key().to_owned(),
                    terraform,
                    approvable,
                }
            })
            .collect();
        let artifacts = definition
            .artifacts
            .iter()
            .map(|a| {
                let path = a
                    .rebuild_when_changed
                    .as_ref()
                    .and_then(|paths| paths.first())
                    .map(|p| format!("{}/changed.txt", p.value.trim_end_matches('/')));
                (a.id.value.clone(), path)
            })
            .collect();
        let mut outputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (reference, name) in output_references(text) {
            if let Some(step) = definition.steps.iter().find(|s| s.is_named(reference)) {
                outputs
                    .entry(step.key().to_owned())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
        Shape {
            text: text.to_owned(),
            stages,
            alarm_stages,
            steps,
            artifacts,
            outputs,
        }
    }

    /// The outputs a `succeed` of `step` gives when outputs are scripted: each one other
    /// steps read, with a value naming it.
    fn outputs_of(&self, step: &str) -> serde_json::Map<String, serde_json::Value> {
        self.outputs
            .get(step)
            .into_iter()
            .flatten()
            .map(|name| (name.clone(), format!("{step}-{name}").into()))
            .collect()
    }
}

/// The `steps.X.NAME` references of a pipeline text: `(X, NAME)`. A reference is only looked
/// for, not parsed: one written outside an expression adds an output nobody reads.
fn output_references(text: &str) -> Vec<(&str, &str)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut found = Vec::new();
    for (at, _) in text.match_indices("steps.") {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| ident(c) || c == '.')
        {
            continue;
        }
        let rest = &text[at + "steps.".len()..];
        let step_end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        let (step, rest) = rest.split_at(step_end);
        let Some(rest) = rest.strip_prefix('.') else {
            continue;
        };
        let name_end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        if !step.is_empty() && name_end > 0 {
            found.push((step, &rest[..name_end]));
        }
    }
    found
}

/// Random histories of one pipeline, as proptest strategies of [`Scenario`]s.
///
/// ```
/// use devramps_sim::random::{HistoryConfig, Histories};
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
///
/// let pipeline = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  stages:\n    - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n  steps:\n    - { name: Deploy, type: \"CUSTOM:DEPLOY\" }\n  artifacts: {}\n";
/// let histories = Histories::new(pipeline, HistoryConfig::default()).unwrap();
/// let mut runner = TestRunner::deterministic();
/// let scenario = histories.strategy().new_tree(&mut runner).unwrap().current();
/// assert!(scenario.events.len() <= 50);
/// let report = devramps_sim::simulate(&scenario, pipeline);
/// assert!(report.violations.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Histories {
    shape: Arc<Shape>,
    config: Arc<HistoryConfig>,
}

impl Histories {
    /// The histories of the pipeline whose YAML text is `pipeline_text`.
    ///
    /// # Errors
    ///
    /// The pipeline's validation errors, one line each (`line:column: message [CODE]`), when
    /// it is invalid.
    pub fn new(pipeline_text: &str, config: HistoryConfig) -> Result<Self, Vec<String>> {
        let checked = check(pipeline_text);
        let errors: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "{}:{}: {} [{}]",
                    d.span.line, d.span.column, d.message, d.code
                )
            })
            .collect();
        match checked.definition {
            Some(definition) if errors.is_empty() => {
                Ok(Self::of(pipeline_text, &definition, config))
            }
            _ if errors.is_empty() => Err(vec!["the pipeline is invalid".to_owned()]),
            _ => Err(errors),
        }
    }

    /// The histories of an already validated pipeline `definition`, read from `pipeline_text`.
    pub fn of(pipeline_text: &str, definition: &PipelineDefinition, config: HistoryConfig) -> Self {
        Histories {
            shape: Arc::new(Shape::of(pipeline_text, definition)),
            config: Arc::new(config),
        }
    }

    /// The strategy of histories: scenarios with the pipeline inline (`pipeline_yaml`) and the
    /// slug [`DEFAULT_SLUG`]; set [`Scenario::pipeline`] to a path before writing one next to
    /// its pipeline file.
    pub fn strategy(&self) -> BoxedStrategy<Scenario> {
        let shape = Arc::clone(&self.shape);
        let config = Arc::clone(&self.config);
        let starts = config.starts.len().max(1);
        let max = config.max_events.max(config.min_events);
        let events = prop::collection::vec(raw_event(&config), config.min_events..=max);
        (0..starts, events)
            .prop_map(move |(start, raws)| resolve(&shape, &config, start, &raws))
            .boxed()
    }
}

/// An event before it is resolved: its kind and small numbers that pick names.
#[derive(Clone, Debug)]
struct Raw {
    /// The time since the previous event.
    gap: Gap,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Gap {
    Same,
    Seconds(u32),
    Minutes(u32),
    Hours(u32),
}

#[derive(Clone, Debug)]
enum Kind {
    Push {
        /// 0..8 the tracked branch, 8 another branch, 9 that branch's deletion.
        branch: u8,
        same_commit: bool,
        repeat_delivery: bool,
        /// 0 nothing, 1 an artifact's path, 2 an unrelated path, 3 the pipeline file (an
        /// invalid definition at that commit).
        changed: u8,
        /// Which definition the commit carries, when it carries one.
        definition: Option<u8>,
        pick: u8,
    },
    Outcome {
        commit: u8,
        stage: u8,
        target: u8,
        result: u8,
        plan: u8,
        attempt: u32,
        minutes: Option<u8>,
    },
    Answer {
        approve: bool,
        commit: u8,
        stage: u8,
        step: u8,
    },
    RetryCancel {
        retry: bool,
        commit: u8,
        stage: u8,
    },
    Emergency {
        rollback: bool,
        commit: u8,
        stage: u8,
    },
    Control {
        action: u8,
        commit: u8,
        stage: u8,
    },
    Alarm {
        firing: bool,
        stage: u8,
    },
    Patch {
        release: bool,
    },
    DecidePipeline {
        approve: bool,
        commit: u8,
    },
    StoreFault {
        read: bool,
        times: u32,
    },
    Restart {
        minutes: u32,
    },
}

fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        6 => Just(Gap::Same),
        2 => (1..60_u32).prop_map(Gap::Seconds),
        6 => (1..60_u32).prop_map(Gap::Minutes),
        1 => (1..80_u32).prop_map(Gap::Hours),
    ]
}

fn raw_event(config: &HistoryConfig) -> BoxedStrategy<Raw> {
    let w = config.weights;
    let definitions = u8::try_from(config.definitions.len().min(200)).unwrap_or(200);
    let any = || any::<u8>();
    let kinds: Vec<(u32, BoxedStrategy<Kind>)> = vec![
        (
            w.push,
            (
                prop_oneof![8 => 0..8_u8, 1 => Just(8_u8), 1 => Just(9_u8)],
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.1),
                prop_oneof![4 => Just(0_u8), 3 => Just(1_u8), 2 => Just(2_u8), 1 => Just(3_u8)],
                if definitions == 0 {
                    Just(None).boxed()
                } else {
                    prop::option::weighted(0.2, 0..=definitions).boxed()
                },
                any(),
            )
                .prop_map(
                    |(branch, same_commit, repeat_delivery, changed, definition, pick)| {
                        Kind::Push {
                            branch,
                            same_commit,
                            repeat_delivery,
                            changed,
                            definition,
                            pick,
                        }
                    },
                )
                .boxed(),
        ),
        (
            w.outcome,
            (
                any(),
                any(),
                any(),
                prop_oneof![3 => Just(0_u8), 3 => Just(1_u8), 2 => Just(2_u8), 2 => Just(3_u8)],
                0..4_u8,
                prop_oneof![4 => Just(1_u32), 1 => Just(2_u32)],
                prop::option::weighted(0.3, 0..90_u8),
            )
                .prop_map(
                    |(commit, stage, target, result, plan, attempt, minutes)| Kind::Outcome {
                        commit,
                        stage,
                        target,
                        result,
                        plan,
                        attempt,
                        minutes,
                    },
                )
                .boxed(),
        ),
        (
            w.answer,
            (prop::bool::weighted(0.7), any(), any(), any())
                .prop_map(|(approve, commit, stage, step)| Kind::Answer {
                    approve,
                    commit,
                    stage,
                    step,
                })
                .boxed(),
        ),
        (
            w.retry_cancel,
            (prop::bool::ANY, any(), any())
                .prop_map(|(retry, commit, stage)| Kind::RetryCancel {
                    retry,
                    commit,
                    stage,
                })
                .boxed(),
        ),
        (
            w.emergency,
            (prop::bool::ANY, any(), any())
                .prop_map(|(rollback, commit, stage)| Kind::Emergency {
                    rollback,
                    commit,
                    stage,
                })
                .boxed(),
        ),
        (
            w.control,
            (0..4_u8, any(), any())
                .prop_map(|(action, commit, stage)| Kind::Control {
                    action,
                    commit,
                    stage,
                })
                .boxed(),
        ),
        (
            w.alarm,
            (prop::bool::ANY, any())
                .prop_map(|(firing, stage)| Kind::Alarm { firing, stage })
                .boxed(),
        ),
        (
            w.patch,
            prop::bool::ANY
                .prop_map(|release| Kind::Patch { release })
                .boxed(),
        ),
        (
            w.pipeline_decision,
            (prop::bool::weighted(0.7), any())
                .prop_map(|(approve, commit)| Kind::DecidePipeline { approve, commit })
                .boxed(),
        ),
        (
            w.store_fault,
            // A fault fails one to three calls of its kind in a row.
            (prop::bool::ANY, 1..4_u32)
                .prop_map(|(read, times)| Kind::StoreFault { read, times })
                .boxed(),
        ),
        (
            w.restart,
            prop_oneof![Just(0_u32), 1..30_u32]
                .prop_map(|minutes| Kind::Restart { minutes })
                .boxed(),
        ),
    ];
    let kinds: Vec<(u32, BoxedStrategy<Kind>)> = kinds
        .into_iter()
        .filter(|(weight, _)| *weight > 0)
        .collect();
    if kinds.is_empty() {
        return (gap(), Just(Kind::Patch { release: true }))
            .prop_map(|(gap, kind)| Raw { gap, kind })
            .boxed();
    }
    (gap(), prop::strategy::Union::new_weighted(kinds))
        .prop_map(|(gap, kind)| Raw { gap, kind })
        .boxed()
}

/// What the history has done so far, to pick meaningful names.
#[derive(Default)]
struct History {
    /// Commits pushed to the tracked branch or patched, in order.
    commits: Vec<String>,
    /// Commits made so far (of every branch).
    made: u64,
    deliveries: u64,
    feature: bool,
    /// Steps scripted to ask for approval: (commit, stage, step).
    asking: Vec<(String, String, String)>,
    /// First attempts of steps already scripted: (commit, stage, step).
    scripted: BTreeSet<(String, String, String)>,
    /// The commit the event being resolved pushed to the tracked branch for the first time.
    fresh: Option<String>,
}

impl History {
    /// A commit of the history, the newest ones first; the next one when there is none.
    fn commit(&self, pick: u8) -> String {
        let recent = self.commits.len().min(4);
        if recent == 0 {
            return format!("c{}", self.made + 1);
        }
        let back = usize::from(pick) % recent;
        self.commits[self.commits.len() - 1 - back].clone()
    }

    /// A commit for an outcome: the next one to be pushed, or one of the history.
    fn outcome_commit(&self, pick: u8) -> String {
        if pick.is_multiple_of(2) || self.commits.is_empty() {
            format!("c{}", self.made + 1)
        } else {
            self.commit(pick / 2)
        }
    }

    fn new_commit(&mut self) -> String {
        self.made += 1;
        format!("c{}", self.made)
    }
}

fn pick<T>(items: &[T], n: u8) -> Option<&T> {
    if items.is_empty() {
        None
    } else {
        items.get(usize::from(n) % items.len())
    }
}

fn spanned(text: &str) -> Spanned<String> {
    Spanned::new(text.to_owned(), devramps_core::pipeline::Span::UNKNOWN)
}

/// The latest time an event may have: a day before `run_until`.
const LATEST: Duration = Duration::from_secs(DEFAULT_RUN_UNTIL.as_secs() - 86_400);

fn resolve(shape: &Shape, config: &HistoryConfig, start: usize, raws: &[Raw]) -> Scenario {
    let mut history = History::default();
    let mut at = Duration::ZERO;
    let mut events = Vec::with_capacity(raws.len());
    for raw in raws {
        at += match raw.gap {
            Gap::Same => Duration::ZERO,
            Gap::Seconds(s) => Duration::from_secs(u64::from(s)),
            Gap::Minutes(m) => Duration::from_secs(60 * u64::from(m)),
            Gap::Hours(h) => Duration::from_secs(3600 * u64::from(h)),
        };
        at = at.min(LATEST);
        if let Some(action) = resolve_one(shape, config, &mut history, &raw.kind) {
            if config.script_outputs
                && let Action::Push(push) = &action
                && push.branch.is_none()
                && !push.deleted
                && history.fresh == Some(push.commit.clone())
            {
                for outcome in output_outcomes(shape, &mut history, &push.commit) {
                    events.push(ScenarioEvent {
                        at,
                        action: outcome,
                        span: devramps_core::pipeline::Span::UNKNOWN,
                    });
                }
            }
            events.push(ScenarioEvent {
                at,
                action,
                span: devramps_core::pipeline::Span::UNKNOWN,
            });
        }
    }
    Scenario {
        pipeline: PipelineRef::Inline(shape.text.clone()),
        pipeline_span: devramps_core::pipeline::Span::UNKNOWN,
        slug: DEFAULT_SLUG.to_owned(),
        start: config
            .starts
            .get(start)
            .copied()
            .unwrap_or(DEFAULT_SCENARIO_START),
        defaults: Defaults::default(),
        run_until: DEFAULT_RUN_UNTIL,
        events,
    }
}

/// The `succeed` outcomes that give the outputs other steps read, for a new `commit` in every
/// stage, except where the history already scripted that step's first attempt.
fn output_outcomes(shape: &Shape, history: &mut History, commit: &str) -> Vec<Action> {
    let mut outcomes = Vec::new();
    for step in shape.outputs.keys() {
        for stage in &shape.stages {
            let key = (commit.to_owned(), stage.clone(), step.clone());
            if !history.scripted.insert(key) {
                continue;
            }
            outcomes.push(Action::Outcome(ScriptedOutcome {
                commit: commit.to_owned(),
                stage: Some(spanned(stage)),
                target: StepRef::Step(spanned(step)),
                result: ScriptedResult::Succeed,
                duration: None,
                attempt: 1,
                outputs: shape.outputs_of(step),
                plan: None,
            }));
        }
    }
    outcomes
}

fn resolve_one(
    shape: &Shape,
    config: &HistoryConfig,
    history: &mut History,
    kind: &Kind,
) -> Option<Action> {
    history.fresh = None;
    let stage = |n: u8| pick(&shape.stages, n).map(|s| spanned(s));
    let action = match *kind {
        Kind::Push {
            branch,
            same_commit,
            repeat_delivery,
            changed,
            definition,
            pick: which,
        } => {
            let tracked = branch < 8;
            if branch == 9 {
                if !history.feature {
                    return None;
                }
                history.feature = false;
                return Some(Action::Push(Push {
                    commit: history.commit(which),
                    branch: Some("feature".to_owned()),
                    deleted: true,
                    ..Push::default()
                }));
            }
            let commit = match history.commits.last() {
                Some(last) if same_commit && tracked => last.clone(),
                _ => {
                    let commit = history.new_commit();
                    if tracked {
                        history.fresh = Some(commit.clone());
                    }
                    commit
                }
            };
            let delivery = if repeat_delivery && history.deliveries > 0 {
                history.deliveries
            } else {
                history.deliveries += 1;
                history.deliveries
            };
            let changed = match changed {
                1 => shape
                    .artifacts
                    .get(usize::from(which) % shape.artifacts.len().max(1))
                    .and_then(|(_, path)| path.clone())
                    .into_iter()
                    .collect(),
                2 => vec!["/docs/notes.md".to_owned()],
                3 => vec![format!("/.devramps/{DEFAULT_SLUG}/pipeline.yaml")],
                _ => Vec::new(),
            };
            let pipeline_yaml = definition.and_then(|d| match usize::from(d) {
                0 => Some(shape.text.clone()),
                d => config.definitions.get(d - 1).cloned(),
            });
            if tracked {
                if history.commits.last() != Some(&commit) {
                    history.commits.push(commit.clone());
                }
            } else {
                history.feature = true;
            }
            Action::Push(Push {
                commit,
                branch: (!tracked).then(|| "feature".to_owned()),
                changed,
                delivery: Some(format!("d{delivery}")),
                pipeline_yaml,
                deleted: false,
            })
        }
        Kind::Outcome {
            commit,
            stage: s,
            target,
            result,
            plan,
            attempt,
            minutes,
        } => {
            let commit = history.outcome_commit(commit);
            let steps = shape.steps.len();
            let builds = shape.artifacts.len();
            let index = usize::from(target) % (steps + builds).max(1);
            let result = match result {
                0 => ScriptedResult::Succeed,
                1 => ScriptedResult::Fail,
                2 => ScriptedResult::Hang,
                _ => ScriptedResult::AskApproval,
            };
            let duration = minutes.map(|m| Duration::from_secs(60 * u64::from(m)));
            if index < steps {
                let step = &shape.steps[index];
                let stage = stage(s)?;
                let plan = step.terraform.then(|| match plan {
                    0 => TerraformPlan::default(),
                    1 => TerraformPlan {
                        create: 2,
                        ..TerraformPlan::default()
                    },
                    2 => TerraformPlan {
                        update: 1,
                        ..TerraformPlan::default()
                    },
                    _ => TerraformPlan {
                        create: 1,
                        delete: 1,
                        ..TerraformPlan::default()
                    },
                });
                if result == ScriptedResult::AskApproval {
                    history
                        .asking
                        .push((commit.clone(), stage.value.clone(), step.key.clone()));
                }
                if attempt == 1 {
                    history.scripted.insert((
                        commit.clone(),
                        stage.value.clone(),
                        step.key.clone(),
                    ));
                }
                let outputs = if config.script_outputs
                    && matches!(
                        result,
                        ScriptedResult::Succeed | ScriptedResult::AskApproval
                    ) {
                    shape.outputs_of(&step.key)
                } else {
                    serde_json::Map::new()
                };
                Action::Outcome(ScriptedOutcome {
                    commit,
                    stage: Some(stage),
                    target: StepRef::Step(spanned(&step.key)),
                    result,
                    duration,
                    attempt,
                    outputs,
                    plan,
                })
            } else {
                let (artifact, _) = shape.artifacts.get(index - steps)?;
                Action::Outcome(ScriptedOutcome {
                    commit,
                    stage: None,
                    target: StepRef::Build(spanned(artifact)),
                    // Builds cannot ask for approval.
                    result: if result == ScriptedResult::AskApproval {
                        ScriptedResult::Succeed
                    } else {
                        result
                    },
                    duration,
                    attempt,
                    outputs: serde_json::Map::new(),
                    plan: None,
                })
            }
        }
        Kind::Answer {
            approve,
            commit,
            stage: s,
            step,
        } => {
            // A step that asks: scripted to, or waiting by itself (bake, Terraform, test gate).
            let (commit, stage, step) = if step.is_multiple_of(2)
                && let Some(asking) = pick(&history.asking, step / 2)
            {
                asking.clone()
            } else {
                let approvable: Vec<&StepShape> =
                    shape.steps.iter().filter(|s| s.approvable).collect();
                let key = match pick(&approvable, step) {
                    Some(s) => s.key.clone(),
                    None => pick(&shape.steps, step)?.key.clone(),
                };
                (history.commit(commit), stage(s)?.value, key)
            };
            let answer = Answer {
                commit,
                stage: spanned(&stage),
                step: spanned(&step),
                actor: DEFAULT_ACTOR.to_owned(),
                comment: None,
            };
            if approve {
                Action::Approve(answer)
            } else {
                Action::Reject(answer)
            }
        }
        Kind::RetryCancel {
            retry,
            commit,
            stage: s,
        } => {
            let (commit, stage) = (history.commit(commit), stage(s)?);
            if retry {
                Action::Retry { commit, stage }
            } else {
                Action::Cancel { commit, stage }
            }
        }
        Kind::Emergency {
            rollback,
            commit,
            stage: s,
        } => {
            let (to, stage) = (history.commit(commit), stage(s)?);
            if rollback {
                Action::Rollback { stage, to }
            } else {
                Action::RollForward { stage, to }
            }
        }
        Kind::Control {
            action,
            commit,
            stage: s,
        } => {
            let stage = stage(s)?;
            match action {
                0 => Action::StopPromotions { stage },
                1 => Action::ResumePromotions { stage },
                2 => Action::Unblock { stage },
                _ => Action::Bypass {
                    stage,
                    commit: history.commit(commit),
                },
            }
        }
        Kind::Alarm { firing, stage: s } => Action::Alarm {
            stage: spanned(pick(&shape.alarm_stages, s)?),
            state: if firing {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            },
        },
        Kind::Patch { release } => {
            if release {
                Action::ReleasePatch
            } else {
                let commit = history.new_commit();
                history.commits.push(commit.clone());
                Action::Patch {
                    commit,
                    changed: Vec::new(),
                }
            }
        }
        Kind::DecidePipeline { approve, commit } => {
            let commit = history.commit(commit);
            if approve {
                Action::ApprovePipeline { commit }
            } else {
                Action::RejectPipeline { commit }
            }
        }
        Kind::StoreFault { read, times } => Action::StoreFault {
            op: if read { StoreOp::Read } else { StoreOp::Append },
            times,
        },
        Kind::Restart { minutes } => Action::Restart {
            down: Duration::from_secs(60 * u64::from(minutes)),
        },
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::output_references;

    #[test]
    fn output_references_are_found_whole() {
        let text = "a: ${{ steps.infra.cluster_name }}\nb: x-${{steps.db-1.url}}-y\n\
                    c: ${{ other.steps.no.match }}\nd: steps.only\ne: mysteps.x.y\n";
        assert_eq!(
            output_references(text),
            vec![("infra", "cluster_name"), ("db-1", "url")]
        );
    }
}

//! [`Report`]: what a simulation produced, in the JSON shape of `devramps simulate --format json`.
//!
//! Keys come out in the order of the scenario format's example; optional keys that do not apply
//! are left out (`attempts` of a stage-deployment that never started, `superseded_by` except for
//! `SKIPPED`, `waiting_for` except for `NOT_STARTED`, the optional fields of an event), while
//! `null` is written where the format shows it (`stage` of a shared build, `current_revision`
//! and `current_commit` of a stage that runs nothing yet).

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The report of one simulation run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// When the simulation started (the scenario's `start`). Not part of the JSON; the text
    /// timeline shows times relative to it.
    #[serde(skip)]
    pub start: Timestamp,
    /// The virtual time when the simulation stopped.
    #[serde(serialize_with = "serialize_time")]
    pub end: Timestamp,
    /// Every accepted deployment, by revision.
    pub deployments: Vec<DeploymentReport>,
    /// Every artifact build that ran (reuses are not builds), in start order.
    pub builds: Vec<BuildReport>,
    /// Per stage, in pipeline order: what it runs now and what blocks it.
    pub stages: StageMap<StageSummary>,
    /// The pipeline's event log, in order.
    pub events: Vec<EventReport>,
    /// Every execution the runners saw, in the order first seen.
    pub executions: Vec<ExecutionReport>,
    /// Lifecycle invariants found broken while running (empty when the engine is right).
    pub violations: Vec<String>,
}

/// One execution as the runners saw it: builds, resource validation, mirroring, Terraform
/// and steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecutionReport {
    /// Its idempotency key, as `ExecutionKey` displays it (`api/r1/staging/a1/deploy`).
    pub key: String,
    /// How many times a runner began it; a re-attach (after a restart) is not a start.
    pub starts: u32,
    /// How it ended: `SUCCEEDED`, `FAILED`, `CANCELLED`, `APPROVAL_REQUIRED` (a step waiting
    /// for a person), `PLANNED` (a Terraform plan not applied) or `RUNNING`.
    pub result: String,
}

/// One accepted deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploymentReport {
    /// Its revision (L1).
    pub revision: u64,
    /// Its commit.
    pub commit: String,
    /// How its synthesis ended.
    pub synthesis: Synthesis,
    /// Its stage-deployments, in pipeline order.
    pub stages: StageMap<StageReport>,
}

/// The outcome of a deployment's synthesis (L3, L18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Synthesis {
    /// `SUCCEEDED`: the plan was synthesized.
    Succeeded,
    /// `FAILED`: the definition was invalid, or the pipeline update was rejected.
    Failed,
    /// `WAITING_APPROVAL`: a pipeline definition update waits for a person (L18).
    WaitingApproval,
}

/// A deployment's life in one stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageReport {
    /// The state, named as in the lifecycle rules (`SUCCEEDED`, `NOT_STARTED`, ...).
    pub state: String,
    /// How many attempts ran; 0 (left out of the JSON) when it never started.
    #[serde(skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// The revision that superseded it; only for `SKIPPED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<u64>,
    /// What it waits for (`PREVIOUS_STAGE`, `LOCK`, `TIME_WINDOW`, ...); only for `NOT_STARTED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

impl StageReport {
    /// A stage-deployment that started: `state` after `attempts` attempts.
    pub fn new(state: impl Into<String>, attempts: u32) -> Self {
        StageReport {
            state: state.into(),
            attempts,
            superseded_by: None,
            waiting_for: None,
        }
    }

    /// `NOT_STARTED`, waiting for `waiting_for`.
    pub fn not_started(waiting_for: impl Into<String>) -> Self {
        StageReport {
            waiting_for: Some(waiting_for.into()),
            ..StageReport::new("NOT_STARTED", 0)
        }
    }

    /// `SKIPPED`, superseded by `revision`.
    pub fn skipped(revision: u64) -> Self {
        StageReport {
            superseded_by: Some(revision),
            ..StageReport::new("SKIPPED", 0)
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One artifact build that ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    /// The deployment it was built for.
    pub revision: u64,
    /// That deployment's commit.
    pub commit: String,
    /// The artifact's id.
    pub artifact: String,
    /// The stage of a `per_stage` artifact; `None` (`null`) for a shared one.
    pub stage: Option<String>,
    /// How it ended (`SUCCEEDED`, `FAILED`, ...).
    pub result: String,
}

/// The state of one stage at the end of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageSummary {
    /// The revision it runs: the last one that ended `SUCCEEDED`, `ROLLED_BACK` or
    /// `ROLLED_FORWARD` there; `None` (`null`) before any did.
    pub current_revision: Option<u64>,
    /// That revision's commit.
    pub current_commit: Option<String>,
    /// Its active blockers (`STOP_PROMOTIONS`, `ROLLBACK`, `ALARM`).
    pub blockers: Vec<String>,
}

/// One entry of the pipeline's event log (L19).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventReport {
    /// Its sequence number in the log, from 1.
    pub seq: u64,
    /// When it happened.
    #[serde(serialize_with = "serialize_time")]
    pub at: Timestamp,
    /// What happened: `deployment_accepted`, `stage_state`, `refused`, ... (JSON key `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The deployment's revision, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The deployment's commit, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The stage, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The step, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The new state of `stage_state` and `step_state` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Who acted: `user:<name>`, `system` or `webhook:<delivery>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Why, for decisions and refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Entries keyed by stage name in pipeline order; serializes as a JSON object in that order
/// (not sorted by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageMap<T>(pub Vec<(String, T)>);

impl<T> Default for StageMap<T> {
    fn default() -> Self {
        StageMap(Vec::new())
    }
}

impl<T> StageMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        StageMap::default()
    }

    /// Sets the entry of `stage`: replaced in place if present, else added at the end.
    pub fn insert(&mut self, stage: impl Into<String>, value: T) {
        let stage = stage.into();
        match self.0.iter_mut().find(|(name, _)| *name == stage) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((stage, value)),
        }
    }

    /// The entry of `stage`.
    pub fn get(&self, stage: &str) -> Option<&T> {
        self.0
            .iter()
            .find(|(name, _)| name == stage)
            .map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(name, v)| (name.as_str(), v))
    }

    /// The number of stages.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no stage.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, S: Into<String>> FromIterator<(S, T)> for StageMap<T> {
    /// Collects entries in order; a repeated stage replaces the earlier value in place.
    fn from_iter<I: IntoIterator<Item = (S, T)>>(iter: I) -> Self {
        // Positions by name, so that collecting n stages costs n lookups, not n scans.
        let mut at: HashMap<String, usize> = HashMap::new();
        let mut entries: Vec<(String, T)> = Vec::new();
        for (stage, value) in iter {
            let stage = stage.into();
            match at.get(&stage) {
                Some(&i) => entries[i].1 = value,
                None => {
                    at.insert(stage.clone(), entries.len());
                    entries.push((stage, value));
                }
            }
        }
        StageMap(entries)
    }
}

impl<T: Serialize> Serialize for StageMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Formats a time as the report writes it: RFC 3339 in UTC, whole seconds, with `Z`
/// (fractions of a second are dropped).
///
/// ```
/// let t: jiff::Timestamp = "2026-01-05T09:02:10.75-08:00".parse().unwrap();
/// assert_eq!(devramps_sim::format_time(t), "2026-01-05T17:02:10Z");
/// ```
pub fn format_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn serialize_time<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}

/// The report as `devramps simulate --format json` prints it: pretty-printed with two-space
/// indentation, keys in a fixed order, ending with a newline. The same report always gives the
/// same bytes.
pub fn to_json(report: &Report) -> String {
    // Serializing cannot fail: every map key is a string and every `Serialize` impl involved
    // is infallible.
    let mut json = serde_json::to_string_pretty(report)
        .expect("a report always serializes to JSON (string keys, infallible impls)");
    json.push('\n');
    json
}

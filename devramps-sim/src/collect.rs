//! Turning the engine's final state and log into a [`Report`], and checking invariants.

use std::collections::{BTreeMap, HashMap, VecDeque};

use devramps_core::backend::{ExecutionKey, Unit};
use devramps_core::lifecycle::{
    Deployment, Emergency, Event, PipelineState, Record, StageState, StepState, WaitingFor,
};
use jiff::Timestamp;
use serde::Serialize;

use crate::invariants::{invariant_breaches, stage_names};
use crate::report::{
    BuildReport, DeploymentReport, EventReport, ExecutionReport, Report, StageMap, StageReport,
    StageSummary, Synthesis,
};

/// Context the simulator adds to a record produced by one of its events (refusals name no
/// revision or stage of their own).
#[derive(Clone, Debug, Default)]
pub(crate) struct Annotation {
    pub(crate) revision: Option<u64>,
    pub(crate) commit: Option<String>,
    pub(crate) stage: Option<String>,
    pub(crate) step: Option<String>,
}

/// The spelling of a state enum (`SCREAMING_SNAKE_CASE`, as serialized).
fn spell<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The report of a finished run.
pub(crate) fn build_report(
    start: Timestamp,
    end: Timestamp,
    state: &PipelineState,
    records: &[Record],
    own_events: Vec<(u64, EventReport)>,
    annotations: &[(u64, Annotation)],
    violations: Vec<String>,
) -> Report {
    let commit_of = |revision: u64| state.deployments.get(&revision).map(|d| d.commit.clone());
    let deployments = state.deployments.values().map(deployment_report).collect();
    let stages = stage_summaries(state);

    let annotations: BTreeMap<u64, &Annotation> =
        annotations.iter().map(|(i, a)| (*i, a)).collect();
    let mut own = own_events.into_iter().peekable();
    let mut events = Vec::new();
    let mut builds = Builds::default();
    for (seq, record) in (1_u64..).zip(records) {
        while let Some((_, event)) = own.next_if(|(after, _)| *after < seq) {
            events.push(event);
        }
        let mut event = event_report(record, &commit_of);
        if let Some(a) = annotations.get(&seq) {
            event.revision = event.revision.or(a.revision);
            event.commit = event.commit.clone().or_else(|| a.commit.clone());
            event.stage = event.stage.clone().or_else(|| a.stage.clone());
            event.step = event.step.clone().or_else(|| a.step.clone());
        }
        events.push(event);
        collect_build(&mut builds, record, &commit_of);
    }
    events.extend(own.map(|(_, event)| event));
    for (seq, event) in (1_u64..).zip(events.iter_mut()) {
        event.seq = seq;
    }

    Report {
        start,
        end,
        deployments,
        builds: builds.reports,
        stages,
        events,
        executions: Vec::new(),
        violations,
    }
}

/// The `deployments` entry of one deployment (as [`log_report`] gives it): a deployment's
/// entry depends on that deployment alone.
pub fn deployment_report(d: &Deployment) -> DeploymentReport {
    DeploymentReport {
        revision: d.revision,
        commit: d.commit.clone(),
        synthesis: if d.awaits_approval() {
            Synthesis::WaitingApproval
        } else if d.plan().is_some() || (d.superseded && d.synthesis_errors.is_empty()) {
            Synthesis::Succeeded
        } else {
            Synthesis::Failed
        },
        stages: d
            .stages
            .iter()
            .map(|run| {
                let report = match run.state {
                    StageState::NotStarted => StageReport {
                        attempts: run.attempt,
                        ..StageReport::not_started(
                            run.waiting_for.map_or("PREVIOUS_STAGE", WaitingFor::as_str),
                        )
                    },
                    StageState::Skipped => StageReport {
                        attempts: run.attempt,
                        superseded_by: run.superseded_by,
                        ..StageReport::new("SKIPPED", 0)
                    },
                    other => StageReport::new(other.as_str(), run.attempt),
                };
                (run.name.clone(), report)
            })
            .collect(),
    }
}

/// The `stages` section of `state` (as [`log_report`] gives it).
pub fn stage_summaries(state: &PipelineState) -> StageMap<StageSummary> {
    let commit_of = |revision: u64| state.deployments.get(&revision).map(|d| d.commit.clone());
    stage_names(state)
        .into_iter()
        .map(|name| {
            let runtime = state.stage(name);
            let summary = StageSummary {
                current_revision: runtime.current,
                current_commit: runtime.current.and_then(commit_of),
                blockers: runtime.blockers.iter().map(spell).collect(),
            };
            (name.to_owned(), summary)
        })
        .collect()
}

/// The builds of a run, in the order they started, and the unfinished ones by (revision,
/// artifact, stage), earliest first.
#[derive(Default)]
struct Builds {
    reports: Vec<BuildReport>,
    unfinished: HashMap<(u64, String, Option<String>), VecDeque<usize>>,
}

/// Adds a started build, or the result of the earliest unfinished one it ends.
fn collect_build(builds: &mut Builds, record: &Record, commit_of: &impl Fn(u64) -> Option<String>) {
    match &record.event {
        Event::BuildStarted {
            revision,
            artifact,
            stage,
        } => {
            builds
                .unfinished
                .entry((*revision, artifact.clone(), stage.clone()))
                .or_default()
                .push_back(builds.reports.len());
            builds.reports.push(BuildReport {
                revision: *revision,
                commit: commit_of(*revision).unwrap_or_default(),
                artifact: artifact.clone(),
                stage: stage.clone(),
                result: "RUNNING".to_owned(),
            });
        }
        Event::BuildFinished {
            revision,
            artifact,
            stage,
            succeeded,
            ..
        } => {
            let key = (*revision, artifact.clone(), stage.clone());
            if let Some(index) = builds
                .unfinished
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                && let Some(build) = builds.reports.get_mut(index)
            {
                build.result = if *succeeded { "SUCCEEDED" } else { "FAILED" }.to_owned();
            }
        }
        _ => {}
    }
}

/// One record as a report event (without its sequence number).
fn event_report(record: &Record, commit_of: &impl Fn(u64) -> Option<String>) -> EventReport {
    let mut event = EventReport {
        at: record.at,
        kind: record.event.type_name().to_owned(),
        actor: Some(record.actor.to_string()),
        ..EventReport::default()
    };
    let at_revision = |event: &mut EventReport, revision: u64| {
        event.revision = Some(revision);
        event.commit = commit_of(revision);
    };
    match &record.event {
        Event::PushIgnored { commit, reason, .. } => {
            event.commit = Some(commit.clone());
            event.reason = Some(reason.clone());
        }
        Event::DeploymentAccepted {
            revision,
            commit,
            patch,
            ..
        } => {
            event.revision = Some(*revision);
            event.commit = Some(commit.clone());
            if *patch {
                event.reason =
                    Some("patch deployment: the pipeline enters patch mode (L17)".into());
            }
        }
        Event::SynthesisFailed {
            revision,
            diagnostics,
        } => {
            at_revision(&mut event, *revision);
            event.reason = Some(diagnostics.join("; "));
        }
        Event::StageState {
            revision,
            stage,
            state,
            waiting_for,
            superseded_by,
            reason,
            ..
        } => {
            at_revision(&mut event, *revision);
            event.stage = Some(stage.clone());
            event.state = Some(state.as_str().to_owned());
            let mut parts = Vec::new();
            match waiting_for {
                Some(WaitingFor::Never) => parts.push("never starts".to_owned()),
                Some(w) => parts.push(format!("waiting for {}", w.as_str())),
                None => {}
            }
            match (reason, superseded_by) {
                (Some(reason), _) => parts.push(reason.clone()),
                (None, Some(by)) => parts.push(format!("superseded by revision {by}")),
                (None, None) => {}
            }
            event.reason = (!parts.is_empty()).then(|| parts.join(": "));
        }
        Event::PhaseStarted {
            revision,
            stage,
            phase,
            skipped,
        } => {
            at_revision(&mut event, *revision);
            event.stage = Some(stage.clone());
            let phase = spell(phase);
            event.reason = Some(if *skipped {
                format!("{phase} (nothing to do)")
            } else {
                phase
            });
        }
        Event::BuildStarted {
            revision,
            artifact,
            stage,
        } => {
            at_revision(&mut event, *revision);
            event.stage = stage.clone();
            event.step = Some(Unit::build(artifact).to_string());
            event.state = Some("RUNNING".to_owned());
        }
        Event::BuildFinished {
            revision,
            artifact,
            stage,
            succeeded,
            reason,
        } => {
            at_revision(&mut event, *revision);
            event.stage = stage.clone();
            event.step = Some(Unit::build(artifact).to_string());
            event.state = Some(if *succeeded { "SUCCEEDED" } else { "FAILED" }.to_owned());
            event.reason = reason.clone();
        }
        Event::BuildReused {
            revision,
            artifact,
            commit,
        } => {
            at_revision(&mut event, *revision);
            event.step = Some(Unit::build(artifact).to_string());
            event.reason = Some(format!("reuses the build of commit {commit}"));
        }
        Event::StepState {
            revision,
            stage,
            step,
            state,
            reason,
            ..
        } => {
            at_revision(&mut event, *revision);
            event.stage = Some(stage.clone());
            event.step = Some(step.clone());
            event.state = Some(spell(state));
            event.reason = reason.clone();
        }
        Event::ApprovalRequired {
            revision,
            stage,
            step,
            reason,
        }
        | Event::Approved {
            revision,
            stage,
            step,
            reason,
        }
        | Event::Rejected {
            revision,
            stage,
            step,
            reason,
        } => {
            at_revision(&mut event, *revision);
            event.stage = Some(stage.clone());
            event.step = Some(step.clone());
            event.reason = reason.clone();
        }
        Event::BlockerAdded {
            stage,
            blocker,
            reason,
        }
        | Event::BlockerRemoved {
            stage,
            blocker,
            reason,
        } => {
            event.stage = Some(stage.clone());
            event.reason = Some(match reason {
                Some(reason) => format!("{}: {reason}", spell(blocker)),
                None => spell(blocker),
            });
        }
        Event::Bypassed {
            stage,
            revision,
            reason,
        } => {
            at_revision(&mut event, *revision);
            event.stage = Some(stage.clone());
            event.reason = reason.clone();
        }
        Event::Refused {
            operation,
            rule,
            reason,
        } => {
            event.reason = Some(format!("`{operation}` refused ({rule}): {reason}"));
        }
        Event::EmergencyRequested {
            stage,
            operation,
            revision,
            reason,
        } => {
            at_revision(&mut event, *revision);
            event.stage = Some(stage.clone());
            let what = match operation {
                Emergency::Rollback => "rollback",
                Emergency::RollForward => "roll-forward",
                // Operations added later are spelled as the core names them.
                other => other.as_str(),
            };
            let what = format!("{what} of `{stage}` to revision {revision}");
            event.reason = Some(match reason {
                Some(reason) => format!("{what}: {reason}"),
                None => what,
            });
        }
        Event::AlarmChanged {
            stage,
            alarm,
            state,
        } => {
            event.stage = Some(stage.clone());
            event.state = Some(state.as_str().to_owned());
            event.reason = Some(format!("alarm `{alarm}`"));
        }
        Event::PatchReleased { reason } => event.reason = reason.clone(),
        Event::PipelineApprovalRequired {
            revision,
            classification,
            changes,
        } => {
            at_revision(&mut event, *revision);
            event.reason = Some(format!("{classification}: {}", changes.join("; ")));
        }
        Event::PipelineApproved { revision, reason }
        | Event::PipelineRejected { revision, reason } => {
            at_revision(&mut event, *revision);
            event.reason = reason.clone();
        }
        _ => {}
    }
    event
}

/// The report of a pipeline's log and state, as `devramps simulate` reports a run, for a log
/// written by a real engine (`devramps run --format json`, `devramps status`): the events are
/// the log's, the executions are read from it (one per step and build that started, with the
/// state it reached), and the violations are the invariants `state` breaks.
pub fn log_report(slug: &str, state: &PipelineState, records: &[Record], end: Timestamp) -> Report {
    let start = records.first().map_or(end, |r| r.at);
    let violations = invariant_breaches(state);
    let mut report = build_report(start, end, state, records, Vec::new(), &[], violations);
    report.executions = executions_of_log(slug, records);
    report
}

/// One execution per step and build the log shows started, in the order first seen.
fn executions_of_log(slug: &str, records: &[Record]) -> Vec<ExecutionReport> {
    let mut attempts: BTreeMap<(u64, String), u32> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut results: BTreeMap<String, String> = BTreeMap::new();
    let mut note = |key: ExecutionKey, result: &str| {
        let key = key.to_string();
        if !results.contains_key(&key) {
            order.push(key.clone());
        }
        results.insert(key, result.to_owned());
    };
    for record in records {
        match &record.event {
            Event::StageState {
                revision,
                stage,
                attempt: Some(attempt),
                ..
            } => {
                attempts.insert((*revision, stage.clone()), *attempt);
            }
            Event::StepState {
                revision,
                stage,
                step,
                state: step_state,
                ..
            } if *step_state != StepState::Pending && *step_state != StepState::Skipped => {
                let attempt = attempts
                    .get(&(*revision, stage.clone()))
                    .copied()
                    .unwrap_or(1);
                let unit = Unit::step(step.as_str());
                let key = ExecutionKey::new(slug, *revision, stage, attempt, unit);
                let result = match step_state {
                    StepState::WaitingApproval => "APPROVAL_REQUIRED",
                    other => other.as_str(),
                };
                note(key, result);
            }
            _ => {}
        }
    }
    order
        .into_iter()
        .map(|key| ExecutionReport {
            result: results.get(&key).cloned().unwrap_or_default(),
            key,
            starts: 1,
        })
        .collect()
}

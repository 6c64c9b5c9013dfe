//! The records of a pipeline's event log (L19). The state of every deployment and stage is a
//! fold of these records ([`super::PipelineState::apply`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::types::{
    Actor, AlarmState, Blocker, Emergency, Phase, StageState, StepState, WaitingFor,
};
use crate::exec::Polling;
use crate::expr::Organization;

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What a record says happened. The `type` names are those of the simulation report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A push created nothing (L2).
    PushIgnored {
        /// The pushed commit (empty when the push deleted its ref).
        commit: String,
        /// Its branch (empty when the ref is no branch, as a tag).
        branch: String,
        /// The delivery id, when known.
        delivery: Option<String>,
        /// Why.
        reason: String,
        /// The full ref pushed, for a push that is no deployment whatever the pipeline (a
        /// tag, a branch deletion: [`Input::IgnoredPush`](super::Input::IgnoredPush)); absent
        /// for a branch push (and in logs written before the field existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
    },
    /// A deployment was accepted (L1, L3). It holds what synthesis needs, so that the fold
    /// re-synthesizes the plan exactly.
    DeploymentAccepted {
        /// The new revision.
        revision: u64,
        /// The commit.
        commit: String,
        /// Its branch.
        branch: String,
        /// Its tag, or empty.
        tag: String,
        /// The delivery id, when known.
        delivery: Option<String>,
        /// The pipeline definition's text at the commit.
        definition: String,
        /// Paths changed since each base commit.
        changed: BTreeMap<String, Vec<String>>,
        /// The organization context of expressions.
        organization: Organization,
        /// Deployed as a patch (L17): the pipeline enters patch mode.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        patch: bool,
    },
    /// Synthesis failed; the deployment goes nowhere (L3).
    SynthesisFailed {
        /// The revision.
        revision: u64,
        /// The diagnostics, one line each.
        diagnostics: Vec<String>,
    },
    /// A stage-deployment changed state.
    StageState {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The new state.
        state: StageState,
        /// What it waits for, when `NOT_STARTED`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waiting_for: Option<WaitingFor>,
        /// The newer revision that superseded it, when `SKIPPED`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        superseded_by: Option<u64>,
        /// The attempt, once started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// Why, for people.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A phase of a running stage-deployment began (or was skipped, having nothing to do).
    PhaseStarted {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The phase.
        phase: Phase,
        /// Whether it had nothing to do.
        skipped: bool,
    },
    /// An artifact build started.
    BuildStarted {
        /// The revision.
        revision: u64,
        /// Artifact id.
        artifact: String,
        /// The stage, for per-stage artifacts.
        stage: Option<String>,
    },
    /// An artifact build ended.
    BuildFinished {
        /// The revision.
        revision: u64,
        /// Artifact id.
        artifact: String,
        /// The stage, for per-stage artifacts.
        stage: Option<String>,
        /// Whether it succeeded.
        succeeded: bool,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An artifact was reused from an earlier build.
    BuildReused {
        /// The revision.
        revision: u64,
        /// Artifact id.
        artifact: String,
        /// The commit of the build used.
        commit: String,
    },
    /// A step changed state.
    StepState {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The step (id, else name).
        step: String,
        /// The new state.
        state: StepState,
        /// Outputs, when it succeeded.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        outputs: BTreeMap<String, serde_json::Value>,
        /// Why, for people.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A running step asked to be polled later (a custom step's `TRIGGERED` or `POLL_AGAIN`):
    /// the state its next poll gets, so a restart polls again instead of triggering again.
    StepPolling {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The step (id, else name).
        step: String,
        /// The state and the number of polls so far.
        #[serde(flatten)]
        polling: Polling,
    },
    /// A step waits for a person (L16).
    ApprovalRequired {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The step.
        step: String,
        /// What the person should look at.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A person approved a waiting step.
    Approved {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The step.
        step: String,
        /// The person's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A person rejected a waiting step.
    Rejected {
        /// The revision.
        revision: u64,
        /// The stage.
        stage: String,
        /// The step.
        step: String,
        /// The person's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A blocker was added to a stage (L9).
    BlockerAdded {
        /// The stage.
        stage: String,
        /// The blocker.
        blocker: Blocker,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A blocker was removed from a stage (L9).
    BlockerRemoved {
        /// The stage.
        stage: String,
        /// The blocker.
        blocker: Blocker,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A person let one queued revision start once despite blockers and the window (L9).
    Bypassed {
        /// The stage.
        stage: String,
        /// The revision allowed through.
        revision: u64,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A person (or an alarm, L15) asked for an emergency rollback or roll-forward of a stage
    /// (L13, L14). It starts as soon as what runs there has stopped.
    EmergencyRequested {
        /// The stage.
        stage: String,
        /// Rollback or roll-forward.
        operation: Emergency,
        /// The target revision.
        revision: u64,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A stage's auto-rollback alarm changed state (L15).
    AlarmChanged {
        /// The stage.
        stage: String,
        /// The alarm's name.
        alarm: String,
        /// Its new state.
        state: AlarmState,
    },
    /// Patch mode ended (L17): pushes deploy again.
    PatchReleased {
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A deployment's definition change waits for a person before the first stage (L18).
    PipelineApprovalRequired {
        /// The revision.
        revision: u64,
        /// `ADDITIVE` or `DESTRUCTIVE`.
        classification: String,
        /// The changes, one line each.
        changes: Vec<String>,
    },
    /// A person approved a deployment's definition change (L18).
    PipelineApproved {
        /// The revision.
        revision: u64,
        /// The person's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A person rejected a deployment's definition change: it fails at synthesis (L18).
    PipelineRejected {
        /// The revision.
        revision: u64,
        /// The person's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An operation was refused.
    Refused {
        /// The operation, for example "retry".
        operation: String,
        /// The rule, for example "L11".
        rule: String,
        /// Why.
        reason: String,
    },
}

impl Event {
    /// The record's `type`, as in the simulation report.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::PushIgnored { .. } => "push_ignored",
            Event::DeploymentAccepted { .. } => "deployment_accepted",
            Event::SynthesisFailed { .. } => "synthesis_failed",
            Event::StageState { .. } => "stage_state",
            Event::PhaseStarted { .. } => "phase_started",
            Event::BuildStarted { .. } => "build_started",
            Event::BuildFinished { .. } => "build_finished",
            Event::BuildReused { .. } => "build_reused",
            Event::StepState { .. } => "step_state",
            Event::StepPolling { .. } => "step_polling",
            Event::ApprovalRequired { .. } => "approval_required",
            Event::Approved { .. } => "approved",
            Event::Rejected { .. } => "rejected",
            Event::BlockerAdded { .. } => "blocker_added",
            Event::BlockerRemoved { .. } => "blocker_removed",
            Event::Bypassed { .. } => "bypassed",
            Event::EmergencyRequested { .. } => "emergency_requested",
            Event::AlarmChanged { .. } => "alarm_state",
            Event::PatchReleased { .. } => "patch_released",
            Event::PipelineApprovalRequired { .. } => "pipeline_approval_required",
            Event::PipelineApproved { .. } => "pipeline_approved",
            Event::PipelineRejected { .. } => "pipeline_rejected",
            Event::Refused { .. } => "refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_json_with_their_report_type() {
        let record = Record {
            at: "2026-01-05T17:00:00Z".parse().expect("ts"),
            actor: Actor::Webhook("d1".into()),
            event: Event::StageState {
                revision: 3,
                stage: "prod".into(),
                state: StageState::NotStarted,
                waiting_for: Some(WaitingFor::TimeWindow),
                superseded_by: None,
                attempt: None,
                reason: None,
            },
        };
        let json = serde_json::to_value(&record).expect("serializes");
        assert_eq!(json["type"], "stage_state");
        assert_eq!(json["actor"], "webhook:d1");
        assert_eq!(json["waiting_for"], "TIME_WINDOW");
        assert!(json.get("superseded_by").is_none());
        let back: Record = serde_json::from_value(json).expect("parses");
        assert_eq!(back, record);
        assert_eq!(back.event.type_name(), "stage_state");
    }

    #[test]
    fn push_ignored_reads_logs_without_git_ref_and_writes_it_only_when_set() {
        // A record written before `git_ref` existed (the exact JSON of that release).
        let old = serde_json::json!({
            "at": "2026-01-05T17:00:00Z", "actor": "webhook:d1", "type": "push_ignored",
            "commit": "c1", "branch": "feature", "delivery": "d1",
            "reason": "branch `feature` is not the tracked branch `main`",
        });
        let record: Record = serde_json::from_value(old.clone()).expect("an old record loads");
        assert!(matches!(
            &record.event,
            Event::PushIgnored { git_ref: None, branch, .. } if branch == "feature"
        ));
        // A branch push writes what it wrote before: no `git_ref` key.
        assert_eq!(serde_json::to_value(&record).expect("serializes"), old);
        // A tag carries its ref, and reads back.
        let tag = Record {
            event: Event::PushIgnored {
                commit: "c2".into(),
                branch: String::new(),
                delivery: Some("d2".into()),
                reason: "tags deploy nothing".into(),
                git_ref: Some("refs/tags/v1".into()),
            },
            ..record
        };
        let json = serde_json::to_value(&tag).expect("serializes");
        assert_eq!(json["git_ref"], "refs/tags/v1");
        assert_eq!(serde_json::from_value::<Record>(json).expect("parses"), tag);
    }
}

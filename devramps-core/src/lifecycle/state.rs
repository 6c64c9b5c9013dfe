//! The state of one pipeline as a fold of its records (L19): replaying the log gives exactly the
//! live state. [`PipelineState::apply`] is the only way the state changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::accepted::{Accepted, PlanCell, PlanIndex, Synthesized, synthesize_deployment};
use super::record::{Event, Record};
use super::types::{AlarmState, Blocker, Emergency, Phase, StageState, StepState, WaitingFor};
use crate::exec::Polling;
use crate::expr::PipelineInfo;
use crate::pipeline::{ApprovalPolicy, PipelineDefinition, diff_definitions};
use crate::plan::{Plan, StagePlan};
use definitions::approval_needed;
pub(super) use index::{StageIndex, StageKey};

/// The runtime of one stage, across deployments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StageRuntime {
    /// The revision waiting in the queue (at most one, L6).
    pub queued: Option<u64>,
    /// The revision holding the stage's lock (L5).
    pub running: Option<u64>,
    /// The revision the stage runs: the last that ended `SUCCEEDED`, `ROLLED_BACK` or
    /// `ROLLED_FORWARD` there.
    pub current: Option<u64>,
    /// Active blockers (L9).
    pub blockers: BTreeSet<Blocker>,
    /// A queued revision allowed to start once despite blockers and the window (L9).
    pub bypass: Option<u64>,
    /// An emergency rollback or roll-forward waiting for the running stage-deployment to stop
    /// (L13, L14), with its target revision.
    pub emergency: Option<(Emergency, u64)>,
    /// The state of the stage's auto-rollback alarm (L15).
    pub alarm: AlarmState,
    /// Every revision that reached `SUCCEEDED`, `ROLLED_BACK` or `ROLLED_FORWARD` here: the
    /// possible rollback targets (L13).
    pub deployed: BTreeSet<u64>,
}

/// One step of one attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepRun {
    /// Its state.
    pub state: StepState,
    /// When it started running (for timeouts and bakes).
    pub started_at: Option<Timestamp>,
    /// Outputs, once succeeded.
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Whether a person approved it (bake approved early, approval waits).
    pub approved: bool,
    /// While it runs and asked to be polled: the state of its next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling: Option<Polling>,
}

impl StepRun {
    fn pending() -> Self {
        StepRun {
            state: StepState::Pending,
            started_at: None,
            outputs: BTreeMap::new(),
            approved: false,
            polling: None,
        }
    }
}

/// A deployment's life in one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StageRun {
    /// Stage name.
    pub name: String,
    /// State.
    pub state: StageState,
    /// What it waits for, when `NOT_STARTED`.
    pub waiting_for: Option<WaitingFor>,
    /// The revision that superseded it, when `SKIPPED`.
    pub superseded_by: Option<u64>,
    /// Attempts so far (0 before the first start).
    pub attempt: u32,
    /// The phase of the current attempt.
    pub phase: Option<Phase>,
    /// Builds of the current attempt by artifact id: running (`RUNNING`) or ended.
    pub builds: BTreeMap<String, StepState>,
    /// Steps of the current attempt, in plan order.
    pub steps: Vec<StepRun>,
    /// When the current attempt started.
    pub started_at: Option<Timestamp>,
}

impl StageRun {
    /// A copy of everything but the steps (left empty), for the machine's decisions that look
    /// at one step at most: copying every step would make each result cost as much as the stage
    /// has steps.
    pub(super) fn without_steps(&self) -> StageRun {
        StageRun {
            name: self.name.clone(),
            state: self.state,
            waiting_for: self.waiting_for,
            superseded_by: self.superseded_by,
            attempt: self.attempt,
            phase: self.phase,
            builds: self.builds.clone(),
            steps: Vec::new(),
            started_at: self.started_at,
        }
    }
}

/// One accepted deployment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Deployment {
    /// Revision (L1).
    pub revision: u64,
    /// Commit.
    pub commit: String,
    /// Branch.
    pub branch: String,
    /// The plan, when synthesis succeeded ([`Deployment::plan`]).
    pub(super) plan: PlanCell,
    /// Why synthesis failed, when it did.
    pub synthesis_errors: Vec<String>,
    /// Superseded before it started in any stage; its plan was released (a roll-forward to it
    /// synthesizes it again, L14).
    pub superseded: bool,
    /// Deployed as a patch (L17).
    pub patch: bool,
    /// Its stages, in promotion order.
    pub stages: Vec<StageRun>,
    /// What synthesis took at acceptance, to synthesize a released plan again.
    pub(super) accepted: Arc<Accepted>,
    /// The definition change that needs a person's approval before the first stage (L18): its
    /// classification and changes. Kept after the answer, for the record.
    pub approval: Option<(String, Vec<String>)>,
    /// The definition waiting for that approval; in force once approved.
    pub(super) awaiting: Option<Arc<PipelineDefinition>>,
    /// Superseded while its definition change waited for approval: never approved, it never
    /// deploys (a roll-forward to it is refused, L18).
    pub(super) unapproved: bool,
}

impl PartialEq for Deployment {
    /// Plans compare by content (synthesizing those left for later).
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.commit == other.commit
            && self.branch == other.branch
            && self.plan() == other.plan()
            && self.synthesis_errors == other.synthesis_errors
            && self.superseded == other.superseded
            && self.patch == other.patch
            && self.stages == other.stages
            && self.accepted == other.accepted
            && self.approval == other.approval
            && self.awaiting == other.awaiting
            && self.unapproved == other.unapproved
    }
}

impl Deployment {
    /// The plan, when synthesis succeeded (and the plan was not released: a deployment
    /// superseded before it started anywhere, or whose definition change was rejected).
    pub fn plan(&self) -> Option<&Arc<Plan>> {
        self.plan.get_or_synthesize(|| {
            let (revision, commit, branch) = (self.revision, &self.commit, &self.branch);
            synthesize_deployment(revision, commit, branch, &self.accepted, &[]).plan
        })
    }

    /// Whether its definition change waits for a person's approval (L18).
    pub fn awaits_approval(&self) -> bool {
        self.awaiting.is_some()
    }

    /// Whether its definition change needed a person's approval and was superseded before it
    /// got one (L18): it never deploys.
    pub fn never_approved(&self) -> bool {
        self.unapproved
    }

    /// The stage-deployment in `stage`.
    pub fn stage(&self, stage: &str) -> Option<&StageRun> {
        let index = self.stage_position(stage)?;
        self.stages.get(index)
    }

    fn stage_mut(&mut self, stage: &str) -> Option<&mut StageRun> {
        let index = self.stage_position(stage)?;
        self.stages.get_mut(index)
    }

    /// The position of `stage` among the deployment's stages: found through its plan's index
    /// when the plan is known (the plan's stages are the deployment's, in the same order),
    /// else by walking them.
    pub(super) fn stage_position(&self, stage: &str) -> Option<usize> {
        let indexed = self.plan.known().and_then(|(_, index)| index.stage(stage));
        match indexed {
            Some(i) if self.stages.get(i).is_some_and(|s| s.name == stage) => Some(i),
            _ => self.stages.iter().position(|s| s.name == stage),
        }
    }

    /// The plan of `stage` and its position in the plan (synthesizing a plan left for later).
    pub(super) fn plan_stage(&self, stage: &str) -> Option<(usize, &StagePlan)> {
        let (plan, index) = self.indexed_plan()?;
        let at = match index.stage(stage) {
            Some(i) if plan.stages.get(i).is_some_and(|s| s.name == stage) => i,
            _ => plan.stages.iter().position(|s| s.name == stage)?,
        };
        Some((at, &plan.stages[at]))
    }

    /// The position of the step with key `step` in the plan of `stage`.
    pub(super) fn plan_step(&self, stage: &str, step: &str) -> Option<usize> {
        let (at, stage_plan) = self.plan_stage(stage)?;
        let (_, index) = self.indexed_plan()?;
        match index.step(at, step) {
            Some(i) if stage_plan.steps.get(i).is_some_and(|s| s.key() == step) => Some(i),
            _ => stage_plan.steps.iter().position(|s| s.key() == step),
        }
    }

    fn indexed_plan(&self) -> Option<(&Arc<Plan>, &PlanIndex)> {
        self.plan.indexed(|| {
            let (revision, commit, branch) = (self.revision, &self.commit, &self.branch);
            synthesize_deployment(revision, commit, branch, &self.accepted, &[]).plan
        })
    }
}

/// The state of a pipeline: the fold of its log.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct PipelineState {
    /// `pipeline.*` of expressions.
    pub pipeline: Option<PipelineInfo>,
    /// Stages by name.
    pub stages: BTreeMap<String, StageRuntime>,
    /// Stage names in the order of the newest definition.
    pub stage_order: Vec<String>,
    /// Deployments by revision.
    pub deployments: BTreeMap<u64, Deployment>,
    /// The last revision given (L1).
    pub last_revision: u64,
    /// The newest accepted commit (L2).
    pub newest_commit: Option<String>,
    /// Delivery ids seen (L2).
    pub deliveries: BTreeSet<String>,
    /// The commit of each artifact's last successful build, by (artifact id, stage for
    /// per-stage artifacts).
    pub builds: BTreeMap<(String, Option<String>), String>,
    /// Records applied.
    pub applied: u64,
    /// In patch mode pushes to the tracked branch are recorded and ignored (L17).
    pub patch_mode: bool,
    /// The deployments waiting for approval of their definition before their first stage
    /// (L18); a newer deployment joining that stage supersedes them.
    pub awaiting_approval: BTreeSet<u64>,
    /// The definition in force: the last that passed synthesis and, when it needed one, a
    /// person's approval (L18). Stage settings such as alarms (L15) come from it.
    pub definition: Option<Arc<PipelineDefinition>>,
    /// The text of the last accepted definition, shared by the deployments that have the same.
    pub(super) last_definition: Option<Arc<str>>,
    /// The text of the definition in force: a deployment with the same text changes nothing,
    /// so it is neither compared (L18) nor put in force again.
    pub(super) definition_text: Option<Arc<str>>,
    /// Each stage's place in the promotion order and the stages with work to drive, derived
    /// from `stages` and `stage_order`.
    pub(super) index: StageIndex,
}

impl PipelineState {
    /// An empty state for the pipeline `slug`.
    pub fn new(slug: &str) -> Self {
        PipelineState {
            pipeline: Some(PipelineInfo::from_slug(slug)),
            ..PipelineState::default()
        }
    }

    /// Replays records from an empty state.
    pub fn replay<'a>(slug: &str, records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut state = PipelineState::new(slug);
        for r in records {
            state.apply(r);
        }
        state
    }

    /// The runtime of `stage` (default when unknown).
    pub fn stage(&self, stage: &str) -> StageRuntime {
        self.stages.get(stage).cloned().unwrap_or_default()
    }

    /// The stage-deployment of `revision` in `stage`.
    pub fn run(&self, revision: u64, stage: &str) -> Option<&StageRun> {
        self.deployments.get(&revision)?.stage(stage)
    }

    /// The deployments queued or running in some stage, in revision order: the only ones that
    /// can still change without a person acting.
    pub fn active_deployments(&self) -> impl Iterator<Item = &Deployment> {
        let mut revisions: Vec<u64> = self
            .stages
            .values()
            .flat_map(|s| s.queued.into_iter().chain(s.running))
            .collect();
        revisions.sort_unstable();
        revisions.dedup();
        revisions
            .into_iter()
            .filter_map(|r| self.deployments.get(&r))
    }

    /// The previous builds as synthesis takes them (shared artifacts).
    pub fn previous_builds(&self) -> BTreeMap<String, String> {
        self.builds
            .iter()
            .filter(|((_, stage), _)| stage.is_none())
            .map(|((id, _), commit)| (id.clone(), commit.clone()))
            .collect()
    }

    /// The previous builds of `per_stage` artifacts as synthesis takes them: by (artifact id,
    /// stage).
    pub fn previous_stage_builds(&self) -> BTreeMap<(String, String), String> {
        self.builds
            .iter()
            .filter_map(|((id, stage), commit)| {
                stage
                    .as_ref()
                    .map(|stage| ((id.clone(), stage.clone()), commit.clone()))
            })
            .collect()
    }

    /// Applies one record. Records that do not fit the state (a writer bug) are ignored here;
    /// the machine checks its own records before emitting them.
    pub fn apply(&mut self, record: &Record) {
        self.fold(record);
        self.reindex(record);
    }

    fn fold(&mut self, record: &Record) {
        self.applied += 1;
        match &record.event {
            Event::PushIgnored { delivery, .. } => {
                if let Some(d) = delivery {
                    self.deliveries.insert(d.clone());
                }
            }
            Event::DeploymentAccepted { .. } => self.apply_accepted(record),
            Event::SynthesisFailed { .. } | Event::BuildReused { .. } | Event::Refused { .. } => {}
            Event::StageState {
                revision,
                stage,
                state,
                waiting_for,
                superseded_by,
                attempt,
                ..
            } => self.apply_stage_state(
                record.at,
                *revision,
                stage,
                *state,
                *waiting_for,
                *superseded_by,
                *attempt,
            ),
            Event::PhaseStarted { .. }
            | Event::BuildStarted { .. }
            | Event::BuildFinished { .. }
            | Event::StepState { .. }
            | Event::StepPolling { .. }
            | Event::Approved { .. } => self.apply_work(record),
            Event::ApprovalRequired { .. } | Event::Rejected { .. } => {}
            Event::BlockerAdded { stage, blocker, .. } => {
                self.stages
                    .entry(stage.clone())
                    .or_default()
                    .blockers
                    .insert(*blocker);
            }
            Event::BlockerRemoved { stage, blocker, .. } => {
                self.stages
                    .entry(stage.clone())
                    .or_default()
                    .blockers
                    .remove(blocker);
            }
            Event::Bypassed {
                stage, revision, ..
            } => {
                self.stages.entry(stage.clone()).or_default().bypass = Some(*revision);
            }
            Event::EmergencyRequested {
                stage,
                operation,
                revision,
                ..
            } => {
                self.stages.entry(stage.clone()).or_default().emergency =
                    Some((*operation, *revision));
            }
            Event::AlarmChanged { stage, state, .. } => {
                self.stages.entry(stage.clone()).or_default().alarm = *state;
            }
            Event::PatchReleased { .. } => self.patch_mode = false,
            Event::PipelineApprovalRequired { .. } => {}
            Event::PipelineApproved { revision, .. } => {
                let awaiting = self
                    .deployments
                    .get_mut(revision)
                    .and_then(|d| Some((d.awaiting.take()?, d.accepted.definition.clone())));
                if let Some((def, text)) = awaiting {
                    self.stage_order = def.stages.iter().map(|s| s.name.value.clone()).collect();
                    self.definition = Some(def);
                    self.definition_text = Some(text);
                }
            }
            Event::PipelineRejected { revision, .. } => {
                if let Some(d) = self.deployments.get_mut(revision) {
                    d.awaiting = None;
                    d.plan = PlanCell::ready(None);
                    d.synthesis_errors
                        .push("the pipeline definition change was rejected (L18)".to_owned());
                }
            }
        }
    }
    fn run_mut(&mut self, revision: u64, stage: &str) -> Option<&mut StageRun> {
        self.deployments.get_mut(&revision)?.stage_mut(stage)
    }

    /// Where a build record belongs: its stage, or the first stage for shared artifacts.
    fn build_stage(&self, revision: u64, stage: Option<&str>) -> Option<String> {
        match stage {
            Some(s) => Some(s.to_owned()),
            None => self
                .deployments
                .get(&revision)?
                .stages
                .first()
                .map(|s| s.name.clone()),
        }
    }

    fn step_index(&self, revision: u64, stage: &str, step: &str) -> Option<usize> {
        self.deployments.get(&revision)?.plan_step(stage, step)
    }
}

mod definitions;
mod deployments;
mod index;
mod stages;
mod work;

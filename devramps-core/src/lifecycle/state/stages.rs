//! The fold of `stage_state` records: a stage-deployment's state, attempt and steps, and the
//! stage's queue, lock, current revision and emergency that follow from it.

use super::*;

impl PipelineState {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_stage_state(
        &mut self,
        at: Timestamp,
        revision: u64,
        stage: &str,
        state: StageState,
        waiting_for: Option<WaitingFor>,
        superseded_by: Option<u64>,
        attempt: Option<u32>,
    ) {
        if state == StageState::RollingForward {
            self.restore_plan(revision);
        }
        let plan = self
            .deployments
            .get(&revision)
            .and_then(|d| d.plan_stage(stage))
            .map(|(_, s)| s);
        let steps = plan.map_or(0, |s| s.steps.len());
        let skipped: Vec<bool> = plan
            .map(|s| s.steps.iter().map(|st| st.skipped).collect())
            .unwrap_or_default();
        let Some(run) = self.run_mut(revision, stage) else {
            return;
        };
        let previous = run.state;
        run.state = state;
        run.waiting_for = if state == StageState::NotStarted {
            waiting_for
        } else {
            None
        };
        if superseded_by.is_some() {
            run.superseded_by = superseded_by;
        }
        let starting = state.holds_lock() && !previous.holds_lock();
        if starting {
            run.attempt = attempt.unwrap_or(run.attempt + 1);
            run.phase = None;
            run.builds.clear();
            run.steps = (0..steps).map(|_| StepRun::pending()).collect();
            for (s, skip) in run.steps.iter_mut().zip(&skipped) {
                if *skip {
                    s.state = StepState::Skipped;
                }
            }
            run.started_at = Some(at);
        }
        if state == StageState::NotStarted && waiting_for == Some(WaitingFor::PipelineApproval) {
            self.awaiting_approval.insert(revision);
        } else {
            self.awaiting_approval.remove(&revision);
        }
        let runtime = self.stages.entry(stage.to_owned()).or_default();
        let queued_wait = matches!(
            waiting_for,
            Some(WaitingFor::Lock | WaitingFor::TimeWindow | WaitingFor::Blocker)
        );
        if state == StageState::NotStarted && queued_wait {
            runtime.queued = Some(revision);
        } else if runtime.queued == Some(revision) {
            runtime.queued = None;
        }
        if state.holds_lock() {
            runtime.running = Some(revision);
        } else if runtime.running == Some(revision) {
            runtime.running = None;
        }
        // A bypass lets its revision start once; it ends when that revision leaves the queue.
        if runtime.bypass == Some(revision) && runtime.queued != Some(revision) {
            runtime.bypass = None;
        }
        if matches!(
            state,
            StageState::Succeeded | StageState::RolledBack | StageState::RolledForward
        ) {
            runtime.current = Some(revision);
            runtime.deployed.insert(revision);
        }
        if matches!(state, StageState::RollingBack | StageState::RollingForward)
            && runtime.emergency.is_some_and(|(_, r)| r == revision)
        {
            runtime.emergency = None;
        }
        // A deployment superseded before it started anywhere keeps its outcome but not its plan:
        // a storm of pushes into a busy stage must not hold a plan per push in memory.
        if matches!(state, StageState::Skipped | StageState::NotStarted)
            && let Some(d) = self.deployments.get_mut(&revision)
            && d.stages.iter().any(|s| s.state == StageState::Skipped)
            && d.stages
                .iter()
                .all(|s| s.attempt == 0 && s.state.is_terminal(s.waiting_for))
        {
            d.plan = PlanCell::ready(None);
            d.unapproved |= d.awaiting.take().is_some();
            d.superseded = true;
        }
    }
}

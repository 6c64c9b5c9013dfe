//! The fold of a running stage-deployment's work: phases started, builds, step states and
//! step approvals.

use super::*;

impl PipelineState {
    /// Applies a phase, build, step or approval record (any other record is ignored).
    pub(super) fn apply_work(&mut self, record: &Record) {
        match &record.event {
            Event::PhaseStarted {
                revision,
                stage,
                phase,
                ..
            } => {
                if let Some(run) = self.run_mut(*revision, stage) {
                    run.phase = Some(*phase);
                }
            }
            Event::BuildStarted {
                revision,
                artifact,
                stage,
            } => {
                let at_stage = self.build_stage(*revision, stage.as_deref());
                if let Some(run) = at_stage.and_then(|s| self.run_mut(*revision, &s)) {
                    run.builds.insert(artifact.clone(), StepState::Running);
                }
            }
            Event::BuildFinished {
                revision,
                artifact,
                stage,
                succeeded,
                ..
            } => {
                let at_stage = self.build_stage(*revision, stage.as_deref());
                let commit = self.deployments.get(revision).map(|d| d.commit.clone());
                if let Some(run) = at_stage.and_then(|s| self.run_mut(*revision, &s)) {
                    let state = if *succeeded {
                        StepState::Succeeded
                    } else {
                        StepState::Failed
                    };
                    run.builds.insert(artifact.clone(), state);
                }
                if *succeeded && let Some(commit) = commit {
                    self.builds
                        .insert((artifact.clone(), stage.clone()), commit);
                }
            }
            Event::StepState {
                revision,
                stage,
                step,
                state,
                outputs,
                ..
            } => {
                let index = self.step_index(*revision, stage, step);
                if let (Some(i), Some(run)) = (index, self.run_mut(*revision, stage))
                    && let Some(s) = run.steps.get_mut(i)
                {
                    if *state == StepState::Running && s.state == StepState::Pending {
                        s.started_at = Some(record.at);
                    }
                    s.state = *state;
                    s.polling = None;
                    if !outputs.is_empty() {
                        s.outputs = outputs.clone();
                    }
                }
            }
            Event::StepPolling {
                revision,
                stage,
                step,
                polling,
            } => {
                let index = self.step_index(*revision, stage, step);
                if let (Some(i), Some(run)) = (index, self.run_mut(*revision, stage))
                    && let Some(s) = run.steps.get_mut(i)
                    && s.state == StepState::Running
                {
                    s.polling = Some(polling.clone());
                }
            }
            Event::Approved {
                revision,
                stage,
                step,
                ..
            } => {
                let index = self.step_index(*revision, stage, step);
                if let (Some(i), Some(run)) = (index, self.run_mut(*revision, stage))
                    && let Some(s) = run.steps.get_mut(i)
                {
                    s.approved = true;
                }
            }
            _ => {}
        }
    }
}

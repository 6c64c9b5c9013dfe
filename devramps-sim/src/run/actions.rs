//! The scenario events that go to the engine: pushes (with the repository they write),
//! scripted outcomes, approvals, operations, alarms, patches and pipeline decisions.

use devramps_core::backend::{AlarmId, Unit};
use devramps_core::engine::{PatchRequest, PushRequest};
use devramps_core::lifecycle::{
    Actor, AlarmInput, AlarmState, Control, ControlAction, Decide, Event, Operate,
    PipelineDecision, Record,
};
use devramps_core::pipeline::{PIPELINE_DIR, PIPELINE_FILE};

use super::{Head, Sim, StageOp};
use crate::action::{Answer, DEFAULT_ACTOR, Push, ScriptedOutcome, StepRef};
use crate::backends::Script;
use crate::collect::Annotation;
use crate::report::EventReport;

impl Sim<'_> {
    /// The head `branch` grows from: its own, else (a new branch) the tracked branch's.
    pub(super) fn parent_head(&self, branch: &str) -> Option<Head> {
        self.heads
            .get(branch)
            .or_else(|| self.heads.get(&self.tracked_branch()))
            .cloned()
    }

    /// Writes `commit` to the repository (once), as a child of `parent` (the first parent on
    /// its branch), with `pipeline` as the definition and every changed path.
    pub(super) fn write_commit(
        &mut self,
        commit: &str,
        parent: Option<&Head>,
        pipeline: &str,
        changed: &[String],
    ) {
        if !self.commits.insert(commit.to_owned()) {
            return;
        }
        let path = format!("/{PIPELINE_DIR}/{}/{PIPELINE_FILE}", self.scenario.slug);
        let mut files: Vec<(String, String)> = vec![(path, pipeline.to_owned())];
        files.extend(changed.iter().map(|path| (path.clone(), commit.to_owned())));
        match parent {
            None => self.handles.source.commit(commit, None, files),
            Some(parent) => self.handles.source.commit_changes(
                commit,
                &parent.commit,
                files.into_iter().map(|(p, c)| (p, Some(c))),
            ),
        }
    }

    /// `push`: writes the commit on its branch and submits the webhook. A branch deletion
    /// (`deleted`) forgets the branch's head and submits nothing: the engine has no notion of
    /// deletions, and L2 says they create nothing.
    pub(super) fn push(&mut self, push: &Push) {
        self.pushes += 1;
        let branch = push.branch.clone().unwrap_or_else(|| self.tracked_branch());
        if push.deleted {
            self.heads.remove(&branch);
            return;
        }
        let parent = self.parent_head(&branch);
        let pipeline = match (&push.pipeline_yaml, &parent) {
            (Some(text), _) => text.clone(),
            (None, Some(parent)) => parent.pipeline.clone(),
            (None, None) => self.pipeline_text.clone(),
        };
        self.write_commit(&push.commit, parent.as_ref(), &pipeline, &push.changed);
        self.heads.insert(
            branch.clone(),
            Head {
                commit: push.commit.clone(),
                pipeline,
            },
        );
        let request = PushRequest::new(branch, push.commit.clone()).with_delivery(
            push.delivery
                .clone()
                .unwrap_or_else(|| format!("sim-{}", self.pushes)),
        );
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let request = request.clone();
            async move { engine.push(&slug, request).await }
        });
        let context = EventReport {
            commit: Some(push.commit.clone()),
            ..EventReport::default()
        };
        self.answered(before, result, context);
    }

    pub(super) fn outcome(&mut self, outcome: &ScriptedOutcome) {
        let definition = self.definition.as_deref();
        let unit = match &outcome.target {
            StepRef::Step(step) => Unit::step(
                definition
                    .and_then(|d| d.step(&step.value))
                    .map_or_else(|| step.value.clone(), |s| s.key().to_owned()),
            ),
            StepRef::Build(artifact) => Unit::build(
                definition
                    .and_then(|d| d.artifact(&artifact.value))
                    .map_or_else(|| artifact.value.clone(), |a| a.id.value.clone()),
            ),
        };
        self.handles.scripts.add(Script {
            commit: outcome.commit.clone(),
            stage: outcome.stage.as_ref().map(|s| s.value.clone()),
            unit,
            attempt: outcome.attempt,
            result: outcome.result,
            duration: outcome.duration,
            outputs: outcome.outputs.clone().into_iter().collect(),
            plan: outcome.plan,
        });
    }

    pub(super) fn decide(&mut self, answer: &Answer, approve: bool) {
        let context = EventReport {
            commit: Some(answer.commit.clone()),
            stage: Some(answer.stage.value.clone()),
            step: Some(answer.step.value.clone()),
            ..EventReport::default()
        };
        let operation = if approve { "approve" } else { "reject" };
        let Some(revision) = self.revision_of(&answer.commit) else {
            return self.no_deployment(context, operation, &answer.commit);
        };
        let mut decide = Decide::new(
            revision,
            answer.stage.value.clone(),
            answer.step.value.clone(),
            Actor::User(answer.actor.clone()),
        );
        decide.comment = answer.comment.clone();
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let decide = decide.clone();
            async move {
                if approve {
                    engine.approve(&slug, decide).await
                } else {
                    engine.reject(&slug, decide).await
                }
            }
        });
        self.answered(
            before,
            result,
            EventReport {
                revision: Some(revision),
                ..context
            },
        );
    }

    /// `retry`, `cancel`, `rollback` or `roll_forward` of the newest deployment of `commit` in
    /// `stage` (L11..L14).
    pub(super) fn operate(&mut self, kind: StageOp, commit: &str, stage: &str) {
        let context = EventReport {
            commit: Some(commit.to_owned()),
            stage: Some(stage.to_owned()),
            ..EventReport::default()
        };
        let Some(revision) = self.revision_of(commit) else {
            return self.no_deployment(context, kind.name(), commit);
        };
        let op = Operate::new(
            revision,
            stage.to_owned(),
            Actor::User(DEFAULT_ACTOR.to_owned()),
        );
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let op = op.clone();
            async move {
                match kind {
                    StageOp::Retry => engine.retry(&slug, op).await,
                    StageOp::Cancel => engine.cancel(&slug, op).await,
                    StageOp::Rollback => engine.rollback(&slug, op).await,
                    StageOp::RollForward => engine.roll_forward(&slug, op).await,
                }
            }
        });
        self.answered(
            before,
            result,
            EventReport {
                revision: Some(revision),
                ..context
            },
        );
    }

    pub(super) fn control(&mut self, stage: &str, action: ControlAction, commit: Option<&String>) {
        let control = Control::new(
            stage.to_owned(),
            action,
            Actor::User(DEFAULT_ACTOR.to_owned()),
        );
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let control = control.clone();
            async move { engine.control(&slug, control).await }
        });
        let revision = match action {
            ControlAction::Bypass { revision } => Some(revision),
            _ => None,
        };
        self.answered(
            before,
            result,
            EventReport {
                revision,
                commit: commit.cloned(),
                stage: Some(stage.to_owned()),
                ..EventReport::default()
            },
        );
    }

    /// `alarm`: through the in-memory alarm source when the stage watches an alarm (as in
    /// production), else straight to the engine, which refuses it (L15).
    pub(super) fn alarm(&mut self, stage: &str, state: crate::action::AlarmState) {
        let state = match state {
            crate::action::AlarmState::Alarm => AlarmState::Alarm,
            crate::action::AlarmState::Ok => AlarmState::Ok,
        };
        // The stage's alarm as the engine will watch it: from the definition in force, or
        // before any deployment from the scenario's pipeline.
        let definition = self
            .state
            .definition
            .as_deref()
            .or(self.definition.as_deref());
        let watched = definition
            .and_then(|d| d.stages.iter().find(|s| s.name.value == stage))
            .and_then(AlarmId::of_stage);
        if let Some(alarm) = watched {
            self.handles.alarms.set(alarm, state);
            return;
        }
        let input = AlarmInput::new(stage.to_owned(), state, Actor::System);
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let input = input.clone();
            async move { engine.alarm(&slug, input).await }
        });
        let context = EventReport {
            stage: Some(stage.to_owned()),
            ..EventReport::default()
        };
        self.answered(before, result, context);
    }

    /// `patch`: writes the commit when it is new (not as the branch head) and deploys it (L17).
    pub(super) fn patch(&mut self, commit: &str, changed: &[String]) {
        let parent = self.parent_head(&self.tracked_branch());
        let pipeline = parent
            .as_ref()
            .map_or_else(|| self.pipeline_text.clone(), |p| p.pipeline.clone());
        self.write_commit(commit, parent.as_ref(), &pipeline, changed);
        let request = PatchRequest::new(commit.to_owned(), Actor::User(DEFAULT_ACTOR.to_owned()));
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let request = request.clone();
            async move { engine.patch(&slug, request).await }
        });
        let context = EventReport {
            commit: Some(commit.to_owned()),
            ..EventReport::default()
        };
        self.answered(before, result, context);
    }

    /// `approve_pipeline` / `reject_pipeline` for the newest deployment of `commit` (L18).
    pub(super) fn decide_pipeline(&mut self, commit: &str, approve: bool) {
        let context = EventReport {
            commit: Some(commit.to_owned()),
            ..EventReport::default()
        };
        let operation = if approve {
            "approve_pipeline"
        } else {
            "reject_pipeline"
        };
        let Some(revision) = self.revision_of(commit) else {
            return self.no_deployment(context, operation, commit);
        };
        let decision = PipelineDecision::new(revision, Actor::User(DEFAULT_ACTOR.to_owned()));
        let before = self.state.applied;
        let result = self.call(|engine, slug| {
            let decision = decision.clone();
            async move {
                if approve {
                    engine.approve_pipeline(&slug, decision).await
                } else {
                    engine.reject_pipeline(&slug, decision).await
                }
            }
        });
        self.answered(
            before,
            result,
            EventReport {
                revision: Some(revision),
                ..context
            },
        );
    }

    pub(super) fn no_deployment(&mut self, context: EventReport, operation: &str, commit: &str) {
        self.refuse(
            context,
            format!("`{operation}`: commit `{commit}` has no deployment"),
        );
    }

    /// Notes what the engine answered to a scenario event: refusals get the event's context;
    /// an engine error becomes a `refused` event.
    pub(super) fn answered(
        &mut self,
        before: u64,
        result: devramps_core::Result<Vec<Record>>,
        context: EventReport,
    ) {
        match result {
            Ok(records) => {
                for (i, record) in (before + 1..).zip(&records) {
                    if matches!(record.event, Event::Refused { .. }) {
                        self.annotations.push((
                            i,
                            Annotation {
                                revision: context.revision,
                                commit: context.commit.clone(),
                                stage: context.stage.clone(),
                                step: context.step.clone(),
                            },
                        ));
                    }
                }
            }
            // The refusal was recorded (one `refused` record right after `before`).
            Err(devramps_core::Error::Refused { .. }) => self.annotations.push((
                before + 1,
                Annotation {
                    revision: context.revision,
                    commit: context.commit.clone(),
                    stage: context.stage.clone(),
                    step: context.step.clone(),
                },
            )),
            Err(e) => self.refuse(context, format!("the engine failed: {e}")),
        }
    }
}

//! The on-call operations: emergency rollback and roll-forward (L13, L14), alarms (L15), patch
//! mode (L17) and pipeline-update approval (L18).

use super::*;
use crate::lifecycle::{Blocker, StageRun, StageRuntime};

impl Run<'_> {
    /// The stage after `stage` in the definition in force.
    pub(super) fn next_stage(&self, stage: &str) -> Option<String> {
        let order = &self.state().stage_order;
        let i = order.iter().position(|s| s == stage)?;
        order.get(i + 1).cloned()
    }

    /// Adds `blocker` to `stage` unless it is already there.
    fn add_blocker(&mut self, actor: &Actor, stage: &str, blocker: Blocker, reason: &str) {
        if self.state().runtime(stage).blockers.contains(&blocker) {
            return;
        }
        let event = Event::BlockerAdded {
            stage: stage.to_owned(),
            blocker,
            reason: Some(reason.to_owned()),
        };
        self.emit(actor.clone(), event);
    }

    /// A person asks for a rollback (L13) or a roll-forward (L14) of `op.stage` to
    /// `op.revision`: checked, recorded, and started once what runs there has stopped.
    pub(super) fn emergency(&mut self, kind: Emergency, op: Operate) {
        let operation = kind.as_str();
        let rule = kind.rule();
        let Some(run) = self.state().run(op.revision, &op.stage).cloned() else {
            let why = format!("revision {} has no stage `{}`", op.revision, op.stage);
            return self.refuse(&op.actor, operation, rule, why);
        };
        let runtime = self.state().runtime(&op.stage);
        let trigger = match kind {
            Emergency::Rollback => Trigger::RollBack,
            Emergency::RollForward => Trigger::RollForward,
        };
        if let Some(why) = self.emergency_refusal(kind, &op, &run, &runtime) {
            return self.refuse(&op.actor, operation, rule, why);
        }
        if run.state.holds_lock() || next_state(run.state, trigger).is_none() {
            let why = format!(
                "revision {} is {} in `{}`",
                op.revision, run.state, op.stage
            );
            return self.refuse(&op.actor, operation, rule, why);
        }
        self.request_emergency(op.actor.clone(), kind, &op.stage, op.revision, op.reason);
    }

    /// Why `op` cannot be carried out, if it cannot.
    fn emergency_refusal(
        &self,
        kind: Emergency,
        op: &Operate,
        run: &StageRun,
        runtime: &StageRuntime,
    ) -> Option<String> {
        let (stage, revision) = (op.stage.as_str(), op.revision);
        if runtime.emergency == Some((kind, revision))
            || (runtime.running == Some(revision)
                && matches!(
                    run.state,
                    StageState::RollingBack | StageState::RollingForward
                ))
        {
            return Some(format!(
                "a {} of `{stage}` to revision {revision} is already under way",
                kind_words(kind)
            ));
        }
        match kind {
            Emergency::Rollback => (!runtime.deployed.contains(&revision)).then(|| {
                format!(
                    "revision {revision} never succeeded in `{stage}`; a rollback goes to a \
                     revision that did"
                )
            }),
            Emergency::RollForward => {
                if let Some(current) = runtime.current
                    && revision <= current
                {
                    return Some(if revision == current {
                        format!("revision {revision} is already the current revision of `{stage}`")
                    } else {
                        format!(
                            "revision {revision} is older than revision {current}, the current \
                             revision of `{stage}`; roll back instead (L13)"
                        )
                    });
                }
                let deployment = self.state().deployments.get(&revision)?;
                let index = deployment.stage_position(stage)?;
                if deployment.awaits_approval() {
                    return Some(format!(
                        "revision {revision} waits for approval of its pipeline definition (L18)"
                    ));
                }
                if deployment.never_approved() {
                    return Some(format!(
                        "revision {revision} was superseded before its pipeline definition \
                         change was approved; it never deploys (L18)"
                    ));
                }
                if index == 0 {
                    let synthesized = deployment.plan().is_some() || deployment.superseded;
                    return (!synthesized)
                        .then(|| format!("revision {revision} did not pass synthesis"));
                }
                let previous = &deployment.stages[index - 1].name;
                (!self.state().runtime(previous).deployed.contains(&revision)).then(|| {
                    format!(
                        "revision {revision} has not succeeded in `{previous}`, the stage \
                         before `{stage}`"
                    )
                })
            }
        }
    }

    /// Records an emergency for `stage` and stops what runs there; [`Run::start_emergency`]
    /// starts it once the lock is free. A rollback blocks the stage and the next one (L13).
    pub(super) fn request_emergency(
        &mut self,
        actor: Actor,
        kind: Emergency,
        stage: &str,
        target: u64,
        reason: Option<String>,
    ) {
        self.emit(
            actor.clone(),
            Event::EmergencyRequested {
                stage: stage.to_owned(),
                operation: kind,
                revision: target,
                reason,
            },
        );
        if kind == Emergency::Rollback {
            let why = format!("rollback of `{stage}` to revision {target}");
            self.add_blocker(&actor, stage, Blocker::Rollback, &why);
            if let Some(next) = self.next_stage(stage) {
                self.add_blocker(&actor, &next, Blocker::Rollback, &why);
            }
        }
        let runtime = self.state().runtime(stage);
        if let Some(holder) = runtime.running
            && holder != target
        {
            let state = self.state().run(holder, stage).map(|r| r.state);
            if state != Some(StageState::Cancelling) {
                let why = format!(
                    "cancelled for the {} to revision {target}",
                    kind_words(kind)
                );
                self.request_cancel(holder, stage, Actor::System, why);
            }
        }
    }

    /// Starts the stage's pending emergency when the lock is free; `true` when one is pending
    /// (nothing else may start before it).
    pub(super) fn start_emergency(&mut self, stage: &str) -> bool {
        let runtime = self.state().runtime(stage);
        let Some((kind, target)) = runtime.emergency else {
            return false;
        };
        if runtime.running.is_some() {
            return true;
        }
        let trigger = match kind {
            Emergency::Rollback => Trigger::RollBack,
            Emergency::RollForward => Trigger::RollForward,
        };
        let reason = format!("{} of `{stage}` to revision {target}", kind_words(kind));
        self.set_stage(
            Actor::System,
            target,
            stage,
            trigger,
            StageDetail::reason(reason),
        );
        true
    }

    /// A stage's alarm changed (L15): firing during a deployment cancels it and rolls the stage
    /// back to its last good revision; firing while idle blocks the stage until it clears.
    pub(super) fn alarm(&mut self, a: AlarmInput) {
        let alarm = self.state().definition.as_ref().and_then(|d| {
            d.stages
                .iter()
                .find(|s| s.name.value == a.stage)
                .map(|s| s.auto_rollback_alarm_name.as_ref().map(|n| n.value.clone()))
        });
        let alarm = match alarm {
            None => {
                let why = format!("the pipeline has no stage `{}`", a.stage);
                return self.refuse(&a.actor, "alarm", "L15", why);
            }
            Some(None) => {
                let why = format!("stage `{}` has no auto_rollback_alarm_name", a.stage);
                return self.refuse(&a.actor, "alarm", "L15", why);
            }
            Some(Some(name)) => name,
        };
        let runtime = self.state().stage(&a.stage);
        if runtime.alarm == a.state {
            return;
        }
        self.emit(
            a.actor.clone(),
            Event::AlarmChanged {
                stage: a.stage.clone(),
                alarm: alarm.clone(),
                state: a.state,
            },
        );
        if a.state == AlarmState::Ok {
            if runtime.blockers.contains(&Blocker::Alarm) {
                let event = Event::BlockerRemoved {
                    stage: a.stage.clone(),
                    blocker: Blocker::Alarm,
                    reason: Some(format!("alarm `{alarm}` returned to OK")),
                };
                self.emit(Actor::System, event);
            }
            return;
        }
        let Some(holder) = runtime.running else {
            let why = format!("alarm `{alarm}` is in ALARM");
            return self.add_blocker(&Actor::System, &a.stage, Blocker::Alarm, &why);
        };
        let state = self.state().run(holder, &a.stage).map(|r| r.state);
        if state == Some(StageState::RollingBack) {
            return; // Already going back to a good revision.
        }
        let why = format!("alarm `{alarm}` went to ALARM while revision {holder} was deploying");
        match runtime.current.filter(|c| *c != holder) {
            Some(target) => self.request_emergency(
                Actor::System,
                Emergency::Rollback,
                &a.stage,
                target,
                Some(why),
            ),
            None => {
                // Nothing to go back to: cancel and block the stage and the next (L15).
                if state != Some(StageState::Cancelling) {
                    self.request_cancel(holder, &a.stage, Actor::System, why.clone());
                }
                let why = format!("{why}; no earlier revision to roll back to");
                self.add_blocker(&Actor::System, &a.stage, Blocker::Rollback, &why);
                if let Some(next) = self.next_stage(&a.stage) {
                    self.add_blocker(&Actor::System, &next, Blocker::Rollback, &why);
                }
            }
        }
    }

    /// Deploys a chosen commit as a patch and enters patch mode (L17).
    pub(super) fn patch(&mut self, p: Patch) {
        if p.push.definition.is_none() {
            let why = format!(
                "commit `{}` has no definition of this pipeline",
                p.push.commit
            );
            return self.refuse(&p.actor, "patch", "L17", why);
        }
        self.accept(p.actor, p.push, true);
    }

    /// Ends patch mode (L17); the next push deploys normally.
    pub(super) fn release_patch(&mut self, p: Person) {
        if !self.state().patch_mode {
            let why = "the pipeline is not in patch mode".to_owned();
            return self.refuse(&p.actor, "release_patch", "L17", why);
        }
        self.emit(p.actor, Event::PatchReleased { reason: p.reason });
    }

    /// Whether `revision`, ready for `stage`, waits for approval of its definition (L18); the
    /// first time, the wait is recorded.
    pub(super) fn awaits_pipeline_approval(&mut self, revision: u64, stage: &str) -> bool {
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return false;
        };
        if !deployment.awaits_approval()
            || deployment.stages.first().map(|s| s.name.as_str()) != Some(stage)
        {
            return false;
        }
        let run = &deployment.stages[0];
        if run.waiting_for == Some(WaitingFor::PipelineApproval) {
            return true;
        }
        let (classification, changes) = deployment.approval.clone().unwrap_or_default();
        self.emit(
            Actor::System,
            Event::PipelineApprovalRequired {
                revision,
                classification,
                changes,
            },
        );
        self.wait(revision, stage, WaitingFor::PipelineApproval);
        true
    }

    /// A person answers a definition change waiting for approval (L18).
    pub(super) fn decide_pipeline(&mut self, d: PipelineDecision, approve: bool) {
        let operation = if approve {
            "approve_pipeline"
        } else {
            "reject_pipeline"
        };
        let first = self
            .state()
            .deployments
            .get(&d.revision)
            .and_then(|dep| dep.stages.first())
            .map(|s| (s.name.clone(), s.state, s.waiting_for));
        let Some((stage, StageState::NotStarted, Some(WaitingFor::PipelineApproval))) = first
        else {
            let why = format!(
                "revision {} is not waiting for approval of its pipeline definition",
                d.revision
            );
            return self.refuse(&d.actor, operation, "L18", why);
        };
        if approve {
            let event = Event::PipelineApproved {
                revision: d.revision,
                reason: d.comment,
            };
            self.emit(d.actor, event);
            return self.join_queue(d.revision, &stage);
        }
        let why = format!("pipeline definition change rejected by {}", d.actor);
        let event = Event::PipelineRejected {
            revision: d.revision,
            reason: d.comment,
        };
        self.emit(d.actor, event);
        self.emit(
            Actor::System,
            Event::SynthesisFailed {
                revision: d.revision,
                diagnostics: vec![why.clone()],
            },
        );
        let stages: Vec<String> = self
            .state()
            .deployments
            .get(&d.revision)
            .map(|dep| dep.stages.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        for s in stages {
            self.set_stage(
                Actor::System,
                d.revision,
                &s,
                Trigger::Abandon,
                StageDetail::never(&why),
            );
        }
    }
}

fn kind_words(kind: Emergency) -> &'static str {
    match kind {
        Emergency::Rollback => "rollback",
        Emergency::RollForward => "roll-forward",
    }
}

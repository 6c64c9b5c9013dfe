//! Pushes (L1, L2, L3): ignored with the reason why, or accepted as a deployment that joins
//! the first stage's queue (L6).

use super::*;

impl Run<'_> {
    pub(super) fn push(&mut self, push: Push) {
        let actor = Actor::Webhook(push.delivery.clone().unwrap_or_else(|| "push".to_owned()));
        let tracked = push
            .definition
            .as_deref()
            .and_then(|d| crate::plan::parse_shared(d).ok())
            .map(|d| d.tracked_branch().to_owned());
        let ignore = if push.definition.is_none() {
            Some("the commit has no pipeline definition".to_owned())
        } else if push
            .delivery
            .as_ref()
            .is_some_and(|d| self.state().deliveries.contains(d))
        {
            Some("this delivery was seen before".to_owned())
        } else if self.state().newest_commit.as_deref() == Some(push.commit.as_str()) {
            Some("the commit is already the newest accepted commit".to_owned())
        } else {
            match &tracked {
                Some(branch) if *branch != push.branch => Some(format!(
                    "branch `{}` is not the tracked branch `{branch}`",
                    push.branch
                )),
                _ if self.state().patch_mode => Some(
                    "the pipeline is in patch mode (L17): pushes are ignored until the patch is \
                     released"
                        .to_owned(),
                ),
                _ => None,
            }
        };
        if let Some(reason) = ignore {
            self.emit(
                actor,
                Event::PushIgnored {
                    commit: push.commit,
                    branch: push.branch,
                    delivery: push.delivery,
                    reason,
                    git_ref: None,
                },
            );
            return;
        }
        self.accept(actor, push, false);
    }

    /// Records a push that is no deployment (a tag, a branch deletion) with its reason, or as
    /// a duplicate when its delivery was seen before (L2). Nothing is resolved or accepted.
    pub(super) fn ignored_push(&mut self, push: IgnoredPush) {
        let actor = Actor::Webhook(push.delivery.clone().unwrap_or_else(|| "push".to_owned()));
        let seen = push
            .delivery
            .as_ref()
            .is_some_and(|d| self.state().deliveries.contains(d));
        let reason = if seen {
            "this delivery was seen before".to_owned()
        } else {
            push.reason
        };
        let branch = push
            .git_ref
            .strip_prefix("refs/heads/")
            .unwrap_or_default()
            .to_owned();
        self.emit(
            actor,
            Event::PushIgnored {
                commit: push.commit.unwrap_or_default(),
                branch,
                delivery: push.delivery,
                reason,
                git_ref: Some(push.git_ref),
            },
        );
    }

    /// Accepts a deployment of `push` (L1, L3) and sends it to the first stage's queue (L6).
    pub(super) fn accept(&mut self, actor: Actor, push: Push, patch: bool) {
        let revision = self.state().last_revision + 1;
        self.emit(
            actor,
            Event::DeploymentAccepted {
                revision,
                commit: push.commit,
                branch: push.branch,
                tag: push.tag,
                delivery: push.delivery,
                definition: push.definition.unwrap_or_default(),
                changed: push.changed,
                organization: push.organization,
                patch,
            },
        );
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return;
        };
        if deployment.plan().is_none() {
            let diagnostics = deployment.synthesis_errors.clone();
            let stages: Vec<String> = deployment.stages.iter().map(|s| s.name.clone()).collect();
            self.emit(
                Actor::System,
                Event::SynthesisFailed {
                    revision,
                    diagnostics,
                },
            );
            for stage in stages {
                self.set_stage(
                    Actor::System,
                    revision,
                    &stage,
                    Trigger::Abandon,
                    StageDetail::never("synthesis failed"),
                );
            }
            return;
        }
        let first = deployment.stages.first().map(|s| s.name.clone());
        if let Some(first) = first {
            self.join_queue(revision, &first);
        }
    }
}

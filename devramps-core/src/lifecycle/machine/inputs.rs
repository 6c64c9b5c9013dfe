//! Constructors of the machine's inputs. The input types are `#[non_exhaustive]` so that they
//! can grow without breaking callers; callers outside the crate build them with these.

use std::collections::BTreeMap;

use super::{
    AlarmInput, Control, ControlAction, Decide, IgnoredPush, Operate, Patch, Person,
    PipelineDecision, Push,
};
use crate::expr::Organization;
use crate::lifecycle::{Actor, AlarmState};

impl Push {
    /// A push of `commit` to `branch`, with no delivery id, no tag, no definition, no changed
    /// paths and the default organization; see the `with_*` methods for the rest.
    pub fn new(branch: impl Into<String>, commit: impl Into<String>) -> Self {
        Push {
            delivery: None,
            branch: branch.into(),
            commit: commit.into(),
            tag: String::new(),
            definition: None,
            changed: BTreeMap::new(),
            organization: Organization::default(),
        }
    }

    /// With the webhook delivery id.
    pub fn with_delivery(mut self, delivery: impl Into<String>) -> Self {
        self.delivery = Some(delivery.into());
        self
    }

    /// With a tag pointing at the commit.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// With the definition's text at the commit (`None`: the commit has no definition).
    pub fn with_definition(mut self, definition: Option<String>) -> Self {
        self.definition = definition;
        self
    }

    /// With the paths changed since each base commit.
    pub fn with_changed(mut self, changed: BTreeMap<String, Vec<String>>) -> Self {
        self.changed = changed;
        self
    }

    /// With the organization context.
    pub fn with_organization(mut self, organization: Organization) -> Self {
        self.organization = organization;
        self
    }
}

impl IgnoredPush {
    /// A push of `git_ref` (the full ref, `refs/tags/v1.0`) that deploys nothing, for
    /// `reason`; no delivery id, no commit.
    pub fn new(git_ref: impl Into<String>, reason: impl Into<String>) -> Self {
        IgnoredPush {
            delivery: None,
            git_ref: git_ref.into(),
            commit: None,
            reason: reason.into(),
        }
    }

    /// With the webhook delivery id.
    pub fn with_delivery(mut self, delivery: impl Into<String>) -> Self {
        self.delivery = Some(delivery.into());
        self
    }

    /// With the commit the ref points at now.
    pub fn with_commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }
}

impl Patch {
    /// A patch deployment of `push`'s commit by `actor`, with no reason.
    pub fn new(push: Push, actor: Actor) -> Self {
        Patch {
            push,
            actor,
            reason: None,
        }
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

impl AlarmInput {
    /// `stage`'s alarm is now in `state`, as reported by `actor`.
    pub fn new(stage: impl Into<String>, state: AlarmState, actor: Actor) -> Self {
        AlarmInput {
            stage: stage.into(),
            state,
            actor,
        }
    }
}

impl Person {
    /// An action of `actor` on the whole pipeline, with no reason.
    pub fn new(actor: Actor) -> Self {
        Person {
            actor,
            reason: None,
        }
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

impl PipelineDecision {
    /// `actor`'s answer to the definition change of `revision`, with no comment.
    pub fn new(revision: u64, actor: Actor) -> Self {
        PipelineDecision {
            revision,
            actor,
            comment: None,
        }
    }

    /// With a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

impl Control {
    /// `actor` applies `action` to `stage`'s blockers, with no reason.
    pub fn new(stage: impl Into<String>, action: ControlAction, actor: Actor) -> Self {
        Control {
            stage: stage.into(),
            action,
            actor,
            reason: None,
        }
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

impl Decide {
    /// `actor`'s decision on `step` (id or name) of `revision` in `stage`, with no comment.
    pub fn new(
        revision: u64,
        stage: impl Into<String>,
        step: impl Into<String>,
        actor: Actor,
    ) -> Self {
        Decide {
            revision,
            stage: stage.into(),
            step: step.into(),
            actor,
            comment: None,
        }
    }

    /// With a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

impl Operate {
    /// `actor`'s operation on `revision` in `stage`, with no reason.
    pub fn new(revision: u64, stage: impl Into<String>, actor: Actor) -> Self {
        Operate {
            revision,
            stage: stage.into(),
            actor,
            reason: None,
        }
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

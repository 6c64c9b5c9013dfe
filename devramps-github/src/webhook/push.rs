//! The `push` event: a branch moved (forced or not), was created or deleted, or a tag.

use devramps_core::engine::PushRequest;

use super::json::Json;
use super::{Ignored, WebhookError};

/// The all-zero commit id GitHub sends as `after` for a deletion (and `before` for a
/// creation).
const ZERO: &str = "0000000000000000000000000000000000000000";

/// A `push` delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Push {
    /// The delivery id (`X-GitHub-Delivery`), for deduplication (L2).
    pub delivery: String,
    /// The repository's `owner/name`.
    pub repository: String,
    /// The full ref pushed (`refs/heads/main`, `refs/tags/v1.0`).
    pub git_ref: String,
    /// The commit the ref pointed at before (all zeros when it was created).
    pub before: String,
    /// The commit it points at now (all zeros when it was deleted).
    pub after: String,
    /// The ref was created.
    pub created: bool,
    /// The ref was deleted.
    pub deleted: bool,
    /// The push was forced (history rewritten): `before` may not be an ancestor of `after`.
    /// The engine needs nothing special: the paths changed are computed from the commits it
    /// deployed, not from `before`.
    pub forced: bool,
    /// Who pushed (`pusher.name`), when given.
    pub pusher: Option<String>,
}

impl Push {
    /// The branch, when the ref is `refs/heads/<branch>`.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// The tag, when the ref is `refs/tags/<tag>`.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    /// The engine's request for this push (to submit with
    /// [`Engine::push`](devramps_core::engine::Engine::push) to every pipeline of the
    /// repository: the engine ignores a branch a pipeline does not track, a delivery seen
    /// before and a commit already accepted, and records why, L2), or why the push is no
    /// deployment: a branch deletion, a tag, or a ref that is no branch.
    pub fn request(&self) -> Result<PushRequest, Box<Ignored>> {
        let ignored = |reason: String| {
            Box::new(Ignored {
                event: "push".to_owned(),
                delivery: self.delivery.clone(),
                repository: Some(self.repository.clone()),
                git_ref: Some(self.git_ref.clone()),
                commit: (!self.is_deletion()).then(|| self.after.clone()),
                reason,
            })
        };
        if let Some(branch) = self.branch().filter(|b| !b.is_empty()) {
            if self.is_deletion() {
                return Err(ignored(format!(
                    "branch `{branch}` was deleted: a deletion deploys nothing (L2)"
                )));
            }
            return Ok(PushRequest::new(branch, &self.after).with_delivery(&self.delivery));
        }
        if let Some(tag) = self.tag() {
            let what = if self.is_deletion() {
                "deleted"
            } else {
                "pushed"
            };
            return Err(ignored(format!(
                "tag `{tag}` was {what}: tags deploy nothing, only pushes to a tracked branch (L2)"
            )));
        }
        Err(ignored(format!(
            "`{}` is not a branch (refs/heads/...): it deploys nothing (L2)",
            self.git_ref
        )))
    }

    /// The push deleted its ref.
    pub fn is_deletion(&self) -> bool {
        self.deleted || self.after == ZERO
    }
}

pub(super) fn parse(delivery: &str, json: &Json<'_>) -> Result<Push, WebhookError> {
    let git_ref = json.str("ref")?.to_owned();
    let before = json.opt_str("before")?.unwrap_or(ZERO).to_owned();
    let after = json.str("after")?.to_owned();
    let deleted = json.flag("deleted")?;
    if !deleted && after != ZERO && !is_commit_id(&after) {
        return Err(WebhookError::Field {
            event: "push".to_owned(),
            path: "after".to_owned(),
            expected: "commit id (40 or 64 hex digits)",
        });
    }
    Ok(Push {
        delivery: delivery.to_owned(),
        repository: json.str("repository.full_name")?.to_owned(),
        git_ref,
        before,
        after,
        created: json.flag("created")?,
        deleted,
        forced: json.flag("forced")?,
        pusher: json.opt_str("pusher.name")?.map(str::to_owned),
    })
}

/// A full SHA-1 or SHA-256 commit id in lowercase hex.
fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

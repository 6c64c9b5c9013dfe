//! The `pull_request` event, for ephemeral environments: a pull request opened, updated,
//! reopened or closed.

use super::json::Json;
use super::{Ignored, Webhook, WebhookError};

/// What happened to the pull request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullRequestAction {
    /// It was opened.
    Opened,
    /// It was reopened.
    Reopened,
    /// Its head branch moved (new commits, or a forced push).
    Synchronize,
    /// It was closed, merged or not.
    Closed {
        /// It was merged.
        merged: bool,
    },
}

/// A `pull_request` delivery with an action ephemeral environments act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullRequestEvent {
    /// The delivery id.
    pub delivery: String,
    /// The repository's `owner/name`.
    pub repository: String,
    /// What happened.
    pub action: PullRequestAction,
    /// The pull request's number.
    pub number: u64,
    /// Its head branch (`pull_request.head.ref`).
    pub head_branch: String,
    /// Its head commit (`pull_request.head.sha`).
    pub head_commit: String,
    /// The branch it merges into (`pull_request.base.ref`).
    pub base_branch: String,
    /// Its title.
    pub title: String,
    /// Who opened it (`pull_request.user.login`), when given.
    pub author: Option<String>,
}

pub(super) fn parse(delivery: &str, json: &Json<'_>) -> Result<Webhook, WebhookError> {
    let action = json.str("action")?;
    let action = match action {
        "opened" => PullRequestAction::Opened,
        "reopened" => PullRequestAction::Reopened,
        "synchronize" => PullRequestAction::Synchronize,
        "closed" => PullRequestAction::Closed {
            merged: json.flag("pull_request.merged")?,
        },
        other => {
            return Ok(Webhook::Ignored(Ignored {
                event: "pull_request".to_owned(),
                delivery: delivery.to_owned(),
                repository: json.opt_str("repository.full_name")?.map(str::to_owned),
                git_ref: None,
                commit: None,
                reason: format!(
                    "pull request action `{other}` changes no environment (only opened, \
                     reopened, synchronize and closed do)"
                ),
            }));
        }
    };
    Ok(Webhook::PullRequest(PullRequestEvent {
        delivery: delivery.to_owned(),
        repository: json.str("repository.full_name")?.to_owned(),
        action,
        number: match json.opt_u64("number")? {
            Some(n) => n,
            None => json.u64("pull_request.number")?,
        },
        head_branch: json.str("pull_request.head.ref")?.to_owned(),
        head_commit: json.str("pull_request.head.sha")?.to_owned(),
        base_branch: json.str("pull_request.base.ref")?.to_owned(),
        title: json
            .opt_str("pull_request.title")?
            .unwrap_or_default()
            .to_owned(),
        author: json.opt_str("pull_request.user.login")?.map(str::to_owned),
    }))
}

//! How executions end: outcomes with outputs, and Terraform plans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Outputs of a finished execution, readable as `steps.<step>.<name>`.
pub type Outputs = BTreeMap<String, serde_json::Value>;

/// How an execution ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Outcome {
    /// Done; with outputs.
    Succeeded {
        /// Named outputs.
        outputs: Outputs,
    },
    /// Failed.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// The step asks a person to approve before it goes on (custom steps' `prepare`).
    ApprovalRequired {
        /// What the person should look at.
        context: Option<String>,
    },
    /// The step started something that finishes later (custom steps' `TRIGGERED` and
    /// `POLL_AGAIN`): the engine records `polling_state` in the pipeline's log and starts the
    /// same key again with it ([`StepRequest::polling`](crate::exec::StepRequest::polling))
    /// after `retry_after_ms`, so a restart polls again and never triggers twice.
    PollLater {
        /// What the step needs to poll (opaque to the engine).
        polling_state: serde_json::Value,
        /// How long to wait before polling (default [`DEFAULT_POLL_INTERVAL_MS`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// How long the engine waits before polling a step that gave no `retryAfterMs`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 5_000;

/// Where a polling step is: the state its last invocation returned, and how many polls ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Polling {
    /// The `pollingState` to pass to the next poll.
    pub state: serde_json::Value,
    /// How many `POLL_AGAIN` answers came before (0 right after `TRIGGERED`): the next poll is
    /// number `polls + 1`, which names its invocation for a runner that re-attaches.
    pub polls: u32,
    /// How long to wait before the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Polling {
    /// The polling state `state` after `polls` polls, next poll after `retry_after_ms`.
    pub fn new(state: serde_json::Value, polls: u32, retry_after_ms: Option<u64>) -> Self {
        Polling {
            state,
            polls,
            retry_after_ms,
        }
    }

    /// The wait before the next poll.
    pub fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.retry_after_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS))
    }
}

/// One line a step wrote to its log (the step SDK's JSON Lines: `timestamp`, `level`,
/// `message`, `data`), as a runner collected it ([`Runner::logs`](crate::backend::Runner::logs)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogEntry {
    /// When, as the step wrote it (ISO-8601), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// `info`, `error`, or what the step wrote.
    pub level: String,
    /// The message.
    pub message: String,
    /// Structured data, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl LogEntry {
    /// A line at `level` with `message`.
    pub fn new(level: impl Into<String>, message: impl Into<String>) -> Self {
        LogEntry {
            timestamp: None,
            level: level.into(),
            message: message.into(),
            data: None,
        }
    }

    /// Sets the time the step wrote.
    pub fn with_timestamp(mut self, timestamp: impl Into<String>) -> Self {
        self.timestamp = Some(timestamp.into());
        self
    }

    /// Sets the structured data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// A Terraform plan's summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InfraPlan {
    /// Identifies the plan for `apply`.
    pub id: String,
    /// Resources to create.
    pub create: u32,
    /// Resources to update in place.
    pub update: u32,
    /// Resources to destroy (replacements count here and in `create`).
    pub delete: u32,
    /// Each resource that changes, by address, for the person who approves (empty when the
    /// synthesizer does not say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ResourceChange>,
}

/// One resource a plan changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceChange {
    /// The resource address (`aws_s3_bucket.site`, `module.db.aws_db_instance.main[0]`).
    pub address: String,
    /// What happens to it.
    pub action: ChangeAction,
}

impl ResourceChange {
    /// `action` on the resource at `address`.
    pub fn new(address: impl Into<String>, action: ChangeAction) -> Self {
        ResourceChange {
            address: address.into(),
            action,
        }
    }
}

/// What a plan does to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// Created.
    Create,
    /// Updated in place.
    Update,
    /// Destroyed.
    Delete,
    /// Destroyed and created again (either order).
    Replace,
}

impl ChangeAction {
    /// The word people read: `create`, `update`, `delete`, `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
            ChangeAction::Replace => "replace",
        }
    }
}

impl InfraPlan {
    /// The plan `id`, creating `create`, updating `update` and destroying `delete` resources.
    pub fn new(id: impl Into<String>, create: u32, update: u32, delete: u32) -> Self {
        InfraPlan {
            id: id.into(),
            create,
            update,
            delete,
            changes: Vec::new(),
        }
    }

    /// The plan `id` making `changes`, counted: a replacement counts as one creation and one
    /// destruction.
    pub fn of_changes(id: impl Into<String>, changes: Vec<ResourceChange>) -> Self {
        let mut plan = InfraPlan::new(id, 0, 0, 0);
        for change in &changes {
            match change.action {
                ChangeAction::Create => plan.create += 1,
                ChangeAction::Update => plan.update += 1,
                ChangeAction::Delete => plan.delete += 1,
                ChangeAction::Replace => {
                    plan.create += 1;
                    plan.delete += 1;
                }
            }
        }
        plan.changes = changes;
        plan
    }

    /// Whether anything changes.
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.delete > 0
    }

    /// Whether the plan modifies or destroys existing resources.
    pub fn is_destructive(&self) -> bool {
        self.update + self.delete > 0
    }
}

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
}

impl InfraPlan {
    /// The plan `id`, creating `create`, updating `update` and destroying `delete` resources.
    pub fn new(id: impl Into<String>, create: u32, update: u32, delete: u32) -> Self {
        InfraPlan {
            id: id.into(),
            create,
            update,
            delete,
        }
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

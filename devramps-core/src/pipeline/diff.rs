//! What changed between two pipeline definitions, and whether the change is destructive
//! (lifecycle rule L18): [`diff_definitions`].
//!
//! - `pairing`: which old stage, step and artifact each new one continues (same identity, or
//!   renamed);
//! - `settings`: pipeline-level changes; `entities`: artifacts, stages and steps;
//! - `values`: comparing values by meaning and recording changed fields.

mod entities;
mod pairing;
mod settings;
mod values;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::PipelineDefinition;

/// Compares two parsed definitions (`old` = the one in force, `new` = the incoming one) and
/// lists every semantic difference.
///
/// Values are compared by meaning, not by text: source positions, comments, quoting, flow or
/// block style and the key order of maps do not count, so re-formatting a file gives no change
/// at all. Sets (`skip`, `rebuild_when_changed`, `dependencies`, notification events) ignore
/// order; step order counts through what each step runs after.
///
/// Identity: stages by `name`, steps by [`Step::key`](super::Step::key) (id, else name),
/// artifacts by `id` (written, or derived from the display name). Something removed and
/// something added of the same subject with otherwise equal content (steps and artifacts: the
/// same type and parameters; stages: every field but the name) is one [`ChangeKind::Renamed`]
/// change; otherwise the two are reported as removed and added. References to a renamed step
/// (`goes_after`, `skip`) are followed through the rename, so updating them is no change.
///
/// Destructive (L18): a removed or renamed stage, step or artifact, and a changed stage
/// `account_id` or `region`. Every other difference is additive.
///
/// The changes come in a fixed order: pipeline settings (including the promotion order of the
/// stages and ephemeral environments), then artifacts, stages and steps. Within each group,
/// removed things come first (in `old`'s order), then the things of `new` in its order, each
/// renamed, added or changed (one change per changed field).
///
/// ```
/// use devramps_core::pipeline::{ChangeClass, diff_definitions, parse};
///
/// let text = |region: &str| format!(r#"version: "1.0.0"
/// pipeline:
///   cloud_provider: AWS
///   pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY
///   stages:
///     - {{name: prod, account_id: "111111111111", region: {region}}}
///   steps:
///     - {{name: Deploy, type: "CUSTOM:SCRIPT:DEPLOY"}}
///   artifacts: {{}}
/// "#);
/// let old = parse(&text("us-east-1")).expect("valid");
/// let new = parse(&text("eu-west-1")).expect("valid");
/// let changes = diff_definitions(&old, &new);
/// assert_eq!(changes.classification(), ChangeClass::Destructive);
/// assert_eq!(changes.changes[0].detail, "region us-east-1 -> eu-west-1");
/// assert!(diff_definitions(&old, &old).is_empty());
/// ```
pub fn diff_definitions(old: &PipelineDefinition, new: &PipelineDefinition) -> DefinitionChanges {
    let mut changes = Vec::new();
    let pairs = pairing::Pairs::of(old, new);
    settings::compare(old, new, &pairs, &mut changes);
    entities::artifacts(old, new, &pairs, &mut changes);
    entities::stages(old, new, &pairs, &mut changes);
    entities::steps(old, new, &pairs, &mut changes);
    DefinitionChanges { changes }
}

/// Every semantic difference between two definitions, in a deterministic order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionChanges {
    /// The changes; see [`diff_definitions`] for their order.
    pub changes: Vec<DefinitionChange>,
}

impl DefinitionChanges {
    /// The changes of a pipeline that had no definition before (`name` is its slug): one
    /// additive [`ChangeKind::Added`] change of the [`ChangeSubject::Pipeline`].
    pub fn pipeline_added(name: &str, detail: impl Into<String>) -> Self {
        DefinitionChanges {
            changes: vec![DefinitionChange {
                subject: ChangeSubject::Pipeline,
                kind: ChangeKind::Added,
                name: name.to_owned(),
                renamed_from: None,
                stage: None,
                detail: detail.into(),
                destructive: false,
            }],
        }
    }

    /// Whether there is no semantic change at all (identical, or formatting and comments only).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether any change is destructive (L18).
    pub fn is_destructive(&self) -> bool {
        self.changes.iter().any(|c| c.destructive)
    }

    /// [`ChangeClass::Destructive`] when any change is destructive, else
    /// [`ChangeClass::Additive`] when there is a change, else [`ChangeClass::None`].
    pub fn classification(&self) -> ChangeClass {
        if self.is_destructive() {
            ChangeClass::Destructive
        } else if self.is_empty() {
            ChangeClass::None
        } else {
            ChangeClass::Additive
        }
    }
}

/// How a whole definition update is classified for `pipeline_updates_require_approval` (L18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeClass {
    /// No semantic change.
    None,
    /// Changes, none of them destructive.
    Additive,
    /// At least one destructive change.
    Destructive,
}

impl ChangeClass {
    /// `NONE`, `ADDITIVE` or `DESTRUCTIVE`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeClass::None => "NONE",
            ChangeClass::Additive => "ADDITIVE",
            ChangeClass::Destructive => "DESTRUCTIVE",
        }
    }
}

impl fmt::Display for ChangeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One semantic difference between two definitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionChange {
    /// What kind of thing changed.
    pub subject: ChangeSubject,
    /// How it changed.
    pub kind: ChangeKind,
    /// The stage name, the step key (id, else name), the artifact id; for the pipeline, the
    /// setting (`pipeline_updates_require_approval`, `stage_defaults.deployment_time_window`,
    /// `notifications.slack.channel`, `ephemeral_environments.<name>`, `stages` for the
    /// promotion order), or the pipeline's slug for [`DefinitionChanges::pipeline_added`].
    /// For a rename, the new name.
    pub name: String,
    /// For a rename, the old name (same kind of identity as `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// The stage a change is confined to. Always `None` today: steps are defined once at the
    /// pipeline level and shared by every stage, so a step change applies in every stage, and
    /// a stage's own changes (including its `skip` list) carry the stage in `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// For people: `account_id 111111111111 -> 222222222222`, `params changed: cluster_name`,
    /// `Deploy (deploy) -> Deploy (deploy-api)`. A changed field's detail starts with the
    /// field's name.
    pub detail: String,
    /// Whether this change alone makes the update destructive (L18).
    pub destructive: bool,
}

/// What kind of thing a [`DefinitionChange`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSubject {
    /// A pipeline-level setting (`pipeline_updates_require_approval`, `tracks`,
    /// `stage_defaults`, `notifications`, ephemeral environments, the stages' promotion order),
    /// or the pipeline itself.
    Pipeline,
    /// An artifact, by id.
    Artifact,
    /// A stage, by name.
    Stage,
    /// A step, by id, else name.
    Step,
}

impl ChangeSubject {
    /// `pipeline`, `artifact`, `stage` or `step`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSubject::Pipeline => "pipeline",
            ChangeSubject::Artifact => "artifact",
            ChangeSubject::Stage => "stage",
            ChangeSubject::Step => "step",
        }
    }
}

impl fmt::Display for ChangeSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a thing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// It is new.
    Added,
    /// It is gone.
    Removed,
    /// It is the same thing under a new identity (see [`diff_definitions`]).
    Renamed,
    /// One of its fields differs.
    Changed,
}

impl ChangeKind {
    /// `added`, `removed`, `renamed` or `changed`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Changed => "changed",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

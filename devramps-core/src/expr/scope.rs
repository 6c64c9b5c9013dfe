//! What expressions can see: the namespaces `stage`, `pipeline`, `organization`, `trigger`,
//! `vars` and `steps`, for one stage and one step.
//!
//! Expressions know nothing of pipelines: what they need of a definition (its artifacts and
//! steps, by name or id) they ask through the [`Definition`] trait, which the floors above
//! implement for their definition types.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::source::ValueMap;

/// What expressions read of a pipeline definition: its artifacts and its steps.
///
/// `devramps_core::plan` implements it for the typed `PipelineDefinition` (a linear search),
/// and for a definition with an index of its steps and artifacts (lookups in constant time).
pub trait Definition: fmt::Debug {
    /// The artifact whose display name or id is `reference` (a name wins over an id); its
    /// [`Named::key`] is its id.
    fn artifact(&self, reference: &str) -> Option<Named<'_>>;

    /// Every artifact's name and id, in order, as candidates for "did you mean".
    fn artifact_names(&self) -> Vec<&str>;

    /// Whether the artifact with id `key` is built for each stage (`per_stage`), so that it has
    /// no copy in the CI/CD account.
    fn artifact_per_stage(&self, key: &str) -> bool;

    /// The index of the step whose id or name is `reference` (an id wins over a name).
    fn step(&self, reference: &str) -> Option<usize>;

    /// The names of step `index`: its display name, and its key (its id, else its name).
    fn step_at(&self, index: usize) -> Option<Named<'_>>;

    /// Every step's name and id (when it has one), in order, as candidates for "did you mean".
    fn step_names(&self) -> Vec<&str>;
}

/// How an artifact or a step is called: its display name, and the key other places refer to it
/// by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Named<'a> {
    /// The display name.
    pub name: &'a str,
    /// The key: an artifact's id; a step's id, else its name.
    pub key: &'a str,
}

/// `pipeline.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PipelineInfo {
    /// `pipeline.name`: the display name (the slug unless the embedder names it).
    pub name: String,
    /// `pipeline.slug`: the folder name under `.devramps/`.
    pub slug: String,
}

impl PipelineInfo {
    /// A pipeline whose display name is its slug.
    pub fn from_slug(slug: impl Into<String>) -> Self {
        let slug = slug.into();
        PipelineInfo {
            name: slug.clone(),
            slug,
        }
    }
}

/// `organization.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Organization {
    /// `organization.name`.
    pub name: String,
    /// `organization.slug`.
    pub slug: String,
    /// `organization.cicd_account_id`: where shared artifacts are built and stored.
    pub cicd_account_id: String,
    /// `organization.cicd_account_region`.
    pub cicd_account_region: String,
}

impl Default for Organization {
    /// The local defaults of `devramps plan`: slug and name `local`, account `000000000000`,
    /// region `us-east-1`.
    fn default() -> Self {
        Organization {
            name: "local".to_owned(),
            slug: "local".to_owned(),
            cicd_account_id: "000000000000".to_owned(),
            cicd_account_region: "us-east-1".to_owned(),
        }
    }
}

/// `trigger.*`: what started the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trigger {
    /// `trigger.sha`: the full commit id.
    pub sha: String,
    /// `trigger.branch`.
    pub branch: String,
    /// `trigger.tag`: empty unless a tag was deployed.
    pub tag: String,
    /// `trigger.revision`: the deployment's revision number (L1).
    pub revision: u64,
}

/// `stage.artifacts[...]`: where an artifact is for one stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArtifactLocation {
    /// Docker artifacts: the image in the stage's registry, with its tag.
    pub image_url: String,
    /// Docker artifacts: the tag.
    pub image_tag: String,
    /// Bundle artifacts: `s3://bucket/key`.
    pub s3_url: String,
    /// Bundle artifacts: the bucket.
    pub s3_bucket: String,
    /// Bundle artifacts: the key.
    pub s3_key: String,
}

impl ArtifactLocation {
    /// The field names expressions can read.
    pub const FIELDS: &'static [&'static str] =
        &["image_url", "image_tag", "s3_url", "s3_bucket", "s3_key"];

    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        Some(match name {
            "image_url" => &self.image_url,
            "image_tag" => &self.image_tag,
            "s3_url" => &self.s3_url,
            "s3_bucket" => &self.s3_bucket,
            "s3_key" => &self.s3_key,
            _ => return None,
        })
    }
}

/// `stage.*` and `vars.*` for one stage (or ephemeral environment).
#[derive(Clone, Copy, Debug)]
pub struct StageScope<'a> {
    /// `stage.name`.
    pub name: &'a str,
    /// `stage.account_id`.
    pub account_id: &'a str,
    /// `stage.region`.
    pub region: &'a str,
    /// `vars`.
    pub vars: &'a ValueMap,
    /// `stage.artifacts`, by artifact id.
    pub artifacts: &'a BTreeMap<String, ArtifactLocation>,
}

/// `steps.*` for the step whose parameters are evaluated.
#[derive(Clone, Copy, Debug)]
pub struct StepScope<'a> {
    /// The step's index in `definition.steps`.
    pub index: usize,
    /// For each step index: whether it is an ancestor of this step (finishes before it starts).
    pub ancestors: &'a [bool],
    /// For each step index: whether the current stage skips it.
    pub skipped: &'a [bool],
}

/// Everything an expression can see.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// The definition (for artifact and step names).
    pub definition: &'a dyn Definition,
    /// `pipeline.*`.
    pub pipeline: &'a PipelineInfo,
    /// `organization.*`.
    pub organization: &'a Organization,
    /// `trigger.*`.
    pub trigger: &'a Trigger,
    /// `pipeline.pre_mirror_artifacts`, by artifact id: where each shared artifact is in the
    /// CI/CD account before mirroring (per-stage artifacts have no such copy).
    pub pre_mirror_artifacts: &'a BTreeMap<String, ArtifactLocation>,
    /// `stage.*` and `vars.*`; `None` for artifacts built once for all stages.
    pub stage: Option<StageScope<'a>>,
    /// `steps.*`; `None` outside step parameters (artifact parameters).
    pub step: Option<StepScope<'a>>,
    /// What is being evaluated, for messages: "artifact `API Image`", "step `Deploy`".
    pub owner: &'a str,
}

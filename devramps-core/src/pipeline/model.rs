//! The typed model of `pipeline.yaml`. Every node keeps its [`Span`].
//!
//! Build it with [`check`](super::check) (YAML text, with diagnostics) or with serde from any
//! self-describing format (`serde_json::from_str::<PipelineDefinition>(..)`), which runs the
//! same structural checks and fails with the diagnostics' messages. Expressions are checked one
//! floor up, by [`plan::check`](crate::plan::check) and [`plan::check_value`](crate::plan::check_value).

use serde::{Deserialize, Deserializer};

use super::enums::{
    ApprovalPolicy, Architecture, ArtifactType, BuiltinStep, CloudProvider, EphemeralTriggerKind,
    HostSize, NotificationEvent, OnRelease, ReleaseKind, TestType, TimeWindow,
};
use super::span::{Span, Spanned};
use super::value::{Value, ValueMap};

/// The branch a pipeline tracks when `tracks` is not set.
pub const DEFAULT_TRACKED_BRANCH: &str = "main";

/// A whole `pipeline.yaml`: the `version` and the fields of its `pipeline` object.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineDefinition {
    /// `version`, always `1.0.0`.
    pub version: Spanned<String>,
    /// `pipeline.cloud_provider`.
    pub cloud_provider: Spanned<CloudProvider>,
    /// `pipeline.pipeline_updates_require_approval` (lifecycle rule L18).
    pub pipeline_updates_require_approval: Spanned<ApprovalPolicy>,
    /// `pipeline.tracks`: the branch whose pushes deploy; see [`Self::tracked_branch`].
    pub tracks: Option<Spanned<String>>,
    /// `pipeline.stage_defaults`.
    pub stage_defaults: StageDefaults,
    /// `pipeline.stages`, in promotion order.
    pub stages: Vec<Stage>,
    /// `pipeline.steps`, shared by every stage, in list order.
    pub steps: Vec<Step>,
    /// `pipeline.artifacts`, in source order.
    pub artifacts: Vec<Artifact>,
    /// `pipeline.notifications`.
    pub notifications: Option<Notifications>,
    /// `pipeline.ephemeral_environments`, in source order.
    pub ephemeral_environments: Vec<EphemeralEnvironment>,
    /// `pipeline.infrastructure_provider` (legacy, kept as written).
    pub infrastructure_provider: Option<Spanned<String>>,
    /// The whole document.
    pub span: Span,
}

impl PipelineDefinition {
    /// The tracked branch: `tracks`, or `main`.
    pub fn tracked_branch(&self) -> &str {
        self.tracks
            .as_ref()
            .map_or(DEFAULT_TRACKED_BRANCH, |t| t.value.as_str())
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.value == name)
    }

    /// The step whose id or name is `reference` (ids win over names).
    pub fn step(&self, reference: &str) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.id.as_ref().is_some_and(|id| id.value == reference))
            .or_else(|| self.steps.iter().find(|s| s.name.value == reference))
    }

    /// The artifact whose display name or id is `reference`.
    pub fn artifact(&self, reference: &str) -> Option<&Artifact> {
        self.artifacts
            .iter()
            .find(|a| a.name.value == reference)
            .or_else(|| self.artifacts.iter().find(|a| a.id.value == reference))
    }

    /// The effective time window of `stage`: its own, else `stage_defaults`, else `NONE` (L8).
    pub fn effective_window(&self, stage: &Stage) -> TimeWindow {
        stage
            .deployment_time_window
            .as_ref()
            .or(self.stage_defaults.deployment_time_window.as_ref())
            .map_or(TimeWindow::None, |w| w.value)
    }
}

/// Plain serde: reads any self-describing format into a value tree and runs the same structural
/// checks as [`check`](super::check) (expressions are checked by
/// [`plan::check_value`](crate::plan::check_value)). Errors carry the diagnostics' messages
/// (without file locations).
impl<'de> Deserialize<'de> for PipelineDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        super::check_value(&value)
            .into_result()
            .map_err(|diagnostics| {
                let messages: Vec<String> = diagnostics
                    .0
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| format!("error[{}]: {}", d.code, d.message))
                    .collect();
                serde::de::Error::custom(messages.join("; "))
            })
    }
}

/// `pipeline.stage_defaults`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageDefaults {
    /// The window of every stage that sets none.
    pub deployment_time_window: Option<Spanned<TimeWindow>>,
    /// Legacy `infrastructure` block, kept as written.
    pub infrastructure: Option<Value>,
    /// The block (unknown when absent).
    pub span: Span,
}

/// One entry of `pipeline.stages`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Unique, `[a-z0-9-]+`.
    pub name: Spanned<String>,
    /// 12-digit AWS account id.
    pub account_id: Spanned<String>,
    /// AWS region.
    pub region: Spanned<String>,
    /// Overrides `stage_defaults.deployment_time_window`.
    pub deployment_time_window: Option<Spanned<TimeWindow>>,
    /// `vars`, read by `${{ vars.<key> }}`.
    pub vars: ValueMap,
    /// Step names or ids not run in this stage.
    pub skip: Vec<Spanned<String>>,
    /// CloudWatch alarm that triggers automatic rollback (L15).
    pub auto_rollback_alarm_name: Option<Spanned<String>>,
    /// Legacy `infrastructure` block, kept as written.
    pub infrastructure: Option<Value>,
    /// The stage's mapping.
    pub span: Span,
}

/// A step's `type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepType {
    /// A built-in `DEVRAMPS:<SERVICE>:<ACTION>` type.
    Builtin(BuiltinStep),
    /// `CUSTOM:<...>`, run by a step registry; holds the full type string.
    Custom(String),
}

impl StepType {
    /// The type as written.
    pub fn as_str(&self) -> &str {
        match self {
            StepType::Builtin(b) => b.as_str(),
            StepType::Custom(c) => c,
        }
    }
}

/// One entry of `pipeline.steps`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Display name, unique in the pipeline.
    pub name: Spanned<String>,
    /// Short alias used in `goes_after`, `skip` and `${{ steps.<id>.<output> }}`.
    pub id: Option<Spanned<String>>,
    /// The step type.
    pub step_type: Spanned<StepType>,
    /// All parameters as written (values may hold expressions).
    pub params: ValueMap,
    /// The typed reading of `params` for the types that define them.
    pub typed: StepParams,
    /// Steps (by name or id) that must finish first; `None` means "the step listed before".
    pub goes_after: Option<Vec<Spanned<String>>>,
    /// The step's mapping.
    pub span: Span,
}

impl Step {
    /// How other places refer to this step: its id, else its name.
    pub fn key(&self) -> &str {
        self.id.as_ref().map_or(&self.name.value, |id| &id.value)
    }

    /// Whether `reference` (from `goes_after`, `skip` or `steps.X`) names this step.
    pub fn is_named(&self, reference: &str) -> bool {
        self.name.value == reference || self.id.as_ref().is_some_and(|id| id.value == reference)
    }

    /// The `timeout` parameter (minutes), when it is a literal number.
    pub fn timeout_minutes(&self) -> Option<u64> {
        self.params.get("timeout").and_then(literal_u64)
    }
}

/// The literal value of a non-negative integer parameter.
pub(crate) fn literal_u64(value: &Value) -> Option<u64> {
    match value.kind {
        super::value::ValueKind::Int(i) => u64::try_from(i).ok(),
        _ => None,
    }
}

/// Typed parameters of the step types that define them.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StepParams {
    /// `DEVRAMPS:TERRAFORM:SYNTHESIZE`.
    Terraform(TerraformParams),
    /// `DEVRAMPS:ECS:DEPLOY`.
    EcsDeploy(EcsDeployParams),
    /// `DEVRAMPS:APPROVAL:BAKE`.
    Bake(BakeParams),
    /// `DEVRAMPS:APPROVAL:TEST`.
    TestGate(TestGateParams),
    /// Any other type: the parameters are free-form (see [`Step::params`]).
    FreeForm,
}

/// Parameters of `DEVRAMPS:TERRAFORM:SYNTHESIZE`.
#[derive(Clone, Debug, PartialEq)]
pub struct TerraformParams {
    /// When the plan waits for approval; `DESTRUCTIVE_CHANGES_ONLY` when not written.
    pub requires_approval: Spanned<ApprovalPolicy>,
    /// Repository path of the Terraform root module.
    pub source: Spanned<String>,
    /// Terraform variables (values may hold expressions).
    pub variables: ValueMap,
}

/// Parameters of `DEVRAMPS:ECS:DEPLOY` (values may hold expressions).
#[derive(Clone, Debug, PartialEq)]
pub struct EcsDeployParams {
    /// ECS cluster.
    pub cluster_name: Value,
    /// ECS service.
    pub service_name: Value,
    /// Task definition whose new revision gets the image.
    pub reference_task_definition: Value,
    /// The image to deploy.
    pub image_url: Value,
}

/// Parameters of `DEVRAMPS:APPROVAL:BAKE`.
#[derive(Clone, Debug, PartialEq)]
pub struct BakeParams {
    /// How long to wait, in minutes (a positive integer, or an expression).
    pub duration_minutes: Value,
}

impl BakeParams {
    /// The duration when it is a literal number.
    pub fn minutes(&self) -> Option<u64> {
        literal_u64(&self.duration_minutes)
    }
}

/// Parameters of `DEVRAMPS:APPROVAL:TEST`.
#[derive(Clone, Debug, PartialEq)]
pub struct TestGateParams {
    /// The command to run.
    pub test_command: Value,
    /// Minutes before the gate times out; 30 when not written.
    pub timeout: Option<Value>,
    /// Working directory.
    pub working_directory: Option<Value>,
    /// Environment of the test command (values may hold expressions).
    pub environment_variables: ValueMap,
    /// `generic` unless written.
    pub test_type: Spanned<TestType>,
}

/// One entry of `pipeline.artifacts`.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// The map key: the display name, used in `stage.artifacts["..."]`.
    pub name: Spanned<String>,
    /// `id`, or the name normalized by [`normalize_id`] (then spanned at the name).
    pub id: Spanned<String>,
    /// Whether `id` was written rather than derived.
    pub id_written: bool,
    /// The artifact type.
    pub artifact_type: Spanned<ArtifactType>,
    /// Build architecture.
    pub architecture: Option<Spanned<Architecture>>,
    /// Build VM size; `small` unless written.
    pub host_size: Spanned<HostSize>,
    /// Built (or imported) separately for each stage.
    pub per_stage: Spanned<bool>,
    /// Paths (or globs) whose change forces a rebuild; `None`: rebuild on every deployment.
    pub rebuild_when_changed: Option<Vec<Spanned<String>>>,
    /// Build-host toolchains, for example `node.20`.
    pub dependencies: Vec<Spanned<String>>,
    /// Artifact-level `envs` (values may hold expressions).
    pub envs: ValueMap,
    /// All parameters as written.
    pub params: ValueMap,
    /// The typed reading of `params`.
    pub typed: ArtifactParams,
    /// The artifact's mapping.
    pub span: Span,
}

/// Typed parameters of each artifact type (values may hold expressions).
#[derive(Clone, Debug, PartialEq)]
pub enum ArtifactParams {
    /// `DEVRAMPS:DOCKER:BUILD`.
    DockerBuild {
        /// Repository path of the Dockerfile.
        dockerfile: Value,
        /// Docker build context; the repository root unless written.
        build_root: Option<Value>,
        /// `KEY=VALUE` build arguments.
        args: Vec<Value>,
        /// Build environment.
        env: ValueMap,
    },
    /// `DEVRAMPS:BUNDLE:BUILD`.
    BundleBuild {
        /// Shell script run at the repository root.
        build_commands: Value,
        /// Repository path of the produced file.
        file_path: Value,
        /// Build environment.
        env: ValueMap,
    },
    /// `DEVRAMPS:DOCKER:IMPORT`.
    DockerImport {
        /// ECR image URL in the source account.
        source_image_url: Value,
        /// How long to wait for the image.
        timeout_minutes: Option<Value>,
    },
    /// `DEVRAMPS:BUNDLE:IMPORT`.
    BundleImport {
        /// Source AWS account.
        source_account: Value,
        /// Source region.
        source_region: Value,
        /// `s3://` URL of the bundle.
        source_s3_url: Value,
        /// How long to wait for the bundle.
        timeout_minutes: Option<Value>,
    },
}

/// The id DevRamps derives from an artifact's display name: lowercase, every character
/// outside `[a-z0-9]` becomes `-`, runs of `-` collapse, leading and trailing `-` go.
///
/// ```
/// use devramps_core::pipeline::normalize_id;
/// assert_eq!(normalize_id("API Image"), "api-image");
/// assert_eq!(normalize_id("Frontend  Bundle!"), "frontend-bundle");
/// ```
pub fn normalize_id(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// `pipeline.notifications`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notifications {
    /// The Slack block, when present.
    pub slack: Option<SlackNotifications>,
    /// The block.
    pub span: Span,
}

/// `pipeline.notifications.slack`.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackNotifications {
    /// Channel, for example `#deployments`.
    pub channel: Spanned<String>,
    /// Subscribed events.
    pub events: Vec<Spanned<NotificationEvent>>,
    /// The block.
    pub span: Span,
}

/// One entry of `pipeline.ephemeral_environments`.
#[derive(Clone, Debug, PartialEq)]
pub struct EphemeralEnvironment {
    /// The map key; the environment deploys as stage `ephemeral-<name>`.
    pub name: Spanned<String>,
    /// What claims it.
    pub triggers: Vec<EphemeralTrigger>,
    /// What releases it.
    pub release: Vec<ReleaseRule>,
    /// What happens on release.
    pub on_release: Spanned<OnRelease>,
    /// AWS account.
    pub account_id: Spanned<String>,
    /// AWS region.
    pub region: Spanned<String>,
    /// Variables, as a stage's `vars`.
    pub vars: ValueMap,
    /// Steps not run, as a stage's `skip`.
    pub skip: Vec<Spanned<String>>,
    /// The environment's mapping.
    pub span: Span,
}

/// A claim trigger of an ephemeral environment.
#[derive(Clone, Debug, PartialEq)]
pub struct EphemeralTrigger {
    /// `pull_request` or `api`.
    pub on: Spanned<EphemeralTriggerKind>,
    /// Branch globs (required for `pull_request`).
    pub target_branches: Vec<Spanned<String>>,
    /// The rule's mapping.
    pub span: Span,
}

/// A release rule of an ephemeral environment.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseRule {
    /// `pr_closed`, `api` or `timeout`.
    pub on: Spanned<ReleaseKind>,
    /// Idle hours before release (required for `timeout`).
    pub after_idle_hours: Option<Spanned<f64>>,
    /// The rule's mapping.
    pub span: Span,
}

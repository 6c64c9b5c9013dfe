//! The closed sets of values that `pipeline.yaml` fields accept.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enumeration spelled in `pipeline.yaml` by a fixed set of strings.
pub trait YamlEnum: Sized + Copy + 'static {
    /// What the field is called in messages, for example `deployment time window`.
    const WHAT: &'static str;
    /// Every value with its spelling.
    const VARIANTS: &'static [(&'static str, Self)];

    /// Parses the exact spelling.
    fn parse(text: &str) -> Option<Self> {
        Self::VARIANTS
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, v)| *v)
    }

    /// Every spelling, in order.
    fn spellings() -> Vec<&'static str> {
        Self::VARIANTS.iter().map(|(name, _)| *name).collect()
    }
}

macro_rules! yaml_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl YamlEnum for $name {
            const WHAT: &'static str = $what;
            const VARIANTS: &'static [(&'static str, Self)] = &[$(($text, $name::$variant),)*];
        }

        impl $name {
            /// The spelling used in `pipeline.yaml`.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$name as YamlEnum>::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "invalid {} `{text}`: expected one of {}",
                        $what,
                        <$name as YamlEnum>::spellings().join(", ")
                    ))
                })
            }
        }
    };
}

yaml_enum!(
    /// `pipeline.cloud_provider`.
    CloudProvider, "cloud provider" {
        /// Amazon Web Services, the only provider.
        Aws = "AWS",
    }
);

yaml_enum!(
    /// When a change needs a person's approval: `pipeline_updates_require_approval` and a
    /// Terraform step's `requires_approval`.
    ApprovalPolicy, "approval policy" {
        /// Every change waits for approval.
        Always = "ALWAYS",
        /// Changes apply without approval.
        Never = "NEVER",
        /// Only destructive changes (modifications, removals) wait for approval.
        DestructiveChangesOnly = "DESTRUCTIVE_CHANGES_ONLY",
    }
);

yaml_enum!(
    /// `deployment_time_window` of a stage or of `stage_defaults` (lifecycle rule L8).
    TimeWindow, "deployment time window" {
        /// Always open.
        None = "NONE",
        /// Monday to Friday, 09:00 to 17:00 in America/Los_Angeles.
        PacificWorkingHours = "PACIFIC_WORKING_HOURS",
        /// Monday to Friday, 10:00 to 16:00 in America/Los_Angeles.
        PacificWorkingHoursReduced = "PACIFIC_WORKING_HOURS_REDUCED",
    }
);

yaml_enum!(
    /// An artifact's `type`.
    ArtifactType, "artifact type" {
        /// A Docker image built from a Dockerfile.
        DockerBuild = "DEVRAMPS:DOCKER:BUILD",
        /// A Docker image copied from an external ECR repository.
        DockerImport = "DEVRAMPS:DOCKER:IMPORT",
        /// A file (usually a zip) produced by build commands.
        BundleBuild = "DEVRAMPS:BUNDLE:BUILD",
        /// A file copied from an external S3 location.
        BundleImport = "DEVRAMPS:BUNDLE:IMPORT",
    }
);

yaml_enum!(
    /// An artifact's build `architecture`.
    Architecture, "architecture" {
        /// x86-64.
        LinuxAmd64 = "linux/amd64",
        /// 64-bit ARM.
        LinuxArm64 = "linux/arm64",
    }
);

yaml_enum!(
    /// An artifact's build VM `host_size`.
    HostSize, "host size" {
        /// The default.
        Small = "small",
        /// Medium.
        Medium = "medium",
        /// Large.
        Large = "large",
    }
);

yaml_enum!(
    /// `testType` of a `DEVRAMPS:APPROVAL:TEST` step.
    TestType, "test type" {
        /// Exit code only.
        Generic = "generic",
        /// Jest, with richer result parsing.
        Jest = "jest",
    }
);

yaml_enum!(
    /// Events a Slack notification block can subscribe to.
    NotificationEvent, "notification event" {
        /// A stage failed.
        StageFailed = "stage_failed",
        /// A step waits for approval.
        ApprovalRequired = "approval_required",
        /// A stage was rolled back by its alarm.
        StageAutoRolledBack = "stage_auto_rolled_back",
        /// A stage was rolled back by a person.
        StageRolledBack = "stage_rolled_back",
        /// A stage was rolled forward.
        StageRolledForward = "stage_rolled_forward",
        /// An ephemeral environment was claimed.
        EphemeralClaimed = "ephemeral_claimed",
        /// An ephemeral environment was released.
        EphemeralReleased = "ephemeral_released",
        /// A deployment to an ephemeral environment succeeded.
        EphemeralDeploymentSucceeded = "ephemeral_deployment_succeeded",
        /// A deployment to an ephemeral environment failed.
        EphemeralDeploymentFailed = "ephemeral_deployment_failed",
    }
);

yaml_enum!(
    /// What claims an ephemeral environment.
    EphemeralTriggerKind, "ephemeral trigger" {
        /// A pull request against a matching branch.
        PullRequest = "pull_request",
        /// An API call.
        Api = "api",
    }
);

yaml_enum!(
    /// What releases an ephemeral environment.
    ReleaseKind, "release rule" {
        /// The pull request was closed or merged.
        PrClosed = "pr_closed",
        /// An API call.
        Api = "api",
        /// The session was idle for `after_idle_hours`.
        Timeout = "timeout",
    }
);

yaml_enum!(
    /// What happens when an ephemeral environment is released.
    OnRelease, "on_release action" {
        /// Redeploy the latest commit of the tracked branch.
        DeployMain = "deploy_main",
    }
);

yaml_enum!(
    /// The built-in step types (`DEVRAMPS:<SERVICE>:<ACTION>`).
    BuiltinStep, "built-in step type" {
        /// Terraform plan and apply, with an optional approval of the plan.
        TerraformSynthesize = "DEVRAMPS:TERRAFORM:SYNTHESIZE",
        /// Register a task definition revision with a new image and update an ECS service.
        EcsDeploy = "DEVRAMPS:ECS:DEPLOY",
        /// Run a one-off ECS task to completion.
        EcsRunTask = "DEVRAMPS:ECS:RUN_TASK",
        /// Apply Kubernetes manifests / set an image on EKS.
        EksDeploy = "DEVRAMPS:EKS:DEPLOY",
        /// `helm upgrade --install` on EKS.
        EksHelm = "DEVRAMPS:EKS:HELM",
        /// Update a Lambda function's code.
        LambdaDeploy = "DEVRAMPS:LAMBDA:DEPLOY",
        /// Invoke a Lambda function synchronously.
        LambdaInvoke = "DEVRAMPS:LAMBDA:INVOKE",
        /// Upload static assets to S3.
        S3Upload = "DEVRAMPS:S3:UPLOAD",
        /// Invalidate a CloudFront distribution.
        CloudfrontInvalidate = "DEVRAMPS:CLOUDFRONT:INVALIDATE",
        /// Wait a fixed time; can be approved early or rejected.
        ApprovalBake = "DEVRAMPS:APPROVAL:BAKE",
        /// Run a test command as a gate.
        ApprovalTest = "DEVRAMPS:APPROVAL:TEST",
        /// Run database migrations.
        DatabaseMigrate = "DEVRAMPS:DATABASE:MIGRATE",
    }
);

//! [`AwsResourceValidator`]: resource validation of a stage (phase 2 of L4) against its AWS
//! account and region.
//!
//! What it checks, in order, reporting everything missing or inaccessible at once:
//!
//! 1. The stage's deployment role can be assumed (STS `AssumeRole` from the base credentials,
//!    then `GetCallerIdentity` with the role's session, which must be in the stage's
//!    account). Without the role nothing else can be looked at, so the report stops there.
//! 2. Each Docker artifact's ECR repository in the stage (`DescribeRepositories`, as the role).
//! 3. Each bundle artifact's S3 bucket in the stage (`HeadBucket`, as the role).
//! 4. The Terraform state bucket when the stage has Terraform steps (`HeadBucket`, with the base
//!    credentials, in the state's region: the bucket is the CI/CD account's).
//!
//! Each missing resource is reported by name and ARN with what to do (bootstrap the stage);
//! throttling and transient failures are errors ([`Error::Unavailable`]), which the engine
//! retries. It changes nothing.

use async_trait::async_trait;
use devramps_core::backend::{ResourceValidator, StageArtifact, ValidationRequest};
use devramps_core::pipeline::ArtifactType;
use devramps_core::plan::naming;
use devramps_core::{Error, Result};
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};

use crate::mirror::ImageRef;
use crate::stage::{AwsFailure, AwsStages, classify};

/// What to do about a missing stage resource.
const BOOTSTRAP: &str = "bootstrap the stage (`devramps bootstrap`) to create it";

/// Resource validation on AWS (see the module's documentation).
#[derive(Clone, Debug)]
pub struct AwsResourceValidator {
    stages: AwsStages,
}

impl AwsResourceValidator {
    /// A validator working with `stages`' credentials.
    pub fn new(stages: AwsStages) -> AwsResourceValidator {
        AwsResourceValidator { stages }
    }

    /// The role check: `Ok(None)` when the role can be assumed in the stage's account, the
    /// problem otherwise.
    async fn role(&self, request: &ValidationRequest) -> Result<Option<String>> {
        let target = &request.target;
        let arn = AwsStages::role_arn(target);
        match self.stages.verify(target).await {
            Ok(account) if account == target.account_id || account.is_empty() => Ok(None),
            Ok(account) => Ok(Some(format!(
                "deployment role {arn}: its session is in account {account}, not the stage's \
                 {}; check the stage's account_id",
                target.account_id
            ))),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => Ok(Some(format!(
                "deployment role {arn} cannot be assumed ({e}); {BOOTSTRAP}"
            ))),
        }
    }

    async fn repository(
        &self,
        request: &ValidationRequest,
        artifact: &StageArtifact,
    ) -> Result<Option<String>> {
        let target = &request.target;
        let name = repository_name(request, artifact);
        let arn = format!(
            "arn:aws:ecr:{}:{}:repository/{name}",
            target.region, target.account_id
        );
        let resource = format!(
            "ECR repository `{name}` ({arn}) of artifact `{}`",
            artifact.id
        );
        let answer = self
            .stages
            .stage_ecr(target)
            .describe_repositories()
            .registry_id(&target.account_id)
            .repository_names(&name)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(None),
            Err(e) if AwsFailure::is_missing(&e) => {
                Ok(Some(format!("{resource}: not found; {BOOTSTRAP}")))
            }
            Err(e) => missing_or_error(
                classify("ecr", "DescribeRepositories").error(e, &resource),
                &resource,
            ),
        }
    }

    async fn bucket(
        &self,
        client: aws_sdk_s3::Client,
        bucket: &str,
        what: String,
    ) -> Result<Option<String>> {
        let resource = format!("{what} `{bucket}` (arn:aws:s3:::{bucket})");
        match client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(None),
            Err(e) if AwsFailure::is_missing(&e) => {
                Ok(Some(format!("{resource}: not found; {BOOTSTRAP}")))
            }
            Err(e) => missing_or_error(classify("s3", "HeadBucket").error(e, &resource), &resource),
        }
    }
}

/// A failure to look that is not transient makes the resource inaccessible: reported with the
/// others. A transient one is the validation's error (retried).
fn missing_or_error(error: Error, resource: &str) -> Result<Option<String>> {
    if error.is_transient() {
        Err(error)
    } else {
        Ok(Some(format!(
            "{resource}: inaccessible ({error}); {BOOTSTRAP}"
        )))
    }
}

/// The stage repository of `artifact`: from its location in the stage, else by the naming.
fn repository_name(request: &ValidationRequest, artifact: &StageArtifact) -> String {
    ImageRef::parse(&artifact.location.image_url).map_or_else(
        |_| {
            naming::stage_repository(
                &request.target.pipeline,
                &request.target.stage,
                &artifact.id,
            )
        },
        |image| image.repository,
    )
}

/// The stage bucket of `artifact`: from its location in the stage, else by the naming.
fn bucket_name(request: &ValidationRequest, artifact: &StageArtifact) -> String {
    if artifact.location.s3_bucket.is_empty() {
        let t = &request.target;
        naming::stage_bucket(&t.account_id, &t.pipeline, &t.stage, &artifact.id)
    } else {
        artifact.location.s3_bucket.clone()
    }
}

fn is_image(artifact_type: ArtifactType) -> bool {
    matches!(
        artifact_type,
        ArtifactType::DockerBuild | ArtifactType::DockerImport
    )
}

#[async_trait]
impl ResourceValidator for AwsResourceValidator {
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
        if let Some(problem) = self.role(request).await? {
            return Ok(vec![problem]);
        }
        let target = &request.target;
        let mut checks: Vec<BoxFuture<'_, Result<Option<String>>>> = Vec::new();
        for artifact in &request.artifacts {
            if is_image(artifact.artifact_type) {
                checks.push(self.repository(request, artifact).boxed());
            } else {
                let bucket = bucket_name(request, artifact);
                let what = format!("S3 bucket of artifact `{}`", artifact.id);
                let client = self.stages.stage_s3(target);
                checks.push(async move { self.bucket(client, &bucket, what).await }.boxed());
            }
        }
        let mut states: Vec<(&str, &str)> = request
            .terraform_states
            .iter()
            .map(|s| (s.bucket.as_str(), s.region.as_str()))
            .filter(|(bucket, _)| !bucket.is_empty())
            .collect();
        states.sort_unstable();
        states.dedup();
        for (bucket, region) in states {
            let client = self.stages.base_s3(region);
            let what = "Terraform state bucket".to_owned();
            checks.push(self.bucket(client, bucket, what).boxed());
        }
        let mut missing = Vec::new();
        for found in join_all(checks).await {
            if let Some(problem) = found? {
                missing.push(problem);
            }
        }
        Ok(missing)
    }
}

//! Stage credentials and [`AwsResourceValidator`] against moto, in two accounts and two regions.
//!
//! What moto proves here: the STS `AssumeRole` call and its session (moto answers
//! `GetCallerIdentity` with the role's account, and every later call acts in that account), the
//! ECR and S3 lookups in the stage's account and region, and the request counts. What it does
//! not: moto assumes any role, existing or not, trusted or not, so "the role cannot be assumed"
//! is not reproduced here (its message is built by the same code as every other refused call);
//! nor does it check IAM permissions.

#![allow(clippy::unwrap_used)]

mod support;

use devramps_aws::stage::{Principal, Service};
use devramps_aws::{AwsResourceValidator, AwsStages};
use devramps_core::backend::{
    ResourceValidator, StageArtifact, StageTarget, TerraformState, ValidationRequest,
};
use devramps_core::expr::ArtifactLocation;
use devramps_core::pipeline::ArtifactType;
use devramps_core::plan::naming;

/// A pipeline slug no other test uses (moto is shared by every test).
fn fresh_pipeline() -> String {
    support::fresh_bucket_name().replace("devramps-test-", "p")
}

async fn stages() -> AwsStages {
    support::endpoint();
    AwsStages::from_env().await
}

/// The request of `target` for an image and a bundle, where the plan puts them.
fn request(target: &StageTarget, state_bucket: &str) -> ValidationRequest {
    let (p, s, a, r) = (
        &target.pipeline,
        &target.stage,
        &target.account_id,
        &target.region,
    );
    let repo = naming::stage_repository(p, s, "api");
    let image = ArtifactLocation {
        image_url: format!("{a}.dkr.ecr.{r}.amazonaws.com/{repo}:c1"),
        image_tag: "c1".into(),
        ..ArtifactLocation::default()
    };
    let bucket = naming::stage_bucket(a, p, s, "web");
    let bundle = ArtifactLocation {
        s3_url: format!("s3://{bucket}/web/c1/web.zip"),
        s3_bucket: bucket,
        s3_key: "web/c1/web.zip".into(),
        ..ArtifactLocation::default()
    };
    ValidationRequest::new(target.clone())
        .with_artifact(StageArtifact::new("api", ArtifactType::DockerBuild, image))
        .with_artifact(StageArtifact::new("web", ArtifactType::BundleBuild, bundle))
        .with_terraform_state(TerraformState::new(
            state_bucket,
            naming::terraform_state_key(p, s, "infra"),
            "us-east-1",
        ))
}

/// Creates what the bootstrap would: the stage's repository and bucket, as the stage's role.
async fn bootstrap(stages: &AwsStages, target: &StageTarget) {
    let (p, s, a) = (&target.pipeline, &target.stage, &target.account_id);
    stages
        .stage_ecr(target)
        .create_repository()
        .repository_name(naming::stage_repository(p, s, "api"))
        .send()
        .await
        .unwrap();
    let mut create = stages
        .stage_s3(target)
        .create_bucket()
        .bucket(naming::stage_bucket(a, p, s, "web"));
    if target.region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(target.region.as_str().into())
                .build(),
        );
    }
    create.send().await.unwrap();
}

#[tokio::test]
async fn a_stage_role_is_assumed_once_and_acts_in_the_stage_account() {
    let stages = stages().await;
    let pipeline = fresh_pipeline();
    let prod = StageTarget::new(&pipeline, "prod", "222222222222", "us-west-2");
    let staging = StageTarget::new(&pipeline, "staging", "111111111111", "us-east-1");
    assert_eq!(stages.verify(&prod).await.unwrap(), "222222222222");
    assert_eq!(stages.verify(&staging).await.unwrap(), "111111111111");
    // The session is cached: more calls, more clients of the same role, no new AssumeRole.
    assert_eq!(stages.verify(&prod).await.unwrap(), "222222222222");
    stages.stage_s3(&prod).list_buckets().send().await.unwrap();
    stages
        .stage_ecr(&prod)
        .describe_repositories()
        .send()
        .await
        .unwrap();
    assert_eq!(stages.assume_role_calls(&prod), 1);
    assert_eq!(stages.assume_role_calls(&staging), 1);
    // What the prod role sees is prod's account: a repository made through it is in 2222...
    let repos = stages
        .stage_ecr(&prod)
        .create_repository()
        .repository_name(format!("{pipeline}-seen"))
        .send()
        .await
        .unwrap();
    let arn = repos.repository().unwrap().repository_arn().unwrap();
    assert!(
        arn.starts_with("arn:aws:ecr:us-west-2:222222222222:repository/"),
        "{arn}"
    );
    // Requests are counted per principal and service; AssumeRole is the base's STS.
    let counts = stages.requests();
    let role = Principal::Role(AwsStages::role_arn(&prod));
    assert_eq!(counts.get(&(Principal::Base, Service::Sts)), Some(&2));
    assert_eq!(counts.get(&(role.clone(), Service::Sts)), Some(&2));
    assert_eq!(counts.get(&(role.clone(), Service::S3)), Some(&1));
    assert_eq!(counts.get(&(role, Service::Ecr)), Some(&2));
}

#[tokio::test]
async fn every_missing_resource_is_reported_at_once_with_its_arn() {
    let stages = stages().await;
    let validator = AwsResourceValidator::new(stages.clone());
    let pipeline = fresh_pipeline();
    let prod = StageTarget::new(&pipeline, "prod", "222222222222", "us-west-2");
    let state_bucket = naming::terraform_state_bucket(&pipeline);
    let missing = validator
        .validate(&request(&prod, &state_bucket))
        .await
        .unwrap();
    assert_eq!(missing.len(), 3, "{missing:#?}");
    let repo = naming::stage_repository(&pipeline, "prod", "api");
    assert!(
        missing[0].contains(&format!(
            "arn:aws:ecr:us-west-2:222222222222:repository/{repo}"
        )),
        "{missing:#?}"
    );
    let bucket = naming::stage_bucket("222222222222", &pipeline, "prod", "web");
    assert!(
        missing[1].contains(&format!("arn:aws:s3:::{bucket}")),
        "{missing:#?}"
    );
    assert!(
        missing[2].contains("Terraform state bucket") && missing[2].contains(&state_bucket),
        "{missing:#?}"
    );
    for problem in &missing {
        assert!(problem.contains("bootstrap the stage"), "{problem}");
    }
}

#[tokio::test]
async fn a_bootstrapped_stage_validates_and_its_requests_are_counted() {
    let stages = stages().await;
    let validator = AwsResourceValidator::new(stages.clone());
    let pipeline = fresh_pipeline();
    let prod = StageTarget::new(&pipeline, "prod", "222222222222", "us-west-2");
    bootstrap(&stages, &prod).await;
    let state_bucket = naming::terraform_state_bucket(&pipeline);
    stages
        .base_s3("us-east-1")
        .create_bucket()
        .bucket(&state_bucket)
        .send()
        .await
        .unwrap();
    let before = stages.requests();
    let missing = validator
        .validate(&request(&prod, &state_bucket))
        .await
        .unwrap();
    assert!(missing.is_empty(), "{missing:#?}");
    let after = stages.requests();
    let spent: u64 = after
        .iter()
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0))
        .sum();
    // The role's session was made by bootstrap(): GetCallerIdentity, DescribeRepositories,
    // HeadBucket (stage) and HeadBucket (state).
    assert_eq!(spent, 4, "{after:#?}");

    // The same stage in the wrong account: the repository and bucket are not there.
    let elsewhere = StageTarget::new(&pipeline, "prod", "333333333333", "us-west-2");
    let missing = validator
        .validate(&request(&elsewhere, &state_bucket))
        .await
        .unwrap();
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert!(missing[0].contains("333333333333"), "{missing:#?}");
}

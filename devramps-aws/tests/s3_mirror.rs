//! `AwsMirror`'s bundle path on moto: a root bucket in the CI/CD account (111111111111,
//! us-east-1) and a stage bucket in the stage's account (222222222222, us-west-2), each made by
//! a client of its own account, the copy made with the stage role's client in the stage's
//! region.
//!
//! What moto proves: the calls (`CopyObject`, the multipart copy, `HeadObject`/`HeadBucket` to
//! name what is missing), cross-account and cross-region access as the SDK sends it, the
//! content and metadata of the copy, and the request counts (a second mirror sends no copy
//! request). What it cannot: moto does not enforce IAM or bucket policies (the root bucket's
//! policy letting the stage role read is not tested), nor regions' endpoints (one server
//! answers every region), and it copies an object's S3 checksum instead of computing it (so
//! the mirror's own SHA-256, read back from the copy, is what is verified).

#![allow(clippy::unwrap_used)]

#[path = "support/stages.rs"]
mod stages;
mod support;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use devramps_aws::AwsMirror;
use devramps_aws::mirror::MirrorOutcome;
use devramps_aws::testing::random;
use devramps_core::Error;
use devramps_core::backend::{ArtifactMirror, MirrorRequest, StageTarget};
use devramps_core::expr::ArtifactLocation;
use devramps_core::pipeline::ArtifactType;
use sha2::{Digest, Sha256};
use stages::{cicd_stages, s3_requests, stage_target, unique};

fn bundle(bucket: &str, key: &str) -> ArtifactLocation {
    ArtifactLocation {
        s3_url: format!("s3://{bucket}/{key}"),
        s3_bucket: bucket.to_owned(),
        s3_key: key.to_owned(),
        ..ArtifactLocation::default()
    }
}

fn request(
    target: &StageTarget,
    destination: ArtifactLocation,
    source: Option<ArtifactLocation>,
) -> MirrorRequest {
    MirrorRequest::new(
        target.clone(),
        "site",
        ArtifactType::BundleBuild,
        "abc123",
        destination,
    )
    .with_source(source)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A root bucket (CI/CD account, us-east-1) holding `content` under `key`, and an empty
/// stage bucket (stage account, the target's region).
async fn buckets(
    stages: &devramps_aws::AwsStages,
    target: &StageTarget,
    key: &str,
    content: &[u8],
) -> (String, String) {
    let (root, stage) = (unique("devramps-root"), unique("devramps-stage"));
    let base = stages.base_s3("us-east-1");
    base.create_bucket().bucket(&root).send().await.unwrap();
    base.put_object()
        .bucket(&root)
        .key(key)
        .content_type("application/zip")
        .body(content.to_vec().into())
        .send()
        .await
        .unwrap();
    stages
        .stage_s3(target)
        .create_bucket()
        .bucket(&stage)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(target.region.as_str()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    (root, stage)
}

async fn get(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::get_object::GetObjectOutput {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bundle_is_copied_across_accounts_and_regions_and_a_second_mirror_only_looks() {
    let stages = cicd_stages().await;
    let target = stage_target("us-west-2");
    let content = random(1, 1_000_000);
    let key = "site/abc123/site.zip";
    let (root, stage) = buckets(&stages, &target, key, &content).await;
    let mirror = AwsMirror::new(stages.clone()).unwrap();
    let req = request(&target, bundle(&stage, key), Some(bundle(&root, key)));

    let report = mirror.mirror_with_report(&req).await.expect("mirror");
    assert_eq!(report.outcome, MirrorOutcome::Copied);
    assert_eq!(report.digest, format!("sha256:{}", sha256_hex(&content)));
    let copy = get(&stages.stage_s3(&target), &stage, key).await;
    assert_eq!(copy.content_type(), Some("application/zip"));
    let metadata = copy.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("devramps-sha256"), Some(&sha256_hex(&content)));
    assert_eq!(copy.body.collect().await.unwrap().to_vec(), content);

    let before = s3_requests(&stages, &target);
    let again = mirror.mirror_with_report(&req).await.expect("again");
    assert_eq!(again.outcome, MirrorOutcome::AlreadyThere);
    let after = s3_requests(&stages, &target);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "one HeadObject of the source, one of the destination: no copy, no read"
    );
}

#[tokio::test]
async fn a_bundle_above_the_threshold_is_copied_in_parts() {
    let stages = cicd_stages().await;
    let target = stage_target("us-west-2");
    let content = random(2, 12 * 1024 * 1024 + 7);
    let key = "site/abc123/big.zip";
    let (root, stage) = buckets(&stages, &target, key, &content).await;
    let mirror = AwsMirror::new(stages.clone())
        .unwrap()
        .with_multipart(5 * 1024 * 1024, 5 * 1024 * 1024);
    let before = s3_requests(&stages, &target);
    let report = mirror
        .mirror_with_report(&request(
            &target,
            bundle(&stage, key),
            Some(bundle(&root, key)),
        ))
        .await
        .expect("mirror");
    assert_eq!(report.outcome, MirrorOutcome::Copied);
    let after = s3_requests(&stages, &target);
    assert_eq!(
        after.1 - before.1,
        2 + 1 + 3 + 1 + 1,
        "HeadObject and HeadBucket (no object yet), CreateMultipartUpload, 3 UploadPartCopy, \
         CompleteMultipartUpload, the read-back"
    );
    let copy = get(&stages.stage_s3(&target), &stage, key).await;
    assert_eq!(copy.body.collect().await.unwrap().to_vec(), content);
}

#[tokio::test]
async fn missing_buckets_and_keys_are_not_found_naming_them() {
    let stages = cicd_stages().await;
    let target = stage_target("us-west-2");
    let key = "site/abc123/site.zip";
    let (root, stage) = buckets(&stages, &target, key, b"zip").await;
    let mirror = AwsMirror::new(stages).unwrap();
    let cases = [
        (
            bundle(&stage, key),
            bundle("devramps-no-such-root", key),
            "devramps-no-such-root",
        ),
        (
            bundle(&stage, key),
            bundle(&root, "site/other/site.zip"),
            "site/other/site.zip",
        ),
        (
            bundle("devramps-no-such-stage", key),
            bundle(&root, key),
            "devramps-no-such-stage",
        ),
    ];
    for (destination, source, missing) in cases {
        let error = mirror
            .mirror(&request(&target, destination, Some(source)))
            .await
            .expect_err("missing");
        let message = error.to_string();
        assert!(matches!(error, Error::NotFound { .. }), "{message}");
        for part in [missing, "site"] {
            assert!(message.contains(part), "{message} names {part}");
        }
        if missing.starts_with("devramps-no-such") {
            assert!(
                message.contains(&format!("arn:aws:s3:::{missing}")),
                "{message}"
            );
            assert!(message.contains(key), "{message} names the key");
        }
    }
}

#[tokio::test]
async fn a_per_stage_bundle_is_checked_in_place() {
    let stages = cicd_stages().await;
    let target = stage_target("us-west-2");
    let key = "site/abc123/site.zip";
    let (_, stage) = buckets(&stages, &target, key, b"zip").await;
    stages
        .stage_s3(&target)
        .put_object()
        .bucket(&stage)
        .key(key)
        .body(b"built here".to_vec().into())
        .send()
        .await
        .unwrap();
    let mirror = AwsMirror::new(stages).unwrap();
    let report = mirror
        .mirror_with_report(&request(&target, bundle(&stage, key), None))
        .await
        .expect("present");
    assert_eq!(report.outcome, MirrorOutcome::InPlace);
    let error = mirror
        .mirror(&request(
            &target,
            bundle(&stage, "site/other/site.zip"),
            None,
        ))
        .await
        .expect_err("absent");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("site/other/site.zip"), "{error}");
    assert!(error.to_string().contains("built in place"), "{error}");
}

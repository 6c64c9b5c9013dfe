//! `AwsMirror`'s image path on moto (the ECR API: repositories, tags, `PutImage`,
//! authorization tokens) and loopback `docker-registry` instances (the OCI blob and manifest
//! traffic, an ECR host's traffic sent to one with `with_registry_endpoint`).
//!
//! What moto proves: the ECR calls and their order (the repository and tag checks before any
//! blob moves, `PutImage` when the manifest is present, tokens decoded), cross-account
//! clients (the root's with the CI/CD session, the stage's with the assumed stage role).
//! What it cannot: moto has no blob or OCI endpoints and checks no layers or digests (it takes
//! the digest it is given), and it never learns of a push to a loopback registry, so ECR's
//! view after an OCI copy is not checked here. What the registries prove: blobs and manifests
//! really move and the digest at the destination is the source's (read back, and by skopeo);
//! they have no ECR API and accept any credentials.

#![allow(clippy::unwrap_used)]

#[path = "support/registry.rs"]
mod registry;
#[path = "support/stages.rs"]
mod stages;
mod support;

use aws_sdk_ecr::types::ImageTagMutability;
use devramps_aws::mirror::ecr::decode_token;
use devramps_aws::mirror::{MirrorOutcome, RegistryAuth};
use devramps_aws::{AwsMirror, AwsStages};
use devramps_core::Error;
use devramps_core::backend::{ArtifactMirror, MirrorRequest, StageTarget};
use devramps_core::expr::ArtifactLocation;
use devramps_core::pipeline::ArtifactType;
use registry::{OCI_MANIFEST, SecondRegistry, get_manifest, head, make_image, sha256};
use stages::{CICD, STAGE, cicd_stages, stage_target, unique};

fn ecr_host(account: &str) -> String {
    format!("{account}.dkr.ecr.us-east-1.amazonaws.com")
}

fn image(account: &str, repo: &str, tag: &str) -> ArtifactLocation {
    ArtifactLocation {
        image_url: format!("{}/{repo}:{tag}", ecr_host(account)),
        image_tag: tag.to_owned(),
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
        "api",
        ArtifactType::DockerBuild,
        "abc123",
        destination,
    )
    .with_source(source)
}

async fn create_repo(client: &aws_sdk_ecr::Client, name: &str, immutable: bool) {
    let mutability = if immutable {
        ImageTagMutability::Immutable
    } else {
        ImageTagMutability::Mutable
    };
    client
        .create_repository()
        .repository_name(name)
        .image_tag_mutability(mutability)
        .send()
        .await
        .unwrap();
}

/// Registers `manifest` under `tag` in moto's view of a repository; returns its digest.
async fn put_image(client: &aws_sdk_ecr::Client, repo: &str, tag: &str, manifest: &[u8]) -> String {
    let digest = sha256(manifest);
    client
        .put_image()
        .repository_name(repo)
        .image_tag(tag)
        .image_digest(&digest)
        .image_manifest(String::from_utf8(manifest.to_vec()).unwrap())
        .image_manifest_media_type(OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    digest
}

/// A small OCI manifest naming made-up blobs (moto checks none).
fn fake_manifest(seed: u64) -> Vec<u8> {
    let blob = |n: u64| format!("sha256:{:064x}", seed * 100 + n);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(0), "size": 10 },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(1), "size": 20 }],
    }))
    .unwrap()
}

async fn tag_digest(client: &aws_sdk_ecr::Client, repo: &str, tag: &str) -> Option<String> {
    let out = client
        .describe_images()
        .repository_name(repo)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag)
                .build(),
        )
        .send()
        .await
        .ok()?;
    out.image_details()
        .first()?
        .image_digest()
        .map(str::to_owned)
}

#[tokio::test]
async fn the_stage_registry_token_decodes_to_basic_credentials_of_the_stage_account() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let out = stages
        .stage_ecr(&target)
        .get_authorization_token()
        .send()
        .await
        .unwrap();
    let token = out.authorization_data()[0].authorization_token().unwrap();
    assert_eq!(
        decode_token(token),
        Some(RegistryAuth::Basic {
            user: "AWS".into(),
            password: format!("{STAGE}-auth-token"),
        }),
        "moto's token names the account the stage role acts in"
    );
}

#[tokio::test]
async fn a_missing_destination_repository_is_not_found_naming_it_and_its_arn() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let missing = unique("stage/missing");
    let mirror = AwsMirror::new(stages).unwrap();
    let error = mirror
        .mirror(&request(
            &target,
            image(STAGE, &missing, "v1"),
            Some(image(CICD, "root/none", "v1")),
        ))
        .await
        .expect_err("no repository");
    let message = error.to_string();
    assert!(matches!(error, Error::NotFound { .. }), "{message}");
    let arn = format!("arn:aws:ecr:us-east-1:{STAGE}:repository/{missing}");
    for part in [missing.as_str(), arn.as_str()] {
        assert!(message.contains(part), "{message} names {part}");
    }

    // The missing root repository is named the same way.
    let dst = unique("stage/api");
    create_repo(&stages_of(&mirror).stage_ecr(&target), &dst, false).await;
    let root = unique("root/gone");
    let error = mirror
        .mirror(&request(
            &target,
            image(STAGE, &dst, "v1"),
            Some(image(CICD, &root, "v1")),
        ))
        .await
        .expect_err("no root repository");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    let arn = format!("arn:aws:ecr:us-east-1:{CICD}:repository/{root}");
    assert!(error.to_string().contains(&arn), "{error} names {arn}");
}

fn stages_of(mirror: &AwsMirror) -> AwsStages {
    mirror.stages().clone()
}

#[tokio::test]
async fn an_immutable_tag_naming_another_digest_conflicts_before_any_blob_moves() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let (root, dst) = (unique("root/api"), unique("stage/api"));
    let (base, stage) = (stages.base_ecr("us-east-1"), stages.stage_ecr(&target));
    create_repo(&base, &root, false).await;
    create_repo(&stage, &dst, true).await;
    let digest = put_image(&base, &root, "abc123", &fake_manifest(1)).await;
    let other = put_image(&stage, &dst, "abc123", &fake_manifest(2)).await;

    let mirror = AwsMirror::new(stages).unwrap();
    let error = mirror
        .mirror(&request(
            &target,
            image(STAGE, &dst, "abc123"),
            Some(image(CICD, &root, "abc123")),
        ))
        .await
        .expect_err("immutable tag elsewhere");
    let message = error.to_string();
    assert!(matches!(error, Error::Conflict { .. }), "{message}");
    for part in ["`abc123`", dst.as_str(), digest.as_str(), other.as_str()] {
        assert!(message.contains(part), "{message} names {part}");
    }
    assert_eq!(mirror.registry_requests(), 0, "no registry traffic at all");
    assert_eq!(tag_digest(&stage, &dst, "abc123").await, Some(other));
}

#[tokio::test]
async fn put_image_sets_the_tag_when_the_manifest_is_already_there() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let (root, dst) = (unique("root/api"), unique("stage/api"));
    let (base, stage) = (stages.base_ecr("us-east-1"), stages.stage_ecr(&target));
    create_repo(&base, &root, false).await;
    create_repo(&stage, &dst, true).await;
    let manifest = fake_manifest(3);
    let digest = put_image(&base, &root, "abc123", &manifest).await;
    put_image(&stage, &dst, "older", &manifest).await;

    let mirror = AwsMirror::new(stages).unwrap();
    let req = request(
        &target,
        image(STAGE, &dst, "abc123"),
        Some(image(CICD, &root, "abc123")),
    );
    let report = mirror.mirror_with_report(&req).await.expect("tagged");
    assert_eq!(report.outcome, MirrorOutcome::Tagged);
    assert_eq!(report.digest, digest);
    assert_eq!(mirror.registry_requests(), 0, "no blob traffic");
    assert_eq!(
        tag_digest(&stage, &dst, "abc123").await,
        Some(digest.clone())
    );

    let again = mirror.mirror_with_report(&req).await.expect("again");
    assert_eq!(again.outcome, MirrorOutcome::AlreadyThere);

    // A per-stage artifact (no source) is checked in place.
    let in_place = mirror
        .mirror_with_report(&request(&target, image(STAGE, &dst, "abc123"), None))
        .await
        .expect("in place");
    assert_eq!(
        (in_place.outcome, in_place.digest),
        (MirrorOutcome::InPlace, digest)
    );
    let error = mirror
        .mirror(&request(&target, image(STAGE, &dst, "never-built"), None))
        .await
        .expect_err("not built in place");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("never-built"), "{error}");
}

#[tokio::test]
async fn an_image_is_mirrored_across_accounts_between_two_registries() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let (root_registry, stage_registry) =
        (SecondRegistry::start().await, SecondRegistry::start().await);
    let (root, dst) = (unique("root/api"), unique("stage/api"));
    let (base, stage) = (stages.base_ecr("us-east-1"), stages.stage_ecr(&target));
    create_repo(&base, &root, false).await;
    create_repo(&stage, &dst, true).await;
    // The build pushed the image to the root registry, and ECR knows its tag.
    let (digest, blobs) = make_image(&root_registry.host, &root, "abc123", 11, 3, 100_000).await;
    let manifest = get_manifest(&root_registry.host, &root, "abc123").await;
    assert_eq!(put_image(&base, &root, "abc123", &manifest).await, digest);

    let mirror = AwsMirror::new(stages.clone())
        .unwrap()
        .with_registry_endpoint(ecr_host(CICD), &format!("http://{}", root_registry.host))
        .unwrap()
        .with_registry_endpoint(ecr_host(STAGE), &format!("http://{}", stage_registry.host))
        .unwrap();
    let req = request(
        &target,
        image(STAGE, &dst, "abc123"),
        Some(image(CICD, &root, "abc123")),
    );
    let report = mirror.mirror_with_report(&req).await.expect("mirror");
    assert_eq!(report.outcome, MirrorOutcome::Copied);
    assert_eq!(report.digest, digest);
    let copy = report.copy.expect("a copy report");
    assert_eq!(
        (copy.blobs_copied, copy.manifests_put),
        (blobs.len() as u64, 1)
    );
    assert_eq!(
        head(&stage_registry.host, &dst, "abc123").await.as_deref(),
        Some(digest.as_str())
    );
    if let Some(seen) = registry::skopeo_digest(&format!("{}/{dst}:abc123", stage_registry.host)) {
        assert_eq!(seen, digest, "skopeo sees the source's digest");
    }

    // Again: moto's ECR never saw the push, so the copier looks, finds the tag, copies nothing.
    let again = mirror
        .mirror_with_report(&req)
        .await
        .expect("again")
        .copy
        .expect("looked");
    assert_eq!(
        (
            again.blobs_copied,
            again.manifests_put,
            again.bytes_copied,
            again.requests
        ),
        (0, 0, 0, 2)
    );
    assert_eq!(mirror.registry_requests(), copy.requests + 2);
}

#[tokio::test]
async fn plain_http_endpoints_are_only_for_loopback_hosts() {
    let stages = cicd_stages().await;
    let error = AwsMirror::new(stages)
        .unwrap()
        .with_registry_endpoint(ecr_host(STAGE), "http://registry.example:5000")
        .expect_err("plain HTTP to a remote host");
    assert!(error.to_string().contains("loopback"), "{error}");
}

#[tokio::test]
async fn a_missing_source_tag_is_not_found_and_an_unreachable_registry_is_unavailable() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let (root, dst) = (unique("root/api"), unique("stage/api"));
    let (base, stage) = (stages.base_ecr("us-east-1"), stages.stage_ecr(&target));
    create_repo(&base, &root, false).await;
    create_repo(&stage, &dst, false).await;
    let root_registry = SecondRegistry::start().await;
    make_image(&root_registry.host, &root, "abc123", 12, 1, 10_000).await;
    let manifest = get_manifest(&root_registry.host, &root, "abc123").await;
    put_image(&base, &root, "abc123", &manifest).await;
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mirror = AwsMirror::new(stages)
        .unwrap()
        .with_registry_endpoint(ecr_host(CICD), &format!("http://{}", root_registry.host))
        .unwrap()
        .with_registry_endpoint(ecr_host(STAGE), &format!("http://{closed}"))
        .unwrap();

    let error = mirror
        .mirror(&request(
            &target,
            image(STAGE, &dst, "v9"),
            Some(image(CICD, &root, "v9")),
        ))
        .await
        .expect_err("no such build");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    for part in ["`v9`", root.as_str()] {
        assert!(error.to_string().contains(part), "{error} names {part}");
    }

    let error = mirror
        .mirror(&request(
            &target,
            image(STAGE, &dst, "abc123"),
            Some(image(CICD, &root, "abc123")),
        ))
        .await
        .expect_err("the stage registry is down");
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains(&closed.to_string()),
        "{error} names the registry"
    );
    assert!(error.is_transient(), "the engine retries it");
}

#[tokio::test]
async fn a_retried_mirror_skips_the_blobs_an_interrupted_one_copied_and_streams_large_layers() {
    let stages = cicd_stages().await;
    let target = stage_target("us-east-1");
    let (root_registry, stage_registry) =
        (SecondRegistry::start().await, SecondRegistry::start().await);
    let (root, dst) = (unique("root/api"), unique("stage/api"));
    let (base, stage) = (stages.base_ecr("us-east-1"), stages.stage_ecr(&target));
    create_repo(&base, &root, false).await;
    create_repo(&stage, &dst, false).await;
    // Three layers of 8 MiB: each blob crosses in many chunks of the streamed upload.
    let size = 8 * 1024 * 1024;
    let (digest, blobs) = make_image(&root_registry.host, &root, "abc123", 13, 3, size).await;
    let manifest = get_manifest(&root_registry.host, &root, "abc123").await;
    put_image(&base, &root, "abc123", &manifest).await;
    // An interrupted mirror had copied the config and the first layer.
    registry::push_blob(&stage_registry.host, &dst, &registry::config("amd64", 13)).await;
    registry::push_blob(
        &stage_registry.host,
        &dst,
        &registry::random(13 * 1000, size),
    )
    .await;

    let mirror = AwsMirror::new(stages)
        .unwrap()
        .with_registry_endpoint(ecr_host(CICD), &format!("http://{}", root_registry.host))
        .unwrap()
        .with_registry_endpoint(ecr_host(STAGE), &format!("http://{}", stage_registry.host))
        .unwrap();
    let req = request(
        &target,
        image(STAGE, &dst, "abc123"),
        Some(image(CICD, &root, "abc123")),
    );
    let copy = mirror
        .mirror_with_report(&req)
        .await
        .expect("mirror")
        .copy
        .expect("copied");
    assert_eq!(blobs.len(), 4);
    assert_eq!(
        (copy.blobs_skipped, copy.blobs_copied, copy.bytes_copied),
        (2, 2, 2 * size as u64)
    );
    assert_eq!(
        head(&stage_registry.host, &dst, "abc123").await.as_deref(),
        Some(digest.as_str())
    );
}

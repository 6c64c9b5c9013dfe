//! The image path of [`AwsMirror`]: a Docker artifact copied from its root ECR repository to
//! the stage's, by the source's digest, under the destination tag the plan gives.
//!
//! 1. The stage's repository (`DescribeRepositories` as the stage's role): missing is
//!    [`Error::NotFound`] naming the repository and its ARN; its tag mutability.
//! 2. What the destination tag names (`DescribeImages`). Without a source (a per-stage
//!    artifact, built in place) that is the whole check: the tag must be there.
//! 3. The root repository and the digest the source tag names (base credentials).
//! 4. Before any blob moves: the destination tag naming the source's digest is done; naming
//!    another digest in an immutable repository is [`Error::Conflict`] naming the tag, both
//!    digests and the repository.
//! 5. A destination that holds the manifest by digest (`BatchGetImage`) only gets its tag
//!    (`PutImage`): no blob traffic.
//! 6. Otherwise the OCI copy ([`OciCopier`](super::OciCopier)) with each registry's Basic
//!    credentials from `GetAuthorizationToken` (the root's with the base credentials, the
//!    stage's with its role), blobs the destination has skipped, the destination digest read
//!    back; then ECR's view of the tag must name the digest too (unless the host's traffic is
//!    sent to another endpoint, as tests do, where ECR never sees the push).

use devramps_core::backend::MirrorRequest;
use devramps_core::exec::ImageRef;
use devramps_core::{Error, Result};

use super::OciCopierOptions;
use super::aws::{AwsMirror, MirrorOutcome, MirrorReport};
use super::ecr::{self, EcrHost, Repository};
use crate::stage::AwsStages;

fn parse(url: &str, which: &str, request: &MirrorRequest) -> Result<(ImageRef, EcrHost)> {
    let operation = format!(
        "mirror artifact `{}` into stage `{}`",
        request.artifact, request.target.stage
    );
    let image = ImageRef::parse(url)
        .map_err(|e| Error::backend("ecr", &operation, format!("the {which}: {e}")))?;
    let host = EcrHost::parse(&image.host).ok_or_else(|| {
        Error::backend(
            "ecr",
            &operation,
            format!("the {which} `{url}` is not in an ECR registry (`<account>.dkr.ecr.<region>.amazonaws.com`)"),
        )
    })?;
    Ok((image, host))
}

pub(super) async fn mirror(m: &AwsMirror, request: &MirrorRequest) -> Result<MirrorReport> {
    let target = &request.target;
    let (destination, dst_host) = parse(&request.destination.image_url, "destination", request)?;
    let tag = if request.destination.image_tag.is_empty() {
        destination.reference.clone()
    } else {
        request.destination.image_tag.clone()
    };
    let stage_ecr = m.stages.stage_ecr(target);
    let dst_repo = ecr::repository(
        &stage_ecr,
        &dst_host,
        &destination.repository,
        "the stage's",
    )
    .await?;
    let existing = ecr::tag_digest(&stage_ecr, &dst_repo, &tag).await?;

    let Some(source) = &request.source else {
        return match existing {
            Some(digest) => Ok(MirrorReport::new(MirrorOutcome::InPlace, digest)),
            None => Err(Error::not_found(format!(
                "tag `{tag}` of {} (artifact `{}` is built in place in the stage, at commit {}; \
                 there is nothing to copy it from)",
                dst_repo.what, request.artifact, request.build_commit
            ))),
        };
    };
    let (source, src_host) = parse(&source.image_url, "source", request)?;
    let base_ecr = m.stages.base_ecr(&src_host.region);
    let src_repo = ecr::repository(&base_ecr, &src_host, &source.repository, "the root").await?;
    let src_end = m.endpoint(&source);
    let src_auth = m
        .tokens
        .auth("base credentials", &base_ecr, &src_host)
        .await?;
    let digest = if source.is_digest() {
        source.reference.clone()
    } else if src_end.mapped {
        // The registry that holds the blobs is not the one ECR's API describes (tests, local
        // stand-ins): the registry's own answer is the digest.
        let at = ImageRef::new(
            src_end.host.clone(),
            source.repository.clone(),
            source.reference.clone(),
        );
        let copier = m
            .copier
            .clone()
            .with_auth(src_end.host.clone(), src_auth.clone());
        copier.resolve(&at).await?.ok_or_else(|| {
            Error::not_found(format!(
                "tag `{}` of {} at {} (the build of artifact `{}` at {})",
                source.reference,
                src_repo.what,
                src_end.host,
                request.artifact,
                request.build_commit
            ))
        })?
    } else {
        ecr::tag_digest(&base_ecr, &src_repo, &source.reference)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "tag `{}` of {} (the build of artifact `{}` at {})",
                    source.reference, src_repo.what, request.artifact, request.build_commit
                ))
            })?
    };

    if let Some(existing) = existing {
        if existing == digest {
            return Ok(MirrorReport::new(MirrorOutcome::AlreadyThere, digest));
        }
        if dst_repo.immutable {
            return Err(conflict(&dst_repo, &tag, &existing, &digest, &source));
        }
    }
    if let Some(manifest) = ecr::manifest(&stage_ecr, &dst_repo, &digest).await? {
        ecr::put_tag(&stage_ecr, &dst_repo, &tag, &digest, manifest).await?;
        verify_tag(&stage_ecr, &dst_repo, &tag, &digest).await?;
        return Ok(MirrorReport::new(MirrorOutcome::Tagged, digest));
    }

    let dst_end = m.endpoint(&destination);
    let role = AwsStages::role_arn(target);
    let dst_auth = m.tokens.auth(&role, &stage_ecr, &dst_host).await?;
    let options = OciCopierOptions {
        immutable: dst_repo.immutable,
        ..OciCopierOptions::default()
    };
    let copier = m
        .copier
        .clone()
        .with_options(options)
        .with_auth(src_end.host.clone(), src_auth)
        .with_auth(dst_end.host.clone(), dst_auth);
    let from = ImageRef::new(
        src_end.host.clone(),
        source.repository.clone(),
        digest.clone(),
    );
    let to = ImageRef::new(
        dst_end.host.clone(),
        destination.repository.clone(),
        tag.clone(),
    );
    let report = copier.copy(&from, &to).await?;
    m.registry_requests
        .fetch_add(report.requests, std::sync::atomic::Ordering::Relaxed);
    if report.digest != digest {
        return Err(Error::backend(
            "ecr",
            format!("copy {source} to {destination}"),
            format!(
                "the registry served {} for the source, whose tag names {digest} in ECR",
                report.digest
            ),
        ));
    }
    if !dst_end.mapped {
        verify_tag(&stage_ecr, &dst_repo, &tag, &digest).await?;
    }
    let mut mirrored = MirrorReport::new(MirrorOutcome::Copied, digest);
    mirrored.copy = Some(report);
    Ok(mirrored)
}

fn conflict(
    repo: &Repository,
    tag: &str,
    existing: &str,
    digest: &str,
    source: &ImageRef,
) -> Error {
    Error::Conflict {
        what: format!(
            "the immutable tag `{tag}` of {} names {existing}, not the source's {digest} \
             ({source}); push under a new tag or delete the tag",
            repo.what
        ),
    }
}

/// ECR's view of `tag` must name `digest`.
async fn verify_tag(
    client: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: &str,
    digest: &str,
) -> Result<()> {
    match ecr::tag_digest(client, repo, tag).await? {
        Some(got) if got == digest => Ok(()),
        got => Err(Error::backend(
            "ecr",
            format!("verify tag `{tag}` of {}", repo.what),
            format!(
                "the tag names {} after the mirror, not the source's {digest}",
                got.as_deref().unwrap_or("nothing")
            ),
        )),
    }
}

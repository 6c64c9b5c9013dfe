//! The bundle path of [`AwsMirror`]: a bundle copied from its root bucket (CI/CD account) to
//! the stage's bucket, server-side, with the stage's deployment role in the stage's region
//! (cross-account and cross-region: the root bucket's policy lets the stage roles read).
//!
//! The object's identity is its size and SHA-256, which this mirror computes itself (S3's
//! checksums are optional, per upload, and composite for multipart objects, so they cannot
//! be relied on to compare a source with a copy made in other parts):
//!
//! 1. `HeadObject` of the destination (stage role); a missing object is told apart from a
//!    missing bucket with `HeadBucket`. Without a source (a per-stage artifact, built in
//!    place) the destination must hold the object, and that is all.
//! 2. `HeadObject` of the source (base credentials, in the base region: the CI/CD account's).
//! 3. Nothing to do when the destination records, in its metadata, the source's ETag and the
//!    same size (a copy this mirror made and verified): two `HeadObject`s, no copy request.
//! 4. The source's SHA-256: from its metadata (`devramps-sha256`), else its S3 full-object
//!    SHA-256 checksum, else read and hashed as it streams (bounded memory).
//! 5. `CopyObject` up to the multipart threshold (at most 5 GiB), else `CreateMultipartUpload`,
//!    `UploadPartCopy` per range and `CompleteMultipartUpload` (aborted on any failure). The
//!    destination's metadata records `devramps-sha256` and `devramps-source-etag`; its content
//!    type is the source's.
//! 6. The destination is read back, hashed as it streams, and its size and SHA-256 must equal
//!    the source's; otherwise the copy is deleted (its recorded ETag must not make the next
//!    mirror skip it) and the mirror fails naming both checksums.

use std::collections::HashMap;

use aws_sdk_s3::types::{ChecksumMode, MetadataDirective};
use devramps_core::backend::MirrorRequest;
use devramps_core::expr::ArtifactLocation;
use devramps_core::{Error, Result};
use sha2::{Digest, Sha256};

use super::aws::{AwsMirror, MirrorOutcome, MirrorReport};
use super::wire::hex;
use crate::stage::{AwsFailure, classify};

/// Metadata keys this mirror writes on the destination.
const SHA_KEY: &str = "devramps-sha256";
const ETAG_KEY: &str = "devramps-source-etag";

/// An object as `HeadObject` sees it.
#[derive(Debug)]
struct Head {
    size: u64,
    etag: String,
    content_type: Option<String>,
    metadata: HashMap<String, String>,
    /// The S3 full-object SHA-256 checksum, as hex.
    checksum: Option<String>,
}

/// A bucket and key, and who reads them, for messages.
struct Place<'a> {
    bucket: String,
    key: String,
    whose: &'a str,
}

impl Place<'_> {
    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn bucket_what(&self) -> String {
        format!(
            "{} S3 bucket `{}` (arn:aws:s3:::{}, for key `{}`)",
            self.whose, self.bucket, self.bucket, self.key
        )
    }

    fn object_what(&self) -> String {
        format!(
            "{} object `{}` (key `{}` in bucket `{}`)",
            self.whose,
            self.url(),
            self.key,
            self.bucket
        )
    }
}

fn place<'a>(
    location: &ArtifactLocation,
    whose: &'a str,
    request: &MirrorRequest,
) -> Result<Place<'a>> {
    let (bucket, key) = if !location.s3_bucket.is_empty() && !location.s3_key.is_empty() {
        (location.s3_bucket.clone(), location.s3_key.clone())
    } else {
        location
            .s3_url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .map(|(b, k)| (b.to_owned(), k.to_owned()))
            .ok_or_else(|| {
                Error::backend(
                    "s3",
                    format!(
                        "mirror artifact `{}` into stage `{}`",
                        request.artifact, request.target.stage
                    ),
                    format!(
                        "{whose} location has no bucket and key (s3_url `{}`)",
                        location.s3_url
                    ),
                )
            })?
    };
    Ok(Place { bucket, key, whose })
}

/// The object at `place`, `None` when the bucket is there but the key is not;
/// [`Error::NotFound`] naming the bucket when the bucket is missing.
async fn head(client: &aws_sdk_s3::Client, place: &Place<'_>) -> Result<Option<Head>> {
    let answer = client
        .head_object()
        .bucket(&place.bucket)
        .key(&place.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await;
    let out = match answer {
        Ok(out) => out,
        Err(e) if AwsFailure::is_missing(&e) => {
            return match client.head_bucket().bucket(&place.bucket).send().await {
                Ok(_) => Ok(None),
                Err(e) => Err(classify("s3", "HeadBucket").error(e, &place.bucket_what())),
            };
        }
        Err(e) => return Err(classify("s3", "HeadObject").error(e, &place.object_what())),
    };
    let checksum = out
        .checksum_sha256()
        .filter(|c| !c.contains('-'))
        .and_then(super::ecr::base64)
        .filter(|raw| raw.len() == 32)
        .map(|raw| hex(&raw));
    Ok(Some(Head {
        size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
        etag: out.e_tag().unwrap_or_default().to_owned(),
        content_type: out.content_type().map(str::to_owned),
        metadata: out.metadata().cloned().unwrap_or_default(),
        checksum,
    }))
}

/// Reads the object at `place` and returns its SHA-256 (hex) and size.
async fn hash(client: &aws_sdk_s3::Client, place: &Place<'_>) -> Result<(String, u64)> {
    let out = client
        .get_object()
        .bucket(&place.bucket)
        .key(&place.key)
        .send()
        .await
        .map_err(|e| classify("s3", "GetObject").error(e, &place.object_what()))?;
    let mut body = out.body;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Unavailable {
            backend: "s3".into(),
            operation: format!("GetObject {}", place.object_what()),
            message: e.to_string(),
            retry_after: None,
            source: Some(Box::new(e)),
        })?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

pub(super) async fn mirror(m: &AwsMirror, request: &MirrorRequest) -> Result<MirrorReport> {
    let stage = m.stages.stage_s3(&request.target);
    let dst = place(&request.destination, "the stage's", request)?;
    let existing = head(&stage, &dst).await?;
    let Some(source) = &request.source else {
        return match existing {
            Some(head) => Ok(MirrorReport::new(
                MirrorOutcome::InPlace,
                head.metadata
                    .get(SHA_KEY)
                    .map(|s| format!("sha256:{s}"))
                    .unwrap_or_default(),
            )),
            None => Err(Error::not_found(format!(
                "{} (artifact `{}` is built in place in the stage, at commit {}; there is \
                 nothing to copy it from)",
                dst.object_what(),
                request.artifact,
                request.build_commit
            ))),
        };
    };
    let src = place(source, "the root", request)?;
    let base = m.stages.base_s3(&m.stages.base_region());
    let src_head = head(&base, &src).await?.ok_or_else(|| {
        Error::not_found(format!(
            "{} (the build of artifact `{}` at {})",
            src.object_what(),
            request.artifact,
            request.build_commit
        ))
    })?;
    if let Some(existing) = &existing
        && existing.size == src_head.size
        && existing.metadata.get(ETAG_KEY) == Some(&src_head.etag)
        && let Some(sha) = existing.metadata.get(SHA_KEY)
    {
        return Ok(MirrorReport::new(
            MirrorOutcome::AlreadyThere,
            format!("sha256:{sha}"),
        ));
    }
    let mut bytes_hashed = 0;
    let sha = match src_head
        .metadata
        .get(SHA_KEY)
        .or(src_head.checksum.as_ref())
    {
        Some(sha) => sha.clone(),
        None => {
            let (sha, size) = hash(&base, &src).await?;
            bytes_hashed += size;
            sha
        }
    };
    let metadata = HashMap::from([
        (SHA_KEY.to_owned(), sha.clone()),
        (ETAG_KEY.to_owned(), src_head.etag.clone()),
    ]);
    if src_head.size > m.multipart_threshold {
        super::parts::copy(
            m,
            &stage,
            (&src.bucket, &src.key),
            (&dst.bucket, &dst.key),
            src_head.size,
            src_head.content_type.as_deref(),
            metadata,
            &dst.object_what(),
        )
        .await?;
    } else {
        stage
            .copy_object()
            .copy_source(super::parts::copy_source(&src.bucket, &src.key))
            .bucket(&dst.bucket)
            .key(&dst.key)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(metadata))
            .set_content_type(src_head.content_type.clone())
            .send()
            .await
            .map_err(|e| {
                classify("s3", "CopyObject").error(
                    e,
                    &format!("{} to {}", src.object_what(), dst.object_what()),
                )
            })?;
    }
    let (got, size) = hash(&stage, &dst).await?;
    bytes_hashed += size;
    if got != sha || size != src_head.size {
        let _ = stage
            .delete_object()
            .bucket(&dst.bucket)
            .key(&dst.key)
            .send()
            .await;
        return Err(Error::backend(
            "s3",
            format!("verify {} copied from {}", dst.object_what(), src.url()),
            format!(
                "checksum mismatch: the source is {} bytes with SHA-256 {sha}, the copy {size} \
                 bytes with SHA-256 {got}; the copy was deleted",
                src_head.size
            ),
        ));
    }
    let mut report = MirrorReport::new(MirrorOutcome::Copied, format!("sha256:{sha}"));
    report.bytes_hashed = bytes_hashed;
    Ok(report)
}

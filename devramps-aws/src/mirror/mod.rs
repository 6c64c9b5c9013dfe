//! Artifact mirroring into AWS stages: copying a shared artifact from the pipeline's root
//! repository or bucket (CI/CD account) into a stage's (the stage's account and region).
//!
//! [`AwsMirror`] is the [`ArtifactMirror`](devramps_core::backend::ArtifactMirror):
//!
//! - **Images** (Docker artifacts): ECR's API says what the repositories hold and lets a tag be
//!   set on a manifest already there ([`ecr`]); blobs and manifests move over the OCI
//!   distribution API with [`OciCopier`] (multi-arch indexes, blobs the destination has
//!   skipped, cross-repository mounts, every digest verified, blobs streamed, never held
//!   whole). The registry credentials are [`RegistryAuth::Basic`] from ECR's
//!   `GetAuthorizationToken`; an ECR host's OCI traffic can be sent elsewhere
//!   ([`AwsMirror::with_registry_endpoint`], for loopback test registries).
//! - **Bundles**: S3 server-side copies (`CopyObject`, or a multipart copy above a threshold),
//!   the content's SHA-256 compared between source and copy, recorded in the copy's metadata
//!   so a second mirror only looks.
//!
//! An image mirror, in order: the stage's repository (`DescribeRepositories` as the stage
//! role: missing is [`Error::NotFound`](devramps_core::Error::NotFound) naming it and its
//! ARN); what the destination tag names (`DescribeImages`; without a source, a per-stage
//! artifact built in place, the tag must be there and that is all); the root repository and
//! the digest its tag names (base credentials); then, before any blob moves, a destination
//! tag already naming that digest is done, and one naming another digest in an immutable
//! repository is a [`Conflict`](devramps_core::Error::Conflict) naming the tag, both digests
//! and the repository; a destination holding the manifest by digest (`BatchGetImage`) only
//! gets its tag (`PutImage`); otherwise the OCI copy, by the source's digest, under the
//! plan's tag, and the destination's digest read back (and ECR's view of the tag, unless the
//! host's traffic was sent elsewhere).
//!
//! A bundle mirror: `HeadObject` of the destination (stage role, stage region; `HeadBucket`
//! tells a missing bucket from a missing key) and of the source (base credentials, base
//! region: the CI/CD account's); nothing to do when the destination's metadata records the
//! source's ETag (`devramps-source-etag`) and the sizes are equal; else the source's SHA-256
//! (its `devramps-sha256` metadata, its S3 full-object SHA-256 checksum, or read and hashed),
//! `CopyObject` (or `CreateMultipartUpload` + `UploadPartCopy` + `CompleteMultipartUpload`
//! above [`AwsMirror::with_multipart`]'s threshold, aborted on failure) with both recorded in
//! the copy's metadata, and the copy read back and hashed: a copy whose size or SHA-256
//! differs is deleted and the mirror fails.
//!
//! What an image mirror costs in registry requests is in its [`MirrorReport`] (and
//! [`AwsMirror::registry_requests`]); AWS API requests, per principal and service, in
//! [`AwsStages::requests`](crate::stage::AwsStages::requests).

mod aws;
mod blob;
mod bundle;
pub mod ecr;
mod image;
pub mod oci;
mod parts;
mod wire;

pub use aws::{AwsMirror, MirrorOutcome, MirrorReport, SINGLE_COPY_LIMIT};
pub use oci::{CopyReport, OciCopier, OciCopierOptions, RegistryAuth};

/// An image reference (devramps-core's `devramps_core::exec::ImageRef`, re-exported here
/// for the copier's callers).
pub use devramps_core::exec::ImageRef;

//! [`AwsMirror`]: the [`ArtifactMirror`] of AWS stages. Docker artifacts go from the root ECR
//! repository (CI/CD account, base credentials) to the stage's ECR repository (the stage's
//! deployment role), by the source's digest under the tag the plan gives (see `image`);
//! bundles go from the root S3 bucket to the stage's bucket with S3's server-side copies (see
//! `bundle`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use devramps_core::backend::{ArtifactMirror, MirrorRequest};
use devramps_core::exec::ImageRef;
use devramps_core::pipeline::ArtifactType;
use devramps_core::{Error, Result};

use super::ecr::Tokens;
use super::{CopyReport, OciCopier, OciCopierOptions};
use crate::stage::AwsStages;

/// CopyObject's limit: larger objects must be copied in parts.
pub const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// What one mirror did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MirrorOutcome {
    /// The destination already held the artifact: nothing was copied.
    AlreadyThere,
    /// A per-stage artifact (no source): the destination holds it.
    InPlace,
    /// The destination held the image's manifest: only its tag was set (`PutImage`).
    Tagged,
    /// The artifact was copied and verified.
    Copied,
}

/// What one mirror did, and what it cost beyond the AWS API calls (those are counted by
/// [`AwsStages::requests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorReport {
    /// What happened.
    pub outcome: MirrorOutcome,
    /// The image digest, or the bundle's SHA-256 (`sha256:<hex>`), the destination holds
    /// (empty for a per-stage bundle, built in place, whose SHA-256 nothing recorded).
    pub digest: String,
    /// The registry-to-registry copy, when blobs were looked at.
    pub copy: Option<CopyReport>,
    /// Bytes read to compute or verify a bundle's SHA-256 (source and destination).
    pub bytes_hashed: u64,
}

impl MirrorReport {
    pub(crate) fn new(outcome: MirrorOutcome, digest: impl Into<String>) -> MirrorReport {
        MirrorReport {
            outcome,
            digest: digest.into(),
            copy: None,
            bytes_hashed: 0,
        }
    }
}

/// Where an ECR host's OCI traffic goes: a `host[:port]`, and whether it was mapped there.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) mapped: bool,
}

/// Artifact mirroring into AWS stages (see the [module](crate::mirror) docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct AwsMirror {
    pub(crate) stages: AwsStages,
    pub(crate) copier: OciCopier,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) endpoints: HashMap<String, Endpoint>,
    pub(crate) multipart_threshold: u64,
    pub(crate) part_size: u64,
    pub(crate) registry_requests: Arc<AtomicU64>,
}

impl AwsMirror {
    /// A mirror acting with `stages`' credentials: base credentials for the root (CI/CD)
    /// repositories and buckets, each stage's deployment role for its own.
    pub fn new(stages: AwsStages) -> Result<AwsMirror> {
        Ok(AwsMirror {
            stages,
            copier: OciCopier::new(OciCopierOptions::default())?,
            tokens: Arc::default(),
            endpoints: HashMap::new(),
            multipart_threshold: SINGLE_COPY_LIMIT,
            part_size: 512 * 1024 * 1024,
            registry_requests: Arc::default(),
        })
    }

    /// Sends the OCI traffic of the ECR host `ecr_host` (`<account>.dkr.ecr.<region>.amazonaws.com`)
    /// to `base_url` (`https://registry.example` or, for a loopback registry only,
    /// `http://127.0.0.1:5077`). The ECR API calls still go to ECR (moto in tests).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is not `http(s)://host[:port]` or asks for plain HTTP to
    /// a host that is not loopback.
    pub fn with_registry_endpoint(
        mut self,
        ecr_host: impl Into<String>,
        base_url: &str,
    ) -> Result<AwsMirror> {
        let ecr_host = ecr_host.into();
        let invalid = |why: &str| {
            Error::backend(
                "aws mirror",
                format!("send the registry traffic of {ecr_host} to `{base_url}`"),
                why,
            )
        };
        let (plain_http, host) = if let Some(host) = base_url.strip_prefix("http://") {
            (true, host)
        } else if let Some(host) = base_url.strip_prefix("https://") {
            (false, host)
        } else {
            return Err(invalid("not an http:// or https:// URL"));
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(invalid("give only the scheme and host[:port]"));
        }
        if plain_http && !is_loopback(host) {
            return Err(invalid("plain HTTP is only for loopback hosts"));
        }
        if plain_http {
            self.copier = self.copier.with_plain_http(host);
        }
        self.endpoints.insert(
            ecr_host,
            Endpoint {
                host: host.to_owned(),
                mapped: true,
            },
        );
        Ok(self)
    }

    /// Copies bundles larger than `threshold` bytes in parts of `part_size` bytes (multipart
    /// copy); smaller ones with one `CopyObject`. The threshold is at most 5 GiB
    /// ([`SINGLE_COPY_LIMIT`], its default), the part size at least 5 MiB (S3's minimum; 512
    /// MiB by default) and grown to keep under 10,000 parts.
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> AwsMirror {
        self.multipart_threshold = threshold.min(SINGLE_COPY_LIMIT);
        self.part_size = part_size.max(5 * 1024 * 1024);
        self
    }

    /// The credentials and clients this mirror uses (their request counts included).
    pub fn stages(&self) -> &AwsStages {
        &self.stages
    }

    /// HTTP requests sent to registries (OCI distribution API) by the image copies that
    /// succeeded so far (a failed copy's error says what failed, not what it cost).
    pub fn registry_requests(&self) -> u64 {
        self.registry_requests.load(Ordering::Relaxed)
    }

    /// Mirrors one artifact and says what it did (the [`ArtifactMirror`] contract; see the
    /// [module](crate::mirror) docs).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] naming the repository, bucket, key or tag missing (source or
    /// destination); [`Error::Conflict`] for an immutable tag naming another digest;
    /// [`Error::Unavailable`] for throttling and transient failures (retry: copied blobs and
    /// objects are not copied again); [`Error::Backend`] for access denied, expired
    /// credentials and digests or checksums that do not match.
    pub async fn mirror_with_report(&self, request: &MirrorRequest) -> Result<MirrorReport> {
        match request.artifact_type {
            ArtifactType::DockerBuild | ArtifactType::DockerImport => {
                super::image::mirror(self, request).await
            }
            ArtifactType::BundleBuild | ArtifactType::BundleImport => {
                super::bundle::mirror(self, request).await
            }
        }
    }

    /// Where `image`'s registry is reached: the mapped endpoint, or the host itself.
    pub(crate) fn endpoint(&self, image: &ImageRef) -> Endpoint {
        self.endpoints
            .get(&image.host)
            .cloned()
            .unwrap_or(Endpoint {
                host: image.host.clone(),
                mapped: false,
            })
    }
}

/// Whether `host` (`host[:port]`) is a loopback address.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[async_trait]
impl ArtifactMirror for AwsMirror {
    async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
        self.mirror_with_report(request).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for host in ["127.0.0.1:5077", "localhost:5000", "[::1]:80", "127.0.0.2"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["registry.example", "10.0.0.1:5000", "localhost.example:1"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}

//! Image mirroring: copying an image from one registry (the pipeline's root repository) to
//! another (a stage's), over the OCI distribution API.
//!
//! [`OciCopier`] is the registry-to-registry copy: manifests (single images and multi-arch
//! indexes), config and layer blobs, skipping what the destination already has, mounting
//! across repositories of one registry, verifying every digest. ECR's part (authorization
//! tokens, repositories) comes on top of it; here a registry's credentials are a
//! [`RegistryAuth`].

use std::fmt;

pub mod oci;
mod wire;

pub use oci::{CopyReport, OciCopier, OciCopierOptions, RegistryAuth};

/// An image reference: `host[:port]/repository[:tag|@digest]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageRef {
    /// The registry host, with its port if any.
    pub host: String,
    /// The repository path.
    pub repository: String,
    /// The tag (`latest` when none is written) or the digest (`sha256:...`).
    pub reference: String,
}

impl ImageRef {
    /// An image reference from its parts.
    pub fn new(
        host: impl Into<String>,
        repository: impl Into<String>,
        reference: impl Into<String>,
    ) -> ImageRef {
        ImageRef {
            host: host.into(),
            repository: repository.into(),
            reference: reference.into(),
        }
    }

    /// Reads an image reference; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<ImageRef, String> {
        let bad = |why: &str| format!("`{url}` is not an image URL (`host/repository:tag`): {why}");
        let (host, rest) = url
            .split_once('/')
            .ok_or_else(|| bad("there is no registry host"))?;
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("the first part is not a registry host"));
        }
        let (repository, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            (repo, digest.to_owned())
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_owned()),
                _ => (rest, "latest".to_owned()),
            }
        };
        if repository.is_empty() || reference.is_empty() {
            return Err(bad("the repository or the tag is empty"));
        }
        Ok(ImageRef::new(host, repository, reference))
    }

    /// Whether the reference is a digest (`algorithm:hex`) rather than a tag.
    pub fn is_digest(&self) -> bool {
        self.reference.contains(':')
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.is_digest() { '@' } else { ':' };
        write!(
            f,
            "{}/{}{sep}{}",
            self.host, self.repository, self.reference
        )
    }
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    #[test]
    fn parses_tags_digests_and_ports() {
        let r = ImageRef::parse("127.0.0.1:5000/team/api:v1").expect("parses");
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "team/api")
        );
        assert_eq!(r.reference, "v1");
        let d = ImageRef::parse("r.example/api@sha256:abc").expect("parses");
        assert!(d.is_digest());
        assert_eq!(d.to_string(), "r.example/api@sha256:abc");
        assert_eq!(
            ImageRef::parse("localhost/api").expect("parses").reference,
            "latest"
        );
        assert!(ImageRef::parse("api:v1").is_err());
    }
}

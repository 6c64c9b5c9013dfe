//! [`ImageRef`]: an image URL read into registry host, repository and tag or digest. Pure
//! data: the adapters (registries, ECR, a local build) resolve and reach it.

use std::fmt;

/// An image reference: `host[:port]/repository[:tag|@digest]`, as artifact locations write
/// them (`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    ///
    /// The first segment must be a registry host (it has a `.` or a `:`, or is
    /// `localhost`): `ubuntu:22.04` is refused, `localhost/api` is `latest`.
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

    /// The same repository at another reference (a tag or a digest).
    pub fn at(&self, reference: impl Into<String>) -> ImageRef {
        ImageRef::new(self.host.clone(), self.repository.clone(), reference)
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
            r.at("sha256:00").to_string(),
            "127.0.0.1:5000/team/api@sha256:00"
        );
        assert_eq!(
            ImageRef::parse("localhost/api").expect("parses").reference,
            "latest"
        );
        let ecr =
            ImageRef::parse("111111111111.dkr.ecr.us-east-1.amazonaws.com/a/b:t").expect("parses");
        assert_eq!(
            (ecr.repository.as_str(), ecr.reference.as_str()),
            ("a/b", "t")
        );
    }

    #[test]
    fn refuses_what_is_not_an_image_url() {
        for bad in [
            "ubuntu:22.04",
            "api",
            "/api:v1",
            "r.example/:v1",
            "r.example/api:",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
        let message = ImageRef::parse("ubuntu:22.04").expect_err("no host");
        assert!(message.contains("ubuntu:22.04"), "{message}");
    }
}

//! Image names and registries: [`ImageRef`] (devramps-core's, re-exported); a
//! [`RegistryMap`] that sends a host (ECR's, in a deployment) to another one (a loopback
//! registry, on one machine); and the manifest `HEAD` of the OCI distribution API.

use std::time::Duration;

pub use devramps_core::exec::ImageRef;

use sha2::{Digest, Sha256};

use super::store::hex;

/// The manifest media types asked for: OCI and Docker, single images and indexes.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Where image hosts are reached: each host mapped to another (`*` maps every host), and
/// whether the registries are spoken to over plain HTTP without TLS (`insecure`, for a
/// loopback registry). Outputs keep the names as written; only the traffic goes elsewhere.
#[derive(Clone, Debug, Default)]
pub struct RegistryMap {
    map: Vec<(String, String)>,
    insecure: bool,
}

impl RegistryMap {
    /// Every host as it is, over HTTPS.
    pub fn new() -> Self {
        RegistryMap::default()
    }

    /// Sends `from` (a host, or `*` for every host) to `to` (`127.0.0.1:5000`).
    pub fn map(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.map.push((from.into(), to.into()));
        self
    }

    /// Speaks plain HTTP, without TLS (a loopback registry).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Whether the registries are spoken to without TLS.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The host `host` is reached at.
    pub fn host(&self, host: &str) -> String {
        self.map
            .iter()
            .find(|(from, _)| from == host)
            .or_else(|| self.map.iter().find(|(from, _)| from == "*"))
            .map_or_else(|| host.to_owned(), |(_, to)| to.clone())
    }

    /// `image` with its host mapped.
    pub fn resolve(&self, image: &ImageRef) -> ImageRef {
        ImageRef::new(
            self.host(&image.host),
            image.repository.clone(),
            image.reference.clone(),
        )
    }
}

/// The digest of `image`'s manifest (`HEAD /v2/<repository>/manifests/<reference>`, the host
/// mapped by `registries`); `Ok(None)` when the registry says it does not exist.
pub(crate) async fn manifest_digest(
    registries: &RegistryMap,
    image: &ImageRef,
) -> Result<Option<String>, String> {
    let target = registries.resolve(image);
    let scheme = if registries.is_insecure() {
        "http"
    } else {
        "https"
    };
    let url = format!(
        "{scheme}://{}/v2/{}/manifests/{}",
        target.host, target.repository, target.reference
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let ask = |head: bool| {
        let request = if head {
            client.head(&url)
        } else {
            client.get(&url)
        };
        request
            .header(reqwest::header::ACCEPT, MANIFEST_TYPES)
            .send()
    };
    let response = ask(true)
        .await
        .map_err(|e| format!("cannot reach the registry at `{url}`: {e}"))?;
    match response.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        401 | 403 => {
            return Err(format!(
                "the registry at `{url}` asks for credentials ({}); local imports read \
                 registries without credentials",
                response.status()
            ));
        }
        _ => {
            return Err(format!(
                "the registry at `{url}` answered {}",
                response.status()
            ));
        }
    }
    let header = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(digest) = header {
        return Ok(Some(digest));
    }
    if image.is_digest() {
        return Ok(Some(image.reference.clone()));
    }
    let body = ask(false)
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("cannot read the manifest at `{url}`: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("cannot read the manifest at `{url}`: {e}"))?;
    Ok(Some(format!("sha256:{}", hex(&Sha256::digest(&body)))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn image_urls_read_and_map() {
        let ecr = "111111111111.dkr.ecr.us-east-1.amazonaws.com/api-web:abc123";
        let image = ImageRef::parse(ecr).unwrap();
        assert_eq!(image.host, "111111111111.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(
            (image.repository.as_str(), image.reference.as_str()),
            ("api-web", "abc123")
        );
        assert_eq!(image.to_string(), ecr);
        let local = ImageRef::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(
            (local.repository.as_str(), local.reference.as_str()),
            ("a/b", "latest")
        );
        let pinned = ImageRef::parse("localhost/a@sha256:00").unwrap();
        assert!(pinned.is_digest());
        assert_eq!(pinned.to_string(), "localhost/a@sha256:00");
        assert!(ImageRef::parse("ubuntu:22.04").is_err());
        let map = RegistryMap::new().map("*", "127.0.0.1:5000").insecure(true);
        assert_eq!(
            map.resolve(&image).to_string(),
            "127.0.0.1:5000/api-web:abc123"
        );
        let one = RegistryMap::new().map("a.example", "b.example");
        assert_eq!(one.host("a.example"), "b.example");
        assert_eq!(one.host("c.example"), "c.example");
    }
}

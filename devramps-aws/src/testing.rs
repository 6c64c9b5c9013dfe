//! Test support (feature `testing`): a Debian `docker-registry` started on a free port of
//! 127.0.0.1, and a small image pushed into a registry over the OCI distribution API, for
//! tests, benches and examples that mirror images without a real ECR.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use devramps_core::{Error, Result};
use sha2::{Digest, Sha256};

/// The docker-registry binary Debian's `docker-registry` package installs.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// How to get the registry, said when it is missing.
pub const HOW_TO_INSTALL: &str = "install Debian's docker-registry (`apt-get install \
     docker-registry`, or `. scripts/lib/oci.sh; install_oci_tools` from the repository's root)";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A docker-registry serving plain HTTP on 127.0.0.1, its storage in a folder of its own;
/// stopped (and its folder removed) when dropped.
#[derive(Debug)]
pub struct LocalRegistry {
    child: Child,
    host: String,
    dir: PathBuf,
}

impl LocalRegistry {
    /// Starts a registry and waits (up to 10 s) until it answers.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the binary is missing (saying how to install it), cannot start
    /// or does not answer.
    pub async fn start() -> Result<LocalRegistry> {
        let failed = |message: String| Error::backend("docker-registry", "start", message);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| failed(format!("no free port: {e}")))?
            .port();
        let dir =
            std::env::temp_dir().join(format!("devramps-registry-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .map_err(|e| failed(format!("{}: {e}", config.display())))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(format!("{REGISTRY_BINARY}: {e}; {HOW_TO_INSTALL}")))?;
        let registry = LocalRegistry {
            child,
            host: format!("127.0.0.1:{port}"),
            dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("http://{}/v2/", registry.host))
                .send()
                .await
                .is_ok()
            {
                return Ok(registry);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(failed(format!(
            "it did not answer on {} within 10 s",
            registry.host
        )))
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `len` pseudo-random bytes (xorshift), different for each seed: layers and bundles that do
/// not compress, the same in every run.
pub fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn push_failed(host: &str, repository: &str, message: impl Into<String>) -> Error {
    Error::backend("registry", format!("push to {host}/{repository}"), message)
}

/// Uploads a blob to a plain-HTTP registry (POST, then PUT with its digest); returns its
/// digest.
///
/// # Errors
///
/// [`Error::Backend`] when the registry refuses or cannot be reached.
pub async fn push_blob(host: &str, repository: &str, bytes: &[u8]) -> Result<String> {
    let client = reqwest::Client::new();
    let digest = sha256(bytes);
    let fail = |e: String| push_failed(host, repository, e);
    let started = client
        .post(format!("http://{host}/v2/{repository}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let location = started
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| fail(format!("{} without a Location", started.status())))?;
    let location = if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("http://{host}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let done = client
        .put(format!("{location}{sep}digest={digest}"))
        .body(bytes.to_vec())
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if done.status() != 201 {
        return Err(fail(format!("upload of {digest}: {}", done.status())));
    }
    Ok(digest)
}

/// An image pushed by [`push_image`].
#[derive(Clone, Debug)]
pub struct PushedImage {
    /// The manifest's digest (`sha256:<hex>`).
    pub digest: String,
    /// The manifest, as pushed.
    pub manifest: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
}

/// Pushes a single-platform OCI image whose layers are `layers` to `host/repository:tag` on a
/// plain-HTTP registry; returns its manifest and digest.
///
/// # Errors
///
/// [`Error::Backend`] when the registry refuses or cannot be reached.
pub async fn push_image(
    host: &str,
    repository: &str,
    tag: &str,
    layers: &[Vec<u8>],
) -> Result<PushedImage> {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] },
        "config": { "Labels": { "tag": tag } },
    }))
    .map_err(|e| push_failed(host, repository, e.to_string()))?;
    let config_digest = push_blob(host, repository, &config).await?;
    let mut descriptors = Vec::new();
    for layer in layers {
        let digest = push_blob(host, repository, layer).await?;
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": layer.len(),
        }));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .map_err(|e| push_failed(host, repository, e.to_string()))?;
    let response = reqwest::Client::new()
        .put(format!("http://{host}/v2/{repository}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .map_err(|e| push_failed(host, repository, e.to_string()))?;
    if response.status() != 201 {
        return Err(push_failed(
            host,
            repository,
            format!("manifest {tag}: {}", response.status()),
        ));
    }
    Ok(PushedImage {
        digest: sha256(&manifest),
        manifest,
        media_type: OCI_MANIFEST,
    })
}

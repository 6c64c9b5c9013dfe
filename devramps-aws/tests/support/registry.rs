//! Loopback OCI registries for the mirror tests: a `docker-registry` on a free port (storage in
//! a temporary folder, killed when dropped) and images written over the distribution API
//! (random layers, a config, an OCI manifest), shared by the mirror tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::process::Command;

use devramps_aws::testing::LocalRegistry;
pub use devramps_aws::testing::random;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A second registry on a free port (`devramps_aws::testing::LocalRegistry`), storage in a
/// folder of its own; stopped when dropped.
pub struct SecondRegistry {
    pub host: String,
    _registry: LocalRegistry,
}

impl SecondRegistry {
    pub async fn start() -> SecondRegistry {
        let registry = LocalRegistry::start()
            .await
            .unwrap_or_else(|e| panic!("a second docker-registry: {e}"));
        SecondRegistry {
            host: registry.host().to_owned(),
            _registry: registry,
        }
    }
}

pub use devramps_aws::testing::sha256;

/// Uploads a blob (POST, then PUT with its digest); returns its digest.
pub async fn push_blob(host: &str, repo: &str, bytes: &[u8]) -> String {
    let client = reqwest::Client::new();
    let digest = sha256(bytes);
    let response = client
        .post(format!("http://{host}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("start an upload");
    assert_eq!(response.status(), 202, "start an upload to {host}/{repo}");
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{host}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let response = client
        .put(format!("{location}{sep}digest={digest}"))
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201, "upload {digest} to {host}/{repo}");
    digest
}

pub async fn put_manifest(
    host: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    let response = reqwest::Client::new()
        .put(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("put a manifest");
    assert_eq!(
        response.status(),
        201,
        "put manifest {reference} to {host}/{repo}: {:?}",
        response.text().await
    );
    sha256(bytes)
}

/// An OCI image manifest over a config and `layers` (each `(bytes, digest)`).
pub fn manifest(config: &(Vec<u8>, String), layers: &[(Vec<u8>, String)]) -> Vec<u8> {
    let descriptor = |(bytes, digest): &(Vec<u8>, String), media: &str| serde_json::json!({ "mediaType": media, "digest": digest, "size": bytes.len() });
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config, "application/vnd.oci.image.config.v1+json"),
        "layers": layers.iter().map(|l| descriptor(l, "application/vnd.oci.image.layer.v1.tar")).collect::<Vec<_>>(),
    }))
    .expect("json")
}

pub fn config(arch: &str, seed: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux", "created": format!("2026-01-01T00:00:{:02}Z", seed % 60),
        "rootfs": { "type": "layers", "diff_ids": [] },
    }))
    .expect("json")
}

/// An image of `layers` random layers of `size` bytes in `host/repo:tag`: (manifest digest,
/// blob digests, config first).
pub async fn make_image(
    host: &str,
    repo: &str,
    tag: &str,
    seed: u64,
    layers: usize,
    size: usize,
) -> (String, Vec<String>) {
    let config = config("amd64", seed);
    let config = (config.clone(), push_blob(host, repo, &config).await);
    let mut blobs = vec![config.1.clone()];
    let mut descriptors = Vec::new();
    for i in 0..layers {
        let bytes = random(seed * 1000 + i as u64, size);
        let digest = push_blob(host, repo, &bytes).await;
        blobs.push(digest.clone());
        descriptors.push((bytes, digest));
    }
    let digest = put_manifest(
        host,
        repo,
        tag,
        OCI_MANIFEST,
        &manifest(&config, &descriptors),
    )
    .await;
    (digest, blobs)
}

/// The digest `host/repo:reference` names (HEAD), if any.
pub async fn head(host: &str, repo: &str, reference: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .head(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .expect("head a manifest");
    response.status().is_success().then(|| {
        response.headers()["docker-content-digest"]
            .to_str()
            .expect("ascii")
            .to_owned()
    })
}

/// The raw manifest `host/repo:reference`.
pub async fn get_manifest(host: &str, repo: &str, reference: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .expect("get a manifest");
    assert!(
        response.status().is_success(),
        "get {host}/{repo}:{reference}"
    );
    response.bytes().await.expect("body").to_vec()
}

/// The digest skopeo sees (sha256 of `skopeo inspect --raw`), when skopeo is installed.
pub fn skopeo_digest(image: &str) -> Option<String> {
    let output = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(sha256(&output.stdout))
}

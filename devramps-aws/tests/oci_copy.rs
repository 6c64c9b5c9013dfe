//! `OciCopier` against real registries: Debian's `docker-registry` (the CNCF distribution
//! registry) at `DEVRAMPS_TEST_REGISTRY`, and a second one each test starts itself on a free
//! port (two registries = two accounts). Images are written over the distribution API (random
//! layers, a config, OCI manifests, a multi-arch index); no docker daemon. What this proves:
//! the blob and manifest paths of a real registry (uploads, mounts, digests checked by the
//! registry itself, indexes). A blob whose content does not match its digest, and a registry
//! that drops the connection mid-blob, come from a tiny fake registry on a loopback socket,
//! since a real one refuses to store such blobs.

#[path = "support/registry.rs"]
mod registry;

use std::sync::atomic::{AtomicU64, Ordering};

use devramps_aws::mirror::{ImageRef, OciCopier, OciCopierOptions};
use devramps_core::Error;
use registry::{
    OCI_INDEX, OCI_MANIFEST, SecondRegistry, config, head, make_image, manifest, push_blob,
    put_manifest, random, sha256, skopeo_digest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn registry() -> String {
    std::env::var("DEVRAMPS_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!(
            "DEVRAMPS_TEST_REGISTRY is not set: start Debian's docker-registry with \
             `. scripts/lib/oci.sh; install_oci_tools; start_registry` (from the repository's root) \
             in the shell that runs the tests"
        )
    })
}

/// A repository name no other test (or earlier run) uses.
fn repo(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("test/{name}-{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn copier(immutable: bool) -> OciCopier {
    let mut options = OciCopierOptions::default();
    options.plain_http = true;
    options.immutable = immutable;
    OciCopier::new(options).expect("a copier")
}

async fn blob_present(host: &str, repo: &str, digest: &str) -> bool {
    reqwest::Client::new()
        .head(format!("http://{host}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("head a blob")
        .status()
        .is_success()
}

#[tokio::test]
async fn copies_an_image_across_registries_and_verifies_its_digest() {
    let (src_host, second) = (registry(), SecondRegistry::start().await);
    let src_repo = repo("across");
    let (digest, blobs) = make_image(&src_host, &src_repo, "v1", 1, 3, 200_000).await;
    let source = ImageRef::new(&src_host, &src_repo, "v1");
    let destination = ImageRef::new(&second.host, "stage/api", "release-1");

    let report = copier(false)
        .copy(&source, &destination)
        .await
        .expect("copy");

    assert_eq!(report.digest, digest);
    assert_eq!(
        (
            report.blobs_copied,
            report.blobs_skipped,
            report.blobs_mounted
        ),
        (4, 0, 0)
    );
    assert_eq!(report.manifests_put, 1);
    assert!(report.bytes_copied >= 600_000, "{report:?}");
    assert_eq!(
        head(&second.host, "stage/api", "release-1")
            .await
            .as_deref(),
        Some(digest.as_str())
    );
    for blob in &blobs {
        assert!(
            blob_present(&second.host, "stage/api", blob).await,
            "{blob} copied"
        );
    }
    if let Some(seen) = skopeo_digest(&destination.to_string()) {
        assert_eq!(seen, digest, "skopeo sees the same digest");
    }

    // The same copy again, and a copy by digest, do nothing but look.
    let again = copier(false)
        .copy(&source, &destination)
        .await
        .expect("copy again");
    assert_eq!(
        (
            again.blobs_copied,
            again.blobs_skipped,
            again.manifests_put,
            again.bytes_copied
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        again.requests, 2,
        "GET the source manifest, HEAD the destination tag"
    );
    let by_digest = ImageRef::new(&src_host, &src_repo, &digest);
    let again = copier(true)
        .copy(&by_digest, &destination)
        .await
        .expect("copy by digest");
    assert_eq!((again.blobs_copied, again.requests), (0, 2));
}

#[tokio::test]
async fn copies_within_a_registry_by_mounting_blobs() {
    let host = registry();
    let (src_repo, dst_repo) = (repo("mount-src"), repo("mount-dst"));
    let (digest, _) = make_image(&host, &src_repo, "v1", 2, 2, 50_000).await;
    let report = copier(false)
        .copy(
            &ImageRef::new(&host, &src_repo, "v1"),
            &ImageRef::new(&host, &dst_repo, "v1"),
        )
        .await
        .expect("copy");
    assert_eq!(
        (
            report.blobs_mounted,
            report.blobs_copied,
            report.bytes_copied
        ),
        (3, 0, 0)
    );
    assert_eq!(head(&host, &dst_repo, "v1").await, Some(digest));
}

#[tokio::test]
async fn copies_a_multi_arch_index_children_first() {
    let (src_host, second) = (registry(), SecondRegistry::start().await);
    let src_repo = repo("index");
    // Two platforms sharing one layer, each with a layer of its own.
    let shared = random(30, 40_000);
    let shared = (
        shared.clone(),
        push_blob(&src_host, &src_repo, &shared).await,
    );
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let config = config(arch, 31 + i as u64);
        let config = (
            config.clone(),
            push_blob(&src_host, &src_repo, &config).await,
        );
        let own = random(40 + i as u64, 30_000);
        let own = (own.clone(), push_blob(&src_host, &src_repo, &own).await);
        let bytes = manifest(&config, &[shared.clone(), own]);
        let digest =
            put_manifest(&src_host, &src_repo, &sha256(&bytes), OCI_MANIFEST, &bytes).await;
        children.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": bytes.len(),
            "platform": { "architecture": arch, "os": "linux" },
        }));
    }
    let index = serde_json::to_vec(
        &serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children }),
    )
    .expect("json");
    let digest = put_manifest(&src_host, &src_repo, "multi", OCI_INDEX, &index).await;

    let destination = ImageRef::new(&second.host, "stage/multi", "v1");
    let report = copier(false)
        .copy(&ImageRef::new(&src_host, &src_repo, "multi"), &destination)
        .await
        .expect("copy");
    assert_eq!(report.digest, digest);
    assert_eq!(report.manifests_put, 3, "two children and the index");
    assert_eq!(
        report.blobs_copied, 5,
        "two configs, two own layers, the shared one once"
    );
    assert_eq!(
        head(&second.host, "stage/multi", "v1").await.as_deref(),
        Some(digest.as_str())
    );
    for child in &children {
        let child = child["digest"].as_str().expect("digest");
        assert_eq!(
            head(&second.host, "stage/multi", child).await.as_deref(),
            Some(child)
        );
    }
    if let Some(seen) = skopeo_digest(&destination.to_string()) {
        assert_eq!(seen, digest, "skopeo sees the same index");
    }
    let again = copier(true)
        .copy(&ImageRef::new(&src_host, &src_repo, "multi"), &destination)
        .await
        .expect("again");
    assert_eq!(
        (again.blobs_copied, again.manifests_put, again.requests),
        (0, 0, 2)
    );
}

#[tokio::test]
async fn an_immutable_tag_naming_another_digest_fails_and_a_mutable_one_moves() {
    let host = registry();
    let (src_repo, dst_repo) = (repo("immutable-src"), repo("immutable-dst"));
    let (digest, _) = make_image(&host, &src_repo, "v1", 5, 1, 1_000).await;
    let (other, _) = make_image(&host, &dst_repo, "v1", 6, 1, 1_000).await;
    let (source, destination) = (
        ImageRef::new(&host, &src_repo, "v1"),
        ImageRef::new(&host, &dst_repo, "v1"),
    );

    let error = copier(true)
        .copy(&source, &destination)
        .await
        .expect_err("immutable tag elsewhere");
    let message = error.to_string();
    assert!(matches!(error, Error::Conflict { .. }), "{message}");
    for part in ["`v1`", &dst_repo, &digest, &other] {
        assert!(message.contains(part), "{message} names {part}");
    }
    assert_eq!(
        head(&host, &dst_repo, "v1").await,
        Some(other),
        "the tag did not move"
    );

    copier(false)
        .copy(&source, &destination)
        .await
        .expect("a mutable tag moves");
    assert_eq!(head(&host, &dst_repo, "v1").await, Some(digest));
}

#[tokio::test]
async fn a_retried_copy_skips_the_blobs_already_there() {
    let (src_host, second) = (registry(), SecondRegistry::start().await);
    let src_repo = repo("resume");
    let (digest, _) = make_image(&src_host, &src_repo, "v1", 7, 4, 20_000).await;
    // An earlier, interrupted copy left the config and two layers.
    for i in 0..2 {
        push_blob(&second.host, "stage/resume", &random(7 * 1000 + i, 20_000)).await;
    }
    push_blob(&second.host, "stage/resume", &config("amd64", 7)).await;

    let report = copier(false)
        .copy(
            &ImageRef::new(&src_host, &src_repo, "v1"),
            &ImageRef::new(&second.host, "stage/resume", "v1"),
        )
        .await
        .expect("copy");
    assert_eq!(
        (
            report.blobs_skipped,
            report.blobs_copied,
            report.bytes_copied
        ),
        (3, 2, 40_000)
    );
    assert_eq!(report.digest, digest);
}

#[tokio::test]
async fn a_missing_source_is_not_found_naming_it() {
    let host = registry();
    let missing = repo("missing");
    let error = copier(false)
        .copy(
            &ImageRef::new(&host, &missing, "v1"),
            &ImageRef::new(&host, repo("nowhere"), "v1"),
        )
        .await
        .expect_err("no source");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert!(error.to_string().contains(&missing), "{error}");
}

/// A fake registry serving one image whose layer is `served` though its manifest names the
/// digest of `named`; `truncate` sends half the layer and closes the connection.
async fn fake_source(named: Vec<u8>, served: Vec<u8>, truncate: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("address").to_string();
    let config = config("amd64", 9);
    let layer_digest = sha256(&named);
    let manifest = manifest(
        &(config.clone(), sha256(&config)),
        &[(named, layer_digest.clone())],
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (config, manifest, served, layer_digest) = (
                config.clone(),
                manifest.clone(),
                served.clone(),
                layer_digest.clone(),
            );
            tokio::spawn(async move {
                let mut buffer = vec![0; 8192];
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buffer[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (content_type, body) = if path.contains("/manifests/") {
                    (OCI_MANIFEST, manifest)
                } else if path.ends_with(&layer_digest) {
                    ("application/octet-stream", served)
                } else {
                    ("application/octet-stream", config)
                };
                let digest = if path.contains("/manifests/") {
                    sha256(&body)
                } else {
                    String::new()
                };
                let header = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ndocker-content-digest: {digest}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(header.as_bytes()).await;
                let cut = if truncate && path.ends_with(&layer_digest) {
                    body.len() / 2
                } else {
                    body.len()
                };
                let _ = socket.write_all(&body[..cut]).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    host
}

#[tokio::test]
async fn a_blob_whose_content_does_not_match_its_digest_fails_naming_both() {
    let second = SecondRegistry::start().await;
    let (named, served) = (random(50, 10_000), random(51, 10_000));
    let (expected, got) = (sha256(&named), sha256(&served));
    let fake = fake_source(named, served, false).await;
    let error = copier(false)
        .copy(
            &ImageRef::new(&fake, "root/api", "v1"),
            &ImageRef::new(&second.host, "stage/bad", "v1"),
        )
        .await
        .expect_err("digest mismatch");
    let message = error.to_string();
    for part in [&expected, &got, &fake, "root/api", "digest mismatch"] {
        assert!(message.contains(part), "{message} names {part}");
    }
    assert_eq!(
        head(&second.host, "stage/bad", "v1").await,
        None,
        "nothing tagged"
    );
    assert!(!blob_present(&second.host, "stage/bad", &expected).await);
}

#[tokio::test]
async fn a_connection_dropped_mid_blob_is_an_error_of_that_blob() {
    let second = SecondRegistry::start().await;
    let layer = random(60, 100_000);
    let digest = sha256(&layer);
    let fake = fake_source(layer.clone(), layer, true).await;
    let destination = ImageRef::new(&second.host, "stage/dropped", "v1");
    let error = copier(false)
        .copy(&ImageRef::new(&fake, "root/api", "v1"), &destination)
        .await
        .expect_err("dropped");
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains(&digest),
        "{error} names the blob"
    );
    assert_eq!(
        head(&second.host, "stage/dropped", "v1").await,
        None,
        "nothing tagged"
    );

    // The retry (the registry answers in full now) skips the config copied before the drop.
    let whole = fake_source(random(60, 100_000), random(60, 100_000), false).await;
    let report = copier(false)
        .copy(&ImageRef::new(&whole, "root/api", "v1"), &destination)
        .await
        .expect("the retry");
    assert_eq!(
        (
            report.blobs_skipped,
            report.blobs_copied,
            report.bytes_copied
        ),
        (1, 1, 100_000)
    );
    assert_eq!(
        head(&second.host, "stage/dropped", "v1").await,
        Some(report.digest)
    );
}

#[tokio::test]
async fn a_large_blob_not_matching_its_digest_is_never_committed() {
    // Streamed in many chunks: all but the last reach the destination before the digest is
    // known; the upload then fails instead of ending, and the registry commits nothing.
    let second = SecondRegistry::start().await;
    let (named, served) = (random(70, 4_000_000), random(71, 4_000_000));
    let (expected, got) = (sha256(&named), sha256(&served));
    let fake = fake_source(named, served, false).await;
    let error = copier(false)
        .copy(
            &ImageRef::new(&fake, "root/api", "v1"),
            &ImageRef::new(&second.host, "stage/large", "v1"),
        )
        .await
        .expect_err("digest mismatch");
    let message = error.to_string();
    assert!(matches!(error, Error::Backend { .. }), "{message}");
    for part in [&expected, &got, &fake, "root/api"] {
        assert!(message.contains(part), "{message} names {part}");
    }
    assert!(!blob_present(&second.host, "stage/large", &expected).await);
    assert!(!blob_present(&second.host, "stage/large", &got).await);
    assert_eq!(head(&second.host, "stage/large", "v1").await, None);
}

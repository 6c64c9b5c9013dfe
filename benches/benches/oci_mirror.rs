//! What mirroring an image costs (issue 12): `OciCopier` copying a 5-layer, ~50 MB image from
//! one Debian `docker-registry` to another (both started here, on loopback, storage in
//! temporary folders), against `skopeo copy` of the same image between the same two; and a
//! second mirror of the same image (nothing to copy). Every first copy goes to a freshly
//! started destination registry (started outside the timing), so neither tool finds a blob
//! already there or mounts one.
//!
//! Besides criterion's figures it prints the medians and the ratios OciCopier / skopeo (goal:
//! at most 1.2) and second / first mirror (goal: under 5%).
//!
//! Run with `cargo bench -p devramps-benches --bench oci_mirror` (needs `/usr/bin/docker-registry`
//! and `skopeo`: `. scripts/lib/oci.sh; install_oci_tools`); `cargo test --benches` runs each
//! once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use devramps_aws::mirror::{ImageRef, OciCopier, OciCopierOptions};
use sha2::{Digest, Sha256};

/// Layers of the image, and the size of each.
const LAYERS: usize = 5;
const LAYER_SIZE: usize = 10 << 20;

/// A `docker-registry` on a free loopback port; killed and its storage removed when dropped.
struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write the registry's config");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/docker-registry (`. scripts/lib/oci.sh; install_oci_tools`)");
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&registry.host).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not answer on {}", registry.host);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Pseudo-random bytes (xorshift): layers that do not compress.
fn random(seed: u64, len: usize) -> Vec<u8> {
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

async fn push_blob(client: &reqwest::Client, host: &str, repo: &str, bytes: Vec<u8>) -> String {
    let digest = sha256(&bytes);
    let response = client
        .post(format!("http://{host}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("start an upload");
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
    let status = client
        .put(format!("{location}{sep}digest={digest}"))
        .body(bytes)
        .send()
        .await
        .expect("upload")
        .status();
    assert_eq!(status, 201, "upload {digest}");
    digest
}

/// Writes the image (`LAYERS` random layers, a config, an OCI manifest) as `host/root/api:v1`.
async fn make_image(host: &str) {
    let client = reqwest::Client::new();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = push_blob(&client, host, "root/api", config.to_vec()).await;
    let mut layers = Vec::new();
    for i in 0..LAYERS {
        let digest = push_blob(&client, host, "root/api", random(i as u64 + 1, LAYER_SIZE)).await;
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": LAYER_SIZE,
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": layers,
    });
    let status = client
        .put(format!("http://{host}/v2/root/api/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).expect("json"))
        .send()
        .await
        .expect("put the manifest")
        .status();
    assert_eq!(status, 201, "put the manifest");
}

fn skopeo_copy(source: &str, destination: &str) {
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{source}/root/api:v1"),
            &format!("docker://{destination}/stage/api:v1"),
        ])
        .status()
        .expect("skopeo runs (`. scripts/lib/oci.sh; install_oci_tools`)");
    assert!(status.success(), "skopeo copy");
}

/// Times `copy` into a fresh destination registry, `iters` times (the starts not timed).
fn timed_fresh(iters: u64, mut copy: impl FnMut(&str)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let destination = Registry::start();
        let t = Instant::now();
        copy(&destination.host);
        total += t.elapsed();
    }
    total
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let source = Registry::start();
    rt.block_on(make_image(&source.host));
    let mut options = OciCopierOptions::default();
    options.plain_http = true;
    let copier = OciCopier::new(options).expect("a copier");
    let from = ImageRef::new(&source.host, "root/api", "v1");
    let ours = |host: &str| {
        let report = rt
            .block_on(copier.copy(&from, &ImageRef::new(host, "stage/api", "v1")))
            .expect("copy");
        assert_eq!(report.blobs_copied, LAYERS as u64 + 1);
    };
    let second = Registry::start();
    ours(&second.host);
    let again = || {
        let report = rt
            .block_on(copier.copy(&from, &ImageRef::new(&second.host, "stage/api", "v1")))
            .expect("copy again");
        assert_eq!(report.blobs_copied, 0);
    };

    if devramps_benches::measuring() {
        let runs = 7;
        let one = |f: &mut dyn FnMut(&str)| timed_fresh(1, f);
        let ours_t = median((0..runs).map(|_| one(&mut |h| ours(h))).collect());
        let skopeo_t = median(
            (0..runs)
                .map(|_| one(&mut |h| skopeo_copy(&source.host, h)))
                .collect(),
        );
        let again_t = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    again();
                    t.elapsed()
                })
                .collect(),
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "oci mirror medians ({LAYERS} layers, {} MB): OciCopier {:.1} ms; skopeo copy {:.1} ms; \
             OciCopier / skopeo = {:.2}x (goal <= 1.2x); second mirror {:.2} ms = {:.2}% of the \
             first (goal < 5%)",
            (LAYERS * LAYER_SIZE) >> 20,
            ms(ours_t),
            ms(skopeo_t),
            ours_t.as_secs_f64() / skopeo_t.as_secs_f64(),
            ms(again_t),
            100.0 * again_t.as_secs_f64() / ours_t.as_secs_f64(),
        );
    }

    let mut group = c.benchmark_group("oci_mirror");
    group.bench_function("OciCopier, first mirror", |b| {
        b.iter_custom(|iters| timed_fresh(iters, |h| ours(h)))
    });
    group.bench_function("skopeo copy, first mirror", |b| {
        b.iter_custom(|iters| timed_fresh(iters, |h| skopeo_copy(&source.host, h)))
    });
    group.bench_function("OciCopier, second mirror", |b| b.iter(again));
    group.finish();
}

criterion_group! {
    name = benches;
    config = devramps_benches::short_criterion();
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

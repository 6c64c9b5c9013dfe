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

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use devramps_aws::mirror::{ImageRef, OciCopier, OciCopierOptions};
use devramps_aws::testing::{LocalRegistry, push_image, random};

/// Layers of the image, and the size of each.
const LAYERS: usize = 5;
const LAYER_SIZE: usize = 10 << 20;

/// Writes the image (`LAYERS` random layers, a config, an OCI manifest) as `host/root/api:v1`.
async fn make_image(host: &str) {
    let layers: Vec<Vec<u8>> = (0..LAYERS)
        .map(|i| random(i as u64 + 1, LAYER_SIZE))
        .collect();
    push_image(host, "root/api", "v1", &layers)
        .await
        .expect("push the image");
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
fn timed_fresh(
    iters: u64,
    start: &dyn Fn() -> LocalRegistry,
    mut copy: impl FnMut(&str),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let destination = start();
        let t = Instant::now();
        copy(destination.host());
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
    let start = || {
        rt.block_on(LocalRegistry::start())
            .expect("docker-registry starts (`. scripts/lib/oci.sh; install_oci_tools`)")
    };
    let source = start();
    let source_host = source.host().to_owned();
    rt.block_on(make_image(&source_host));
    let mut options = OciCopierOptions::default();
    options.plain_http = true;
    let copier = OciCopier::new(options).expect("a copier");
    let from = ImageRef::new(&source_host, "root/api", "v1");
    let ours = |host: &str| {
        let report = rt
            .block_on(copier.copy(&from, &ImageRef::new(host, "stage/api", "v1")))
            .expect("copy");
        assert_eq!(report.blobs_copied, LAYERS as u64 + 1);
    };
    let second = start();
    ours(second.host());
    let again = || {
        let report = rt
            .block_on(copier.copy(&from, &ImageRef::new(second.host(), "stage/api", "v1")))
            .expect("copy again");
        assert_eq!(report.blobs_copied, 0);
    };

    if devramps_benches::measuring() {
        let runs = 7;
        let one = |f: &mut dyn FnMut(&str)| timed_fresh(1, &start, f);
        let ours_t = median((0..runs).map(|_| one(&mut |h| ours(h))).collect());
        let skopeo_t = median(
            (0..runs)
                .map(|_| one(&mut |h| skopeo_copy(&source_host, h)))
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
        b.iter_custom(|iters| timed_fresh(iters, &start, |h| ours(h)))
    });
    group.bench_function("skopeo copy, first mirror", |b| {
        b.iter_custom(|iters| timed_fresh(iters, &start, |h| skopeo_copy(&source_host, h)))
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

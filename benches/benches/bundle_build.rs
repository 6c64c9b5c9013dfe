//! What a bundle build costs over its own commands (issue 14): a `DEVRAMPS:BUNDLE:BUILD` whose
//! `build_commands` are `tar cf out.tar --exclude=out.tar .`, run by `BundleBuilder` (a fresh
//! export of the commit, the command in its own process group with its output captured, the
//! file hashed and stored, the checkout removed), against the same `sh -c 'tar cf ...'` run by
//! hand in a tree exported once. The repository holds 200 files of about 25 KiB (5 MB).
//!
//! Besides criterion's figures it prints both medians and the ratio builder / tar by hand
//! (goal: at most 2).
//!
//! Run with `cargo bench -p devramps-benches --bench bundle_build`; `cargo test --benches` runs
//! each once.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use devramps_core::backend::{ExecutionKey, Outcome, Runner, Unit};
use devramps_core::exec::BuildRequest;
use devramps_core::expr::FinalValue;
use devramps_core::pipeline::ArtifactType;
use devramps_git::testing::TestRepo;
use devramps_local::build::{ArtifactStore, BundleBuilder, LocalArtifactStore};

/// The build commands, the same by hand.
const TAR: &str = "tar cf out.tar --exclude=out.tar .";

/// Distinct attempts, so every build is a new execution.
static NEXT: AtomicU32 = AtomicU32::new(1);

/// A repository of 200 files of 25 KiB of varied bytes, in 10 folders.
fn repo() -> TestRepo {
    let mut repo = TestRepo::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..200 {
        let mut text = String::with_capacity(25 * 1024);
        while text.len() < 25 * 1024 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(&format!("{state:016x} "));
        }
        repo.write(&format!("src/m{}/file{i}.txt", i % 10), &text);
    }
    repo.commit("tree");
    repo
}

/// The tar by hand, in an exported tree.
fn tar_by_hand(tree: &Path) {
    let _ = std::fs::remove_file(tree.join("out.tar"));
    let status = Command::new("sh")
        .args(["-c", TAR])
        .current_dir(tree)
        .status()
        .expect("sh runs");
    assert!(status.success());
}

/// One build: start, wait, logs.
async fn one_build(builder: &BundleBuilder, commit: &str) {
    let attempt = NEXT.fetch_add(1, Ordering::Relaxed);
    let key = ExecutionKey::new("bench", 1, "", attempt, Unit::build("web"));
    let params = FinalValue::Plain(serde_json::json!({"params": {
        "build_commands": TAR,
        "file_path": "/out.tar",
    }}));
    let request = BuildRequest::new(
        key.clone(),
        "web",
        ArtifactType::BundleBuild,
        commit,
        params,
    );
    builder.start(request).await.expect("start");
    let outcome = builder.wait(&key).await.expect("wait");
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let repo = repo();
    let commit = repo.c(1).to_owned();
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let tree = scratch.path().join("tree");
    repo.source().export(&commit, &tree).expect("export");
    let store = Arc::new(LocalArtifactStore::new(scratch.path().join("store")));
    let builder = BundleBuilder::new(Arc::new(repo.source()), scratch.path().join("state"), store);

    if devramps_benches::measuring() {
        let runs = 31;
        let by_hand = median(|| tar_by_hand(&tree), runs);
        let built = median(|| rt.block_on(one_build(&builder, &commit)), runs);
        // Where the difference goes: the export of the commit and the store's put alone.
        let exports = scratch.path().join("exports");
        let export = median(
            || {
                let _ = std::fs::remove_dir_all(&exports);
                repo.source().export(&commit, &exports).expect("export");
            },
            runs,
        );
        tar_by_hand(&tree);
        let put_store = LocalArtifactStore::new(scratch.path().join("put-store"));
        let at = devramps_core::expr::ArtifactLocation {
            s3_bucket: "b".into(),
            s3_key: "k/out.tar".into(),
            ..Default::default()
        };
        let put = median(
            || {
                rt.block_on(put_store.put(&tree.join("out.tar"), &at))
                    .expect("put");
            },
            runs,
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "bundle build medians: tar by hand {:.1} ms; BundleBuilder {:.1} ms; builder / tar \
             = {:.2}x (goal <= 2x); of which export alone {:.1} ms, store put alone {:.1} ms",
            ms(by_hand),
            ms(built),
            built.as_secs_f64() / by_hand.as_secs_f64(),
            ms(export),
            ms(put),
        );
    }

    let mut group = c.benchmark_group("bundle_build");
    group.bench_function("tar by hand", |b| b.iter(|| tar_by_hand(&tree)));
    group.bench_function("BundleBuilder, tar", |b| {
        b.iter(|| rt.block_on(one_build(&builder, &commit)))
    });
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

//! Bundle builds and imports with real git repositories in temporary folders and real
//! processes (`devramps_local::build`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use devramps_core::backend::Runner;
use devramps_core::exec::{BuildRequest, ExecutionKey, Outcome, Outputs, Unit};
use devramps_core::expr::{ArtifactLocation, FinalValue, SecretString};
use devramps_core::pipeline::ArtifactType;
use devramps_git::testing::TestRepo;
use devramps_local::build::{
    ArtifactStore, BuildOptions, Builds, BundleBuilder, BundleImporter, DockerOptions,
    LocalArtifactStore,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A repository of one commit: a README and a source file.
fn repo() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write("README.md", "v1\n")
        .write("src/main.txt", "fn main() {}\n");
    repo.commit("one");
    repo
}

struct Setup {
    repo: TestRepo,
    state: tempfile::TempDir,
    store: Arc<LocalArtifactStore>,
    _store_dir: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let store_dir = tempfile::tempdir().expect("temp dir");
        Setup {
            repo: repo(),
            state: tempfile::tempdir().expect("temp dir"),
            store: Arc::new(LocalArtifactStore::new(store_dir.path())),
            _store_dir: store_dir,
            scratch: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn builder(&self) -> BundleBuilder {
        BundleBuilder::new(
            Arc::new(self.repo.source()),
            self.state.path(),
            self.store.clone(),
        )
    }

    fn scratch(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    fn request(&self, attempt: u32, params: Value) -> BuildRequest {
        self.request_with(attempt, FinalValue::Plain(json!({ "params": params })))
    }

    fn request_with(&self, attempt: u32, params: FinalValue) -> BuildRequest {
        let key = ExecutionKey::new("api", 1, "", attempt, Unit::build("web"));
        BuildRequest::new(
            key,
            "web",
            ArtifactType::BundleBuild,
            self.repo.c(1),
            params,
        )
        .with_destination(ArtifactLocation {
            s3_url: format!("s3://000000000000-api-web/web/{}/web.zip", self.repo.c(1)),
            s3_bucket: "000000000000-api-web".into(),
            s3_key: format!("web/{}/web.zip", self.repo.c(1)),
            ..ArtifactLocation::default()
        })
    }

    /// The build folders under the state directory.
    fn folders(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.state.path().join("builds"))
            .map(|d| d.map(|e| e.expect("entry").path()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

async fn run<R: Runner<BuildRequest>>(runner: &R, request: BuildRequest) -> Outcome {
    let key = request.key.clone();
    runner.start(request).await.expect("starts");
    tokio::time::timeout(Duration::from_secs(60), runner.wait(&key))
        .await
        .expect("the build ends within a minute")
        .expect("waits")
}

fn reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn outputs(outcome: &Outcome) -> &Outputs {
    match outcome {
        Outcome::Succeeded { outputs } => outputs,
        other => panic!("expected a success, got {other:?}"),
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether process `pid` still runs (a zombie does not).
fn running(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

/// Waits for a file a command writes.
async fn file_appears(path: &str) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{path}` never appeared");
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(files_holding(&path, needle));
        } else if meta.is_file()
            && std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_bundle_is_built_in_a_clean_checkout_and_stored_by_its_sha256() {
    let s = Setup::new();
    s.repo.write("uncommitted.txt", "not in the commit\n");
    let commands =
        "test ! -e uncommitted.txt\nmkdir -p dist\ntar cf dist/web.tar README.md src\necho built";
    let outcome = run(
        &s.builder(),
        s.request(
            1,
            json!({"build_commands": commands, "file_path": "/dist/web.tar"}),
        ),
    )
    .await;
    let out = outputs(&outcome);
    let path = out["path"].as_str().expect("a local path");
    let bytes = std::fs::read(path).expect("the stored bundle");
    assert_eq!(out["sha256"], sha256(&bytes));
    assert_eq!(out["size"], bytes.len());
    assert_eq!(out["s3_bucket"], "000000000000-api-web");
    assert_eq!(out["s3_key"], format!("web/{}/web.zip", s.repo.c(1)));
    assert_eq!(
        out["s3_url"],
        format!("s3://000000000000-api-web/web/{}/web.zip", s.repo.c(1))
    );
    let blob = s
        .store
        .root()
        .join("sha256")
        .join(out["sha256"].as_str().expect("text"));
    assert_eq!(std::fs::read(blob).expect("the blob"), bytes);
    let folders = s.folders();
    assert_eq!(folders.len(), 1);
    assert!(
        !folders[0].join("checkout").exists(),
        "the checkout is removed"
    );
    let logs = s
        .builder()
        .logs(&s.request(1, json!({})).key)
        .await
        .expect("logs");
    assert!(logs.iter().any(|l| l.message == "built"), "{logs:?}");
}

#[tokio::test]
async fn env_vars_reach_the_command_and_a_secret_never_shows() {
    let s = Setup::new();
    let params = |commands: &str| {
        FinalValue::Map(vec![
            (
                "params".into(),
                FinalValue::Plain(json!({
                    "build_commands": commands,
                    "file_path": "/out.txt",
                    "env": {"MODE": "production", "LEVEL": 3},
                })),
            ),
            (
                "envs".into(),
                FinalValue::Map(vec![(
                    "TOKEN".into(),
                    FinalValue::Secret(SecretString::new("hunter2-very-secret")),
                )]),
            ),
        ])
    };
    let ok = "echo \"MODE=$MODE LEVEL=$LEVEL TOKEN=$TOKEN\"\necho \"$MODE\" > out.txt";
    let outcome = run(&s.builder(), s.request_with(1, params(ok))).await;
    outputs(&outcome);
    let logs = s
        .builder()
        .logs(&s.request(1, json!({})).key)
        .await
        .expect("logs");
    let text: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(text, ["MODE=production LEVEL=3 TOKEN=[REDACTED]"]);
    let failing = "echo \"about to fail with $TOKEN\"\nexit 4";
    let outcome = run(&s.builder(), s.request_with(2, params(failing))).await;
    let why = reason(&outcome);
    assert!(why.contains("exited with code 4"), "{why}");
    assert!(why.contains("about to fail with [REDACTED]"), "{why}");
    assert!(!why.contains("hunter2"), "{why}");
    assert_eq!(
        files_holding(s.state.path(), "hunter2"),
        Vec::<PathBuf>::new(),
        "the secret is in no file of the state directory"
    );
}

#[tokio::test]
async fn a_failing_command_fails_with_its_exit_code_and_last_output() {
    let s = Setup::new();
    let commands = "echo compiling\necho 'error: missing semicolon' >&2\nexit 7\necho unreachable";
    let outcome = run(
        &s.builder(),
        s.request(
            1,
            json!({"build_commands": commands, "file_path": "/x.zip"}),
        ),
    )
    .await;
    let why = reason(&outcome);
    assert!(why.contains("exited with code 7"), "{why}");
    assert!(why.contains("compiling\nerror: missing semicolon"), "{why}");
    assert!(!why.contains("unreachable"), "{why}");
    let failing_middle = "false\necho after > x.zip";
    let outcome = run(
        &s.builder(),
        s.request(
            2,
            json!({"build_commands": failing_middle, "file_path": "/x.zip"}),
        ),
    )
    .await;
    assert!(
        reason(&outcome).contains("exited with code 1"),
        "`sh -e`: the first failing command fails the build: {outcome:?}"
    );
    for folder in s.folders() {
        assert!(
            !folder.join("checkout").exists(),
            "removed after a failure too"
        );
    }
}

#[tokio::test]
async fn a_hanging_command_times_out_and_its_group_is_killed() {
    let s = Setup::new();
    let pid_file = s.scratch("pid");
    let commands = format!("sleep 300 &\necho $! > '{pid_file}'\nwait");
    let started = std::time::Instant::now();
    let outcome = run(
        &s.builder(),
        s.request(
            1,
            json!({"build_commands": commands, "file_path": "/x.zip", "timeout_minutes": 0.02}),
        ),
    )
    .await;
    assert!(
        reason(&outcome).contains("timed out after 0.02 minutes"),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(&pid_file).expect("the pid");
    for _ in 0..50 {
        if !running(&pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !running(&pid),
        "the background `sleep` was killed with its group"
    );
    let quick = s
        .builder()
        .default_timeout(Duration::from_millis(600))
        .keep_failed(false);
    let outcome = run(
        &quick,
        s.request(
            2,
            json!({"build_commands": "sleep 300", "file_path": "/x.zip"}),
        ),
    )
    .await;
    assert!(
        reason(&outcome).contains("timed out after 0.01 minutes"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_command_printing_without_end_keeps_a_bounded_log() {
    let s = Setup::new();
    let limit = 256 * 1024;
    let builder = s
        .builder()
        .with_options(BuildOptions::new(s.state.path()).log_limit(limit));
    let outcome = run(
        &builder,
        s.request(
            1,
            json!({"build_commands": "yes devramps-says-hello", "file_path": "/x.zip", "timeout_minutes": 0.05}),
        ),
    )
    .await;
    let why = reason(&outcome);
    assert!(why.contains("timed out"), "{why}");
    assert!(why.contains("devramps-says-hello"), "{why}");
    assert!(
        why.len() < 4096,
        "the reason quotes a bounded tail: {}",
        why.len()
    );
    let log = s.folders()[0].join("output.log");
    let size = std::fs::metadata(&log).expect("the log").len();
    assert!(size <= limit, "the log is {size} bytes, over {limit}");
    let logs = builder
        .logs(&s.request(1, json!({})).key)
        .await
        .expect("logs");
    assert!(!logs.is_empty() && logs.len() < 20_000, "{}", logs.len());
}

#[tokio::test]
async fn a_build_that_deletes_its_own_working_directory_fails_clearly() {
    let s = Setup::new();
    let outcome = run(
        &s.builder(),
        s.request(
            1,
            json!({"build_commands": "cd .. && rm -rf checkout", "file_path": "/x.zip"}),
        ),
    )
    .await;
    let why = reason(&outcome);
    assert!(
        why.contains("the build removed its own working directory"),
        "{why}"
    );
}

#[tokio::test]
async fn a_missing_or_escaping_file_path_fails_naming_it() {
    let s = Setup::new();
    let outcome = run(
        &s.builder(),
        s.request(
            1,
            json!({"build_commands": "echo nothing made", "file_path": "/dist/web.zip"}),
        ),
    )
    .await;
    let why = reason(&outcome);
    assert!(
        why.contains("`file_path` `/dist/web.zip` does not exist after the build"),
        "{why}"
    );
    assert!(why.contains("nothing made"), "{why}");
    let outcome = run(
        &s.builder(),
        s.request(
            2,
            json!({"build_commands": "true", "file_path": "/../../etc/passwd"}),
        ),
    )
    .await;
    assert!(
        reason(&outcome).contains("leaves the repository"),
        "{outcome:?}"
    );
    let outcome = run(
        &s.builder(),
        s.request(
            3,
            json!({"build_commands": "ln -s /etc/hostname out", "file_path": "/out"}),
        ),
    )
    .await;
    assert!(
        reason(&outcome).contains("leads outside the checkout"),
        "{outcome:?}"
    );
    let outcome = run(&s.builder(), s.request(4, json!({"file_path": "/out"}))).await;
    assert!(
        reason(&outcome).contains("`build_commands` is required"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn cancel_kills_the_build_and_its_group() {
    let s = Setup::new();
    let pid_file = s.scratch("pid");
    let commands = format!("sleep 300 &\necho $! > '{pid_file}'\nwait");
    let builder = s.builder();
    let request = s.request(
        1,
        json!({"build_commands": commands, "file_path": "/x.zip"}),
    );
    let key = request.key.clone();
    builder.start(request).await.expect("starts");
    let pid = file_appears(&pid_file).await;
    assert!(running(&pid));
    builder.cancel(&key).await.expect("cancels");
    let outcome = tokio::time::timeout(Duration::from_secs(30), builder.wait(&key))
        .await
        .expect("ends")
        .expect("waits");
    assert!(reason(&outcome).contains("cancelled"), "{outcome:?}");
    for _ in 0..50 {
        if !running(&pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!running(&pid), "the group was killed");
}

#[tokio::test]
async fn l20_a_key_is_built_once_even_when_started_twice_or_by_a_new_runner() {
    let s = Setup::new();
    let runs = s.scratch("runs");
    let commands = format!("echo run >> '{runs}'\nsleep 0.3\necho made > out.txt");
    let params = json!({"build_commands": commands, "file_path": "/out.txt"});
    let builder = s.builder();
    let (a, b) = tokio::join!(
        builder.start(s.request(1, params.clone())),
        builder.start(s.request(1, params.clone()))
    );
    a.expect("starts");
    b.expect("starts");
    let key = s.request(1, json!({})).key;
    let first = builder.wait(&key).await.expect("waits");
    outputs(&first);
    let again = s.builder();
    let second = run(&again, s.request(1, params)).await;
    assert_eq!(first, second);
    assert_eq!(
        std::fs::read_to_string(&runs).expect("runs"),
        "run\n",
        "one run"
    );
    let unknown = ExecutionKey::new("api", 1, "", 9, Unit::build("web"));
    assert!(matches!(
        again.wait(&unknown).await,
        Err(devramps_core::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_new_runner_re_attaches_to_a_running_build() {
    let s = Setup::new();
    let runs = s.scratch("runs");
    let commands = format!("echo run >> '{runs}'\nsleep 1\necho made > out.txt");
    let params = json!({"build_commands": commands, "file_path": "/out.txt"});
    let first = s.builder();
    first
        .start(s.request(1, params.clone()))
        .await
        .expect("starts");
    file_appears(&runs).await;
    // The engine restarts: a new runner on the same state directory, started again.
    let second = s.builder();
    let outcome = run(&second, s.request(1, params)).await;
    outputs(&outcome);
    assert_eq!(std::fs::read_to_string(&runs).expect("runs"), "run\n");
}

#[tokio::test]
async fn a_retry_starts_from_a_clean_checkout_and_a_failed_one_is_kept_when_asked() {
    let s = Setup::new();
    let builder = s.builder().keep_failed(true);
    let outcome = run(
        &builder,
        s.request(
            1,
            json!({"build_commands": "touch leftover\nexit 1", "file_path": "/out"}),
        ),
    )
    .await;
    reason(&outcome);
    let kept = s.folders()[0].join("checkout");
    assert!(
        kept.join("leftover").exists(),
        "the failed checkout is kept"
    );
    assert!(kept.join("README.md").exists());
    let outcome = run(
        &builder,
        s.request(
            2,
            json!({"build_commands": "test ! -e leftover\ntouch out", "file_path": "/out"}),
        ),
    )
    .await;
    outputs(&outcome);
    assert_eq!(s.folders().len(), 2);
    assert!(
        !s.folders()[1].join("checkout").exists(),
        "a success is tidied"
    );
}

#[tokio::test]
async fn a_bundle_import_copies_the_source_and_a_missing_one_fails_naming_it() {
    let s = Setup::new();
    let source = s.store.root().join("partner-bucket/releases/app.zip");
    std::fs::create_dir_all(source.parent().expect("parent")).expect("mkdir");
    std::fs::write(&source, b"partner bundle").expect("write");
    let importer = BundleImporter::new(s.state.path(), s.store.clone());
    let request = |attempt: u32, url: &str| {
        let key = ExecutionKey::new("api", 1, "", attempt, Unit::build("partner"));
        BuildRequest::new(
            key,
            "partner",
            ArtifactType::BundleImport,
            s.repo.c(1),
            FinalValue::Plain(json!({"params": {
                "source_account": "999999999999",
                "source_region": "us-east-1",
                "source_s3_url": url,
            }})),
        )
        .with_destination(ArtifactLocation {
            s3_url: "s3://dest-bucket/partner/c/app.zip".into(),
            s3_bucket: "dest-bucket".into(),
            s3_key: "partner/c/app.zip".into(),
            ..ArtifactLocation::default()
        })
    };
    let outcome = run(
        &importer,
        request(1, "s3://partner-bucket/releases/app.zip"),
    )
    .await;
    let out = outputs(&outcome);
    assert_eq!(out["sha256"], sha256(b"partner bundle"));
    assert_eq!(out["s3_url"], "s3://dest-bucket/partner/c/app.zip");
    assert_eq!(
        s.store
            .head("s3://dest-bucket/partner/c/app.zip")
            .await
            .expect("head")
            .map(|i| i.size),
        Some(14)
    );
    let outcome = run(
        &importer,
        request(2, "s3://partner-bucket/releases/nope.zip"),
    )
    .await;
    let why = reason(&outcome);
    assert!(
        why.contains("`s3://partner-bucket/releases/nope.zip` does not exist"),
        "{why}"
    );
}

#[tokio::test]
async fn the_router_sends_each_type_to_its_runner() {
    let s = Setup::new();
    let builds = Builds::local(
        Arc::new(s.repo.source()),
        s.state.path(),
        s.store.clone(),
        DockerOptions::default(),
    );
    let outcome = run(
        &builds,
        s.request(
            1,
            json!({"build_commands": "echo x > x", "file_path": "/x"}),
        ),
    )
    .await;
    outputs(&outcome);
    // A router made after a restart finds the runner from the key's folder.
    let later = Builds::local(
        Arc::new(s.repo.source()),
        s.state.path(),
        s.store.clone(),
        DockerOptions::default(),
    );
    assert_eq!(
        later
            .wait(&s.request(1, json!({})).key)
            .await
            .expect("waits"),
        outcome
    );
    // A build that failed before running anything is found too.
    let invalid = run(&builds, s.request(3, json!({"file_path": "/x"}))).await;
    assert!(reason(&invalid).contains("`build_commands` is required"));
    assert_eq!(
        later
            .wait(&s.request(3, json!({})).key)
            .await
            .expect("waits"),
        invalid
    );
    let empty = Builds::new(s.state.path());
    let err = empty
        .start(s.request(2, json!({})))
        .await
        .expect_err("no runner");
    assert!(err.to_string().contains("DEVRAMPS:BUNDLE:BUILD"), "{err}");
}

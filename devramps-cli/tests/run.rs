//! `devramps run`, `status`, `logs` and the operations, for real: a git repository in a
//! temporary folder, the durable local store, step registries run by npm and node as real
//! processes, and `devramps` processes killed with SIGKILL.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{code, devramps, json, need_node, registry, stderr, stdout};
use devramps_git::testing::TestRepo;

/// One stage (or two) running one `CUSTOM:SLEEP` step that appends to `marker`.
fn sleep_pipeline(stages: &[&str], marker: &Path, ms: u64) -> String {
    let stages: String = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!("    - {{ name: {s}, account_id: \"11111111111{i}\", region: us-east-1 }}\n")
        })
        .collect();
    format!(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stages:\n{stages}  steps:\n    \
         - {{ name: Sleep, id: sleep, type: \"CUSTOM:SLEEP\", params: {{ marker: \"{}\", ms: {ms} }} }}\n  \
         artifacts: {{}}\n",
        marker.display()
    )
}

fn repo_with(pipeline: &str) -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write(".devramps/app/pipeline.yaml", pipeline);
    repo.commit("first");
    repo
}

/// `devramps run` started in the background, its stdout read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        Running::start_with(args, &[])
    }

    /// Starts `devramps` with `args` and the environment variables `env`.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devramps"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("devramps run starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 60 s) for a line containing `text`.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line with `{text}` within 60 s; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (at most 60 s) for the exit code, reading the rest of the output.
    fn exit(mut self) -> (i32, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for devramps run") {
                self.seen.extend(self.lines.try_iter());
                // The reader thread may still hold the last lines.
                std::thread::sleep(Duration::from_millis(50));
                self.seen.extend(self.lines.try_iter());
                return (status.code().unwrap_or(-1), self.seen);
            }
            self.seen.extend(self.lines.try_iter());
            assert!(
                Instant::now() < deadline,
                "devramps run did not end within 60 s:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn run_deploys_a_commit_through_every_stage_with_the_step_logs() {
    need_node();
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("starts");
    let repo = repo_with(&sleep_pipeline(&["staging", "prod"], &marker, 100));
    let reg = registry();
    let out = devramps(
        repo.path(),
        &["run", "--repo", repo.arg(), "--step-registry", &reg],
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
    assert!(text.contains("staging    SUCCEEDED"), "{text}");
    assert!(text.contains("prod       SUCCEEDED"), "{text}");
    assert!(
        text.contains("sleeping 100 ms"),
        "the step's log is shown: {text}"
    );
    assert_eq!(lines_of(&marker).len(), 2, "one start per stage");
    assert!(
        repo.path().join(".devramps/state/devramps.sqlite").exists(),
        "the default store is under .devramps/state/"
    );

    // The same command again is the same push: it resumes (here: finds done) revision 1.
    let again = devramps(
        repo.path(),
        &["run", "--repo", repo.arg(), "--step-registry", &reg],
    );
    assert_eq!(code(&again), 0, "{}", stdout(&again));
    assert!(stdout(&again).contains("revision 1"), "{}", stdout(&again));
    assert_eq!(lines_of(&marker).len(), 2, "nothing ran twice");

    // status reads the same store.
    let status = devramps(
        repo.path(),
        &["status", "--repo", repo.arg(), "--format", "json"],
    );
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let status = json(&status);
    assert_eq!(status["slug"], "app");
    assert_eq!(status["stages"]["prod"]["current_revision"], 1);

    // A refused operation names the rule and exits 1.
    let refused = devramps(
        repo.path(),
        &[
            "retry",
            "--repo",
            repo.arg(),
            "--stage",
            "prod",
            "--revision",
            "1",
        ],
    );
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("L11"), "{}", stderr(&refused));

    // The step's logs, from the runner's files.
    let logs = devramps(
        repo.path(),
        &[
            "logs",
            "--repo",
            repo.arg(),
            "--stage",
            "prod",
            "--step",
            "sleep",
        ],
    );
    assert_eq!(code(&logs), 0, "{}", stderr(&logs));
    assert!(stdout(&logs).contains("done"), "{}", stdout(&logs));
}

#[test]
fn run_with_json_keeps_stdout_for_the_report() {
    need_node();
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("starts");
    let repo = repo_with(&sleep_pipeline(&["staging"], &marker, 0));
    let reg = registry();
    let out = devramps(
        repo.path(),
        &[
            "run",
            "--repo",
            repo.arg(),
            "--step-registry",
            &reg,
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        report["deployments"][0]["stages"]["staging"]["state"],
        "SUCCEEDED"
    );
    assert_eq!(
        report["deployments"][0]["commit"].as_str().map(str::len),
        Some(40)
    );
    assert!(
        report["executions"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["result"] == "SUCCEEDED")),
        "{report}"
    );
    assert!(
        stderr(&out).contains("SUCCEEDED"),
        "the live view went to stderr"
    );
}

#[test]
fn a_killed_run_resumes_the_same_revision_without_starting_its_step_again() {
    need_node();
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("starts");
    let repo = repo_with(&sleep_pipeline(&["staging"], &marker, 4_000));
    let reg = registry();
    let args = ["run", "--repo", repo.arg(), "--step-registry", &reg];
    let mut first = Running::start(&args);
    first.wait_for("sleep RUNNING");
    // Wait until the step process really started, then kill the engine (SIGKILL).
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines_of(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.child.kill().expect("SIGKILL devramps run");
    let _ = first.child.wait();

    let second = Running::start(&args);
    let (code, lines) = second.exit();
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("revision 1"), "the same revision: {text}");
    assert_eq!(
        lines_of(&marker).len(),
        1,
        "the step process outlived the engine and was waited for, not started again"
    );
    let log = devramps(
        repo.path(),
        &["status", "--repo", repo.arg(), "--format", "json"],
    );
    assert_eq!(json(&log)["deployments"].as_array().map(Vec::len), Some(1));
}

#[test]
fn cloud_only_steps_fail_with_a_message_that_says_what_they_need() {
    let repo = repo_with(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stages:\n    \
         - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n  steps:\n    \
         - { name: Deploy, type: \"DEVRAMPS:ECS:DEPLOY\", params: { cluster_name: c, \
         service_name: s, reference_task_definition: t, image_url: i } }\n  artifacts: {}\n",
    );
    let out = devramps(
        repo.path(),
        &["run", "--repo", repo.arg(), "--store", "memory:"],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("needs the AWS backends")
            || stdout(&out).contains("need the AWS backends"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_operation_without_a_store_says_how_to_make_one() {
    let repo = repo_with(&sleep_pipeline(&["staging"], Path::new("/dev/null"), 0));
    let out = devramps(
        repo.path(),
        &[
            "approve",
            "--repo",
            repo.arg(),
            "--stage",
            "staging",
            "--step",
            "sleep",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("devramps run"), "{}", stderr(&out));
    let _ = PathBuf::new();
}

/// The sample application (`examples/sample-app`) in a repository of its own.
fn sample_app() -> TestRepo {
    let mut repo = TestRepo::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-app");
    for file in [
        ".devramps/shop/pipeline.yaml",
        "tests/run.sh",
        "README.md",
        "infra/main.tf",
        "site/index.html",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("sample file");
        repo.write(file, &text);
    }
    repo.commit("sample app");
    repo
}

#[test]
fn the_sample_app_waits_for_a_person_who_approves_from_another_terminal() {
    need_node();
    let terraform = test_terraform();
    let repo = sample_app();
    let registry = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/step-registry");
    let mut run = Running::start_with(
        &["run", "--repo", repo.arg(), "--step-registry", registry],
        &[("DEVRAMPS_TERRAFORM", &terraform)],
    );
    let hint = run.wait_for("waiting for a person");
    assert!(
        hint.contains("devramps approve") && hint.contains("--stage prod --step release"),
        "{hint}"
    );
    let status = devramps(
        repo.path(),
        &["status", "--repo", repo.arg(), "--format", "json"],
    );
    let status = json(&status);
    assert_eq!(status["approvals"][0]["stage"], "prod", "{status}");
    assert_eq!(status["approvals"][0]["step"], "release", "{status}");

    // Rejecting the wrong step is refused by the rules (L16), and nothing changes.
    let wrong = devramps(
        repo.path(),
        &[
            "approve",
            "--repo",
            repo.arg(),
            "--stage",
            "prod",
            "--step",
            "announce",
            "--revision",
            "1",
        ],
    );
    assert_eq!(code(&wrong), 1, "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("L16"), "{}", stderr(&wrong));

    let approve = devramps(
        repo.path(),
        &[
            "approve",
            "--repo",
            repo.arg(),
            "--stage",
            "prod",
            "--step",
            "release",
            "--actor",
            "ana",
            "--reason",
            "ship it",
        ],
    );
    assert_eq!(code(&approve), 0, "{}", stderr(&approve));
    let (code, lines) = run.exit();
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("release approved by user:ana"), "{text}");
    assert!(text.contains("rollout polling (2 polls so far)"), "{text}");
    assert!(
        text.contains("2 passed, 0 failed"),
        "the test gate's output: {text}"
    );
    assert!(text.contains("prod SUCCEEDED"), "{text}");

    // The site bundle was built once from the commit, stored by content and mirrored into
    // each stage's bucket; Terraform planned and applied in each stage, and its sensitive
    // output was never shown.
    assert!(text.contains("build site succeeded"), "{text}");
    assert!(text.contains("staging      infra SUCCEEDED"), "{text}");
    assert!(text.contains("prod         infra SUCCEEDED"), "{text}");
    assert!(
        text.contains("Apply complete!"),
        "Terraform's own output: {text}"
    );
    assert!(
        !text.contains("token-for-"),
        "a sensitive output in clear: {text}"
    );
    let artifacts = repo.path().join(".devramps/state/artifacts");
    for bucket in [
        "111111111111-shop-staging-site",
        "222222222222-shop-prod-site",
    ] {
        let site = std::fs::read_dir(artifacts.join(bucket).join("site"))
            .expect("the stage's bucket holds the site")
            .next()
            .expect("one commit")
            .expect("entry")
            .path()
            .join("site.tar.gz");
        assert!(site.is_file(), "{} is not mirrored", site.display());
    }
    let report = devramps(
        repo.path(),
        &["status", "--repo", repo.arg(), "--format", "json"],
    );
    assert!(
        !String::from_utf8_lossy(&report.stdout).contains("token-for-"),
        "a sensitive output in the status"
    );
}

/// The Terraform of the tests: `DEVRAMPS_TEST_TERRAFORM` (scripts/test installs Terraform 1.0.3
/// and sets it).
fn test_terraform() -> String {
    match std::env::var("DEVRAMPS_TEST_TERRAFORM") {
        Ok(path) if !path.is_empty() => path,
        _ => panic!(
            "DEVRAMPS_TEST_TERRAFORM is not set: run the tests through scripts/test, which \
             installs Terraform 1.0.3 into target/terraform-venv (scripts/lib/terraform.sh) and \
             sets it"
        ),
    }
}

#[test]
fn a_failed_stage_is_posted_to_slack_once() {
    need_node();
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (tx, posts) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = Vec::new();
            let mut buf = [0_u8; 8192];
            // Read the headers, then the body by Content-Length.
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        let _ = tx.send(text[end + 4..].to_owned());
                        break;
                    }
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let repo = repo_with(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  notifications:\n    slack:\n      \
         channel: \"#deploys\"\n      events: [stage_failed]\n  stages:\n    \
         - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n  steps:\n    \
         - { name: Tests, id: tests, type: \"CUSTOM:NOPE\" }\n  artifacts: {}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_devramps"))
        .args(["run", "--repo", repo.arg(), "--store", "memory:"])
        .env("DEVRAMPS_SLACK_WEBHOOK_URL", &url)
        .output()
        .expect("devramps run");
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let post = posts
        .recv_timeout(Duration::from_secs(30))
        .expect("a message was posted");
    let body: serde_json::Value = serde_json::from_str(&post).expect("JSON body");
    assert_eq!(body["channel"], "#deploys");
    let text = body["text"].as_str().unwrap_or_default();
    assert!(text.contains("staging") && text.contains("app"), "{text}");
    assert!(
        posts.recv_timeout(Duration::from_millis(500)).is_err(),
        "one message per failed stage"
    );
}

#[test]
fn a_run_killed_while_a_step_is_polled_polls_on_and_never_triggers_again() {
    need_node();
    let repo = repo_with(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stages:\n    \
         - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n  steps:\n    \
         - { name: Wait, id: wait, type: \"CUSTOM:WAIT\", params: { polls: 4, retryAfterMs: 300 } }\n  \
         artifacts: {}\n",
    );
    let registry = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/step-registry");
    let args = ["run", "--repo", repo.arg(), "--step-registry", registry];
    let mut first = Running::start(&args);
    first.wait_for("wait polling (1 poll so far)");
    first.child.kill().expect("SIGKILL devramps run");
    let _ = first.child.wait();

    let (code, lines) = Running::start(&args).exit();
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("wait SUCCEEDED"), "{text}");
    let logs = devramps(
        repo.path(),
        &[
            "logs",
            "--repo",
            repo.arg(),
            "--stage",
            "staging",
            "--step",
            "wait",
        ],
    );
    let logs = stdout(&logs);
    assert_eq!(
        logs.matches("triggered").count(),
        1,
        "the step was triggered once, then only polled:\n{logs}"
    );
    assert!(logs.matches("polled").count() >= 4, "{logs}");
    let status = json(&devramps(
        repo.path(),
        &["status", "--repo", repo.arg(), "--format", "json"],
    ));
    assert_eq!(status["deployments"].as_array().map(Vec::len), Some(1));
}

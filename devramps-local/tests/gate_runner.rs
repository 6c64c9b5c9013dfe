//! [`TestGateRunner`] with real git repositories in temporary folders and real commands.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devramps_core::backend::Runner;
use devramps_core::exec::{ExecutionKey, Outcome, StageTarget, StepRequest, Unit};
use devramps_core::expr::{FinalValue, SecretString};
use devramps_git::testing::TestRepo;
use devramps_local::gate::{TEST_GATE_TYPE, TestGateRunner};
use serde_json::{Value, json};

/// A fake jest: writes a summary shaped like `jest --json --outputFile=<file>` (only the
/// fields the runner reads, plus a few others) to the file after `--outputFile=`, with
/// `FAKE_PASSED` and `FAKE_FAILED` tests, and exits 1 when some failed, as jest does. It
/// cannot prove that a real jest writes these fields the same way: only that the runner
/// reads what jest's documented JSON holds (`numPassedTests`, `numFailedTests`).
const FAKE_JEST: &str = r#"#!/bin/sh
out=""
for arg in "$@"; do
  case "$arg" in --outputFile=*) out="${arg#--outputFile=}" ;; esac
done
total=$((FAKE_PASSED + FAKE_FAILED))
if [ "$FAKE_FAILED" -gt 0 ]; then success=false; else success=true; fi
summary="{\"numFailedTestSuites\":0,\"numFailedTests\":$FAKE_FAILED,\"numPassedTestSuites\":1,\"numPassedTests\":$FAKE_PASSED,\"numTotalTests\":$total,\"success\":$success,\"testResults\":[]}"
if [ -n "$out" ]; then printf '%s' "$summary" > "$out"; else printf '%s\n' "$summary"; fi
echo "Tests: $FAKE_FAILED failed, $FAKE_PASSED passed, $total total" >&2
[ "$FAKE_FAILED" -eq 0 ]
"#;

/// A repository of two commits: `README.md` is `v1` then `v2`; `web/index.html` and the fake
/// jest are in both.
fn repo() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write("README.md", "v1\n")
        .write("web/index.html", "<h1>hi</h1>\n")
        .write_executable("scripts/fake-jest", FAKE_JEST);
    repo.commit("one");
    repo.write("README.md", "v2\n");
    repo.commit("two");
    repo
}

struct Setup {
    repo: TestRepo,
    state: tempfile::TempDir,
    /// A folder for files the commands write, outside the checkout.
    scratch: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Setup {
            repo: repo(),
            state: tempfile::tempdir().expect("temp dir"),
            scratch: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn runner(&self) -> TestGateRunner {
        TestGateRunner::new(Arc::new(self.repo.source()), self.state.path())
    }

    fn scratch(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    fn request(&self, step: &str, commit: usize, params: Value) -> StepRequest {
        self.request_with(step, commit, FinalValue::Plain(params))
    }

    fn request_with(&self, step: &str, commit: usize, params: FinalValue) -> StepRequest {
        let key = ExecutionKey::new("api", 1, "staging", 1, Unit::step(step));
        StepRequest::new(key, TEST_GATE_TYPE, params)
            .with_commit(self.repo.c(commit))
            .with_target(StageTarget::new(
                "api",
                "staging",
                "111111111111",
                "us-east-1",
            ))
    }
}

async fn run(runner: &TestGateRunner, request: StepRequest) -> Outcome {
    let key = request.key.clone();
    runner.start(request).await.expect("starts");
    tokio::time::timeout(Duration::from_secs(60), runner.wait(&key))
        .await
        .expect("the gate ends within a minute")
        .expect("waits")
}

fn reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn outputs(outcome: &Outcome) -> &devramps_core::exec::Outputs {
    match outcome {
        Outcome::Succeeded { outputs } => outputs,
        other => panic!("expected a success, got {other:?}"),
    }
}

#[tokio::test]
async fn exit_zero_passes_in_a_checkout_of_the_deployed_commit() {
    let s = Setup::new();
    let out = s.scratch("readme");
    let cmd = format!("cat README.md > '{out}'");
    let outcome = run(
        &s.runner(),
        s.request("tests", 1, json!({"testCommand": cmd})),
    )
    .await;
    assert_eq!(outputs(&outcome)["exitCode"], 0);
    assert_eq!(
        std::fs::read_to_string(&out).expect("written"),
        "v1\n",
        "commit 1, not HEAD"
    );
}

#[tokio::test]
async fn non_zero_fails_with_the_tail_of_the_output() {
    let s = Setup::new();
    let cmd =
        "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo \"line $i\"; done; echo boom >&2; exit 3";
    let outcome = run(
        &s.runner(),
        s.request("tests", 2, json!({"testCommand": cmd})),
    )
    .await;
    let reason = reason(&outcome);
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(
        reason.contains("line 3000\nboom"),
        "stdout and stderr, in order: {reason}"
    );
    assert!(!reason.contains("line 1\n"), "only the tail: {reason}");
    assert!(
        reason.len() < 4 * 1024 + 200,
        "bounded: {} bytes",
        reason.len()
    );
}

#[tokio::test]
async fn a_gate_past_its_timeout_is_killed_with_its_children() {
    let s = Setup::new();
    let pid_file = s.scratch("pid");
    let cmd = format!("sleep 60 & echo $! > '{pid_file}'; wait");
    let started = Instant::now();
    let outcome = run(
        &s.runner(),
        s.request("tests", 2, json!({"testCommand": cmd, "timeout": 0.02})),
    )
    .await;
    assert!(
        reason(&outcome).starts_with("timed out after 0.02 minutes"),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid written");
    let proc_dir = format!("/proc/{}", pid.trim());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&proc_dir).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !Path::new(&proc_dir).exists(),
        "the background `sleep` was killed too"
    );
}

#[tokio::test]
async fn environment_variables_and_the_deployment_reach_the_command() {
    let s = Setup::new();
    let out = s.scratch("env");
    let cmd = format!(
        "printf '%s|%s|%s|%s|%s' \"$GREETING\" \"$COUNT\" \"$DEVRAMPS_COMMIT\" \"$DEVRAMPS_STAGE\" \
         \"$HOME\" > '{out}'"
    );
    let params = json!({
        "testCommand": cmd,
        "environmentVariables": {"GREETING": "hello world", "COUNT": 3}
    });
    let outcome = run(&s.runner(), s.request("tests", 2, params)).await;
    outputs(&outcome);
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(
        std::fs::read_to_string(&out).expect("written"),
        format!("hello world|3|{}|staging|{home}", s.repo.c(2)),
        "the process environment is kept, the gate's variables added"
    );
}

#[tokio::test]
async fn the_working_directory_is_inside_the_checkout_and_cannot_leave_it() {
    let s = Setup::new();
    let out = s.scratch("pwd");
    let cmd = format!("pwd > '{out}'; test -f index.html");
    let params = json!({"testCommand": cmd, "workingDirectory": "web"});
    let outcome = run(&s.runner(), s.request("tests", 2, params)).await;
    outputs(&outcome);
    let pwd = std::fs::read_to_string(&out).expect("written");
    assert!(pwd.trim_end().ends_with("/checkout/web"), "{pwd}");
    assert!(
        pwd.starts_with(&s.state.path().display().to_string()),
        "{pwd}"
    );

    let params = json!({"testCommand": "true", "workingDirectory": "web/../../.."});
    let outcome = run(&s.runner(), s.request("escape", 2, params)).await;
    assert!(
        reason(&outcome).contains("leaves the checkout"),
        "{outcome:?}"
    );
    let params = json!({"testCommand": "true", "workingDirectory": "missing"});
    let outcome = run(&s.runner(), s.request("missing", 2, params)).await;
    assert!(
        reason(&outcome).contains("is not a folder of commit"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn jest_summaries_give_the_counts() {
    let s = Setup::new();
    let cmd = "./scripts/fake-jest --json --outputFile=\"$DEVRAMPS_JEST_OUTPUT\"";
    let params = |failed: u32| {
        json!({
            "testCommand": cmd,
            "testType": "jest",
            "environmentVariables": {"FAKE_PASSED": 5, "FAKE_FAILED": failed}
        })
    };
    let outcome = run(&s.runner(), s.request("green", 2, params(0))).await;
    let out = outputs(&outcome);
    assert_eq!(
        (out["passed"].clone(), out["failed"].clone()),
        (json!(5), json!(0))
    );

    let outcome = run(&s.runner(), s.request("red", 2, params(2))).await;
    let red = reason(&outcome);
    assert!(
        red.contains("exited with code 1; 5 passed, 2 failed"),
        "{red}"
    );
    assert!(red.contains("Tests: 2 failed, 5 passed, 7 total"), "{red}");

    // Jest run without an output file: the reason says how to give one.
    let params = json!({
        "testCommand": "./scripts/fake-jest --json",
        "testType": "jest",
        "environmentVariables": {"FAKE_PASSED": 1, "FAKE_FAILED": 1}
    });
    let outcome = run(&s.runner(), s.request("no-file", 2, params)).await;
    assert!(
        reason(&outcome).contains("--outputFile=\"$DEVRAMPS_JEST_OUTPUT\""),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_restarted_runner_reattaches_and_never_runs_the_gate_twice() {
    let s = Setup::new();
    let counter = s.scratch("runs");
    let cmd = format!("echo run >> '{counter}'; sleep 1");
    let request = s.request("tests", 2, json!({"testCommand": cmd}));
    let first = s.runner();
    first.start(request.clone()).await.expect("starts");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(first); // The engine "restarts" while the command runs.

    let second = s.runner();
    let outcome = run(&second, request.clone()).await;
    assert_eq!(outputs(&outcome)["exitCode"], 0);
    let third = s.runner();
    assert_eq!(run(&third, request).await, outcome, "the recorded outcome");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("ran"),
        "run\n",
        "ran once"
    );
    let unknown = ExecutionKey::new("api", 9, "staging", 1, Unit::step("tests"));
    assert!(matches!(
        third.wait(&unknown).await,
        Err(devramps_core::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn cancel_stops_a_running_gate() {
    let s = Setup::new();
    let request = s.request("tests", 2, json!({"testCommand": "echo started; sleep 60"}));
    let runner = s.runner();
    runner.start(request.clone()).await.expect("starts");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    runner.cancel(&request.key).await.expect("cancels");
    let outcome = run(&runner, request).await;
    assert!(
        reason(&outcome).starts_with("cancelled; last output:\nstarted"),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn secrets_never_appear_in_the_reason_or_the_logs() {
    let s = Setup::new();
    let params = FinalValue::Map(vec![
        (
            "testCommand".into(),
            FinalValue::Plain(json!("echo \"token=$TOKEN\"; exit 1")),
        ),
        (
            "environmentVariables".into(),
            FinalValue::Map(vec![(
                "TOKEN".into(),
                FinalValue::Secret(SecretString::new("s3cr3t-value")),
            )]),
        ),
    ]);
    let request = s.request_with("tests", 2, params);
    let runner = s.runner();
    let outcome = run(&runner, request.clone()).await;
    let reason = reason(&outcome);
    assert!(
        reason.contains("token=[REDACTED]"),
        "the secret reached the command: {reason}"
    );
    assert!(!reason.contains("s3cr3t"), "{reason}");
    let logs = runner.logs(&request.key).await.expect("logs");
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].message, "token=[REDACTED]");
    let result = std::fs::read_to_string(
        walk(s.state.path())
            .into_iter()
            .find(|p| p.ends_with("result.json"))
            .expect("result"),
    )
    .expect("read");
    assert!(!result.contains("s3cr3t"), "{result}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

//! What the step runner tests share: the sample registry, keys and requests, registries made
//! of a shell script, and waiting with a deadline.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use devramps_core::backend::{ExecutionKey, Outcome, Runner, StepRequest, Unit};
use devramps_core::expr::FinalValue;
use devramps_local::steps::{CustomStepRunner, StepRegistry};
use serde_json::Value;

/// The sample registry of `examples/step-registry`, started with `node registry.js`.
pub(crate) fn sample() -> StepRegistry {
    require("node");
    StepRegistry::npm(sample_dir()).with_command(["node", "registry.js"])
}

/// Where the sample registry is.
pub(crate) fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/step-registry")
}

/// Fails (never skips) when `tool` is not on PATH.
pub(crate) fn require(tool: &str) {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "these tests run real step registries with `{tool}`: install Node.js 18 or newer \
         (Debian: `apt-get install nodejs npm`) so that `{tool}` is on PATH"
    );
}

/// The key of step `step` (attempt 1 of revision 1 in `prod`).
pub(crate) fn key(step: &str) -> ExecutionKey {
    ExecutionKey::new("app", 1, "prod", 1, Unit::step(step))
}

/// A request of `step_type` with `params`.
pub(crate) fn request(key: &ExecutionKey, step_type: &str, params: Value) -> StepRequest {
    StepRequest::new(key.clone(), step_type, FinalValue::Plain(params))
}

/// A registry in `dir` whose program is the shell script `body`, run with `$out` set to the
/// result file (`--output`), `$logs` to the log directory and `$id` to the execution id.
pub(crate) fn script(dir: &Path, name: &str, body: &str) -> StepRegistry {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "while [ $# -gt 0 ]; do case \"$1\" in\n  --output) out=\"$2\"; shift;;\n  \
         --log-dir) logs=\"$2\"; shift;;\n  --execution-id) id=\"$2\"; shift;;\n  \
         --input) input=\"$2\"; shift;;\nesac; shift; done\n{body}\n"
    );
    std::fs::write(dir.join("step.sh"), text).unwrap();
    StepRegistry::npm(&dir).with_command(["sh", "step.sh"])
}

/// Waits for `key` at most a minute.
pub(crate) async fn wait(runner: &CustomStepRunner, key: &ExecutionKey) -> Outcome {
    match tokio::time::timeout(Duration::from_secs(60), runner.wait(key)).await {
        Ok(outcome) => outcome.unwrap(),
        Err(_) => panic!("`{key}` did not end within a minute"),
    }
}

/// Starts `request` and waits for its outcome.
pub(crate) async fn run(runner: &CustomStepRunner, request: StepRequest) -> Outcome {
    let key = request.key.clone();
    runner.start(request).await.unwrap();
    wait(runner, &key).await
}

/// The failure reason of `outcome`, or a panic saying what it was.
pub(crate) fn reason(outcome: Outcome) -> String {
    match outcome {
        Outcome::Failed { reason } => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// The invocation directory of `key`'s invocation `name` under `state`.
pub(crate) fn invocation_dir(state: &Path, name: &str) -> PathBuf {
    let executions = state.join("executions");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&executions)
        .unwrap()
        .map(|e| e.unwrap().path().join(name))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one execution with `{name}` in {executions:?}"
    );
    dirs.remove(0)
}

/// Whether process `pid` still runs (exists and is no zombie).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// The pid in an invocation's pid file.
pub(crate) fn pid_of(dir: &Path) -> i32 {
    let text = std::fs::read_to_string(dir.join("pid")).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

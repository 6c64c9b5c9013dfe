//! [`TestGateRunner`]: runs `DEVRAMPS:APPROVAL:TEST` test gates (reference §4.3) as real
//! processes, in a checkout of the deployed commit.
//!
//! - The commit's tree is exported from the git repository
//!   ([`GitRepository::export`](devramps_git::GitRepository::export)) into
//!   `<state>/gates/<key>/checkout`, and `sh -c <testCommand>` runs in
//!   `checkout/<workingDirectory>` with the process's environment, `environmentVariables`
//!   (values as text), `DEVRAMPS_COMMIT`, `DEVRAMPS_STAGE`, `DEVRAMPS_PIPELINE` and
//!   `DEVRAMPS_JEST_OUTPUT`, in a process group of its own.
//! - Exit 0 succeeds (outputs `exitCode`, and `passed`/`failed` for jest); anything else fails
//!   with the exit code and the output's last 4 KiB (secrets redacted), and the lifecycle then
//!   waits for a person to approve or reject (L16). After `timeout` minutes (default 30; a
//!   fraction is allowed) the group is killed and the gate fails with "timed out after N
//!   minutes". `cancel` kills the group.
//! - `testType: jest`: the command is run as given; the runner reads jest's JSON summary from
//!   the file named by `DEVRAMPS_JEST_OUTPUT`, so the command should run jest with
//!   `--json --outputFile="$DEVRAMPS_JEST_OUTPUT"`. The counts go to the outputs and the reason
//!   ("3 passed, 1 failed").
//! - Idempotent per key (L20): the process is started through a small shell wrapper that writes
//!   the exit code to the gate's folder, so a runner created after a restart (same state
//!   directory) re-attaches to a running gate, or reads its result, and never runs it twice.
//!
//! The runner needs a tokio runtime with I/O and time enabled (it spawns the command with
//! `tokio::process` and watches it from a task).

mod disk;
mod params;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::Runner;
use devramps_core::exec::{ExecutionKey, LogEntry, Outcome, StepRequest};
use devramps_core::{Error, Result};
use devramps_git::GitRepository;

use disk::{GateDir, GateState};
use params::GateParams;
use watch::Gate;

/// The step type this runner serves.
pub const TEST_GATE_TYPE: &str = "DEVRAMPS:APPROVAL:TEST";

/// The backend name in errors.
const BACKEND: &str = "test gate runner";

/// The wrapper: runs the command, then records its exit status atomically. `$1` is the
/// command, `$2` the exit-code file.
const WRAPPER: &str =
    r#"sh -c "$1"; code=$?; printf '%s\n' "$code" > "$2.tmp" && mv "$2.tmp" "$2""#;

/// Runs test gates as processes in checkouts of the deployed commit; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct TestGateRunner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where commits come from.
    repo: Arc<GitRepository>,
    /// Where gates keep their folders.
    state_dir: PathBuf,
    /// How often a running gate is looked at.
    poll: Duration,
    /// The gates this runner started or re-attached to, by key.
    gates: Mutex<HashMap<ExecutionKey, Arc<Gate>>>,
    /// Held while a gate is looked up and launched, so two starts of one key run it once.
    launching: tokio::sync::Mutex<()>,
}

impl TestGateRunner {
    /// A runner exporting commits of `repo` and keeping its gates under
    /// `state_dir/gates/`.
    pub fn new(repo: Arc<GitRepository>, state_dir: impl Into<PathBuf>) -> Self {
        TestGateRunner {
            inner: Arc::new(Inner {
                repo,
                state_dir: state_dir.into(),
                poll: Duration::from_millis(100),
                gates: Mutex::new(HashMap::new()),
                launching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionKey, Arc<Gate>>> {
        self.inner
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The gate of `key`: in memory, else re-attached from its folder; `None` when it was never
    /// started.
    fn attach(&self, key: &ExecutionKey, secrets: Vec<String>) -> Result<Option<Arc<Gate>>> {
        if let Some(gate) = self.gates().get(key) {
            return Ok(Some(gate.clone()));
        }
        let dir = GateDir::new(&self.inner.state_dir, key);
        let io = |e: std::io::Error| io_error(key, "read the gate's folder", &e);
        let gate = if let Some(outcome) = dir.read_result().map_err(io)? {
            Gate::ended(dir, outcome, secrets)
        } else if let Some(state) = dir.read_state().map_err(io)? {
            Gate::watch(dir, state, secrets, self.inner.poll)
        } else if dir.dir.exists() {
            // Stopped between creating the folder and starting the command: nothing ran.
            let outcome = Outcome::Failed {
                reason: "the engine stopped while the test gate was starting; retry the stage"
                    .to_owned(),
            };
            disk::write_json_atomic(&dir.result(), &outcome)
                .map_err(|e| io_error(key, "record the result", &e))?;
            Gate::ended(dir, outcome, secrets)
        } else {
            return Ok(None);
        };
        let mut gates = self.gates();
        Ok(Some(gates.entry(key.clone()).or_insert(gate).clone()))
    }

    /// Exports the commit and starts the command; records a failure for bad parameters.
    async fn launch(&self, request: &StepRequest, secrets: Vec<String>) -> Result<Arc<Gate>> {
        let key = &request.key;
        let dir = GateDir::new(&self.inner.state_dir, key);
        std::fs::create_dir_all(&dir.dir)
            .map_err(|e| io_error(key, "create the gate's folder", &e))?;
        let params = match GateParams::parse(&request.params) {
            Ok(p) => p,
            Err(why) => {
                let outcome = Outcome::Failed {
                    reason: format!("invalid test gate parameters: {why}"),
                };
                disk::write_json_atomic(&dir.result(), &outcome)
                    .map_err(|e| io_error(key, "record the result", &e))?;
                return Ok(Gate::ended(dir, outcome, secrets));
            }
        };
        let Some(commit) = request.commit.clone() else {
            return Err(Error::backend(
                BACKEND,
                format!("start `{key}`"),
                "the request has no commit to check out (the engine always sets one)",
            ));
        };
        let repo = self.inner.repo.clone();
        let checkout = dir.checkout();
        let exported = tokio::task::spawn_blocking(move || repo.export(&commit, checkout))
            .await
            .map_err(|e| Error::backend(BACKEND, format!("export for `{key}`"), e.to_string()))?;
        exported?;
        let workdir = dir.checkout().join(&params.working_directory);
        if !workdir.is_dir() {
            let outcome = Outcome::Failed {
                reason: format!(
                    "`workingDirectory` `{}` is not a folder of commit {}",
                    params.working_directory.display(),
                    request.commit.as_deref().unwrap_or_default()
                ),
            };
            disk::write_json_atomic(&dir.result(), &outcome)
                .map_err(|e| io_error(key, "record the result", &e))?;
            return Ok(Gate::ended(dir, outcome, secrets));
        }
        let pgid = spawn(request, &params, &dir, &workdir)?;
        let now_ms = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0);
        let timeout_ms = u64::try_from(params.timeout().as_millis()).unwrap_or(u64::MAX);
        let state = GateState {
            pgid,
            deadline_ms: now_ms.saturating_add(timeout_ms),
            timeout_minutes: params.timeout_minutes,
            test_type: params.test_type,
        };
        disk::write_json_atomic(&dir.state(), &state)
            .map_err(|e| io_error(key, "record the started command", &e))?;
        Ok(Gate::watch(dir, state, secrets, self.inner.poll))
    }
}

/// Starts the wrapper in a process group of its own, output to the gate's log; returns its
/// pid (the group's id). The child is reaped by a task.
fn spawn(request: &StepRequest, params: &GateParams, dir: &GateDir, workdir: &Path) -> Result<i32> {
    let key = &request.key;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.output())
        .map_err(|e| io_error(key, "open the output file", &e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| io_error(key, "open the output file", &e))?;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg("devramps-test-gate")
        .arg(&params.command)
        .arg(dir.exit_code())
        .current_dir(workdir)
        .envs(params.env.iter().map(|(k, v)| (k, v)))
        .env(
            "DEVRAMPS_COMMIT",
            request.commit.as_deref().unwrap_or_default(),
        )
        .env("DEVRAMPS_JEST_OUTPUT", dir.jest())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .kill_on_drop(false);
    if let Some(target) = &request.target {
        command
            .env("DEVRAMPS_STAGE", &target.stage)
            .env("DEVRAMPS_PIPELINE", &target.pipeline);
    }
    let mut child = command
        .spawn()
        .map_err(|e| io_error(key, "start `sh` (is a POSIX shell on the PATH?)", &e))?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| Error::backend(BACKEND, format!("start `{key}`"), "the shell has no pid"))?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(pid)
}

/// An I/O failure on `key`'s gate.
fn io_error(key: &ExecutionKey, what: &str, e: &std::io::Error) -> Error {
    Error::backend(BACKEND, format!("{what} for `{key}`"), e.to_string())
}

#[async_trait]
impl Runner<StepRequest> for TestGateRunner {
    async fn start(&self, request: StepRequest) -> Result<()> {
        let secrets = params::secrets(&request.params);
        let _launching = self.inner.launching.lock().await;
        if let Some(gate) = self.attach(&request.key, secrets.clone())? {
            gate.learn_secrets(&secrets);
            return Ok(());
        }
        let gate = self.launch(&request, secrets).await?;
        self.gates().entry(request.key.clone()).or_insert(gate);
        Ok(())
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        let Some(gate) = self.attach(key, Vec::new())? else {
            return Err(Error::not_found(format!("test gate `{key}`")));
        };
        Ok(gate.outcome().await)
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        if let Some(gate) = self.attach(key, Vec::new())? {
            gate.cancel();
        }
        Ok(())
    }

    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let Some(gate) = self.attach(key, Vec::new())? else {
            return Err(Error::not_found(format!("test gate `{key}`")));
        };
        gate.logs()
            .map_err(|e| io_error(key, "read the output", &e))
    }
}

//! [`CustomStepRunner`]: runs `CUSTOM:*` steps as processes of a step registry, one process
//! group per invocation, with everything it needs to re-attach kept on disk.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{ExecutionKey, LogEntry, Outcome, Runner, StepRequest};
use devramps_core::{Error, Result};
use tokio::sync::watch;

use super::StepRegistry;
use super::layout::{self, Invocation};
use super::process::{self, ProcessId};
use super::protocol;
use super::routing::{self, Routes};
use super::supervise;

/// The name of this backend in errors.
const BACKEND: &str = "custom step runner";

/// Tunables of a [`CustomStepRunner`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CustomStepOptions {
    /// How long a cancelled step has between SIGTERM and SIGKILL (to its whole process
    /// group). Default 10 s.
    pub cancel_grace: Duration,
    /// The most each of a step's stdout, stderr and log files holds on disk; beyond it the
    /// file is cut to its tail. Default 8 MiB.
    pub capture_limit: u64,
    /// The largest result file read; a larger one fails the step. Default 16 MiB.
    pub result_limit: u64,
    /// How long a registry may take to answer `SYNTHESIZE-METADATA` when the runner asks
    /// which registry serves a type. Default 60 s.
    pub metadata_timeout: Duration,
}

impl Default for CustomStepOptions {
    fn default() -> Self {
        CustomStepOptions {
            cancel_grace: Duration::from_secs(10),
            capture_limit: 8 << 20,
            result_limit: 16 << 20,
            metadata_timeout: Duration::from_secs(60),
        }
    }
}

impl CustomStepOptions {
    /// Sets [`cancel_grace`](Self::cancel_grace).
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Sets [`capture_limit`](Self::capture_limit).
    pub fn with_capture_limit(mut self, bytes: u64) -> Self {
        self.capture_limit = bytes;
        self
    }
}

/// The process runner of `CUSTOM:*` steps: each invocation of a step is a process of a
/// [`StepRegistry`] speaking the DevRamps step protocol (reference §9.3), in a process group
/// of its own that outlives the engine.
///
/// - **Registries.** A type goes to the registry [routed](Self::with_route) to it; else, with
///   one registry, to that one; else to the first registry whose `SYNTHESIZE-METADATA` lists
///   it (asked once per runner, when first needed).
/// - **Invocations.** A request is the step's first run (`EXECUTE` without context: the
///   registry runs, triggers, or `prepare`s and answers `APPROVAL_REQUIRED`), its run after an
///   approval (`approvalContext: {"approved": true}`), or poll `n` (with the `pollingState`
///   the engine recorded). Results map to outcomes: `SUCCESS` → `Succeeded` with `data` as
///   outputs, `FAILED` → `Failed` with `<errorCode>: <error>`, `APPROVAL_REQUIRED` →
///   `ApprovalRequired`, `TRIGGERED` / `POLL_AGAIN` → `PollLater`. The result file, not the
///   exit status, is the outcome; a missing, empty, malformed or unknown result fails the
///   step with a reason quoting it and the tail of stderr.
/// - **Environment.** The engine's own, plus `DEVRAMPS_PIPELINE`, `DEVRAMPS_STAGE`,
///   `DEVRAMPS_COMMIT`, `DEVRAMPS_ACCOUNT_ID`, `DEVRAMPS_REGION` and
///   `DEVRAMPS_EXECUTION_ID`; working directory: the registry's.
/// - **Durability (L20).** Each invocation lives in
///   `<state dir>/executions/<key>/<invocation>/` (input, result, pid and start time,
///   bounded stdout / stderr, logs). Starting an invocation that has a process or a result
///   re-attaches to it: another runner on the same state directory (after a restart) waits
///   for the running process instead of starting it again. Only `input.json` (mode 0600)
///   and the process's command line hold the params in clear.
/// - **Cancel** sends SIGTERM to the process group, then SIGKILL after
///   [`cancel_grace`](CustomStepOptions::cancel_grace); it works from any process given the
///   state directory.
///
/// Linux only (`/proc`); needs a tokio runtime with I/O and time enabled (it spawns tasks
/// that reap and watch its processes). Clones share state.
#[derive(Clone, Debug)]
pub struct CustomStepRunner {
    config: Arc<Config>,
    inner: Arc<Inner>,
}

/// What the builder methods set.
#[derive(Clone, Debug)]
struct Config {
    routes: Routes,
    options: CustomStepOptions,
}

#[derive(Debug)]
struct Inner {
    state_dir: PathBuf,
    /// Held while a start decides and spawns, so two starts of one key spawn once.
    starting: tokio::sync::Mutex<()>,
    /// Invocation directories watched by a task of this runner: `true` once ended.
    watched: Arc<Mutex<HashMap<PathBuf, watch::Receiver<bool>>>>,
}

impl CustomStepRunner {
    /// A runner keeping its state under `state_dir` (made when first needed), serving the
    /// types of `registries`.
    pub fn new(state_dir: impl Into<PathBuf>, registries: Vec<StepRegistry>) -> Self {
        let state_dir = state_dir.into();
        let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
        CustomStepRunner {
            config: Arc::new(Config {
                routes: Routes::new(registries),
                options: CustomStepOptions::default(),
            }),
            inner: Arc::new(Inner {
                state_dir,
                starting: tokio::sync::Mutex::new(()),
                watched: Arc::default(),
            }),
        }
    }

    /// Routes `step_type` to `registry` (for example from the metadata `devramps validate`
    /// read). Clones made before do not see it (they share the executions all the same).
    pub fn with_route(mut self, step_type: impl Into<String>, registry: StepRegistry) -> Self {
        Arc::make_mut(&mut self.config)
            .routes
            .route(step_type.into(), registry);
        self
    }

    /// Sets the tunables (clones made before keep theirs, as for
    /// [`with_route`](Self::with_route)).
    pub fn with_options(mut self, options: CustomStepOptions) -> Self {
        Arc::make_mut(&mut self.config).options = options;
        self
    }

    /// The directory the runner keeps its state in.
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    fn key_dir(&self, key: &ExecutionKey) -> PathBuf {
        self.inner
            .state_dir
            .join("executions")
            .join(layout::key_dir_name(key))
    }

    /// The invocation the key is at, if it was ever started.
    fn current(&self, key: &ExecutionKey) -> io::Result<Option<Invocation>> {
        let key_dir = self.key_dir(key);
        match fs::read_to_string(key_dir.join("current")) {
            Ok(name) => Ok(Some(Invocation::new(&key_dir, name.trim()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_watched(&self, inv: &Invocation) -> Option<watch::Receiver<bool>> {
        let watched = self
            .inner
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        watched.get(&inv.dir).cloned()
    }

    /// Starts a task watching `inv` (reaping `child` when it is ours).
    fn watch(&self, inv: &Invocation, leader: ProcessId, child: Option<tokio::process::Child>) {
        let (done, receiver) = watch::channel(false);
        self.inner
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(inv.dir.clone(), receiver);
        let watcher = supervise::Watcher {
            inv: inv.clone(),
            leader,
            options: self.config.options.clone(),
            watched: self.inner.watched.clone(),
        };
        tokio::spawn(watcher.run(child, done));
    }

    /// Spawns the invocation's process; the error is the step's failure reason.
    async fn spawn(&self, request: &StepRequest, inv: &Invocation) -> Result<(), String> {
        let options = &self.config.options;
        let registry = self
            .config
            .routes
            .registry_for(
                &request.step_type,
                &self.inner.state_dir.join("registries"),
                options.metadata_timeout,
            )
            .await?;
        let input = protocol::execute_input(request).to_string();
        let written = process::private_file(&inv.file("input.json"), false)
            .and_then(|mut f| io::Write::write_all(&mut f, input.as_bytes()));
        written.map_err(|e| format!("could not write the step's input: {e}"))?;
        let args: Vec<OsString> = vec![
            "--input".into(),
            input.into(),
            "--output".into(),
            inv.file("output.json").into(),
            "--log-dir".into(),
            inv.log_dir().into(),
            "--execution-id".into(),
            inv.execution_id.clone().into(),
        ];
        let mut command = registry.process(&args);
        let stdout = process::private_file(&inv.file("stdout"), true);
        let stderr = process::private_file(&inv.file("stderr"), true);
        let (stdout, stderr) = match (stdout, stderr) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(e), _) | (_, Err(e)) => return Err(format!("could not create its output: {e}")),
        };
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .envs(environment(request, &inv.execution_id));
        let child = tokio::process::Command::from(command)
            .spawn()
            .map_err(|e| {
                format!(
                    "could not start the step registry {}: {e}",
                    routing::show(registry)
                )
            })?;
        let leader = child
            .id()
            .ok_or_else(|| io::Error::other("the process ended before it was seen"))
            .and_then(ProcessId::of)
            .and_then(|leader| leader.write(&inv.file("pid")).map(|()| leader));
        match leader {
            Ok(leader) => {
                self.watch(inv, leader, Some(child));
                Ok(())
            }
            Err(e) => {
                let mut child = child;
                let _ = child.start_kill();
                Err(format!(
                    "could not record the step's process (stopped it): {e}"
                ))
            }
        }
    }

    /// How the ended invocation went, from its files.
    fn outcome(&self, inv: &Invocation) -> io::Result<Outcome> {
        if let Some(reason) = read_optional(&inv.file("failed"))? {
            return Ok(Outcome::Failed { reason });
        }
        let limit = self.config.options.result_limit;
        let path = inv.file("output.json");
        let found = match fs::File::open(&path) {
            Ok(file) => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut io::Read::take(file, limit + 1), &mut bytes)?;
                Some(bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let problem = match found {
            Some(bytes) if bytes.len() as u64 > limit => {
                format!("the step's result file is larger than {limit} bytes")
            }
            Some(bytes) => match protocol::parse_result(&bytes) {
                Ok(outcome) => return Ok(outcome),
                Err(problem) => problem,
            },
            None if inv.file("cancelled").exists() => {
                "cancelled: the step's process group was stopped".to_owned()
            }
            None => format!(
                "the step ended without writing a result (`{}`)",
                path.display()
            ),
        };
        Ok(Outcome::Failed {
            reason: format!("{problem}{}", epilogue(inv)?),
        })
    }
}

/// How the process ended and the end of its stderr, for a failure reason.
fn epilogue(inv: &Invocation) -> io::Result<String> {
    let mut text = String::new();
    if let Some(exit) = read_optional(&inv.file("exit"))? {
        text.push_str(&format!("; the process {exit}"));
    }
    let (tail, _) = process::read_tail(&inv.file("stderr"), 4096)?;
    let tail = process::text_tail(&tail, 1000);
    if tail.is_empty() {
        text.push_str("; its stderr is empty");
    } else {
        text.push_str(&format!("; its stderr ends with: {tail}"));
    }
    Ok(text)
}

/// A small file's trimmed text (its first 64 KiB, lossy UTF-8), or `None` when it does not
/// exist.
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match process::read_head(path, 64 << 10) {
        Ok((bytes, _)) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The variables a step gets on top of the engine's environment.
fn environment(request: &StepRequest, execution_id: &str) -> Vec<(&'static str, String)> {
    let key = &request.key;
    let mut vars = vec![
        ("DEVRAMPS_PIPELINE", key.pipeline.clone()),
        ("DEVRAMPS_STAGE", key.stage.clone()),
        ("DEVRAMPS_EXECUTION_ID", execution_id.to_owned()),
    ];
    if let Some(commit) = &request.commit {
        vars.push(("DEVRAMPS_COMMIT", commit.clone()));
    }
    if let Some(target) = &request.target {
        vars.push(("DEVRAMPS_ACCOUNT_ID", target.account_id.clone()));
        vars.push(("DEVRAMPS_REGION", target.region.clone()));
    }
    vars
}

fn io_error(operation: String) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::backend_from(BACKEND, operation, e)
}

#[async_trait]
impl Runner<StepRequest> for CustomStepRunner {
    async fn start(&self, request: StepRequest) -> Result<()> {
        let _one_at_a_time = self.inner.starting.lock().await;
        let key_dir = self.key_dir(&request.key);
        let inv = Invocation::new(&key_dir, &layout::invocation(&request));
        let fail = |what: &str| io_error(format!("start `{}`: {what}", request.key));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(inv.log_dir())
            .map_err(fail(&format!("create `{}`", inv.dir.display())))?;
        let name = inv.dir.file_name().unwrap_or_default().as_encoded_bytes();
        process::write_atomic(&key_dir.join("current"), name)
            .map_err(fail("record the current invocation"))?;
        if let Some(leader) = ProcessId::read(&inv.file("pid")).map_err(fail("read its pid"))? {
            // Started before: re-attach (a live process we do not watch yet is watched).
            if leader.is_alive() && self.is_watched(&inv).is_none() {
                self.watch(&inv, leader, None);
            }
            return Ok(());
        }
        if inv.file("failed").exists() || inv.file("output.json").exists() {
            return Ok(());
        }
        if let Err(reason) = self.spawn(&request, &inv).await {
            process::write_atomic(&inv.file("failed"), reason.as_bytes())
                .map_err(fail("record that it could not start"))?;
        }
        Ok(())
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        let what = |op: &str| io_error(format!("{op} `{key}`"));
        let Some(inv) = self.current(key).map_err(what("wait for"))? else {
            return Err(Error::not_found(format!("custom step execution `{key}`")));
        };
        let leader = ProcessId::read(&inv.file("pid")).map_err(what("wait for"))?;
        let ended_by_watch = match self.is_watched(&inv) {
            Some(mut receiver) => receiver.wait_for(|ended| *ended).await.is_ok(),
            None => false,
        };
        if !ended_by_watch && let Some(leader) = leader {
            // Not our watch (another runner started it): look at /proc now and then.
            let mut pause = Duration::from_millis(5);
            while leader.is_alive() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
        self.outcome(&inv).map_err(what("read the outcome of"))
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        let what = |op: &str| io_error(format!("{op} `{key}`"));
        let Some(inv) = self.current(key).map_err(what("cancel"))? else {
            return Ok(());
        };
        let Some(leader) = ProcessId::read(&inv.file("pid")).map_err(what("cancel"))? else {
            return Ok(());
        };
        if !leader.is_alive() {
            return Ok(());
        }
        supervise::mark_cancelled(&inv).map_err(what("record the cancel of"))?;
        leader
            .signal_group(nix::sys::signal::Signal::SIGTERM)
            .map_err(what("stop"))?;
        let grace = self.config.options.cancel_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = leader.signal_group(nix::sys::signal::Signal::SIGKILL);
        });
        Ok(())
    }

    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let key_dir = self.key_dir(key);
        if !key_dir.is_dir() {
            return Err(Error::not_found(format!("custom step execution `{key}`")));
        }
        let limit = self.config.options.capture_limit;
        let read = tokio::task::spawn_blocking(move || supervise::collect_logs(&key_dir, limit));
        match read.await {
            Ok(result) => result.map_err(io_error(format!("read the logs of `{key}`"))),
            Err(e) => Err(Error::backend_from(BACKEND, "read logs", e)),
        }
    }
}

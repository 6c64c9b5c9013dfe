//! The machinery every build shares: one folder per execution key, a clean checkout of the
//! commit, the command in a process group of its own under a wrapper that records its exit
//! code, its output read into a bounded, redacted log, a timeout, cancel, and re-attaching
//! after a restart. What differs between artifact types is a [`Kind`].

mod supervise;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use devramps_core::exec::{BuildRequest, ExecutionKey, LogEntry, Outcome, Outputs};
use devramps_core::pipeline::ArtifactType;
use devramps_core::{Error, Result};
use futures::future::BoxFuture;
use tokio::sync::{Notify, watch};

use super::BuildOptions;
use super::checkout;
use super::dir::{self, BuildDir, JobRecord, JobState};
use super::output::{self, Secrets};
use super::params::{self, BuildParams};
use crate::steps::process::ProcessId;
use supervise::{now_ms, start_pump};

/// The wrapper: keeps the output FIFO open for reading (so the command never dies of a broken
/// pipe while the engine is away), runs the script with `sh -e`, then records its exit status
/// atomically. `$1` is the script, `$2` the FIFO, `$3` the exit-code file.
const WRAPPER: &str = r#"exec 3<"$2"; sh -e -c "$1" devramps-build 3<&-; code=$?; printf '%s\n' "$code" > "$3.tmp" && mv "$3.tmp" "$3""#;

/// What a kind of build does around the shared machinery.
#[async_trait]
pub(crate) trait Kind: Clone + Send + Sync + Debug + 'static {
    /// The artifact type it builds.
    fn artifact_type(&self) -> ArtifactType;
    /// Whether it runs in a checkout of the commit.
    fn needs_checkout(&self) -> bool;
    /// Plans the build (after the checkout): a command, work in this process, or why not.
    async fn plan(
        &self,
        request: &BuildRequest,
        params: &BuildParams,
        dir: &BuildDir,
    ) -> std::result::Result<Plan, String>;
    /// After the command exited 0: the outputs, or why the build failed all the same.
    async fn finish(
        &self,
        finish: &serde_json::Value,
        dir: &BuildDir,
    ) -> std::result::Result<Outputs, String>;
}

/// What a build does.
pub(crate) enum Plan {
    /// Run a shell script in the checkout.
    Command(Command),
    /// Work done in this process (imports); its outcome is the build's.
    Work(BoxFuture<'static, Outcome>),
}

/// A shell script to run.
pub(crate) struct Command {
    /// Run with `sh -e -c`.
    pub(crate) script: String,
    /// Added to the inherited environment (secrets in clear: only for the child).
    pub(crate) env: Vec<(String, String)>,
    /// Its timeout; `None` for [`BuildOptions::default_timeout`].
    pub(crate) timeout_minutes: Option<f64>,
    /// Kept in `job.json` for [`Kind::finish`] (no secrets).
    pub(crate) finish: serde_json::Value,
}

/// Runs builds of one [`Kind`]; cheap to clone.
#[derive(Debug)]
pub(crate) struct Jobs<K: Kind> {
    inner: Arc<Inner<K>>,
}

impl<K: Kind> Clone for Jobs<K> {
    fn clone(&self) -> Self {
        Jobs {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<K> {
    kind: K,
    repo: Option<Arc<devramps_git::GitRepository>>,
    options: BuildOptions,
    jobs: Mutex<HashMap<ExecutionKey, Arc<Job>>>,
    launching: tokio::sync::Mutex<()>,
}

/// One build as the runner holds it.
#[derive(Debug)]
struct Job {
    shared: Arc<Shared>,
    done: watch::Receiver<Option<Outcome>>,
}

#[derive(Debug)]
struct Shared {
    dir: BuildDir,
    secrets: Secrets,
    cancelled: AtomicBool,
    wake: Notify,
}

impl<K: Kind> Jobs<K> {
    /// Builds of `kind`, exporting commits of `repo` (kinds without a checkout need none).
    pub(crate) fn new(
        kind: K,
        repo: Option<Arc<devramps_git::GitRepository>>,
        options: BuildOptions,
    ) -> Self {
        Jobs {
            inner: Arc::new(Inner {
                kind,
                repo,
                options,
                jobs: Mutex::new(HashMap::new()),
                launching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The kind.
    pub(crate) fn kind(&self) -> &K {
        &self.inner.kind
    }

    /// The options.
    pub(crate) fn options(&self) -> &BuildOptions {
        &self.inner.options
    }

    /// The same builds with other options (a new runner: set options before the first build).
    pub(crate) fn map_options(self, f: impl FnOnce(&mut BuildOptions)) -> Self {
        let mut options = self.inner.options.clone();
        f(&mut options);
        Jobs::new(self.inner.kind.clone(), self.inner.repo.clone(), options)
    }

    /// The same builds of another kind (a new runner).
    pub(crate) fn with_kind(self, kind: K) -> Self {
        Jobs::new(kind, self.inner.repo.clone(), self.inner.options.clone())
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionKey, Arc<Job>>> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn dir(&self, key: &ExecutionKey) -> BuildDir {
        BuildDir::new(&self.inner.options.state_dir, key)
    }

    fn name(&self) -> String {
        format!("{} builder", self.inner.kind.artifact_type().as_str())
    }

    fn io_error(&self, key: &ExecutionKey, what: &str, e: &std::io::Error) -> Error {
        Error::backend(self.name(), format!("{what} for `{key}`"), e.to_string())
    }

    /// The build of `key`: in memory, else from its folder. A folder where nothing started is
    /// `None` for a start (which starts it afresh) and a recorded failure otherwise.
    fn attach(
        &self,
        key: &ExecutionKey,
        secrets: &[String],
        starting: bool,
    ) -> Result<Option<Arc<Job>>> {
        if let Some(job) = self.jobs().get(key) {
            output::learn(&job.shared.secrets, secrets);
            return Ok(Some(job.clone()));
        }
        let dir = self.dir(key);
        let io = |e: std::io::Error| self.io_error(key, "read the build's folder", &e);
        let record: Option<JobRecord> = dir::read_json(&dir.job()).map_err(io)?;
        if let Some(record) = &record
            && record.artifact_type != self.inner.kind.artifact_type().as_str()
        {
            return Err(Error::backend(
                self.name(),
                format!("attach to `{key}`"),
                format!("that key is a build of type {}", record.artifact_type),
            ));
        }
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            secrets: Arc::new(Mutex::new(Vec::new())),
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
        });
        output::learn(&shared.secrets, secrets);
        let job = if let Some(outcome) = dir.read_result().map_err(io)? {
            Job::ended(shared, outcome)
        } else if let (Some(pid), Some(record), Some(state)) = (
            ProcessId::read(&dir.pid()).map_err(io)?,
            record,
            dir::read_json::<JobState>(&dir.state()).map_err(io)?,
        ) {
            let pump = start_pump(&shared, self.inner.options.log_limit, None);
            self.watch(shared, record, state, pid, pump)
        } else if dir.dir.exists() && !starting {
            let outcome = Outcome::Failed {
                reason: "the engine stopped while the build was starting; retry the stage"
                    .to_owned(),
            };
            dir.write_result(&outcome).map_err(io)?;
            Job::ended(shared, outcome)
        } else {
            return Ok(None);
        };
        Ok(Some(self.jobs().entry(key.clone()).or_insert(job).clone()))
    }

    /// The build of `key` for `wait`, `cancel` and `logs` (after any start in progress).
    async fn find(&self, key: &ExecutionKey) -> Result<Option<Arc<Job>>> {
        let _launching = self.inner.launching.lock().await;
        self.attach(key, &[], false)
    }

    /// Starts a build in a clean folder; a failure before the command runs is recorded as the
    /// build's outcome.
    async fn launch(&self, request: &BuildRequest, secrets: &[String]) -> Result<Arc<Job>> {
        let key = &request.key;
        let dir = self.dir(key);
        let io = |what: &str, e: std::io::Error| self.io_error(key, what, &e);
        let clean = dir.dir.clone();
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&clean) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::create_dir_all(&clean),
        })
        .await
        .map_err(|e| Error::backend(self.name(), format!("start `{key}`"), e.to_string()))?
        .map_err(|e| io("create the build's folder", e))?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            secrets: Arc::new(Mutex::new(Vec::new())),
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
        });
        output::learn(&shared.secrets, secrets);
        let fail = |reason: String| -> Result<Arc<Job>> {
            let outcome = Outcome::Failed { reason };
            dir.write_result(&outcome)
                .map_err(|e| io("record the result", e))?;
            Ok(Job::ended(shared.clone(), outcome))
        };
        // The folder names its type from the start, so a router finds its runner after a
        // restart whatever happened next.
        let kind = &self.inner.kind;
        let mut record = JobRecord {
            artifact_type: kind.artifact_type().as_str().to_owned(),
            finish: serde_json::Value::Null,
        };
        dir::write_json(&dir.job(), &record).map_err(|e| io("record the build", e))?;
        let params = match BuildParams::parse(&request.params) {
            Ok(p) => p,
            Err(why) => return fail(format!("invalid build parameters: {why}")),
        };
        if kind.needs_checkout() {
            let Some(repo) = self.inner.repo.clone() else {
                return fail(format!("{} has no repository to check out", self.name()));
            };
            if let Err(e) = checkout::export(repo, &request.commit, dir.checkout()).await {
                checkout::remove(dir.checkout()).await;
                return fail(format!("cannot check out commit {}: {e}", request.commit));
            }
        }
        let command = match kind.plan(request, &params, &dir).await {
            Err(reason) => {
                if !self.inner.options.keep_failed {
                    checkout::remove(dir.checkout()).await;
                }
                return fail(reason);
            }
            Ok(Plan::Work(work)) => return Ok(Job::work(shared, work)),
            Ok(Plan::Command(command)) => command,
        };
        record.finish = command.finish.clone();
        let minutes = command
            .timeout_minutes
            .unwrap_or_else(|| self.inner.options.default_timeout.as_secs_f64() / 60.0);
        let state = JobState {
            deadline_ms: now_ms().saturating_add((minutes * 60_000.0) as u64),
            timeout_minutes: minutes,
        };
        dir::write_json(&dir.job(), &record).map_err(|e| io("record the build", e))?;
        dir::write_json(&dir.state(), &state).map_err(|e| io("record the build", e))?;
        output::make_fifo(&dir.fifo()).map_err(|e| io("make the output pipe", e))?;
        let reader = output::open_reader(&dir.fifo()).map_err(|e| io("open the output pipe", e))?;
        // The write end is open before the reader starts, so it never reads the end before
        // the command has its copy.
        let writer = output::open_writer(&dir.fifo()).map_err(|e| io("open the output pipe", e))?;
        let pump = start_pump(&shared, self.inner.options.log_limit, Some(reader));
        let workdir = if kind.needs_checkout() {
            dir.checkout()
        } else {
            dir.dir.clone()
        };
        let pid = self.spawn(request, &command, writer, &workdir, &shared)?;
        pid.write(&dir.pid())
            .map_err(|e| io("record the started command", e))?;
        Ok(self.watch(shared, record, state, pid, pump))
    }

    /// Starts the wrapper in a process group of its own, its output into the FIFO.
    fn spawn(
        &self,
        request: &BuildRequest,
        command: &Command,
        out: std::fs::File,
        workdir: &std::path::Path,
        shared: &Arc<Shared>,
    ) -> Result<ProcessId> {
        let key = &request.key;
        let io = |what: &str, e: std::io::Error| self.io_error(key, what, &e);
        let dir = &shared.dir;
        let err = out.try_clone().map_err(|e| io("open the output pipe", e))?;
        let mut child = tokio::process::Command::new("sh");
        child
            .arg("-c")
            .arg(WRAPPER)
            .arg("devramps-build-wrapper")
            .arg(&command.script)
            .arg(dir.fifo())
            .arg(dir.exit_code())
            .current_dir(workdir)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .env("DEVRAMPS_COMMIT", &request.commit)
            .env("DEVRAMPS_ARTIFACT", &request.artifact)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(false);
        let mut child = child
            .spawn()
            .map_err(|e| io("start `sh` (is a POSIX shell on the PATH?)", e))?;
        let pid = child
            .id()
            .ok_or_else(|| Error::backend(self.name(), format!("start `{key}`"), "no pid"))
            .and_then(|pid| ProcessId::of(pid).map_err(|e| io("read the started command", e)))?;
        let wake = shared.clone();
        tokio::spawn(async move {
            let _ = child.wait().await;
            wake.wake.notify_one();
        });
        Ok(pid)
    }
}

#[async_trait]
impl<K: Kind> devramps_core::backend::Runner<BuildRequest> for Jobs<K> {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        let secrets = params::secrets(&request.params);
        let _launching = self.inner.launching.lock().await;
        if self.attach(&request.key, &secrets, true)?.is_some() {
            return Ok(());
        }
        let job = self.launch(&request, &secrets).await?;
        self.jobs().entry(request.key.clone()).or_insert(job);
        Ok(())
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        let Some(job) = self.find(key).await? else {
            return Err(Error::not_found(format!("build `{key}`")));
        };
        Ok(job.outcome().await)
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        if let Some(job) = self.find(key).await? {
            job.cancel();
        }
        Ok(())
    }

    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let Some(job) = self.find(key).await? else {
            return Err(Error::not_found(format!("build `{key}`")));
        };
        job.shared
            .logs(self.inner.options.log_limit)
            .map_err(|e| self.io_error(key, "read the output", &e))
    }
}

//! Artifact builds on this machine (reference §3): the runners of
//! [`BuildRequest`]s that `devramps run` plugs into the engine.
//!
//! - [`BundleBuilder`]: `DEVRAMPS:BUNDLE:BUILD`: `build_commands` in a clean checkout of the
//!   commit, the file at `file_path` stored, content-addressed, in an [`ArtifactStore`]
//!   ([`LocalArtifactStore`]: a folder).
//! - [`DockerBuilder`]: `DEVRAMPS:DOCKER:BUILD`: the Dockerfile built and pushed to the
//!   destination registry with docker, podman or buildah.
//! - [`BundleImporter`] and [`DockerImporter`]: `DEVRAMPS:BUNDLE:IMPORT` and
//!   `DEVRAMPS:DOCKER:IMPORT`: the source is found (its digest taken) and, for bundles, copied
//!   to the destination.
//! - [`Builds`]: one [`Runner`] of every type, dispatching on the request's artifact type.
//!
//! Every build has a folder `<state>/builds/<key>/`: the checkout (removed afterwards, kept
//! after a failure with [`BuildOptions::keep_failed`]), the log (secrets redacted, bounded),
//! the exit code and the result. A key is built once (L20): starting it again, in this process
//! or in a new one on the same state directory, re-attaches to the running build or returns
//! its outcome; a retry is a new key, so a new folder and a clean checkout. Commands run in a
//! process group of their own, killed on timeout and on cancel; they outlive the engine, which
//! re-attaches when started again.
//!
//! The runners need a tokio runtime with I/O and time enabled.
//!
//! ```no_run
//! # async fn demo() -> devramps_core::Result<()> {
//! use std::sync::Arc;
//! use devramps_core::backend::Runner;
//! use devramps_core::exec::{BuildRequest, ExecutionKey, Unit};
//! use devramps_core::expr::FinalValue;
//! use devramps_core::pipeline::ArtifactType;
//! use devramps_local::build::{Builds, DockerOptions, LocalArtifactStore};
//!
//! let repo = Arc::new(devramps_git::GitRepository::open(".")?);
//! let store = Arc::new(LocalArtifactStore::new(".devramps/state/artifacts"));
//! let builds = Builds::local(repo, ".devramps/state", store, DockerOptions::default());
//! let key = ExecutionKey::new("app", 1, "", 1, Unit::build("web"));
//! let params = FinalValue::Plain(serde_json::json!({"params": {
//!     "build_commands": "mkdir -p dist && zip -r dist/web.zip src",
//!     "file_path": "/dist/web.zip",
//! }}));
//! let commit = "HEAD";
//! builds.start(BuildRequest::new(key.clone(), "web", ArtifactType::BundleBuild, commit, params)).await?;
//! println!("{:?}", builds.wait(&key).await?);
//! # Ok(())
//! # }
//! ```

mod bundle;
mod checkout;
mod dir;
mod docker;
mod import;
mod job;
mod mirror;
mod output;
mod params;
mod registry;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{DynBuildRunner, Runner};
use devramps_core::exec::{BuildRequest, ExecutionKey, LogEntry, Outcome};
use devramps_core::pipeline::{ArtifactType, YamlEnum};
use devramps_core::{Error, Result};
use devramps_git::GitRepository;

pub use bundle::{BundleBuilder, LOCAL_BUCKET};
pub use docker::{DockerBuilder, DockerOptions, Tool};
pub use import::{BundleImporter, DockerImporter};
pub use mirror::LocalMirror;
pub use registry::{ImageRef, RegistryMap};
pub use store::{ArtifactStore, LocalArtifactStore, ObjectInfo, StoredBundle};

/// The default timeout of a build whose params give none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The default bound of a build's log on disk.
pub const DEFAULT_LOG_LIMIT: u64 = 4 * 1024 * 1024;

/// How builds run; every builder has one. Made with [`BuildOptions::new`] and its setters.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Where builds keep their folders (`<state_dir>/builds/<key>/`).
    pub(crate) state_dir: PathBuf,
    /// The timeout of a build whose params give no `timeout_minutes` ([`DEFAULT_TIMEOUT`]).
    pub(crate) default_timeout: Duration,
    /// Keep the checkout of a failed build (default: removed like any other).
    pub(crate) keep_failed: bool,
    /// The log's bound on disk, in bytes; past it the log keeps its last quarter
    /// ([`DEFAULT_LOG_LIMIT`]).
    pub(crate) log_limit: u64,
    /// How often a running build is looked at when nothing wakes the runner (a re-attached
    /// one; default 100 ms).
    pub(crate) poll: Duration,
}

impl BuildOptions {
    /// The defaults, with builds under `state_dir/builds/`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        BuildOptions {
            state_dir: state_dir.into(),
            default_timeout: DEFAULT_TIMEOUT,
            keep_failed: false,
            log_limit: DEFAULT_LOG_LIMIT,
            poll: Duration::from_millis(100),
        }
    }

    /// Keeps the checkout of a failed build, to look at (default: removed like any other).
    pub fn keep_failed(mut self, keep: bool) -> Self {
        self.keep_failed = keep;
        self
    }

    /// The timeout of a build whose params give no `timeout_minutes` ([`DEFAULT_TIMEOUT`]).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// The log's bound on disk, in bytes ([`DEFAULT_LOG_LIMIT`]); past it the log keeps its
    /// last quarter.
    pub fn log_limit(mut self, bytes: u64) -> Self {
        self.log_limit = bytes;
        self
    }

    /// How often a running build is looked at when nothing wakes the runner (a re-attached
    /// one; default 100 ms).
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }
}

/// One build runner for every artifact type: each request goes to the runner of its
/// `artifact_type`; `wait`, `cancel` and `logs` go to the runner that started the key (after
/// a restart, the one the key's folder names).
#[derive(Clone, Debug)]
pub struct Builds {
    state_dir: PathBuf,
    runners: BTreeMap<ArtifactType, DynBuildRunner>,
    started: Arc<Mutex<HashMap<ExecutionKey, ArtifactType>>>,
}

impl Builds {
    /// No runner yet; builds keep their folders under `state_dir/builds/`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Builds {
            state_dir: state_dir.into(),
            runners: BTreeMap::new(),
            started: Arc::default(),
        }
    }

    /// The four local runners: bundles built from `repo` and imported into `store`, images
    /// built and imported with `docker`'s options.
    pub fn local(
        repo: Arc<GitRepository>,
        state_dir: impl Into<PathBuf>,
        store: Arc<dyn ArtifactStore>,
        docker: DockerOptions,
    ) -> Self {
        let state_dir = state_dir.into();
        let registries = docker.registries.clone();
        Builds::new(&state_dir)
            .with(
                ArtifactType::BundleBuild,
                Arc::new(BundleBuilder::new(repo.clone(), &state_dir, store.clone())),
            )
            .with(
                ArtifactType::DockerBuild,
                Arc::new(DockerBuilder::new(repo, &state_dir).with_options(docker)),
            )
            .with(
                ArtifactType::BundleImport,
                Arc::new(BundleImporter::new(&state_dir, store)),
            )
            .with(
                ArtifactType::DockerImport,
                Arc::new(DockerImporter::new(&state_dir, registries)),
            )
    }

    /// Sets the runner of `artifact_type`.
    pub fn with(mut self, artifact_type: ArtifactType, runner: DynBuildRunner) -> Self {
        self.runners.insert(artifact_type, runner);
        self
    }

    fn runner(&self, artifact_type: ArtifactType) -> Result<&DynBuildRunner> {
        self.runners.get(&artifact_type).ok_or_else(|| {
            Error::not_supported(format!("builds of type {artifact_type}"), "local builds")
        })
    }

    /// The runner of a key started before: remembered, else named by its folder.
    fn runner_of(&self, key: &ExecutionKey) -> Result<&DynBuildRunner> {
        let known = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied();
        let artifact_type = match known {
            Some(t) => t,
            None => {
                let path = dir::BuildDir::new(&self.state_dir, key).job();
                let record: Option<dir::JobRecord> = dir::read_json(&path).map_err(|e| {
                    Error::backend(
                        "local builds",
                        format!("read `{}`", path.display()),
                        e.to_string(),
                    )
                })?;
                record
                    .and_then(|r| ArtifactType::parse(&r.artifact_type))
                    .ok_or_else(|| Error::not_found(format!("build `{key}`")))?
            }
        };
        self.runner(artifact_type)
    }
}

#[async_trait]
impl Runner<BuildRequest> for Builds {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        let runner = self.runner(request.artifact_type)?;
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.key.clone(), request.artifact_type);
        runner.start(request).await
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        self.runner_of(key)?.wait(key).await
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        match self.runner_of(key) {
            Ok(runner) => runner.cancel(key).await,
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        self.runner_of(key)?.logs(key).await
    }
}

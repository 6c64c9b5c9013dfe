//! [`BundleBuilder`]: `DEVRAMPS:BUNDLE:BUILD` (reference §3.2), the build commands run in a
//! checkout, the produced file stored in the [`ArtifactStore`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::Runner;
use devramps_core::exec::{BuildRequest, ExecutionKey, LogEntry, Outcome, Outputs};
use devramps_core::expr::ArtifactLocation;
use devramps_core::pipeline::ArtifactType;
use devramps_git::GitRepository;
use serde_json::json;

use super::BuildOptions;
use super::dir::BuildDir;
use super::job::{Command, Jobs, Kind, Plan};
use super::params::{BuildParams, repo_path};
use super::store::{ArtifactStore, StoredBundle};

/// The bucket of a bundle whose request names no destination (the engine did not know it).
pub const LOCAL_BUCKET: &str = "devramps-local";

/// Builds `DEVRAMPS:BUNDLE:BUILD` artifacts, shared or per stage, on this machine.
///
/// - `build_commands` run as a shell script (`sh -e -c`: it stops at the first failing
///   command) at the root of a fresh export of the commit (`<state>/builds/<key>/checkout`),
///   with the process's environment, the artifact's `params.env` and `envs` (secrets in clear
///   only there), `DEVRAMPS_COMMIT` and `DEVRAMPS_ARTIFACT`, in a process group of its own.
/// - `params.timeout_minutes` (else [`BuildOptions::default_timeout`], 30 minutes) bounds it:
///   then the group is killed and the build fails.
/// - The file at `file_path` (a repository path, inside the checkout) is stored in the
///   [`ArtifactStore`] at the request's destination (`s3_bucket`/`s3_key`; when the request
///   has none, bucket [`LOCAL_BUCKET`] and key `<artifact>/<commit>/<file name>`). Outputs:
///   `s3_url`, `s3_bucket`, `s3_key`, `sha256`, `size` and, for a store on this machine,
///   `path`.
/// - What the commands print is the build's log ([`Runner::logs`]), secrets redacted, bounded;
///   a failure's reason quotes the exit code and the last lines.
#[derive(Clone, Debug)]
pub struct BundleBuilder {
    jobs: Jobs<Bundle>,
}

/// The bundle kind of build.
#[derive(Clone, Debug)]
pub(crate) struct Bundle {
    store: Arc<dyn ArtifactStore>,
}

impl BundleBuilder {
    /// A builder exporting commits of `repo`, keeping its builds under `state_dir/builds/` and
    /// storing bundles in `store`.
    pub fn new(
        repo: Arc<GitRepository>,
        state_dir: impl Into<PathBuf>,
        store: Arc<dyn ArtifactStore>,
    ) -> Self {
        BundleBuilder {
            jobs: Jobs::new(Bundle { store }, Some(repo), BuildOptions::new(state_dir)),
        }
    }

    /// Keeps the checkout of a failed build, to look at (default: removed).
    pub fn keep_failed(self, keep: bool) -> Self {
        self.with(|o| o.keep_failed = keep)
    }

    /// The timeout of a build whose params give no `timeout_minutes`.
    pub fn default_timeout(self, timeout: Duration) -> Self {
        self.with(|o| o.default_timeout = timeout)
    }

    /// Replaces every option (the state directory included).
    pub fn with_options(self, options: BuildOptions) -> Self {
        self.with(|o| *o = options)
    }

    /// The options.
    pub fn options(&self) -> &BuildOptions {
        self.jobs.options()
    }

    fn with(self, f: impl FnOnce(&mut BuildOptions)) -> Self {
        BundleBuilder {
            jobs: self.jobs.map_options(f),
        }
    }
}

/// The destination of a bundle: the request's, else the local default.
pub(crate) fn destination(request: &BuildRequest, file: &Path) -> ArtifactLocation {
    let d = &request.destination;
    if !d.s3_bucket.is_empty() && !d.s3_key.is_empty() {
        let mut d = d.clone();
        if d.s3_url.is_empty() {
            d.s3_url = format!("s3://{}/{}", d.s3_bucket, d.s3_key);
        }
        return d;
    }
    if let Some((bucket, key)) = d
        .s3_url
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
    {
        return ArtifactLocation {
            s3_url: d.s3_url.clone(),
            s3_bucket: bucket.to_owned(),
            s3_key: key.to_owned(),
            ..ArtifactLocation::default()
        };
    }
    let name = file
        .file_name()
        .map_or_else(|| "bundle".into(), |n| n.to_string_lossy().into_owned());
    let key = format!("{}/{}/{name}", request.artifact, request.commit);
    ArtifactLocation {
        s3_url: format!("s3://{LOCAL_BUCKET}/{key}"),
        s3_bucket: LOCAL_BUCKET.to_owned(),
        s3_key: key,
        ..ArtifactLocation::default()
    }
}

/// The outputs of a stored bundle.
pub(crate) fn bundle_outputs(stored: &StoredBundle, destination: &ArtifactLocation) -> Outputs {
    let mut outputs = Outputs::new();
    outputs.insert("s3_url".into(), destination.s3_url.clone().into());
    outputs.insert("s3_bucket".into(), destination.s3_bucket.clone().into());
    outputs.insert("s3_key".into(), destination.s3_key.clone().into());
    outputs.insert("sha256".into(), stored.sha256.clone().into());
    outputs.insert("size".into(), stored.size.into());
    if let Some(path) = &stored.path {
        outputs.insert("path".into(), path.display().to_string().into());
    }
    outputs
}

/// A destination read back from `job.json`.
fn location(value: &serde_json::Value) -> ArtifactLocation {
    let text = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    ArtifactLocation {
        s3_url: text("s3_url"),
        s3_bucket: text("s3_bucket"),
        s3_key: text("s3_key"),
        ..ArtifactLocation::default()
    }
}

#[async_trait]
impl Kind for Bundle {
    fn artifact_type(&self) -> ArtifactType {
        ArtifactType::BundleBuild
    }

    fn needs_checkout(&self) -> bool {
        true
    }

    async fn plan(
        &self,
        request: &BuildRequest,
        params: &BuildParams,
        _dir: &BuildDir,
    ) -> std::result::Result<Plan, String> {
        let invalid = |why: String| format!("invalid build parameters: {why}");
        let script = params.required_text("build_commands").map_err(invalid)?;
        let file_path = params.required_text("file_path").map_err(invalid)?;
        let relative = repo_path("file_path", &file_path).map_err(invalid)?;
        if relative.as_os_str().is_empty() {
            return Err(invalid("`file_path` names the repository itself".into()));
        }
        let minutes = params.minutes("timeout_minutes").map_err(invalid)?;
        let destination = destination(request, &relative);
        Ok(Plan::Command(Command {
            script,
            env: params.env.clone(),
            timeout_minutes: minutes,
            finish: json!({
                "file_path": file_path,
                "relative": relative,
                "s3_url": destination.s3_url,
                "s3_bucket": destination.s3_bucket,
                "s3_key": destination.s3_key,
            }),
        }))
    }

    async fn finish(
        &self,
        finish: &serde_json::Value,
        dir: &BuildDir,
    ) -> std::result::Result<Outputs, String> {
        let file_path = finish["file_path"].as_str().unwrap_or_default();
        let relative = finish["relative"].as_str().unwrap_or_default();
        let checkout = dir.checkout();
        let root = std::fs::canonicalize(&checkout)
            .map_err(|_| "the build removed its own working directory (the checkout)".to_owned())?;
        let file = checkout.join(relative);
        if std::fs::symlink_metadata(&file).is_err() {
            return Err(format!(
                "`file_path` `{file_path}` does not exist after the build"
            ));
        }
        let real = std::fs::canonicalize(&file)
            .map_err(|e| format!("`file_path` `{file_path}` cannot be read: {e}"))?;
        if !real.starts_with(&root) {
            return Err(format!(
                "`file_path` `{file_path}` leads outside the checkout (to `{}`)",
                real.display()
            ));
        }
        if !real.is_file() {
            return Err(format!("`file_path` `{file_path}` is not a file"));
        }
        let destination = location(finish);
        let stored = self
            .store
            .put(&real, &destination)
            .await
            .map_err(|e| format!("cannot store `{file_path}`: {e}"))?;
        Ok(bundle_outputs(&stored, &destination))
    }
}

#[async_trait]
impl Runner<BuildRequest> for BundleBuilder {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        self.jobs.start(request).await
    }
    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        self.jobs.wait(key).await
    }
    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        self.jobs.cancel(key).await
    }
    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        self.jobs.logs(key).await
    }
}

//! [`BundleImporter`] and [`DockerImporter`]: `DEVRAMPS:BUNDLE:IMPORT` and
//! `DEVRAMPS:DOCKER:IMPORT` (reference §3.2). Nothing is built: the source is looked for (for
//! up to `timeout_minutes`, DevRamps' imports poll for the source's availability; once when
//! none is given), and its digest taken.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::Runner;
use devramps_core::exec::{BuildRequest, ExecutionKey, LogEntry, Outcome, Outputs};
use devramps_core::pipeline::ArtifactType;

use super::BuildOptions;
use super::bundle::{bundle_outputs, destination};
use super::dir::BuildDir;
use super::job::{Jobs, Kind, Plan};
use super::params::BuildParams;
use super::registry::{ImageRef, RegistryMap, manifest_digest};
use super::store::ArtifactStore;
use crate::steps::process::private_file;

/// How often a source that is not there yet is looked for again.
const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// Imports `DEVRAMPS:BUNDLE:IMPORT` artifacts: the object at `source_s3_url` is found in the
/// [`ArtifactStore`] and copied to the request's destination (the local default when it has
/// none, as for [`BundleBuilder`](super::BundleBuilder)). Outputs as a bundle build's, and
/// `source_s3_url`. A source that does not exist fails the import, naming the URL.
#[derive(Clone, Debug)]
pub struct BundleImporter {
    jobs: Jobs<BundleImport>,
}

/// Imports `DEVRAMPS:DOCKER:IMPORT` artifacts: the manifest of `source_image_url` is looked for
/// with a `HEAD` of the OCI distribution API (the host mapped by the [`RegistryMap`], without
/// credentials) and its digest taken. Outputs: `image_url` and `image_tag` (the request's
/// destination, else the source's), `image_digest` and `source_image_url`. The image is not
/// copied: the destination names where the deployment expects it.
#[derive(Clone, Debug)]
pub struct DockerImporter {
    jobs: Jobs<DockerImport>,
}

#[derive(Clone, Debug)]
pub(crate) struct BundleImport {
    store: Arc<dyn ArtifactStore>,
}

#[derive(Clone, Debug)]
pub(crate) struct DockerImport {
    registries: RegistryMap,
}

impl BundleImporter {
    /// An importer keeping its records under `state_dir/builds/`, reading and writing `store`.
    pub fn new(state_dir: impl Into<PathBuf>, store: Arc<dyn ArtifactStore>) -> Self {
        BundleImporter {
            jobs: Jobs::new(BundleImport { store }, None, BuildOptions::new(state_dir)),
        }
    }
}

impl DockerImporter {
    /// An importer keeping its records under `state_dir/builds/`, reaching registries through
    /// `registries`.
    pub fn new(state_dir: impl Into<PathBuf>, registries: RegistryMap) -> Self {
        DockerImporter {
            jobs: Jobs::new(
                DockerImport { registries },
                None,
                BuildOptions::new(state_dir),
            ),
        }
    }
}

/// Appends a line to the import's log.
fn note(dir: &BuildDir, line: &str) {
    if let Ok(mut file) = private_file(&dir.output(), true) {
        let _ = writeln!(file, "{line}");
    }
}

/// Looks for a source until `look` finds it or `minutes` pass (once when `None`).
async fn until_found<F, Fut, T>(
    minutes: Option<f64>,
    mut look: F,
) -> std::result::Result<Option<T>, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<T>, String>>,
{
    let deadline = minutes.map(|m| tokio::time::Instant::now() + Duration::from_secs_f64(m * 60.0));
    loop {
        if let Some(found) = look().await? {
            return Ok(Some(found));
        }
        match deadline {
            Some(d) if tokio::time::Instant::now() + LOOK_AGAIN < d => {
                tokio::time::sleep(LOOK_AGAIN).await;
            }
            _ => return Ok(None),
        }
    }
}

/// `" (looked for N minutes)"` when the import waited.
fn waited(minutes: Option<f64>) -> String {
    minutes.map_or_else(String::new, |m| format!(" (looked for {m} minutes)"))
}

#[async_trait]
impl Kind for BundleImport {
    fn artifact_type(&self) -> ArtifactType {
        ArtifactType::BundleImport
    }

    fn needs_checkout(&self) -> bool {
        false
    }

    async fn plan(
        &self,
        request: &BuildRequest,
        params: &BuildParams,
        dir: &BuildDir,
    ) -> std::result::Result<Plan, String> {
        let invalid = |why: String| format!("invalid import parameters: {why}");
        let source = params.required_text("source_s3_url").map_err(invalid)?;
        let minutes = params.minutes("timeout_minutes").map_err(invalid)?;
        let name = source.rsplit('/').next().unwrap_or("bundle").to_owned();
        let destination = destination(request, std::path::Path::new(&name));
        let store = self.store.clone();
        let dir = dir.clone();
        Ok(Plan::Work(Box::pin(async move {
            let look = || async { store.head(&source).await.map_err(|e| e.to_string()) };
            match until_found(minutes, look).await {
                Ok(Some(info)) => note(&dir, &format!("found `{source}` ({} bytes)", info.size)),
                Ok(None) => {
                    return Outcome::Failed {
                        reason: format!(
                            "bundle import: the source `{source}` does not exist{}",
                            waited(minutes)
                        ),
                    };
                }
                Err(e) => {
                    return Outcome::Failed {
                        reason: format!("bundle import: cannot look for `{source}`: {e}"),
                    };
                }
            }
            let download = dir.file("import.download");
            let stored = match store.get(&source, &download).await {
                Ok(()) => store.put(&download, &destination).await,
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&download);
            match stored {
                Ok(stored) => {
                    note(
                        &dir,
                        &format!("stored at `{}`, sha256 {}", stored.url, stored.sha256),
                    );
                    let mut outputs = bundle_outputs(&stored, &destination);
                    outputs.insert("source_s3_url".into(), source.into());
                    Outcome::Succeeded { outputs }
                }
                Err(e) => Outcome::Failed {
                    reason: format!("bundle import: cannot copy `{source}`: {e}"),
                },
            }
        })))
    }

    async fn finish(
        &self,
        _: &serde_json::Value,
        _: &BuildDir,
    ) -> std::result::Result<Outputs, String> {
        Err("an import runs no command".into())
    }
}

#[async_trait]
impl Kind for DockerImport {
    fn artifact_type(&self) -> ArtifactType {
        ArtifactType::DockerImport
    }

    fn needs_checkout(&self) -> bool {
        false
    }

    async fn plan(
        &self,
        request: &BuildRequest,
        params: &BuildParams,
        dir: &BuildDir,
    ) -> std::result::Result<Plan, String> {
        let invalid = |why: String| format!("invalid import parameters: {why}");
        let source = params.required_text("source_image_url").map_err(invalid)?;
        let image = ImageRef::parse(&source).map_err(invalid)?;
        let minutes = params.minutes("timeout_minutes").map_err(invalid)?;
        let d = &request.destination;
        let (url, tag) = if d.image_url.is_empty() {
            (source.clone(), image.reference.clone())
        } else if d.image_tag.is_empty() {
            let tag = ImageRef::parse(&d.image_url)
                .map_or_else(|_| image.reference.clone(), |i| i.reference);
            (d.image_url.clone(), tag)
        } else {
            (d.image_url.clone(), d.image_tag.clone())
        };
        let registries = self.registries.clone();
        let dir = dir.clone();
        Ok(Plan::Work(Box::pin(async move {
            let look = || manifest_digest(&registries, &image);
            match until_found(minutes, look).await {
                Ok(Some(digest)) => {
                    note(&dir, &format!("found `{source}`: {digest}"));
                    let mut outputs = Outputs::new();
                    outputs.insert("image_url".into(), url.into());
                    outputs.insert("image_tag".into(), tag.into());
                    outputs.insert("image_digest".into(), digest.into());
                    outputs.insert("source_image_url".into(), source.into());
                    Outcome::Succeeded { outputs }
                }
                Ok(None) => Outcome::Failed {
                    reason: format!(
                        "docker import: the image `{source}` does not exist{}",
                        waited(minutes)
                    ),
                },
                Err(e) => Outcome::Failed {
                    reason: format!("docker import: cannot look for `{source}`: {e}"),
                },
            }
        })))
    }

    async fn finish(
        &self,
        _: &serde_json::Value,
        _: &BuildDir,
    ) -> std::result::Result<Outputs, String> {
        Err("an import runs no command".into())
    }
}

macro_rules! runner {
    ($runner:ty) => {
        #[async_trait]
        impl Runner<BuildRequest> for $runner {
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
    };
}

runner!(BundleImporter);
runner!(DockerImporter);

//! Resource validation and mirroring on one machine: the stages' buckets are folders of the
//! [`ArtifactStore`], made on demand, so a bundle is mirrored by copying it from its root
//! location into the stage's. Images are built and pushed here, but copying them between
//! registries is the AWS backends' (ECR mirroring): a stage that deploys a Docker artifact
//! fails at resource validation saying so.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use devramps_core::backend::{ArtifactMirror, ResourceValidator};
use devramps_core::exec::{MirrorRequest, ValidationRequest};
use devramps_core::pipeline::ArtifactType;
use devramps_core::{Error, Result};

use super::store::ArtifactStore;

/// The backend name in errors.
const BACKEND: &str = "local artifact mirror";

/// Why a stage with a Docker artifact cannot deploy on this machine.
const IMAGES: &str = "mirroring images into a stage's registry needs the AWS backends (ECR); on \
                      this machine, bundle artifacts are mirrored and images are only built";

/// [`ResourceValidator`] and [`ArtifactMirror`] over an [`ArtifactStore`] on this machine.
///
/// - `validate`: a stage's buckets are made on demand, so no bundle resource is ever missing;
///   a Docker artifact fails the validation with a message saying that image mirroring needs
///   the AWS backends.
/// - `mirror` of a bundle: the object at the request's `source` (its root location) is copied
///   to its `destination` in the stage. When the destination already holds an object of the
///   source's size nothing is copied (a rollback's re-check is cheap); a copy is verified by
///   its size. A per-stage bundle (no `source`) is built into the stage: its destination must
///   exist.
#[derive(Clone, Debug)]
pub struct LocalMirror {
    store: Arc<dyn ArtifactStore>,
    scratch: PathBuf,
}

impl LocalMirror {
    /// Mirrors within `store`, staging copies in `scratch` (a folder of this machine).
    pub fn new(store: Arc<dyn ArtifactStore>, scratch: impl Into<PathBuf>) -> Self {
        LocalMirror {
            store,
            scratch: scratch.into(),
        }
    }

    async fn mirror_bundle(&self, request: &MirrorRequest) -> Result<()> {
        let destination = &request.destination.s3_url;
        let existing = self.store.head(destination).await?;
        let Some(source) = request.source.as_ref().map(|s| s.s3_url.as_str()) else {
            return match existing {
                Some(_) => Ok(()),
                None => Err(Error::not_found(format!(
                    "bundle `{}` of stage `{}`: `{destination}` (a per-stage artifact is built \
                     into the stage; its build did not store it)",
                    request.artifact, request.target.stage
                ))),
            };
        };
        let Some(found) = self.store.head(source).await? else {
            return Err(Error::not_found(format!(
                "bundle `{}` built at {}: `{source}` is not in the artifact store",
                request.artifact, request.build_commit
            )));
        };
        if existing.as_ref().is_some_and(|e| e.size == found.size) {
            return Ok(());
        }
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|e| io(&self.scratch, &e))?;
        let staged = tempfile::Builder::new()
            .prefix("mirror-")
            .tempfile_in(&self.scratch)
            .map_err(|e| io(&self.scratch, &e))?
            .into_temp_path();
        self.store.get(source, &staged).await?;
        let stored = self.store.put(&staged, &request.destination).await?;
        if stored.size != found.size {
            return Err(Error::backend(
                BACKEND,
                format!("mirror `{source}` to `{destination}`"),
                format!(
                    "the copy has {} bytes, the source {}",
                    stored.size, found.size
                ),
            ));
        }
        Ok(())
    }
}

fn io(path: &std::path::Path, e: &std::io::Error) -> Error {
    Error::backend(
        BACKEND,
        format!("stage a mirror copy in `{}`", path.display()),
        e.to_string(),
    )
}

fn is_image(artifact_type: ArtifactType) -> bool {
    matches!(
        artifact_type,
        ArtifactType::DockerBuild | ArtifactType::DockerImport
    )
}

#[async_trait]
impl ResourceValidator for LocalMirror {
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
        match request.artifacts.iter().find(|a| is_image(a.artifact_type)) {
            None => Ok(Vec::new()),
            Some(artifact) => Err(Error::NotSupported {
                operation: format!(
                    "validating the registry of image `{}` in stage `{}`: {IMAGES}",
                    artifact.id, request.target.stage
                ),
                backend: BACKEND.to_owned(),
            }),
        }
    }
}

#[async_trait]
impl ArtifactMirror for LocalMirror {
    async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
        if is_image(request.artifact_type) {
            return Err(Error::NotSupported {
                operation: format!("mirroring image `{}`: {IMAGES}", request.artifact),
                backend: BACKEND.to_owned(),
            });
        }
        self.mirror_bundle(request).await
    }
}

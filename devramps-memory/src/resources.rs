//! [`InMemoryResources`]: resource validation against a configurable set of missing resources.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{ResourceValidator, StageTarget, ValidationRequest};
use devramps_core::pipeline::ArtifactType;

/// A [`ResourceValidator`] for which every stage resource exists, unless marked missing with
/// [`mark_missing`](InMemoryResources::mark_missing).
///
/// A missing resource is reported as, for example,
/// ``ECR repository for artifact `web` in 111111111111/us-east-1 (stage prod)`` (an S3 bucket
/// for bundle artifacts), in the order of the requested artifacts. Clones share the configuration.
#[derive(Clone, Debug, Default)]
pub struct InMemoryResources {
    /// (stage, artifact id) pairs whose resource is missing.
    missing: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl InMemoryResources {
    /// Every resource present.
    pub fn new() -> Self {
        InMemoryResources::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<(String, String)>> {
        self.missing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the resource of `artifact` missing in `stage` (of every pipeline).
    pub fn mark_missing(&self, stage: &str, artifact: &str) {
        self.lock().insert((stage.to_owned(), artifact.to_owned()));
    }

    /// Makes it present again.
    pub fn mark_present(&self, stage: &str, artifact: &str) {
        self.lock().remove(&(stage.to_owned(), artifact.to_owned()));
    }
}

fn describe(target: &StageTarget, artifact: &str, artifact_type: ArtifactType) -> String {
    let kind = match artifact_type {
        ArtifactType::DockerBuild | ArtifactType::DockerImport => "ECR repository",
        ArtifactType::BundleBuild | ArtifactType::BundleImport => "S3 bucket",
    };
    format!(
        "{kind} for artifact `{artifact}` in {}/{} (stage {})",
        target.account_id, target.region, target.stage
    )
}

#[async_trait]
impl ResourceValidator for InMemoryResources {
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
        let missing = self.lock();
        let target = &request.target;
        Ok(request
            .artifacts
            .iter()
            .filter(|a| missing.contains(&(target.stage.clone(), a.id.clone())))
            .map(|a| describe(target, &a.id, a.artifact_type))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use devramps_core::backend::StageArtifact;

    #[test]
    fn reports_only_what_was_marked_missing() {
        let resources = InMemoryResources::new();
        let target = StageTarget::new("api", "prod", "111111111111", "us-east-1");
        let request = ValidationRequest::new(target)
            .with_artifact(StageArtifact::new(
                "web",
                ArtifactType::DockerBuild,
                Default::default(),
            ))
            .with_artifact(StageArtifact::new(
                "lambda",
                ArtifactType::BundleBuild,
                Default::default(),
            ));
        let validate = || futures::executor::block_on(resources.validate(&request));
        assert!(validate().unwrap().is_empty());
        resources.mark_missing("prod", "lambda");
        resources.mark_missing("staging", "web");
        assert_eq!(
            validate().unwrap(),
            ["S3 bucket for artifact `lambda` in 111111111111/us-east-1 (stage prod)"]
        );
        resources.mark_present("prod", "lambda");
        assert!(validate().unwrap().is_empty());
    }
}

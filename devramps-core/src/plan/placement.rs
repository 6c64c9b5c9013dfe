//! Where an artifact is: its location in each stage and, before mirroring, in the CI/CD
//! account (reference 3.5 naming), as `stage.artifacts` and `pipeline.pre_mirror_artifacts`
//! give it.

use super::naming;
use crate::expr::{ArtifactLocation, Organization};
use crate::pipeline::{Artifact, ArtifactParams, ArtifactType, Stage};

/// What the locations of an artifact in the stages are made from.
pub(super) struct Placement<'d> {
    pub(super) artifact: &'d Artifact,
    /// The commit of the build the deployment uses.
    commit: &'d str,
    /// Bundles: the object key, the same in every stage.
    key: Option<String>,
}

impl<'d> Placement<'d> {
    pub(super) fn new(artifact: &'d Artifact, commit: &'d str) -> Self {
        let key = match artifact.artifact_type.value {
            ArtifactType::DockerBuild | ArtifactType::DockerImport => None,
            ArtifactType::BundleBuild | ArtifactType::BundleImport => Some(format!(
                "{}/{commit}/{}",
                artifact.id.value,
                bundle_file_name(artifact)
            )),
        };
        Placement {
            artifact,
            commit,
            key,
        }
    }

    /// This placement with the build of `commit` (a per-stage artifact a stage reuses).
    pub(super) fn of_commit(&self, commit: &'d str) -> Self {
        Placement::new(self.artifact, commit)
    }

    /// Where the artifact is in `stage` (reference 3.5 naming).
    pub(super) fn location(&self, slug: &str, stage: &Stage) -> ArtifactLocation {
        let id = &self.artifact.id.value;
        let (account, region) = (&stage.account_id.value, &stage.region.value);
        let repo = || naming::stage_repository(slug, &stage.name.value, id);
        let bucket = || naming::stage_bucket(account, slug, &stage.name.value, id);
        self.at(account, region, repo, bucket)
    }

    /// Where a shared artifact is in the CI/CD account before mirroring: its root repository
    /// or bucket (reference 3.5 naming), with the same tag or key as in the stages.
    pub(super) fn pre_mirror_location(&self, slug: &str, org: &Organization) -> ArtifactLocation {
        let id = &self.artifact.id.value;
        let (account, region) = (&org.cicd_account_id, &org.cicd_account_region);
        let repo = || naming::root_repository(slug, id);
        let bucket = || naming::root_bucket(account, slug, id);
        self.at(account, region, repo, bucket)
    }

    /// The location in `account` and `region`, in the repository or bucket named by `repo` or
    /// `bucket` (whichever the artifact's type uses).
    fn at(
        &self,
        account: &str,
        region: &str,
        repo: impl FnOnce() -> String,
        bucket: impl FnOnce() -> String,
    ) -> ArtifactLocation {
        match &self.key {
            None => {
                let repo = repo();
                ArtifactLocation {
                    image_url: [
                        account,
                        ".dkr.ecr.",
                        region,
                        ".amazonaws.com/",
                        &repo,
                        ":",
                        self.commit,
                    ]
                    .concat(),
                    image_tag: self.commit.to_owned(),
                    ..ArtifactLocation::default()
                }
            }
            Some(key) => {
                let bucket = bucket();
                ArtifactLocation {
                    s3_url: ["s3://", &bucket, "/", key].concat(),
                    s3_bucket: bucket,
                    s3_key: key.clone(),
                    ..ArtifactLocation::default()
                }
            }
        }
    }
}

fn bundle_file_name(artifact: &Artifact) -> String {
    let path = match &artifact.typed {
        ArtifactParams::BundleBuild { file_path, .. } => file_path.as_str(),
        ArtifactParams::BundleImport { source_s3_url, .. } => source_s3_url.as_str(),
        _ => None,
    };
    path.filter(|p| !p.contains("${{"))
        .and_then(|p| p.rsplit('/').next())
        .filter(|f| !f.is_empty())
        .map_or_else(|| format!("{}.zip", artifact.id.value), str::to_owned)
}

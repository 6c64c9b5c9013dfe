//! Rebuild-or-reuse decisions (L3): shared artifacts against their last successful build,
//! `per_stage` artifacts against their last successful build in each stage.

use std::collections::BTreeMap;

use super::rebuild::{Decision, RebuildMatcher, RebuildReason};
use super::synth::{ArtifactPlan, SynthesisInput};
use crate::pipeline::{Artifact, Diagnostic, PipelineDefinition};

/// The decisions of one deployment.
pub(super) struct Decisions {
    /// One per artifact, in definition order. A per-stage artifact is `Reuse` only when every
    /// stage reuses it.
    pub(super) artifacts: Vec<ArtifactPlan>,
    /// The per-stage artifacts a stage reuses: (artifact id, stage) to the commit of the build.
    pub(super) stage_reuses: BTreeMap<(String, String), String>,
}

/// One decision: what, why, the paths that caused a rebuild.
type Decided = (Decision, RebuildReason, Vec<String>);

/// Rebuild decisions: one pass over the changed paths per distinct base commit.
pub(super) fn decide(
    definition: &PipelineDefinition,
    input: &SynthesisInput,
) -> Result<Decisions, Vec<Diagnostic>> {
    let matcher = RebuildMatcher::new(&definition.artifacts)?;
    let mut matched_by_base: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    let bases = input
        .previous_builds
        .values()
        .chain(input.previous_stage_builds.values());
    for base in bases {
        if let Some(paths) = input.changes.since.get(base)
            && !matched_by_base.contains_key(base.as_str())
        {
            matched_by_base.insert(base, matcher.matches(paths));
        }
    }
    let one = |i: usize, artifact: &Artifact, previous: Option<&String>| -> Decided {
        match (previous, &artifact.rebuild_when_changed) {
            (None, _) => (
                Decision::Rebuild,
                RebuildReason::NoPreviousBuild,
                Vec::new(),
            ),
            (Some(_), None) => (
                Decision::Rebuild,
                RebuildReason::NoRebuildWhenChanged,
                Vec::new(),
            ),
            (Some(base), Some(_)) => match matched_by_base.get(base.as_str()) {
                None => (Decision::Rebuild, RebuildReason::ChangesUnknown, Vec::new()),
                Some(per_artifact) if per_artifact[i].is_empty() => {
                    (Decision::Reuse, RebuildReason::Unchanged, Vec::new())
                }
                Some(per_artifact) => (
                    Decision::Rebuild,
                    RebuildReason::PathsChanged,
                    per_artifact[i].iter().map(|p| (*p).to_owned()).collect(),
                ),
            },
        }
    };
    let current = &input.trigger.sha;
    let mut stage_reuses = BTreeMap::new();
    let mut artifacts = Vec::with_capacity(definition.artifacts.len());
    for (i, artifact) in definition.artifacts.iter().enumerate() {
        let id = &artifact.id.value;
        let ((decision, reason, matched), previous) = if artifact.per_stage.value {
            // Each stage against its own previous build; the artifact as a whole is rebuilt
            // (and explained by the first stage that rebuilds it) unless every stage reuses.
            let mut first_rebuild: Option<Decided> = None;
            let mut reused = None;
            for stage in &definition.stages {
                let key = (id.clone(), stage.name.value.clone());
                // A caller that does not track stages (`devramps plan`) gives builds by id.
                let previous = input
                    .previous_stage_builds
                    .get(&key)
                    .or_else(|| input.previous_builds.get(id));
                match one(i, artifact, previous) {
                    (Decision::Reuse, ..) => {
                        let commit = previous.cloned().unwrap_or_else(|| current.clone());
                        reused.get_or_insert_with(|| commit.clone());
                        stage_reuses.insert(key, commit);
                    }
                    rebuild => {
                        first_rebuild.get_or_insert(rebuild);
                    }
                }
            }
            match first_rebuild {
                Some(rebuild) => (rebuild, None),
                None => (
                    (Decision::Reuse, RebuildReason::Unchanged, Vec::new()),
                    reused,
                ),
            }
        } else {
            let previous = input.previous_builds.get(id);
            (one(i, artifact, previous), previous.cloned())
        };
        let build_commit = match (decision, previous) {
            (Decision::Reuse, Some(base)) => base,
            _ => current.clone(),
        };
        artifacts.push(ArtifactPlan {
            id: id.clone(),
            name: artifact.name.value.clone(),
            artifact_type: artifact.artifact_type.value,
            per_stage: artifact.per_stage.value,
            decision,
            matched,
            reason,
            build_commit,
            build_params: None,
            origin: None,
        });
    }
    Ok(Decisions {
        artifacts,
        stage_reuses,
    })
}

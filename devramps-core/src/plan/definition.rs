//! What expressions read of a definition ([`expr::Definition`]), for the typed
//! [`PipelineDefinition`]: by a linear search, or through a [`StepIndex`].

use crate::expr::{Definition, Named};
use crate::pipeline::{PipelineDefinition, StepIndex, find_step};

/// A linear search: for a definition read once (tests, embedders evaluating one expression).
impl Definition for PipelineDefinition {
    fn artifact(&self, reference: &str) -> Option<Named<'_>> {
        PipelineDefinition::artifact(self, reference).map(|a| Named {
            name: &a.name.value,
            key: &a.id.value,
        })
    }

    fn artifact_names(&self) -> Vec<&str> {
        self.artifacts
            .iter()
            .flat_map(|a| [a.name.value.as_str(), a.id.value.as_str()])
            .collect()
    }

    fn artifact_per_stage(&self, key: &str) -> bool {
        self.artifacts
            .iter()
            .any(|a| a.id.value == key && a.per_stage.value)
    }

    fn step(&self, reference: &str) -> Option<usize> {
        find_step(&self.steps, reference)
    }

    fn step_at(&self, index: usize) -> Option<Named<'_>> {
        self.steps.get(index).map(|s| Named {
            name: &s.name.value,
            key: s.key(),
        })
    }

    fn step_names(&self) -> Vec<&str> {
        self.steps
            .iter()
            .flat_map(|s| {
                std::iter::once(s.name.value.as_str())
                    .chain(s.id.as_ref().map(|i| i.value.as_str()))
            })
            .collect()
    }
}

/// A definition with an index of its steps (and artifacts, when the index has them): lookups
/// in constant time, for synthesis and the checks that evaluate every expression in every stage.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Indexed<'d> {
    /// The definition.
    pub(crate) definition: &'d PipelineDefinition,
    /// Its index, built by [`StepIndex::of`] or [`StepIndex::new`].
    pub(crate) index: &'d StepIndex,
}

impl Definition for Indexed<'_> {
    fn artifact(&self, reference: &str) -> Option<Named<'_>> {
        match self.index.artifact(reference) {
            Some(found) => found
                .and_then(|i| self.definition.artifacts.get(i))
                .map(|a| Named {
                    name: &a.name.value,
                    key: &a.id.value,
                }),
            None => Definition::artifact(self.definition, reference),
        }
    }

    fn artifact_names(&self) -> Vec<&str> {
        self.definition.artifact_names()
    }

    fn artifact_per_stage(&self, key: &str) -> bool {
        self.definition.artifact_per_stage(key)
    }

    fn step(&self, reference: &str) -> Option<usize> {
        self.index.get(reference)
    }

    fn step_at(&self, index: usize) -> Option<Named<'_>> {
        self.definition.step_at(index)
    }

    fn step_names(&self) -> Vec<&str> {
        self.definition.step_names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_what_the_linear_search_finds() {
        let text = "version: \"1.0.0\"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - {name: s, account_id: \"111111111111\", region: us-east-1}
  steps:
    - {name: Build, id: build, type: CUSTOM:SCRIPT:BUILD}
    - {name: Deploy, type: CUSTOM:SCRIPT:DEPLOY}
  artifacts:
    API Image:
      type: DEVRAMPS:DOCKER:BUILD
      architecture: linux/arm64
      params: {dockerfile: /Dockerfile}
";
        let definition = crate::pipeline::parse(text).expect("valid");
        let index = StepIndex::of(&definition);
        let indexed = Indexed {
            definition: &definition,
            index: &index,
        };
        for reference in [
            "Build",
            "build",
            "Deploy",
            "API Image",
            "api-image",
            "x",
            "",
        ] {
            assert_eq!(
                Definition::artifact(&indexed, reference),
                Definition::artifact(&definition, reference),
                "{reference}"
            );
            assert_eq!(
                indexed.step(reference),
                Definition::step(&definition, reference),
                "{reference}"
            );
        }
        assert_eq!(indexed.step("build"), Some(0));
        assert_eq!(indexed.step_at(0).map(|n| n.key), Some("build"));
        assert_eq!(indexed.step_at(1).map(|n| n.key), Some("Deploy"));
        assert_eq!(indexed.step_at(2), None);
        assert_eq!(indexed.step_names(), ["Build", "build", "Deploy"]);
        assert_eq!(
            Definition::artifact(&indexed, "api-image").map(|a| a.name),
            Some("API Image")
        );
    }
}

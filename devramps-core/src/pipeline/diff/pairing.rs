//! Pairing the artifacts, stages and steps of two definitions: by identity first, then
//! renames (same content under a new identity).

use std::collections::BTreeSet;

use super::super::graph::{StepGraph, find_step};
use super::super::model::{Artifact, PipelineDefinition, Stage, Step};
use super::super::span::Spanned;
use super::values::{same_map, same_option};

/// How the items of one list of the old definition correspond to those of the new one.
#[derive(Debug, Default)]
pub(super) struct Pairing {
    /// For each new item: the old item it continues, and whether it was renamed.
    pub(super) new_to_old: Vec<Option<(usize, bool)>>,
    /// For each old item: the new item that continues it.
    pub(super) old_to_new: Vec<Option<usize>>,
}

impl Pairing {
    /// Pairs items with equal keys, then each unpaired new item (in order) with the first
    /// unpaired old item of the same content (`same`), as a rename.
    fn new<T>(
        old: &[T],
        new: &[T],
        key: impl Fn(&T) -> &str,
        same: impl Fn(&T, &T) -> bool,
    ) -> Self {
        let mut pairing = Pairing {
            new_to_old: vec![None; new.len()],
            old_to_new: vec![None; old.len()],
        };
        for (j, n) in new.iter().enumerate() {
            if let Some(i) = old.iter().position(|o| key(o) == key(n))
                && pairing.old_to_new[i].is_none()
            {
                pairing.link(i, j, false);
            }
        }
        for (j, n) in new.iter().enumerate() {
            if pairing.new_to_old[j].is_some() {
                continue;
            }
            let found = old
                .iter()
                .enumerate()
                .find(|(i, o)| pairing.old_to_new[*i].is_none() && same(o, n));
            if let Some((i, _)) = found {
                pairing.link(i, j, true);
            }
        }
        pairing
    }

    /// Records that new item `j` continues old item `i`.
    fn link(&mut self, i: usize, j: usize, renamed: bool) {
        self.new_to_old[j] = Some((i, renamed));
        self.old_to_new[i] = Some(j);
    }

    /// The old items that nothing continues, in order.
    pub(super) fn removed(&self) -> impl Iterator<Item = usize> + '_ {
        self.old_to_new
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_none())
            .map(|(i, _)| i)
    }
}

/// The pairings of a comparison, and how old step references read in the new definition.
#[derive(Debug)]
pub(super) struct Pairs {
    /// Artifacts, by id.
    pub(super) artifacts: Pairing,
    /// Stages, by name.
    pub(super) stages: Pairing,
    /// Steps, by id else name.
    pub(super) steps: Pairing,
    /// For each old step, its key in the new definition (its new key when it was renamed).
    old_step_keys: Vec<String>,
}

impl Pairs {
    /// Pairs the artifacts, steps and stages of two definitions.
    pub(super) fn of(old: &PipelineDefinition, new: &PipelineDefinition) -> Self {
        let artifacts = Pairing::new(&old.artifacts, &new.artifacts, artifact_key, |a, b| {
            a.artifact_type.value == b.artifact_type.value && same_map(&a.params, &b.params)
        });
        let steps = Pairing::new(&old.steps, &new.steps, Step::key, |a, b| {
            a.step_type.value == b.step_type.value && same_map(&a.params, &b.params)
        });
        let old_step_keys = old
            .steps
            .iter()
            .zip(&steps.old_to_new)
            .map(|(step, new_index)| match new_index {
                Some(j) => new.steps[*j].key().to_owned(),
                None => step.key().to_owned(),
            })
            .collect();
        let mut pairs = Pairs {
            artifacts,
            stages: Pairing::default(),
            steps,
            old_step_keys,
        };
        let stages = Pairing::new(&old.stages, &new.stages, stage_key, |a, b| {
            same_stage(a, b, &pairs.old_skip(old, &a.skip), &new_skip(new, &b.skip))
        });
        pairs.stages = stages;
        pairs
    }

    /// A `skip` list of the old definition as the set of new step keys it names (entries that
    /// name no step stay as written).
    pub(super) fn old_skip(
        &self,
        old: &PipelineDefinition,
        skip: &[Spanned<String>],
    ) -> BTreeSet<String> {
        skip.iter()
            .map(|s| match find_step(&old.steps, &s.value) {
                Some(i) => self.old_step_keys[i].clone(),
                None => s.value.clone(),
            })
            .collect()
    }

    /// The steps old step `i` runs after, as new step keys.
    pub(super) fn old_after(&self, graph: &StepGraph, i: usize) -> BTreeSet<String> {
        graph
            .predecessors(i)
            .into_iter()
            .map(|p| self.old_step_keys[p].clone())
            .collect()
    }
}

/// A `skip` list of the new definition as the set of step keys it names.
pub(super) fn new_skip(new: &PipelineDefinition, skip: &[Spanned<String>]) -> BTreeSet<String> {
    skip.iter()
        .map(|s| match find_step(&new.steps, &s.value) {
            Some(i) => new.steps[i].key().to_owned(),
            None => s.value.clone(),
        })
        .collect()
}

/// The identity of an artifact.
fn artifact_key(artifact: &Artifact) -> &str {
    &artifact.id.value
}

/// The identity of a stage.
fn stage_key(stage: &Stage) -> &str {
    &stage.name.value
}

/// Whether two stages are equal in everything but their names (skip lists already resolved).
fn same_stage(a: &Stage, b: &Stage, a_skip: &BTreeSet<String>, b_skip: &BTreeSet<String>) -> bool {
    a.account_id == b.account_id
        && a.region == b.region
        && a.deployment_time_window == b.deployment_time_window
        && same_map(&a.vars, &b.vars)
        && a_skip == b_skip
        && a.auto_rollback_alarm_name == b.auto_rollback_alarm_name
        && same_option(a.infrastructure.as_ref(), b.infrastructure.as_ref())
}

//! What a deployment is synthesized from and its plan, synthesized at acceptance or, in a state
//! loaded from a snapshot, on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::expr::{PipelineInfo, Trigger};
use crate::pipeline::PipelineDefinition;
use crate::plan::{Changes, Plan, SynthesisInput, synthesize};

/// What a deployment was synthesized from (the `deployment_accepted` record, without its
/// revision and commit).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Accepted {
    /// The tag, or empty.
    pub(super) tag: String,
    /// The definition's text.
    pub(super) definition: Arc<str>,
    /// Paths changed since each base commit.
    pub(super) changed: BTreeMap<String, Vec<String>>,
    /// `organization.*`.
    pub(super) organization: crate::expr::Organization,
    /// `pipeline.*`.
    pub(super) pipeline: Arc<PipelineInfo>,
    /// The previous builds the deployment's plan was synthesized with, packed by
    /// [`pack_builds`]: shared artifacts by id, `per_stage` ones by `<id>/<stage>`.
    pub(super) previous_builds: Arc<BTreeMap<String, String>>,
}

/// The previous builds of shared artifacts (by id) and of `per_stage` ones (by id and stage)
/// in one map, as snapshots store it: a per-stage build's key is `<id>/<stage>` (an artifact
/// id never holds a `/`, E0302).
pub(super) fn pack_builds(
    shared: BTreeMap<String, String>,
    per_stage: BTreeMap<(String, String), String>,
) -> BTreeMap<String, String> {
    let mut out = shared;
    for ((id, stage), commit) in per_stage {
        out.insert(format!("{id}/{stage}"), commit);
    }
    out
}

/// The inverse of [`pack_builds`].
pub(super) fn unpack_builds(
    packed: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<(String, String), String>) {
    let mut shared = BTreeMap::new();
    let mut per_stage = BTreeMap::new();
    for (key, commit) in packed {
        match key.split_once('/') {
            Some((id, stage)) => {
                per_stage.insert((id.to_owned(), stage.to_owned()), commit.clone());
            }
            None => {
                shared.insert(key.clone(), commit.clone());
            }
        }
    }
    (shared, per_stage)
}

/// A deployment's plan: set when the deployment is accepted or its plan released, or (in a
/// state loaded from a snapshot) left empty and synthesized on first use from what the
/// deployment was accepted with, which gives the same plan.
#[derive(Clone, Debug, Default)]
pub(super) struct PlanCell(OnceLock<Option<Indexed>>);

/// A plan and, built on first use, where its stages and steps are by name.
#[derive(Clone)]
struct Indexed {
    plan: Arc<Plan>,
    index: OnceLock<Arc<PlanIndex>>,
}

impl std::fmt::Debug for Indexed {
    /// The plan alone: the index is derived from it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.plan.fmt(f)
    }
}

impl Indexed {
    fn new(plan: Arc<Plan>) -> Self {
        Indexed {
            plan,
            index: OnceLock::new(),
        }
    }

    fn get(&self) -> (&Arc<Plan>, &PlanIndex) {
        let index = self
            .index
            .get_or_init(|| Arc::new(PlanIndex::new(&self.plan)));
        (&self.plan, index)
    }
}

/// Where a plan's stages and steps are, so that finding one by name does not walk the plan:
/// each stage's position by name, and in each stage each step's position by key (the first
/// of equal names, as a walk would find).
#[derive(Default)]
pub(super) struct PlanIndex {
    stages: HashMap<String, usize>,
    steps: Vec<HashMap<String, usize>>,
}

impl PlanIndex {
    fn new(plan: &Plan) -> Self {
        let mut stages = HashMap::with_capacity(plan.stages.len());
        let mut steps = Vec::with_capacity(plan.stages.len());
        for (i, stage) in plan.stages.iter().enumerate() {
            stages.entry(stage.name.clone()).or_insert(i);
            let mut keys = HashMap::with_capacity(stage.steps.len());
            for (j, step) in stage.steps.iter().enumerate() {
                keys.entry(step.key().to_owned()).or_insert(j);
            }
            steps.push(keys);
        }
        PlanIndex { stages, steps }
    }

    /// The position of the stage `name` in the plan.
    pub(super) fn stage(&self, name: &str) -> Option<usize> {
        self.stages.get(name).copied()
    }

    /// The position of the step with key `key` in the stage at `stage`.
    pub(super) fn step(&self, stage: usize, key: &str) -> Option<usize> {
        self.steps.get(stage)?.get(key).copied()
    }
}

impl PlanCell {
    /// A plan known now.
    pub(super) fn ready(plan: Option<Arc<Plan>>) -> Self {
        PlanCell(OnceLock::from(plan.map(Indexed::new)))
    }

    /// A plan synthesized on first use.
    pub(super) fn later() -> Self {
        PlanCell(OnceLock::new())
    }

    /// Whether the deployment has a plan, without synthesizing it: a plan left for later
    /// exists (only plans that synthesis gave are left for later).
    pub(super) fn exists(&self) -> bool {
        self.0.get().is_none_or(Option::is_some)
    }

    /// The plan, synthesized by `synthesize` when it was left for later.
    pub(super) fn get_or_synthesize(
        &self,
        synthesize: impl FnOnce() -> Option<Arc<Plan>>,
    ) -> Option<&Arc<Plan>> {
        self.0
            .get_or_init(|| synthesize().map(Indexed::new))
            .as_ref()
            .map(|i| &i.plan)
    }

    /// The plan and its index, the plan synthesized by `synthesize` when it was left for later.
    pub(super) fn indexed(
        &self,
        synthesize: impl FnOnce() -> Option<Arc<Plan>>,
    ) -> Option<(&Arc<Plan>, &PlanIndex)> {
        self.0
            .get_or_init(|| synthesize().map(Indexed::new))
            .as_ref()
            .map(Indexed::get)
    }

    /// The plan and its index when the plan is known now (nothing is synthesized).
    pub(super) fn known(&self) -> Option<(&Arc<Plan>, &PlanIndex)> {
        self.0.get()?.as_ref().map(Indexed::get)
    }
}

/// What [`synthesize_deployment`] gives.
#[derive(Clone)]
pub(super) struct Synthesized {
    /// The plan, when synthesis succeeded.
    pub(super) plan: Option<Arc<Plan>>,
    /// Why synthesis failed, when it did.
    pub(super) errors: Vec<String>,
    /// The stage names.
    pub(super) stages: Vec<String>,
    /// The definition, when synthesis succeeded.
    pub(super) definition: Option<Arc<PipelineDefinition>>,
}

/// What a synthesis was asked: the arguments of [`synthesize_deployment`].
struct Asked {
    revision: u64,
    commit: String,
    branch: String,
    accepted: Accepted,
    stages_now: Vec<String>,
}

impl Asked {
    fn is(
        &self,
        revision: u64,
        commit: &str,
        branch: &str,
        accepted: &Accepted,
        stages_now: &[String],
    ) -> bool {
        self.revision == revision
            && self.commit == commit
            && self.branch == branch
            && self.stages_now == stages_now
            && self.accepted == *accepted
    }
}

/// How many syntheses [`synthesize_deployment`] remembers.
const REMEMBERED_SYNTHESES: usize = 32;

/// The last syntheses of this process, newest last.
static SYNTHESES: Mutex<Vec<(Asked, Synthesized)>> = Mutex::new(Vec::new());

/// Synthesizes a deployment's plan (L3) from what it was accepted with: the plan, or the
/// diagnostics, and the stage names (`stages_now` when the definition does not parse).
///
/// The same `deployment_accepted` record is folded by the engine that accepted it, by every
/// replay of the log (a restart, another engine instance, an observer) and by the state an
/// API answer reads. Synthesis is a pure function of these arguments, so the last
/// [`REMEMBERED_SYNTHESES`] are remembered (compared whole) and their plan shared: plans are
/// never changed once made.
pub(super) fn synthesize_deployment(
    revision: u64,
    commit: &str,
    branch: &str,
    accepted: &Accepted,
    stages_now: &[String],
) -> Synthesized {
    let lock = || SYNTHESES.lock().unwrap_or_else(PoisonError::into_inner);
    let remembered = |cache: &[(Asked, Synthesized)]| {
        cache
            .iter()
            .rev()
            .find(|(asked, _)| asked.is(revision, commit, branch, accepted, stages_now))
            .map(|(_, synthesized)| synthesized.clone())
    };
    if let Some(synthesized) = remembered(&lock()) {
        return synthesized;
    }
    // Synthesized without the lock: other threads synthesize their own meanwhile.
    let synthesized = synthesize_afresh(revision, commit, branch, accepted, stages_now);
    let mut cache = lock();
    if remembered(&cache).is_none() {
        if cache.len() == REMEMBERED_SYNTHESES {
            let _oldest = cache.remove(0);
        }
        let asked = Asked {
            revision,
            commit: commit.to_owned(),
            branch: branch.to_owned(),
            accepted: accepted.clone(),
            stages_now: stages_now.to_vec(),
        };
        cache.push((asked, synthesized.clone()));
    }
    synthesized
}

fn synthesize_afresh(
    revision: u64,
    commit: &str,
    branch: &str,
    accepted: &Accepted,
    stages_now: &[String],
) -> Synthesized {
    let pipeline = PipelineInfo::clone(&accepted.pipeline);
    let (previous_builds, previous_stage_builds) = unpack_builds(&accepted.previous_builds);
    match crate::plan::parse_shared(&accepted.definition) {
        Ok(def) => {
            let input = SynthesisInput {
                pipeline,
                organization: accepted.organization.clone(),
                trigger: Trigger {
                    sha: commit.to_owned(),
                    branch: branch.to_owned(),
                    tag: accepted.tag.clone(),
                    revision,
                },
                previous_builds,
                previous_stage_builds,
                changes: Changes {
                    since: accepted.changed.clone(),
                },
            };
            let names: Vec<String> = def.stages.iter().map(|s| s.name.value.clone()).collect();
            match synthesize(&def, Some(&*accepted.definition), &input) {
                Ok(plan) => Synthesized {
                    plan: Some(Arc::new(plan)),
                    errors: Vec::new(),
                    stages: names,
                    definition: Some(def),
                },
                Err(d) => Synthesized {
                    plan: None,
                    errors: d.0.iter().map(ToString::to_string).collect(),
                    stages: names,
                    definition: None,
                },
            }
        }
        Err(d) => Synthesized {
            plan: None,
            errors: d
                .0
                .iter()
                .filter(|x| x.is_error())
                .map(ToString::to_string)
                .collect(),
            stages: stages_now.to_vec(),
            definition: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_builds_unpack_to_what_was_packed() {
        let shared: BTreeMap<String, String> = [("api-image".to_owned(), "c1".to_owned())].into();
        let per_stage: BTreeMap<(String, String), String> = [
            (("site".to_owned(), "prod".to_owned()), "c2".to_owned()),
            (("site".to_owned(), "eu/west".to_owned()), "c3".to_owned()),
        ]
        .into();
        let packed = pack_builds(shared.clone(), per_stage.clone());
        assert_eq!(unpack_builds(&packed), (shared, per_stage));
    }
}

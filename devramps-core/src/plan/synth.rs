//! The synthesis itself: [`synthesize`] and the [`Plan`] it builds.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::decide::{Decisions, decide};
use super::definition::Indexed;
use super::kind::StepKind;
use super::naming;
use super::order::Orders;
use super::placement::Placement;
use super::rebuild::{Decision, RebuildReason};
use crate::expr::{
    ArtifactLocation, Failures, Organization, ParamValue, PipelineInfo, Prepared, Preparer,
    Resolver, Scope, StageMemo, StageScope, StepScope, Trigger,
};
use crate::pipeline::{
    ArtifactType, Diagnostic, Diagnostics, PipelineDefinition, Stage, Step, StepGraph, StepIndex,
    StepParams, TimeWindow,
};

/// The default step timeout in minutes (L10).
pub const DEFAULT_STEP_TIMEOUT_MINUTES: u64 = 60;
/// The default timeout of a test gate in minutes (reference 4.3).
pub const DEFAULT_TEST_TIMEOUT_MINUTES: u64 = 30;

/// What synthesis needs besides the definition.
#[derive(Clone, Debug)]
pub struct SynthesisInput {
    /// `pipeline.*`.
    pub pipeline: PipelineInfo,
    /// `organization.*`.
    pub organization: Organization,
    /// `trigger.*`: the commit being deployed, its branch, tag and revision.
    pub trigger: Trigger,
    /// The commit of each shared artifact's last successful build, by artifact id.
    pub previous_builds: BTreeMap<String, String>,
    /// The commit of each `per_stage` artifact's last successful build in each stage, by
    /// (artifact id, stage name): per-stage builds are previous builds of their stage. A stage
    /// without one falls back to `previous_builds` by id.
    pub previous_stage_builds: BTreeMap<(String, String), String>,
    /// The paths changed since those commits.
    pub changes: Changes,
}

/// Changed paths (repository paths with a leading `/`) from earlier commits to the deployed one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// For each base commit, the paths changed between it and the deployed commit.
    pub since: BTreeMap<String, Vec<String>>,
}

impl Changes {
    /// No known changes: artifacts with a previous build are rebuilt (`CHANGES_UNKNOWN`).
    pub fn unknown() -> Self {
        Changes::default()
    }

    /// The paths changed since `base`.
    pub fn since<S: Into<String>>(
        base: impl Into<String>,
        paths: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut changes = Changes::default();
        changes.add(base, paths);
        changes
    }

    /// Adds the paths changed since another base.
    pub fn add<S: Into<String>>(
        &mut self,
        base: impl Into<String>,
        paths: impl IntoIterator<Item = S>,
    ) {
        self.since
            .insert(base.into(), paths.into_iter().map(Into::into).collect());
    }
}

/// A synthesized deployment plan. Serializes as the JSON of `devramps plan`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// The pipeline slug.
    pub pipeline: String,
    /// The deployed commit.
    pub commit: String,
    /// The revision (L1).
    pub revision: u64,
    /// One decision per artifact, in definition order.
    pub artifacts: Vec<ArtifactPlan>,
    /// The stages, in promotion order.
    pub stages: Vec<StagePlan>,
    /// The organization's Terraform state bucket (reference 3.5 naming) and its region (the
    /// CI/CD account's), where every Terraform step of the pipeline keeps its state.
    #[serde(skip)]
    pub terraform_state: (String, String),
}

/// The rebuild-or-reuse decision of one artifact.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArtifactPlan {
    /// The artifact id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The artifact type.
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    /// Built per stage.
    pub per_stage: bool,
    /// Build or reuse.
    pub decision: Decision,
    /// The changed paths that caused a rebuild.
    pub matched: Vec<String>,
    /// Why.
    #[serde(skip)]
    pub reason: RebuildReason,
    /// The commit whose build the deployment uses: the deployed commit when rebuilt, else the
    /// commit of the last successful build.
    #[serde(skip)]
    pub build_commit: String,
    /// Resolved `params` and `envs` of a shared artifact's build (`None` for per-stage ones,
    /// whose parameters are in each [`StagePlan::builds`]).
    #[serde(skip)]
    pub build_params: Option<ParamValue>,
    /// Where a shared artifact's build puts it: its root repository or bucket in the CI/CD
    /// account (`pipeline.pre_mirror_artifacts`); `None` for per-stage artifacts, built into
    /// each stage's own ([`StagePlan::artifacts`]).
    #[serde(skip)]
    pub origin: Option<ArtifactLocation>,
}

/// One stage of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StagePlan {
    /// Stage name.
    pub name: String,
    /// AWS account.
    pub account_id: String,
    /// AWS region.
    pub region: String,
    /// The effective window (L8).
    pub deployment_time_window: TimeWindow,
    /// The steps, in list order (skipped ones included, marked).
    pub steps: Vec<StepPlan>,
    /// Where each artifact is for this stage, by artifact id.
    #[serde(skip)]
    pub artifacts: BTreeMap<String, ArtifactLocation>,
    /// Resolved build parameters of the per-stage artifacts, by artifact id.
    #[serde(skip)]
    pub builds: BTreeMap<String, ParamValue>,
    /// The per-stage artifacts this stage reuses (not built again), by artifact id, with the
    /// commit of the build reused.
    #[serde(skip)]
    pub reused: BTreeMap<String, String>,
}

/// One step of a stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepPlan {
    /// Display name.
    pub name: String,
    /// Id, when written.
    pub id: Option<String>,
    /// Type as written.
    #[serde(rename = "type")]
    pub step_type: String,
    /// The steps (id, else name) that must finish first, skipping over skipped steps.
    pub after: Vec<String>,
    /// Skipped in this stage.
    pub skipped: bool,
    /// Parameters, resolved except secrets and step outputs.
    pub params: ParamValue,
    /// Index in the definition's steps.
    #[serde(skip)]
    pub index: usize,
    /// Indices of the steps in `after`.
    #[serde(skip)]
    pub predecessors: Vec<usize>,
    /// Timeout in minutes; `None` for waits on people (bake, approvals) which have none (L10).
    #[serde(skip)]
    pub timeout_minutes: Option<u64>,
    /// What the step is, from its type and parameters (not printed: `type` and `params` say
    /// it).
    #[serde(skip)]
    pub kind: StepKind,
}

impl StepPlan {
    /// How other steps refer to this one: its id, else its name.
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

/// Synthesizes the plan of one deployment. `source` is the definition's YAML text, used to
/// point diagnostics at the file. Fails with diagnostics when an expression cannot be resolved.
pub fn synthesize(
    definition: &PipelineDefinition,
    source: Option<&str>,
    input: &SynthesisInput,
) -> Result<Plan, Diagnostics> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let Decisions {
        artifacts,
        stage_reuses,
    } = decide(definition, input).map_err(Diagnostics)?;
    let graph = StepGraph::of(definition);
    let ancestors = graph.ancestors();
    let step_index = StepIndex::of(definition);
    let indexed = Indexed {
        definition,
        index: &step_index,
    };
    // Every parameter tree is prepared once and resolved for each stage (see `Prepared`).
    let mut preparer = Preparer::new(&indexed);
    let step_params: Vec<Prepared<'_>> = definition
        .steps
        .iter()
        .map(|s| preparer.prepare_map(&s.params))
        .collect();
    let build_params: Vec<BuildParams<'_>> = definition
        .artifacts
        .iter()
        .map(|a| BuildParams {
            owner: format!("artifact `{}`", a.name.value),
            params: preparer.prepare_map(&a.params),
            envs: preparer.prepare_map(&a.envs),
        })
        .collect();
    let placements: Vec<Placement<'_>> = definition
        .artifacts
        .iter()
        .zip(&artifacts)
        .map(|(a, p)| Placement::new(a, &p.build_commit))
        .collect();
    let stage_reuses = &stage_reuses;
    let synthesis = Synthesis {
        definition,
        input,
        source,
        pre_mirror: placements
            .iter()
            .filter(|p| !p.artifact.per_stage.value)
            .map(|p| {
                let at = p.pre_mirror_location(&input.pipeline.slug, &input.organization);
                (p.artifact.id.value.clone(), at)
            })
            .collect(),
        placements,
        stage_reuses,
        predecessors: (0..definition.steps.len())
            .map(|i| graph.predecessors(i))
            .collect(),
        ancestors: &ancestors,
        indexed,
        owners: definition
            .steps
            .iter()
            .map(|s| format!("step `{}`", s.name.value))
            .collect(),
        timeouts: definition.steps.iter().map(timeout_minutes).collect(),
        step_params,
        build_params,
        keys: [Arc::from("params"), Arc::from("envs")],
    };
    let mut memo = preparer.memo();
    let mut orders = Orders::default();
    let mut stages = Vec::with_capacity(definition.stages.len());
    for stage in &definition.stages {
        memo.clear();
        stages.push(synthesis.stage_plan(stage, (&mut memo, &mut orders), &mut errors));
    }
    memo.clear();
    let shared_builds: Vec<Option<ParamValue>> = definition
        .artifacts
        .iter()
        .zip(&synthesis.build_params)
        .map(|(artifact, prepared)| {
            (!artifact.per_stage.value).then(|| {
                let scope = base_scope(&synthesis, &prepared.owner);
                let mut resolver = Resolver::new(scope, &mut memo);
                synthesis.build(prepared, &mut resolver, &mut errors)
            })
        })
        .collect();
    let origins: Vec<Option<ArtifactLocation>> = artifacts
        .iter()
        .map(|a| synthesis.pre_mirror.get(&a.id).cloned())
        .collect();
    let mut artifact_plans = artifacts;
    for ((plan, build_params), origin) in artifact_plans.iter_mut().zip(shared_builds).zip(origins)
    {
        plan.build_params = build_params;
        plan.origin = origin;
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (a.span.offset, &a.message).cmp(&(b.span.offset, &b.message)));
        errors.dedup_by(|a, b| a.span == b.span && a.message == b.message);
        return Err(Diagnostics(errors));
    }
    Ok(Plan {
        pipeline: input.pipeline.slug.clone(),
        commit: input.trigger.sha.clone(),
        revision: input.trigger.revision,
        artifacts: artifact_plans,
        stages,
        terraform_state: (
            naming::terraform_state_bucket(&input.organization.slug),
            input.organization.cicd_account_region.clone(),
        ),
    })
}

/// A step's timeout in minutes; `None` for waits on people (bake, approvals) which have none
/// (L10).
fn timeout_minutes(step: &Step) -> Option<u64> {
    match &step.typed {
        StepParams::Bake(_) => None,
        StepParams::TestGate(t) => Some(
            t.timeout
                .as_ref()
                .and_then(crate::pipeline::literal_minutes)
                .unwrap_or(DEFAULT_TEST_TIMEOUT_MINUTES),
        ),
        _ => Some(
            step.timeout_minutes()
                .unwrap_or(DEFAULT_STEP_TIMEOUT_MINUTES),
        ),
    }
}

/// The prepared parameters of an artifact's build.
struct BuildParams<'d> {
    /// "artifact `Name`", for messages.
    owner: String,
    params: Prepared<'d>,
    envs: Prepared<'d>,
}

/// What every stage's plan is made from.
struct Synthesis<'d> {
    definition: &'d PipelineDefinition,
    input: &'d SynthesisInput,
    source: Option<&'d str>,
    /// Each artifact's placement.
    placements: Vec<Placement<'d>>,
    /// The per-stage artifacts each stage reuses: (artifact id, stage) to the commit reused.
    stage_reuses: &'d BTreeMap<(String, String), String>,
    /// `pipeline.pre_mirror_artifacts`: each shared artifact in the CI/CD account, by id.
    pre_mirror: BTreeMap<String, ArtifactLocation>,
    /// For each step, the steps it waits for (ascending).
    predecessors: Vec<Vec<usize>>,
    ancestors: &'d [Vec<bool>],
    /// The definition with its index, as expressions read it.
    indexed: Indexed<'d>,
    /// "step `Name`" of each step, for messages.
    owners: Vec<String>,
    /// Each step's timeout.
    timeouts: Vec<Option<u64>>,
    /// Each step's parameters.
    step_params: Vec<Prepared<'d>>,
    /// Each artifact's parameters.
    build_params: Vec<BuildParams<'d>>,
    /// The keys of build parameters: `params` and `envs`.
    keys: [Arc<str>; 2],
}

fn base_scope<'a>(synthesis: &'a Synthesis<'_>, owner: &'a str) -> Scope<'a> {
    let input = synthesis.input;
    Scope {
        definition: &synthesis.indexed,
        pipeline: &input.pipeline,
        organization: &input.organization,
        trigger: &input.trigger,
        pre_mirror_artifacts: &synthesis.pre_mirror,
        stage: None,
        step: None,
        owner,
    }
}

fn report(errors: &mut Vec<Diagnostic>, source: Option<&str>, failures: Failures<'_>) {
    for (value, e) in failures {
        let span = crate::expr::locate_error(source, value, &e);
        let mut d = Diagnostic::new(e.kind.code(), span, e.message);
        d.help = e.help;
        errors.push(d);
    }
}

impl<'d> Synthesis<'d> {
    /// The resolved `params` and `envs` of an artifact's build.
    fn build(
        &self,
        prepared: &BuildParams<'d>,
        resolver: &mut Resolver<'_, '_>,
        errors: &mut Vec<Diagnostic>,
    ) -> ParamValue {
        let mut failures = Vec::new();
        let params = prepared.params.resolve_entries(resolver, &mut failures);
        let envs = prepared.envs.resolve_entries(resolver, &mut failures);
        report(errors, self.source, failures);
        let [params_key, envs_key] = &self.keys;
        ParamValue::Map(Arc::new([
            (Arc::clone(params_key), params),
            (Arc::clone(envs_key), envs),
        ]))
    }

    fn stage_plan(
        &self,
        stage: &Stage,
        (memo, orders): (&mut StageMemo, &mut Orders),
        errors: &mut Vec<Diagnostic>,
    ) -> StagePlan {
        let (definition, input, step_index) = (self.definition, self.input, self.indexed.index);
        let mut reused = BTreeMap::new();
        let locations: BTreeMap<String, ArtifactLocation> = self
            .placements
            .iter()
            .map(|p| {
                let id = &p.artifact.id.value;
                let reuse = self
                    .stage_reuses
                    .get(&(id.clone(), stage.name.value.clone()));
                let location = match reuse {
                    Some(commit) => {
                        reused.insert(id.clone(), commit.clone());
                        p.of_commit(commit).location(&input.pipeline.slug, stage)
                    }
                    None => p.location(&input.pipeline.slug, stage),
                };
                (id.clone(), location)
            })
            .collect();
        let steps = &definition.steps;
        let mut skipped = vec![false; steps.len()];
        for entry in &stage.skip {
            if let Some(i) = step_index.get(&entry.value) {
                skipped[i] = true;
            }
        }
        let stage_scope = StageScope {
            name: &stage.name.value,
            account_id: &stage.account_id.value,
            region: &stage.region.value,
            vars: &stage.vars,
            artifacts: &locations,
        };
        let scope = Scope {
            stage: Some(stage_scope),
            ..base_scope(self, "")
        };
        let mut resolver = Resolver::new(scope, memo);
        let mut builds = BTreeMap::new();
        for (artifact, prepared) in definition.artifacts.iter().zip(&self.build_params) {
            if artifact.per_stage.value {
                resolver.scope.owner = &prepared.owner;
                resolver.scope.step = None;
                builds.insert(
                    artifact.id.value.clone(),
                    self.build(prepared, &mut resolver, errors),
                );
            }
        }
        let effective = orders.get(&self.predecessors, &skipped);
        let mut plans = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            resolver.scope.owner = &self.owners[index];
            resolver.scope.step = Some(StepScope {
                index,
                ancestors: &self.ancestors[index],
                skipped: &skipped,
            });
            let mut failures = Vec::new();
            let params = self.step_params[index].resolve_entries(&mut resolver, &mut failures);
            // A skipped step never runs; its parameters are shown as far as they resolve.
            if !skipped[index] {
                report(errors, self.source, failures);
            }
            let predecessors = effective[index].clone();
            let kind = StepKind::of(&step.step_type.value, &params);
            plans.push(StepPlan {
                name: step.name.value.clone(),
                id: step.id.as_ref().map(|i| i.value.clone()),
                step_type: step.step_type.value.as_str().to_owned(),
                after: predecessors
                    .iter()
                    .map(|&p| steps[p].key().to_owned())
                    .collect(),
                skipped: skipped[index],
                params,
                index,
                predecessors,
                timeout_minutes: self.timeouts[index],
                kind,
            });
        }
        StagePlan {
            name: stage.name.value.clone(),
            account_id: stage.account_id.value.clone(),
            region: stage.region.value.clone(),
            deployment_time_window: definition.effective_window(stage),
            steps: plans,
            artifacts: locations,
            builds,
            reused,
        }
    }
}

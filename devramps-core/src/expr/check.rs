//! Static checks of every expression of a definition, as `devramps validate` runs them: each
//! step's parameters in every stage (and ephemeral environment), each artifact's parameters
//! once (or per stage for `per_stage` artifacts).

use std::collections::{BTreeMap, HashSet};

use super::eval::{ExprError, resolve_value};
use super::locate::locate;
use super::scope::{
    ArtifactLocation, Organization, PipelineInfo, Scope, StageScope, StepScope, Trigger,
};
use crate::pipeline::{
    Diagnostic, PipelineDefinition, Spanned, StepGraph, Value, ValueMap, find_step,
};

/// A stage or an ephemeral environment, as far as expressions see it.
#[derive(Clone, Debug)]
pub(crate) struct StageView<'a> {
    pub(crate) name: std::borrow::Cow<'a, str>,
    pub(crate) account_id: &'a str,
    pub(crate) region: &'a str,
    pub(crate) vars: &'a ValueMap,
    pub(crate) skip: &'a [Spanned<String>],
}

/// Every stage, then every ephemeral environment (as stage `ephemeral-<name>`).
pub(crate) fn stage_views(definition: &PipelineDefinition) -> Vec<(String, StageView<'_>)> {
    let stages = definition.stages.iter().map(|s| {
        (
            s.name.value.clone(),
            StageView {
                name: std::borrow::Cow::Borrowed(s.name.value.as_str()),
                account_id: &s.account_id.value,
                region: &s.region.value,
                vars: &s.vars,
                skip: &s.skip,
            },
        )
    });
    let envs = definition.ephemeral_environments.iter().map(|e| {
        (
            format!("ephemeral-{}", e.name.value),
            StageView {
                name: std::borrow::Cow::Owned(format!("ephemeral-{}", e.name.value)),
                account_id: &e.account_id.value,
                region: &e.region.value,
                vars: &e.vars,
                skip: &e.skip,
            },
        )
    });
    stages.chain(envs).collect()
}

/// For each step index, which steps a stage skips.
pub(crate) fn skipped(definition: &PipelineDefinition, skip: &[Spanned<String>]) -> Vec<bool> {
    let mut out = vec![false; definition.steps.len()];
    for entry in skip {
        if let Some(i) = find_step(&definition.steps, &entry.value) {
            out[i] = true;
        }
    }
    out
}

/// Checks every expression; pushes one diagnostic per distinct problem.
pub(crate) fn check_definition(
    definition: &PipelineDefinition,
    source: Option<&str>,
) -> Vec<Diagnostic> {
    let pipeline = PipelineInfo::from_slug("pipeline");
    let organization = Organization::default();
    let trigger = Trigger {
        sha: "0".repeat(40),
        branch: definition.tracked_branch().to_owned(),
        tag: String::new(),
        revision: 1,
    };
    let graph = StepGraph::of(definition);
    let ancestors = graph.ancestors();
    let locations: BTreeMap<String, ArtifactLocation> = definition
        .artifacts
        .iter()
        .map(|a| (a.id.value.clone(), ArtifactLocation::default()))
        .collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut report = |value: &Value, error: ExprError, out: &mut Vec<Diagnostic>| {
        let text = value.as_str().unwrap_or_default();
        let span = locate(source, value, text, &error.range);
        if seen.insert((span, error.message.clone())) {
            let mut d = Diagnostic::new(error.kind.code(), span, error.message);
            d.help = error.help;
            out.push(d);
        }
    };
    let views = stage_views(definition);
    let base = |owner: &'static str| Scope {
        definition,
        pipeline: &pipeline,
        organization: &organization,
        trigger: &trigger,
        stage: None,
        step: None,
        owner,
    };
    for artifact in &definition.artifacts {
        let owner = format!("artifact `{}`", artifact.name.value);
        let stages: Vec<Option<&StageView<'_>>> = if artifact.per_stage.value {
            views.iter().map(|(_, v)| Some(v)).collect()
        } else {
            vec![None]
        };
        for view in stages {
            let scope = Scope {
                owner: &owner,
                stage: view.map(|v| stage_scope(v, &locations)),
                ..base("")
            };
            for map in [&artifact.params, &artifact.envs] {
                for (_, value) in map.iter() {
                    if let Err(errors) = resolve_value(value, &scope) {
                        for (v, e) in errors {
                            report(v, e, &mut out);
                        }
                    }
                }
            }
        }
    }
    for (_, view) in &views {
        let skipped = skipped(definition, view.skip);
        for (index, step) in definition.steps.iter().enumerate() {
            if skipped[index] {
                continue;
            }
            let owner = format!("step `{}`", step.name.value);
            let scope = Scope {
                owner: &owner,
                stage: Some(stage_scope(view, &locations)),
                step: Some(StepScope {
                    index,
                    ancestors: &ancestors[index],
                    skipped: &skipped,
                }),
                ..base("")
            };
            for (_, value) in step.params.iter() {
                if let Err(errors) = resolve_value(value, &scope) {
                    for (v, e) in errors {
                        report(v, e, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn stage_scope<'a>(
    view: &'a StageView<'_>,
    locations: &'a BTreeMap<String, ArtifactLocation>,
) -> StageScope<'a> {
    StageScope {
        name: &view.name,
        account_id: view.account_id,
        region: view.region,
        vars: view.vars,
        artifacts: locations,
    }
}

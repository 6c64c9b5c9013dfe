//! The full check of a definition, as `devramps validate` runs it: its structure
//! ([`pipeline::check`]) and every expression: each step's parameters in every stage (and
//! ephemeral environment), each artifact's parameters once (or per stage for `per_stage`
//! artifacts).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::definition::Indexed;
use crate::expr::{
    ArtifactLocation, Expr, ExprError, ExprErrorKind, ExprKind, Organization, PipelineInfo, Scope,
    StageScope, StepScope, Template, Trigger, evaluate, has_expressions, parse_template,
};
use crate::pipeline::{
    self, Checked, Diagnostic, Diagnostics, PipelineDefinition, Spanned, StepGraph, StepIndex,
    Value, ValueKind, ValueMap,
};

/// Parses and validates the YAML text of a `pipeline.yaml`, reporting every problem at once:
/// the structural checks of [`pipeline::check`] and the checks of every `${{ }}` expression.
///
/// Never panics; malformed YAML gives one `E0001` diagnostic.
///
/// ```
/// use devramps_core::plan;
/// let text = r#"
/// version: "1.0.0"
/// pipeline:
///   cloud_provider: AWS
///   pipeline_updates_require_approval: NEVER
///   stages: [{ name: s, account_id: "111111111111", region: us-east-1 }]
///   steps: [{ name: D, type: "CUSTOM:D", params: { a: "${{ vars.nope }}" } }]
///   artifacts: {}
/// "#;
/// let checked = plan::check(text);
/// assert_eq!(checked.diagnostics[0].code.as_str(), "E0606");
/// assert!(devramps_core::pipeline::check(text).is_valid(), "the structure alone is fine");
/// ```
pub fn check(text: &str) -> Checked {
    pipeline::check_with(text, &check_definition)
}

/// Parses and validates YAML text (see [`check`]); the definition, or all diagnostics if any
/// is an error.
pub fn parse(text: &str) -> Result<PipelineDefinition, Diagnostics> {
    check(text).into_result()
}

/// How many definition texts [`parse_shared`] remembers.
const SHARED_DEFINITIONS: usize = 8;

/// The last definitions [`parse_shared`] read, newest last: the text and what it gave.
type Remembered = Vec<(Arc<str>, Result<Arc<PipelineDefinition>, Diagnostics>)>;

static REMEMBERED: Mutex<Remembered> = Mutex::new(Vec::new());

/// [`parse`], shared: the engine reads the same definition text at every push, every
/// acceptance and every replay of a `deployment_accepted` record, and parsing dominates its
/// cost, so the last eight texts read in this process are remembered with their result
/// (compared whole, never by hash alone). Parsing is a pure function of the text, so the
/// answer is the one [`parse`] gives; use this where the same texts come again and again.
///
/// ```
/// let text = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  stages: [{ name: s, account_id: \"111111111111\", region: us-east-1 }]\n  steps: [{ name: D, type: \"CUSTOM:D\" }]\n  artifacts: {}\n";
/// let first = devramps_core::plan::parse_shared(text).unwrap();
/// let again = devramps_core::plan::parse_shared(text).unwrap();
/// assert!(std::sync::Arc::ptr_eq(&first, &again), "read once");
/// assert_eq!(*first, devramps_core::plan::parse(text).unwrap());
/// ```
pub fn parse_shared(text: &str) -> Result<Arc<PipelineDefinition>, Diagnostics> {
    let remembered = |cache: &Remembered| {
        cache
            .iter()
            .rev()
            .find(|(known, _)| **known == *text)
            .map(|(_, result)| result.clone())
    };
    let lock = || REMEMBERED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(result) = remembered(&lock()) {
        return result;
    }
    // Parsed without the lock: other threads read their own texts meanwhile.
    let result = parse(text).map(Arc::new);
    let mut cache = lock();
    if remembered(&cache).is_none() {
        if cache.len() == SHARED_DEFINITIONS {
            let _oldest = cache.remove(0);
        }
        cache.push((Arc::from(text), result.clone()));
    }
    result
}

/// Validates a value tree built by another front end (spans may be unknown), expressions
/// included.
pub fn check_value(root: &Value) -> Checked {
    pipeline::check_value_with(root, &check_definition)
}

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
pub(crate) fn skipped(index: &StepIndex, steps: usize, skip: &[Spanned<String>]) -> Vec<bool> {
    let mut out = vec![false; steps];
    for entry in skip {
        if let Some(i) = index.get(&entry.value) {
            out[i] = true;
        }
    }
    out
}

/// Checks every expression; pushes one diagnostic per distinct problem. An unknown artifact
/// for which `follow_on` holds (given the name as written) is not reported: the caller already
/// reported why that artifact is unknown.
pub(crate) fn check_definition(
    definition: &PipelineDefinition,
    source: Option<&str>,
    follow_on: &dyn Fn(&str) -> bool,
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
    let pre_mirror: BTreeMap<String, ArtifactLocation> = definition
        .artifacts
        .iter()
        .filter(|a| !a.per_stage.value)
        .map(|a| (a.id.value.clone(), ArtifactLocation::default()))
        .collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut report = |value: &Value, error: ExprError, out: &mut Vec<Diagnostic>| {
        let text = value.as_str().unwrap_or_default();
        if error.kind == ExprErrorKind::UnknownArtifact
            && text
                .get(error.range.clone())
                .is_some_and(|key| follow_on(key.trim_matches('"')))
        {
            return;
        }
        let span = crate::expr::locate_error(source, value, &error);
        if seen.insert((span, error.message.clone())) {
            let mut d = Diagnostic::new(error.kind.code(), span, error.message);
            d.help = error.help;
            out.push(d);
        }
    };
    let views = stage_views(definition);
    let step_index = StepIndex::of(definition);
    let indexed = Indexed {
        definition,
        index: &step_index,
    };
    let skips: Vec<Vec<bool>> = views
        .iter()
        .map(|(_, v)| skipped(&step_index, definition.steps.len(), v.skip))
        .collect();
    let base = |owner: &'static str| Scope {
        definition: &indexed,
        pipeline: &pipeline,
        organization: &organization,
        trigger: &trigger,
        pre_mirror_artifacts: &pre_mirror,
        stage: None,
        step: None,
        owner,
    };
    // Each template is parsed once. Expressions that read `vars` (which differ per stage) or a
    // step's outputs (whose producer a stage may skip) are evaluated in every stage that needs
    // them; every other expression is evaluated once.
    for artifact in &definition.artifacts {
        let owner = format!("artifact `{}`", artifact.name.value);
        let templates = parse_all([&artifact.params, &artifact.envs], &mut out, &mut report);
        let per_stage = artifact.per_stage.value && !views.is_empty();
        for (value, template) in &templates {
            for expr in template.exprs() {
                let stage_dependent = per_stage && expr_root(expr) == "vars";
                let stages: Vec<Option<&StageView<'_>>> = if stage_dependent {
                    views.iter().map(|(_, v)| Some(v)).collect()
                } else if per_stage {
                    vec![views.first().map(|(_, v)| v)]
                } else {
                    vec![None]
                };
                for view in stages {
                    let scope = Scope {
                        owner: &owner,
                        stage: view.map(|v| stage_scope(v, &locations)),
                        ..base("")
                    };
                    if let Err(e) = evaluate(expr, &scope) {
                        report(value, e, &mut out);
                    }
                }
            }
        }
    }
    for (index, step) in definition.steps.iter().enumerate() {
        let running: Vec<usize> = (0..views.len()).filter(|&v| !skips[v][index]).collect();
        let Some(&first) = running.first() else {
            continue;
        };
        let owner = format!("step `{}`", step.name.value);
        let templates = parse_all([&step.params], &mut out, &mut report);
        for (value, template) in &templates {
            for expr in template.exprs() {
                let stages: &[usize] = match expr_root(expr) {
                    "vars" | "steps" => &running,
                    _ => std::slice::from_ref(&first),
                };
                for &v in stages {
                    let scope = Scope {
                        owner: &owner,
                        stage: Some(stage_scope(&views[v].1, &locations)),
                        step: Some(StepScope {
                            index,
                            ancestors: &ancestors[index],
                            skipped: &skips[v],
                        }),
                        ..base("")
                    };
                    if let Err(e) = evaluate(expr, &scope) {
                        report(value, e, &mut out);
                    }
                }
            }
        }
    }
    out
}

/// The first name of an expression (a namespace or a function).
fn expr_root(expr: &Expr) -> &str {
    match &expr.kind {
        ExprKind::Path(p) => &p.root.name,
        ExprKind::Call(c) => &c.function.name,
    }
}

/// Parses every string with expressions in `maps` (recursively); syntax errors are reported.
fn parse_all<'v, const N: usize>(
    maps: [&'v ValueMap; N],
    out: &mut Vec<Diagnostic>,
    report: &mut impl FnMut(&Value, ExprError, &mut Vec<Diagnostic>),
) -> Vec<(&'v Value, Template)> {
    fn walk<'v>(
        value: &'v Value,
        found: &mut Vec<(&'v Value, Template)>,
        out: &mut Vec<Diagnostic>,
        report: &mut dyn FnMut(&Value, ExprError, &mut Vec<Diagnostic>),
    ) {
        match &value.kind {
            ValueKind::String(s) if has_expressions(s) => match parse_template(s) {
                Ok(t) => found.push((value, t)),
                Err(e) => report(value, ExprError::from(e), out),
            },
            ValueKind::List(items) => items.iter().for_each(|i| walk(i, found, out, report)),
            ValueKind::Map(m) => m.iter().for_each(|(_, v)| walk(v, found, out, report)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for map in maps {
        for (_, value) in map.iter() {
            walk(value, &mut found, out, report);
        }
    }
    found
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

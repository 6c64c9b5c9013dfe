//! Checks across the parts of a definition: unique names, references that resolve, and an
//! acyclic step graph.

use std::collections::HashMap;

use super::diagnostic::{Code, Diagnostic, Sink};
use super::graph::{EdgeOrigin, StepGraph, StepIndex};
use super::model::{PipelineDefinition, Step, normalize_id};
use super::span::{Span, Spanned};
use crate::source::suggest::Suggestions;

/// Runs every cross-part check (on a draft: items with broken parts have empty placeholders,
/// which are never reported again).
pub(crate) fn validate(definition: &PipelineDefinition, sink: &mut Sink) {
    check_stage_names(definition, sink);
    check_step_names(definition, sink);
    check_artifact_ids(definition, sink);
    let index = StepIndex::new(&definition.steps);
    let references = Suggestions::new(
        definition
            .steps
            .iter()
            .flat_map(|s| {
                std::iter::once(s.name.value.as_str())
                    .chain(s.id.as_ref().map(|i| i.value.as_str()))
            })
            .collect(),
    );
    for (i, stage) in definition.stages.iter().enumerate() {
        let stage_label = if stage.name.value.is_empty() {
            format!("stage #{}", i + 1)
        } else {
            format!("stage `{}`", stage.name.value)
        };
        check_step_list(
            &stage.skip,
            &format!("`skip` of {stage_label}"),
            Code::UnknownSkipEntry,
            &definition.steps,
            &index,
            &references,
            sink,
        );
    }
    for env in &definition.ephemeral_environments {
        check_step_list(
            &env.skip,
            &format!("`skip` of ephemeral environment `{}`", env.name.value),
            Code::UnknownSkipEntry,
            &definition.steps,
            &index,
            &references,
            sink,
        );
    }
    for (i, step) in definition.steps.iter().enumerate() {
        if let Some(deps) = &step.goes_after {
            check_step_list(
                deps,
                &format!("`goes_after` of {}", step_label(step, i)),
                Code::UnknownDependency,
                &definition.steps,
                &index,
                &references,
                sink,
            );
        }
    }
    check_cycles(definition, sink);
}

fn first_seen<'a>(seen: &mut HashMap<&'a str, Span>, name: &'a Spanned<String>) -> Option<Span> {
    if name.value.is_empty() {
        return None;
    }
    match seen.get(name.value.as_str()) {
        Some(first) => Some(*first),
        None => {
            seen.insert(&name.value, name.span);
            None
        }
    }
}

fn check_stage_names(definition: &PipelineDefinition, sink: &mut Sink) {
    let mut seen = HashMap::new();
    for stage in &definition.stages {
        if let Some(first) = first_seen(&mut seen, &stage.name) {
            sink.push(
                Diagnostic::new(
                    Code::DuplicateStageName,
                    stage.name.span,
                    format!(
                        "duplicate stage name `{}` (first used on line {})",
                        stage.name.value, first.line
                    ),
                )
                .with_help("stage names must be unique within a pipeline"),
            );
        }
    }
    for env in &definition.ephemeral_environments {
        let stage_name = format!("ephemeral-{}", env.name.value);
        if let Some(stage) = definition.stage(&stage_name) {
            sink.push(
                Diagnostic::new(
                    Code::InvalidEnvironmentName,
                    env.name.span,
                    format!(
                        "ephemeral environment `{}` deploys as stage `{stage_name}`, which is already a stage (line {})",
                        env.name.value, stage.name.span.line
                    ),
                )
                .with_help("rename the environment or the stage"),
            );
        }
    }
}

fn check_step_names(definition: &PipelineDefinition, sink: &mut Sink) {
    let mut names = HashMap::new();
    for step in &definition.steps {
        if let Some(first) = first_seen(&mut names, &step.name) {
            sink.push(
                Diagnostic::new(
                    Code::DuplicateStepName,
                    step.name.span,
                    format!(
                        "duplicate step name `{}` (first used on line {})",
                        step.name.value, first.line
                    ),
                )
                .with_help("step names must be unique within a pipeline"),
            );
        }
    }
    let mut ids = HashMap::new();
    for (i, step) in definition.steps.iter().enumerate() {
        let Some(id) = &step.id else { continue };
        if let Some(first) = first_seen(&mut ids, id) {
            sink.push(
                Diagnostic::new(
                    Code::DuplicateStepId,
                    id.span,
                    format!(
                        "duplicate step id `{}` (first used on line {})",
                        id.value, first.line
                    ),
                )
                .with_help("step ids must be unique within a pipeline"),
            );
            continue;
        }
        if let Some(other) = definition
            .steps
            .iter()
            .enumerate()
            .find(|(j, s)| *j != i && s.name.value == id.value)
            .map(|(_, s)| s)
        {
            sink.push(
                Diagnostic::new(
                    Code::DuplicateStepId,
                    id.span,
                    format!(
                        "step id `{}` of {} is also the name of step `{}` (line {}), so references to it are ambiguous",
                        id.value, step_label(step, i), other.name.value, other.name.span.line
                    ),
                )
                .with_help("choose an id that no other step uses as its name"),
            );
        }
    }
}

/// Ids must differ, and must still differ once normalized for AWS resource names
/// (`frontend_bundle` and `frontend-bundle` would share a repository and a bucket).
fn check_artifact_ids(definition: &PipelineDefinition, sink: &mut Sink) {
    let mut seen: HashMap<String, (&str, &str)> = HashMap::new();
    for artifact in &definition.artifacts {
        let id = artifact.id.value.as_str();
        // An id without letters or digits (already E0302) is compared as written.
        let normalized = Some(normalize_id(id))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_owned());
        match seen.get(&normalized) {
            Some(&(other, other_id)) => {
                let how = if artifact.id_written {
                    ""
                } else {
                    " (derived from its name)"
                };
                let message = if other_id == id {
                    format!(
                        "artifact `{}` has id `{id}`{how}, which artifact `{other}` already uses",
                        artifact.name.value
                    )
                } else {
                    format!(
                        "artifact `{}` has id `{id}`{how}, which names the same AWS resources \
                         as id `{other_id}` of artifact `{other}` (both become `{normalized}`)",
                        artifact.name.value
                    )
                };
                sink.push(
                    Diagnostic::new(Code::DuplicateArtifactId, artifact.id.span, message)
                        .with_help("give one of them a distinct `id`"),
                );
            }
            None => {
                seen.insert(normalized, (&artifact.name.value, id));
            }
        }
    }
}

fn check_step_list(
    entries: &[Spanned<String>],
    what: &str,
    code: Code,
    steps: &[Step],
    index: &StepIndex,
    references: &Suggestions<'_>,
    sink: &mut Sink,
) {
    // Entries resolved to steps, so that a name and an id of one step count as the same step.
    let mut seen: Vec<(usize, &str)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(index) = index.get(&entry.value) else {
            let mut d = Diagnostic::new(
                code,
                entry.span,
                format!(
                    "{what} names `{}`, which is not the name or id of any step",
                    entry.value
                ),
            );
            if let Some(s) = references.suggest(&entry.value) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            sink.push(d);
            continue;
        };
        match seen.iter().find(|(i, _)| *i == index) {
            Some((_, first)) if *first == entry.value => sink.push(Diagnostic::new(
                Code::RepeatedReference,
                entry.span,
                format!("{what} names `{}` twice", entry.value),
            )),
            Some((_, first)) => sink.push(Diagnostic::new(
                Code::RepeatedReference,
                entry.span,
                format!(
                    "{what} names {} twice (as `{first}` and as `{}`)",
                    step_label(&steps[index], index),
                    entry.value
                ),
            )),
            None => seen.push((index, &entry.value)),
        }
    }
}

fn check_cycles(definition: &PipelineDefinition, sink: &mut Sink) {
    let steps = &definition.steps;
    let graph = StepGraph::of(definition);
    for cycle in graph.cycles() {
        let names: Vec<String> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| match steps[i].name.value.as_str() {
                "" => format!("step #{}", i + 1),
                name => format!("`{name}`"),
            })
            .collect();
        // Point at the first `goes_after` entry that closes the cycle; else at the step name.
        let span = cycle
            .iter()
            .enumerate()
            .find_map(|(k, &waiter)| {
                let waited_for = cycle[(k + 1) % cycle.len()];
                match graph.origin(waiter, waited_for) {
                    Some(EdgeOrigin::GoesAfter(span)) => Some(span),
                    _ => None,
                }
            })
            .unwrap_or(steps[cycle[0]].name.span);
        let message = if cycle.len() == 1 {
            format!(
                "{} waits for itself",
                step_label(&steps[cycle[0]], cycle[0])
            )
        } else {
            format!(
                "steps wait for each other in a cycle: {}",
                names.join(" waits for ")
            )
        };
        sink.push(
            Diagnostic::new(Code::DependencyCycle, span, message)
                .with_help("remove one of these `goes_after` entries (a step without `goes_after` waits for the step listed before it)"),
        );
    }
}

/// How messages name step `index`: "step `Deploy`", or "step #2" when it has no name.
fn step_label(step: &Step, index: usize) -> String {
    if step.name.value.is_empty() {
        format!("step #{}", index + 1)
    } else {
        format!("step `{}`", step.name.value)
    }
}

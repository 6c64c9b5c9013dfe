//! Checking a scenario's pipeline, and the scenario against it, before it runs.

use std::path::Path;

use devramps_core::pipeline::{PipelineDefinition, Span, Spanned, suggest};
use devramps_core::plan::check;

use crate::action::{Action, StepRef};
use crate::error::ScenarioError;
use crate::scenario::{PipelineRef, Scenario};

/// Validates the pipeline text; its errors point into the pipeline file, or for `pipeline_yaml`
/// into the scenario file `scenario_path` (whose text is `scenario_text`).
pub(crate) fn check_pipeline(
    scenario_path: &Path,
    scenario_text: &str,
    scenario: &Scenario,
    pipeline_text: &str,
) -> Result<PipelineDefinition, Vec<ScenarioError>> {
    let checked = check(pipeline_text);
    let errors: Vec<ScenarioError> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let message = format!("{} [{}]", d.message, d.code);
            let error = match &scenario.pipeline {
                PipelineRef::Path(file) => ScenarioError::new(file, d.span, message),
                PipelineRef::Inline(_) => {
                    match inline_position(scenario_text, scenario.pipeline_span, d.span) {
                        Some(span) => ScenarioError::new(scenario_path, span, message),
                        None => ScenarioError::new(
                            scenario_path,
                            scenario.pipeline_span,
                            format!(
                                "in `pipeline_yaml`, line {} column {}: {message}",
                                d.span.line, d.span.column
                            ),
                        ),
                    }
                }
            };
            match &d.help {
                Some(help) => error.with_help(help.clone()),
                None => error,
            }
        })
        .collect();
    match checked.definition {
        Some(definition) if errors.is_empty() => Ok(definition),
        _ if errors.is_empty() => Err(vec![ScenarioError::new(
            scenario_path,
            scenario.pipeline_span,
            "the pipeline is invalid",
        )]),
        _ => Err(errors),
    }
}

/// Where `inner` (a place in the text of a literal block scalar `pipeline_yaml: |`, whose
/// text starts at `value` in the scenario) is in the scenario file. `None` when the value is
/// not a literal block scalar (quoted, plain or folded text cannot be mapped line by line) or
/// a place is unknown.
fn inline_position(scenario_text: &str, value: Span, inner: Span) -> Option<Span> {
    if !inner.is_known() || !value.is_known() {
        return None;
    }
    let lines: Vec<&str> = scenario_text.lines().collect();
    let index = usize::try_from(value.line).ok()?.checked_sub(1)?;
    let (first_line, first_column) = if scenario_text.get(value.offset..)?.starts_with('|') {
        // The span is the header: the text starts on the next line, at its indentation.
        let next = lines
            .get(index + 1..)?
            .iter()
            .find(|l| !l.trim().is_empty())?;
        let indent = next.len() - next.trim_start_matches(' ').len();
        (value.line + 1, u32::try_from(indent).ok()? + 1)
    } else {
        // The span is the text itself: the line before must end with the literal header.
        let header = lines.get(index.checked_sub(1)?)?;
        let header = header.split(" #").next().unwrap_or_default().trim_end();
        let literal = header.rsplit(' ').next().is_some_and(|h| {
            h.starts_with('|') && h[1..].chars().all(|c| "+-0123456789".contains(c))
        });
        if !literal {
            return None;
        }
        (value.line, value.column)
    };
    Some(Span {
        line: first_line + inner.line - 1,
        column: first_column + inner.column - 1,
        offset: 0,
        len: inner.len,
    })
}

/// Checks that every stage, step and artifact an event names is in the pipeline.
pub(crate) fn check_scenario(
    path: &Path,
    scenario: &Scenario,
    definition: &PipelineDefinition,
) -> Result<(), Vec<ScenarioError>> {
    let mut errors = Vec::new();
    let stages: Vec<&str> = definition
        .stages
        .iter()
        .map(|s| s.name.value.as_str())
        .collect();
    let steps: Vec<&str> = definition
        .steps
        .iter()
        .flat_map(|s| {
            std::iter::once(s.name.value.as_str()).chain(s.id.as_deref().map(|id| id.as_str()))
        })
        .collect();
    let artifacts: Vec<&str> = definition
        .artifacts
        .iter()
        .flat_map(|a| [a.name.value.as_str(), a.id.value.as_str()])
        .collect();
    let mut name = |kind: &str, known: &[&str], value: &Spanned<String>| {
        if known.contains(&value.value.as_str()) {
            return;
        }
        let error = ScenarioError::new(
            path,
            value.span,
            format!("the pipeline has no {kind} `{}`", value.value),
        );
        errors.push(match suggest(&value.value, known.iter().copied()) {
            Some(close) => error.with_help(format!("did you mean `{close}`?")),
            None => error.with_help(format!(
                "{kind}s of the pipeline: {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    };
    for event in &scenario.events {
        match &event.action {
            Action::Outcome(outcome) => {
                if let Some(stage) = &outcome.stage {
                    name("stage", &stages, stage);
                }
                match &outcome.target {
                    StepRef::Step(step) => name("step", &steps, step),
                    StepRef::Build(artifact) => name("artifact", &artifacts, artifact),
                }
            }
            Action::Approve(answer) | Action::Reject(answer) => {
                name("stage", &stages, &answer.stage);
                name("step", &steps, &answer.step);
            }
            Action::Retry { stage, .. }
            | Action::Cancel { stage, .. }
            | Action::Rollback { stage, .. }
            | Action::RollForward { stage, .. }
            | Action::StopPromotions { stage }
            | Action::ResumePromotions { stage }
            | Action::Unblock { stage }
            | Action::Bypass { stage, .. }
            | Action::Alarm { stage, .. } => name("stage", &stages, stage),
            Action::Push(_)
            | Action::Patch { .. }
            | Action::ReleasePatch
            | Action::ApprovePipeline { .. }
            | Action::RejectPipeline { .. }
            | Action::StoreFault { .. }
            | Action::Restart { .. } => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

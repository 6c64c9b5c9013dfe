//! The `pipeline.yaml` model: parsing with source locations, validation, discovery.
//!
//! - [`check`] reads YAML text and returns the [`PipelineDefinition`] (when valid) together with
//!   every [`Diagnostic`] found, each with a stable [`Code`] and a [`Span`]. It checks the
//!   structure; [`plan::check`](crate::plan::check) adds the checks of every `${{ }}`
//!   expression (what `devramps validate` runs).
//! - [`discover`] finds the pipelines of a repository (`.devramps/<slug>/pipeline.yaml`).
//! - [`StepGraph`] orders a pipeline's steps.
//! - [`diff_definitions`] lists what changed between two definitions and whether the update is
//!   destructive (lifecycle rule L18).
//!
//! YAML is read in one place (the [`source`](crate::source) floor below); the rest of the crate
//! works on the [`Value`] tree, so embedders can also build a definition from JSON through serde.
//! Spans, values and diagnostics live in that floor and are re-exported here.

mod diff;
mod discover;
mod enums;
mod graph;
mod model;
mod read;
mod schema;
mod validate;

// The floor below, under the names this module's files use (`super::span::Span`, ...).
use crate::source::{diagnostic, span, value, yaml};

pub use crate::source::{
    Code, Diagnostic, Diagnostics, Severity, Span, Spanned, Value, ValueKind, ValueMap, parse_yaml,
    suggest,
};
pub use diff::{
    ChangeClass, ChangeKind, ChangeSubject, DefinitionChange, DefinitionChanges, diff_definitions,
};
pub use discover::{DiscoveredPipeline, PIPELINE_DIR, PIPELINE_FILE, discover, validate_slug};
pub use enums::{
    ApprovalPolicy, Architecture, ArtifactType, BuiltinStep, CloudProvider, EphemeralTriggerKind,
    HostSize, NotificationEvent, OnRelease, ReleaseKind, TestType, TimeWindow, YamlEnum,
};
pub use graph::{EdgeOrigin, StepGraph, StepIndex, find_step};
pub use model::{
    Artifact, ArtifactParams, BakeParams, DEFAULT_TRACKED_BRANCH, EcsDeployParams,
    EphemeralEnvironment, EphemeralTrigger, Notifications, PipelineDefinition, ReleaseRule,
    SlackNotifications, Stage, StageDefaults, Step, StepParams, StepType, TerraformParams,
    TestGateParams, normalize_id,
};
pub use schema::{SCHEMA, json_schema, yaml_to_json};

use diagnostic::Sink;
pub(crate) use model::literal_u64 as literal_minutes;

/// The result of checking one pipeline definition.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The definition, when it has no errors.
    pub definition: Option<PipelineDefinition>,
    /// Every problem found, errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.definition.is_some()
    }

    /// The definition, or every diagnostic when there are errors.
    pub fn into_result(self) -> Result<PipelineDefinition, Diagnostics> {
        self.definition.ok_or(Diagnostics(self.diagnostics))
    }
}

/// Parses the YAML text of a `pipeline.yaml` and checks its structure, reporting every problem
/// at once. Expressions are not checked here: [`plan::check`](crate::plan::check) runs this and
/// the expression checks.
///
/// Never panics; malformed YAML gives one `E0001` diagnostic.
pub fn check(text: &str) -> Checked {
    check_with(text, &|_, _, _| Vec::new())
}

/// More checks run on a definition once it is read (even when it has errors), with the source
/// text when there is one; their diagnostics join the others.
pub(crate) type MoreChecks<'a> =
    &'a dyn Fn(&PipelineDefinition, Option<&str>, &dyn Fn(&str) -> bool) -> Vec<Diagnostic>;

/// [`check`], with `more` checks run on the definition read.
pub(crate) fn check_with(text: &str, more: MoreChecks<'_>) -> Checked {
    let mut sink = Sink::default();
    match yaml::parse(text, &mut sink) {
        Some(root) => finish(&root, sink, Some(text), more),
        None => Checked {
            definition: None,
            diagnostics: sink.items,
        },
    }
}

/// Parses YAML text and checks its structure (see [`check`]); the definition, or all
/// diagnostics if any is an error.
///
/// ```
/// let err = devramps_core::pipeline::parse("pipeline: {}").unwrap_err();
/// assert!(err.has_errors());
/// ```
pub fn parse(text: &str) -> Result<PipelineDefinition, Diagnostics> {
    check(text).into_result()
}

/// Checks the structure of a value tree built by another front end (spans may be unknown).
pub fn check_value(root: &Value) -> Checked {
    check_value_with(root, &|_, _, _| Vec::new())
}

/// [`check_value`], with `more` checks run on the definition read.
pub(crate) fn check_value_with(root: &Value, more: MoreChecks<'_>) -> Checked {
    finish(root, Sink::default(), None, more)
}

fn finish(root: &Value, mut sink: Sink, source: Option<&str>, more: MoreChecks<'_>) -> Checked {
    let draft = read::read_document(root, &mut sink);
    if let Some(draft) = &draft {
        validate::validate(&draft.definition, &mut sink);
        // A reference to an artifact that could not be read only repeats that problem.
        let follow_on = |name: &str| draft.unreadable_artifacts.covers(name);
        sink.items
            .extend(more(&draft.definition, source, &follow_on));
    }
    let mut diagnostics = sink.items;
    diagnostics.sort_by_key(|d| (d.span.offset, d.span.line, d.span.column));
    let valid = !diagnostics.iter().any(Diagnostic::is_error);
    Checked {
        definition: draft.filter(|d| valid && d.complete).map(|d| d.definition),
        diagnostics,
    }
}

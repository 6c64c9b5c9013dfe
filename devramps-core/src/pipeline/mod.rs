//! The `pipeline.yaml` model: parsing with source locations, validation, discovery.
//!
//! - [`check`] reads YAML text and returns the [`PipelineDefinition`] (when valid) together with
//!   every [`Diagnostic`] found, each with a stable [`Code`] and a [`Span`].
//! - [`discover`] finds the pipelines of a repository (`.devramps/<slug>/pipeline.yaml`).
//! - [`StepGraph`] orders a pipeline's steps.
//! - [`diff_definitions`] lists what changed between two definitions and whether the update is
//!   destructive (lifecycle rule L18).
//!
//! YAML is read in one place (the private `yaml` module); the rest of the crate works on the
//! [`Value`] tree, so embedders can also build a definition from JSON through serde.

mod diagnostic;
mod diff;
mod discover;
mod enums;
mod graph;
mod model;
mod read;
mod schema;
mod span;
mod validate;
mod value;
mod yaml;

pub use diagnostic::{Code, Diagnostic, Diagnostics, Severity, suggest};
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
pub use span::{Span, Spanned};
pub use value::{Value, ValueKind, ValueMap};

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

/// Parses and validates the YAML text of a `pipeline.yaml`, reporting every problem at once.
///
/// Never panics; malformed YAML gives one `E0001` diagnostic.
pub fn check(text: &str) -> Checked {
    let mut sink = Sink::default();
    match yaml::parse(text, &mut sink) {
        Some(root) => finish(&root, sink, Some(text)),
        None => Checked {
            definition: None,
            diagnostics: sink.items,
        },
    }
}

/// Parses and validates YAML text; the definition, or all diagnostics if any is an error.
///
/// ```
/// let err = devramps_core::pipeline::parse("pipeline: {}").unwrap_err();
/// assert!(err.has_errors());
/// ```
pub fn parse(text: &str) -> Result<PipelineDefinition, Diagnostics> {
    check(text).into_result()
}

/// Reads YAML text into a spanned [`Value`] tree, as the pipeline parser does (YAML 1.2
/// booleans; duplicate and non-string keys are errors). For other YAML inputs of devramps, such
/// as simulation scenarios, so that their errors point at lines and columns too.
///
/// ```
/// let v = devramps_core::pipeline::parse_yaml("a:\n  b: [1, 2]\n").unwrap();
/// let b = v.as_map().unwrap().get("a").unwrap().as_map().unwrap().get("b").unwrap();
/// assert_eq!((b.span.line, b.span.column), (2, 6));
/// assert!(devramps_core::pipeline::parse_yaml("a: [").is_err());
/// ```
pub fn parse_yaml(text: &str) -> Result<Value, Diagnostics> {
    let mut sink = Sink::default();
    match yaml::parse(text, &mut sink) {
        Some(root) if !sink.items.iter().any(Diagnostic::is_error) => Ok(root),
        _ => Err(Diagnostics(sink.items)),
    }
}

/// Validates a value tree built by another front end (spans may be unknown).
pub fn check_value(root: &Value) -> Checked {
    finish(root, Sink::default(), None)
}

fn finish(root: &Value, mut sink: Sink, source: Option<&str>) -> Checked {
    let draft = read::read_document(root, &mut sink);
    if let Some(draft) = &draft {
        validate::validate(&draft.definition, &mut sink);
        // A reference to an artifact that could not be read only repeats that problem.
        let follow_on = |name: &str| draft.unreadable_artifacts.covers(name);
        sink.items.extend(crate::expr::check_definition(
            &draft.definition,
            source,
            &follow_on,
        ));
    }
    let mut diagnostics = sink.items;
    diagnostics.sort_by_key(|d| (d.span.offset, d.span.line, d.span.column));
    let valid = !diagnostics.iter().any(Diagnostic::is_error);
    Checked {
        definition: draft.filter(|d| valid && d.complete).map(|d| d.definition),
        diagnostics,
    }
}

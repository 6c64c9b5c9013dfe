//! [`Scenario`]: a simulation scenario file, read into typed form with every error reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devramps_core::pipeline::{PIPELINE_FILE, Span, Value, ValueKind, parse_yaml, validate_slug};
use jiff::Timestamp;

use crate::action::Action;
use crate::error::ScenarioError;
use crate::read_events::read_events;
use crate::reader::{Fields, Reader};

/// The slug of a scenario whose pipeline is inline or not in a `pipeline.yaml` file.
pub const DEFAULT_SLUG: &str = "app";

/// Where the virtual clock starts unless the scenario says otherwise: Monday
/// 2026-01-05T17:00:00Z, 09:00 in `America/Los_Angeles`.
pub const DEFAULT_SCENARIO_START: Timestamp = devramps_memory::DEFAULT_START;

/// How long after `start` the simulation may run unless the scenario says otherwise: 30 days.
pub const DEFAULT_RUN_UNTIL: Duration = Duration::from_secs(30 * 86_400);

const TOP_LEVEL_KEYS: &[&str] = &[
    "pipeline",
    "pipeline_yaml",
    "slug",
    "start",
    "defaults",
    "run_until",
    "events",
];

const DEFAULTS_KEYS: &[&str] = &["step_duration", "build_duration", "mirror_duration"];

/// A simulation scenario: a pipeline, a virtual clock and the events to apply, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The pipeline under test.
    pub pipeline: PipelineRef,
    /// Where `pipeline` or `pipeline_yaml` was written: for errors about a pipeline file that
    /// cannot be read, and to map the lines of an inline pipeline's diagnostics.
    pub pipeline_span: Span,
    /// The pipeline's slug: `slug`, else the folder holding a `pipeline.yaml`, else
    /// [`DEFAULT_SLUG`].
    pub slug: String,
    /// The virtual clock's start ([`DEFAULT_SCENARIO_START`] when not written).
    pub start: Timestamp,
    /// Durations of work that is not scripted.
    pub defaults: Defaults,
    /// How long after `start` the simulation may run at most ([`DEFAULT_RUN_UNTIL`] when not
    /// written). No event may come later.
    pub run_until: Duration,
    /// The events, in file order (and so in time order).
    pub events: Vec<ScenarioEvent>,
}

/// Where the pipeline of a scenario comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipelineRef {
    /// `pipeline:` a file, resolved against the scenario file's folder (lexically: the file
    /// system is not touched, so the path may not exist).
    Path(PathBuf),
    /// `pipeline_yaml:` the pipeline's YAML text.
    Inline(String),
}

/// How long work takes when no `outcome` scripts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// A step (default 1 minute). Bake steps last their `duration_minutes` instead.
    pub step_duration: Duration,
    /// An artifact build (default 2 minutes).
    pub build_duration: Duration,
    /// Resource validation and mirroring, per stage (default 10 seconds).
    pub mirror_duration: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            step_duration: Duration::from_secs(60),
            build_duration: Duration::from_secs(120),
            mirror_duration: Duration::from_secs(10),
        }
    }
}

/// One event of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioEvent {
    /// When it happens, as an offset from the scenario's start. Defaults to the previous
    /// event's time (zero for the first event); never earlier than the previous event's.
    pub at: Duration,
    /// What happens.
    pub action: Action,
    /// Where the event was written.
    pub span: Span,
}

/// Reads a scenario from its YAML text. `file` is the scenario's path: it names the file in
/// errors, and a `pipeline:` path is resolved against its folder.
///
/// Reports every problem at once, each with its line and column. Never panics.
///
/// ```
/// use std::path::Path;
/// use std::time::Duration;
/// use devramps_sim::{Action, PipelineRef, parse_scenario};
///
/// let text = "pipeline: .devramps/api/pipeline.yaml\n\
///             events:\n  - push: { commit: c1 }\n  - at: 5m\n    push: { commit: c2 }\n";
/// let scenario = parse_scenario(text, Path::new("sims/two-pushes.yaml")).unwrap();
/// assert_eq!(
///     scenario.pipeline,
///     PipelineRef::Path("sims/.devramps/api/pipeline.yaml".into())
/// );
/// assert_eq!(scenario.slug, "api");
/// assert_eq!(scenario.events[1].at, Duration::from_secs(300));
/// assert!(matches!(&scenario.events[0].action, Action::Push(p) if p.commit == "c1"));
///
/// let errors = parse_scenario("pipeline: p.yaml\nevnts: []\n", Path::new("s.yaml")).unwrap_err();
/// assert_eq!(
///     errors[0].to_string(),
///     "s.yaml:2:1: error: unknown key `evnts` at the top level\n  help: did you mean `events`?"
/// );
/// ```
pub fn parse_scenario(text: &str, file: &Path) -> Result<Scenario, Vec<ScenarioError>> {
    let mut reader = Reader::new(file);
    let root = match parse_yaml(text) {
        Ok(root) => root,
        Err(diagnostics) => {
            let errors = diagnostics
                .0
                .into_iter()
                .filter(|d| d.is_error())
                .map(|d| {
                    let error = ScenarioError::new(file, d.span, d.message);
                    match d.help {
                        Some(help) => error.with_help(help),
                        None => error,
                    }
                })
                .collect();
            return Err(errors);
        }
    };
    let scenario = read_scenario(&mut reader, &root, file);
    let mut errors = reader.errors;
    match scenario {
        Some(scenario) if errors.is_empty() => Ok(scenario),
        _ => {
            // Stable: errors at the same place keep the order they were found in.
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }
}

fn read_scenario(reader: &mut Reader<'_>, root: &Value, file: &Path) -> Option<Scenario> {
    let Some(map) = root.as_map() else {
        reader.error_help(
            root.span,
            format!("a scenario must be a map, found {}", root.describe()),
            "start with `pipeline: <path to pipeline.yaml>` and `events:`",
        );
        return None;
    };
    reader.unknown_keys(map, "at the top level", TOP_LEVEL_KEYS);

    let pipeline = read_pipeline(reader, root, file);
    let slug = match map.get("slug") {
        Some(value) => {
            reader
                .string(value, "`slug`")
                .and_then(|slug| match validate_slug(&slug.value) {
                    Ok(()) => Some(slug.value),
                    Err(d) => {
                        reader.error_help(
                            slug.span,
                            format!("`slug` `{}` is not a valid slug", slug.value),
                            d.help.unwrap_or_default(),
                        );
                        None
                    }
                })
        }
        None => pipeline
            .as_ref()
            .and_then(|(pipeline, span)| default_slug(reader, pipeline, *span)),
    };
    let start = match map.get("start") {
        None => Some(DEFAULT_SCENARIO_START),
        Some(value) => read_start(reader, value),
    };
    let defaults = match map.entry("defaults") {
        None => Some(Defaults::default()),
        Some((key, value)) => read_defaults(reader, key.span, value),
    };
    let run_until = match map.get("run_until") {
        None => Some(DEFAULT_RUN_UNTIL),
        Some(value) => reader.duration(value, "`run_until`"),
    };
    let events = match map.get("events") {
        None => Vec::new(),
        Some(value) => read_events(reader, value, run_until),
    };
    let (pipeline, pipeline_span) = pipeline?;
    Some(Scenario {
        pipeline,
        pipeline_span,
        slug: slug?,
        start: start?,
        defaults: defaults?,
        run_until: run_until?,
        events,
    })
}

fn read_pipeline(
    reader: &mut Reader<'_>,
    root: &Value,
    file: &Path,
) -> Option<(PipelineRef, Span)> {
    let map = root.as_map()?;
    match (map.entry("pipeline"), map.entry("pipeline_yaml")) {
        (Some(_), Some((second, _))) => {
            reader.error_help(
                second.span,
                "both `pipeline` and `pipeline_yaml` are set",
                "keep one: `pipeline` (a path) or `pipeline_yaml` (the pipeline inline)",
            );
            None
        }
        (Some((_, value)), None) => {
            let path = reader.string(value, "`pipeline`")?;
            let folder = file.parent().unwrap_or(Path::new(""));
            Some((PipelineRef::Path(folder.join(&path.value)), value.span))
        }
        (None, Some((_, value))) => {
            let text = reader.string(value, "`pipeline_yaml`")?;
            Some((PipelineRef::Inline(text.value), value.span))
        }
        (None, None) => {
            reader.error_help(
                root.span,
                "the scenario has no pipeline",
                "add `pipeline: <path to pipeline.yaml>` or `pipeline_yaml: |` followed by the pipeline",
            );
            None
        }
    }
}

/// The folder name above a `pipeline.yaml`, else [`DEFAULT_SLUG`].
fn default_slug(reader: &mut Reader<'_>, pipeline: &PipelineRef, span: Span) -> Option<String> {
    let PipelineRef::Path(path) = pipeline else {
        return Some(DEFAULT_SLUG.to_owned());
    };
    if path.file_name().and_then(|n| n.to_str()) != Some(PIPELINE_FILE) {
        return Some(DEFAULT_SLUG.to_owned());
    }
    let Some(folder) = path.parent().and_then(Path::file_name) else {
        return Some(DEFAULT_SLUG.to_owned());
    };
    let folder = folder.to_string_lossy();
    if validate_slug(&folder).is_ok() {
        return Some(folder.into_owned());
    }
    reader.error_help(
        span,
        format!(
            "the pipeline's folder `{folder}` is not a valid slug, so it cannot name the pipeline"
        ),
        "set `slug:` (1-63 lowercase letters, digits, `-` or `_`)",
    );
    None
}

fn read_start(reader: &mut Reader<'_>, value: &Value) -> Option<Timestamp> {
    let help = "write an RFC 3339 time with its offset, for example `\"2026-01-05T17:00:00Z\"`";
    let ValueKind::String(text) = &value.kind else {
        reader.error_help(
            value.span,
            format!("`start` must be a time, found {}", value.describe()),
            help,
        );
        return None;
    };
    match text.parse::<Timestamp>() {
        Ok(start) => Some(start),
        Err(_) => {
            reader.error_help(
                value.span,
                format!("`start` is not an RFC 3339 time: `{text}`"),
                help,
            );
            None
        }
    }
}

fn read_defaults(reader: &mut Reader<'_>, key_span: Span, value: &Value) -> Option<Defaults> {
    let fields = Fields::read(reader, "defaults", key_span, value, DEFAULTS_KEYS)?;
    let mut defaults = Defaults::default();
    let mut ok = true;
    for (name, slot) in [
        ("step_duration", &mut defaults.step_duration),
        ("build_duration", &mut defaults.build_duration),
        ("mirror_duration", &mut defaults.mirror_duration),
    ] {
        if let Some((_, value)) = fields.get(name) {
            match reader.duration(value, &fields.what(name)) {
                Some(duration) => *slot = duration,
                None => ok = false,
            }
        }
    }
    ok.then_some(defaults)
}

//! The document, the `pipeline` object, stage defaults, stages and notifications.

use super::super::diagnostic::{Code, Diagnostic, Sink};
use super::super::enums::{ApprovalPolicy, CloudProvider, NotificationEvent, TimeWindow, YamlEnum};
use super::super::model::{
    Notifications, PipelineDefinition, SlackNotifications, Stage, StageDefaults,
};
use super::super::span::{Span, Spanned};
use super::super::value::{Value, ValueKind, ValueMap};
use super::{Obj, as_enum, as_string};

/// The only supported `version`.
pub(crate) const SUPPORTED_VERSION: &str = "1.0.0";

const TOP_KEYS: &[&str] = &["version", "pipeline"];
const PIPELINE_KEYS: &[&str] = &[
    "cloud_provider",
    "pipeline_updates_require_approval",
    "tracks",
    "stage_defaults",
    "stages",
    "steps",
    "artifacts",
    "notifications",
    "ephemeral_environments",
    "infrastructure_provider",
];
const DEFAULTS_KEYS: &[&str] = &["deployment_time_window", "infrastructure"];
const STAGE_KEYS: &[&str] = &[
    "name",
    "account_id",
    "region",
    "deployment_time_window",
    "vars",
    "skip",
    "auto_rollback_alarm_name",
    "infrastructure",
];

/// What reading a document produced: a definition with every item that could be read (items
/// with broken parts are kept with placeholders so that checks across items still run), and
/// whether everything was read.
pub(crate) struct Draft {
    pub(crate) definition: PipelineDefinition,
    pub(crate) complete: bool,
    /// Artifacts that could not be read, whose references are not reported again.
    pub(crate) unreadable_artifacts: super::artifacts::Unreadable,
}

/// Reads a whole document. `None` when there is no `pipeline` object to read at all.
pub(crate) fn read_document(root: &Value, sink: &mut Sink) -> Option<Draft> {
    if root.is_null() {
        sink.error(
            Code::MissingField,
            Span {
                line: 1,
                column: 1,
                ..root.span
            },
            "the file is empty: a pipeline needs `version` and `pipeline`",
        );
        return None;
    }
    let top = Obj::new(root, "the document", sink)?;
    check_top_keys(&top, sink);
    let version = top
        .required("version", sink)
        .and_then(|v| read_version(v, sink));
    let pipeline_value = top.required("pipeline", sink)?;
    let pipeline = Obj::new(pipeline_value, "the `pipeline` object", sink)?;
    pipeline.check_keys(PIPELINE_KEYS, sink);

    let cloud_provider = pipeline
        .required("cloud_provider", sink)
        .and_then(|v| read_cloud_provider(v, sink));
    let updates =
        pipeline.required_enum::<ApprovalPolicy>("pipeline_updates_require_approval", sink);
    let tracks = pipeline.optional_str("tracks", sink);
    if let Some(t) = &tracks
        && t.value.trim().is_empty()
    {
        sink.error(Code::InvalidString, t.span, "`tracks` must name a branch");
    }
    let stage_defaults = match pipeline.get("stage_defaults") {
        Some(v) => read_defaults(v, sink),
        None => StageDefaults::default(),
    };
    let (stages, stages_complete) = read_stages(&pipeline, sink);
    let steps = super::steps::read_steps(&pipeline, sink);
    let artifacts = super::artifacts::read_artifacts(&pipeline, sink);
    let notifications = pipeline
        .get("notifications")
        .and_then(|v| read_notifications(v, sink));
    let ephemeral_environments = pipeline
        .get("ephemeral_environments")
        .map(|v| super::ephemeral::read_environments(v, sink))
        .unwrap_or_default();
    let infrastructure_provider = pipeline.optional_str("infrastructure_provider", sink);

    let complete = version.is_some()
        && cloud_provider.is_some()
        && updates.is_some()
        && stages_complete
        && steps.complete
        && artifacts.complete;
    let definition = PipelineDefinition {
        version: version.unwrap_or_else(|| Spanned::unspanned(SUPPORTED_VERSION.to_owned())),
        cloud_provider: cloud_provider.unwrap_or_else(|| Spanned::unspanned(CloudProvider::Aws)),
        pipeline_updates_require_approval: updates
            .unwrap_or_else(|| Spanned::unspanned(ApprovalPolicy::Never)),
        tracks,
        stage_defaults,
        stages,
        steps: steps.steps,
        artifacts: artifacts.artifacts,
        notifications,
        ephemeral_environments,
        infrastructure_provider,
        span: root.span,
    };
    Some(Draft {
        definition,
        complete,
        unreadable_artifacts: artifacts.unreadable,
    })
}

/// Reports unknown top-level keys; a field of the `pipeline` object written at the top level
/// (as in older examples) is told to move under `pipeline`.
fn check_top_keys(top: &Obj<'_>, sink: &mut Sink) {
    let mut rest = ValueMap::default();
    for (key, _) in top.map.iter() {
        if PIPELINE_KEYS.contains(&key.value.as_str()) {
            sink.push(
                Diagnostic::new(
                    Code::UnknownField,
                    key.span,
                    format!("unknown field `{}` in the document", key.value),
                )
                .with_help(format!(
                    "`{}` belongs inside the `pipeline` object: indent it under `pipeline:`",
                    key.value
                )),
            );
        } else {
            // Only the keys are checked: the values are not needed (nor cloned).
            rest.entries
                .push((key.clone(), Value::unspanned(ValueKind::Null)));
        }
    }
    let rest = Obj {
        map: &rest,
        span: top.span,
        what: top.what.clone(),
    };
    rest.check_keys(TOP_KEYS, sink);
}

fn read_version(value: &Value, sink: &mut Sink) -> Option<Spanned<String>> {
    let text = match &value.kind {
        ValueKind::String(s) => s.clone(),
        ValueKind::Int(_) | ValueKind::Float(_) => value.to_string(),
        _ => return as_string(value, "`version`", sink),
    };
    if text == SUPPORTED_VERSION {
        return Some(Spanned::new(text, value.span));
    }
    let quoted = matches!(value.kind, ValueKind::String(_));
    let help = if quoted {
        format!("the only supported version is \"{SUPPORTED_VERSION}\"")
    } else {
        format!("write `version: \"{SUPPORTED_VERSION}\"` (quoted)")
    };
    sink.push(
        Diagnostic::new(
            Code::UnsupportedVersion,
            value.span,
            format!("unsupported version `{text}`"),
        )
        .with_help(help),
    );
    None
}

fn read_cloud_provider(value: &Value, sink: &mut Sink) -> Option<Spanned<CloudProvider>> {
    let text = as_string(value, "`cloud_provider`", sink)?;
    if let Some(provider) = <CloudProvider as YamlEnum>::parse(&text.value) {
        return Some(Spanned::new(provider, text.span));
    }
    let help = if text.value.eq_ignore_ascii_case("aws") {
        "write it in capitals: `AWS`".to_owned()
    } else {
        "`AWS` is the only supported cloud provider".to_owned()
    };
    sink.push(
        Diagnostic::new(
            Code::UnsupportedCloudProvider,
            text.span,
            format!("unsupported cloud provider `{}`", text.value),
        )
        .with_help(help),
    );
    None
}

fn read_defaults(value: &Value, sink: &mut Sink) -> StageDefaults {
    let Some(obj) = Obj::new(value, "`stage_defaults`", sink) else {
        return StageDefaults::default();
    };
    obj.check_keys(DEFAULTS_KEYS, sink);
    StageDefaults {
        deployment_time_window: obj.optional_enum::<TimeWindow>("deployment_time_window", sink),
        infrastructure: obj.get("infrastructure").cloned(),
        span: value.span,
    }
}

fn read_stages(pipeline: &Obj<'_>, sink: &mut Sink) -> (Vec<Stage>, bool) {
    let Some(value) = pipeline.required("stages", sink) else {
        return (Vec::new(), false);
    };
    let ValueKind::List(items) = &value.kind else {
        sink.error(
            Code::WrongType,
            value.span,
            format!(
                "`stages` must be a list of stages, found {}",
                value.describe()
            ),
        );
        return (Vec::new(), false);
    };
    if items.is_empty() {
        sink.push(
            Diagnostic::new(
                Code::NoStages,
                value.span,
                "a pipeline must have at least one stage",
            )
            .with_help("add a stage with `name`, `account_id` and `region`"),
        );
        return (Vec::new(), false);
    }
    let mut stages = Vec::with_capacity(items.len());
    let mut complete = true;
    for (index, item) in items.iter().enumerate() {
        match read_stage(item, index, sink) {
            Some((stage, ok)) => {
                complete &= ok;
                stages.push(stage);
            }
            None => complete = false,
        }
    }
    (stages, complete)
}

/// Reads a stage; `false` when a required part is missing or invalid (the stage is then kept
/// with placeholders so that checks across stages still run).
fn read_stage(value: &Value, index: usize, sink: &mut Sink) -> Option<(Stage, bool)> {
    let label = value
        .as_map()
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map_or_else(
            || format!("stage #{}", index + 1),
            |n| format!("stage `{n}`"),
        );
    let obj = Obj::new(value, label, sink)?;
    obj.check_keys(STAGE_KEYS, sink);
    let name = obj.required_str("name", sink);
    let name_ok = name.as_ref().is_some_and(|n| check_stage_name(n, sink));
    let account_id = obj
        .required("account_id", sink)
        .and_then(|v| read_account_id(v, &obj.what, sink));
    let region = obj.required_str("region", sink);
    let region_ok = region
        .as_ref()
        .is_some_and(|r| check_region(r, &obj.what, sink));
    let ok = name_ok && account_id.is_some() && region_ok;
    let stage = Stage {
        deployment_time_window: obj.optional_enum::<TimeWindow>("deployment_time_window", sink),
        vars: obj.optional_map("vars", sink),
        skip: obj.optional_str_list("skip", sink).unwrap_or_default(),
        auto_rollback_alarm_name: obj.optional_str("auto_rollback_alarm_name", sink),
        infrastructure: obj.get("infrastructure").cloned(),
        span: value.span,
        name: name.unwrap_or_default(),
        account_id: account_id.unwrap_or_default(),
        region: region.unwrap_or_default(),
    };
    Some((stage, ok))
}

/// Stage names: non-empty, lowercase letters, digits and hyphens (they appear in URLs).
pub(super) fn check_stage_name(name: &Spanned<String>, sink: &mut Sink) -> bool {
    let valid = !name.value.is_empty()
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        let fixed = super::super::model::normalize_id(&name.value);
        let mut d = Diagnostic::new(
            Code::InvalidStageName,
            name.span,
            format!(
                "stage name `{}` may only use lowercase letters, digits and hyphens",
                name.value
            ),
        );
        d = if fixed.is_empty() {
            d.with_help("stage names use lowercase letters, digits and hyphens")
        } else {
            d.with_help(format!(
                "stage names use lowercase letters, digits and hyphens: try `{fixed}`"
            ))
        };
        sink.push(d);
    }
    valid
}

/// Account ids: a quoted string of exactly 12 digits.
pub(super) fn read_account_id(
    value: &Value,
    owner: &str,
    sink: &mut Sink,
) -> Option<Spanned<String>> {
    match &value.kind {
        ValueKind::String(s) if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(Spanned::new(s.clone(), value.span))
        }
        ValueKind::String(s) => {
            sink.push(
                Diagnostic::new(
                    Code::InvalidAccountId,
                    value.span,
                    format!("account id `{s}` of {owner} must be exactly 12 digits"),
                )
                .with_help("AWS account ids are 12 digits, for example \"111111111111\""),
            );
            None
        }
        ValueKind::Int(_) | ValueKind::Float(_) => {
            // YAML may read a long or zero-led digit string as a float: show it as digits.
            let number = match value.kind {
                ValueKind::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
                _ => value.to_string(),
            };
            sink.push(
                Diagnostic::new(
                    Code::InvalidAccountId,
                    value.span,
                    format!(
                        "account id of {owner} must be a quoted string, found the number `{number}`"
                    ),
                )
                .with_help("quote the account id (\"012345678901\") so leading zeros are kept"),
            );
            None
        }
        _ => {
            sink.error(
                Code::WrongType,
                value.span,
                format!(
                    "`account_id` of {owner} must be a string, found {}",
                    value.describe()
                ),
            );
            None
        }
    }
}

/// Regions: `<2 letters>-<word>[-<word>...]-<number>`, for example `us-east-1`, `us-gov-west-1`.
pub(super) fn check_region(region: &Spanned<String>, owner: &str, sink: &mut Sink) -> bool {
    let parts: Vec<&str> = region.value.split('-').collect();
    let valid = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        sink.push(
            Diagnostic::new(
                Code::InvalidRegion,
                region.span,
                format!("region `{}` of {owner} is not an AWS region", region.value),
            )
            .with_help("AWS regions look like `us-east-1` or `eu-central-2`"),
        );
    }
    valid
}

fn read_notifications(value: &Value, sink: &mut Sink) -> Option<Notifications> {
    let obj = Obj::new(value, "`notifications`", sink)?;
    obj.check_keys(&["slack"], sink);
    let slack = match obj.get("slack") {
        None => None,
        Some(v) => {
            let slack = Obj::new(v, "`notifications.slack`", sink)?;
            slack.check_keys(&["channel", "events"], sink);
            let channel = slack.required_str("channel", sink);
            let events = slack
                .required("events", sink)
                .and_then(|events| match &events.kind {
                    ValueKind::List(items) => Some(
                        items
                            .iter()
                            .filter_map(|e| {
                                as_enum::<NotificationEvent>(
                                    e,
                                    "an entry of `notifications.slack.events`",
                                    sink,
                                )
                            })
                            .collect(),
                    ),
                    _ => {
                        sink.error(
                            Code::WrongType,
                            events.span,
                            format!(
                                "`events` of `notifications.slack` must be a list, found {}",
                                events.describe()
                            ),
                        );
                        None
                    }
                });
            Some(SlackNotifications {
                channel: channel?,
                events: events?,
                span: v.span,
            })
        }
    };
    Some(Notifications {
        slack,
        span: value.span,
    })
}

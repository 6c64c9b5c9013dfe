//! `pipeline.ephemeral_environments`: a map keyed by environment name.

use super::super::diagnostic::{Code, Diagnostic, Sink};
use super::super::enums::{EphemeralTriggerKind, OnRelease, ReleaseKind};
use super::super::model::{EphemeralEnvironment, EphemeralTrigger, ReleaseRule};
use super::super::span::Spanned;
use super::super::value::{Value, ValueKind};
use super::Obj;
use super::document::{check_region, read_account_id};

const ENV_KEYS: &[&str] = &[
    "triggers",
    "release",
    "on_release",
    "account_id",
    "region",
    "vars",
    "skip",
];

pub(super) fn read_environments(value: &Value, sink: &mut Sink) -> Vec<EphemeralEnvironment> {
    let Some(obj) = Obj::new(value, "`ephemeral_environments`", sink) else {
        return Vec::new();
    };
    obj.map
        .iter()
        .filter_map(|(name, body)| read_environment(name, body, sink))
        .collect()
}

fn read_environment(
    name: &Spanned<String>,
    value: &Value,
    sink: &mut Sink,
) -> Option<EphemeralEnvironment> {
    let valid_name = !name.value.is_empty()
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        sink.push(
            Diagnostic::new(
                Code::InvalidEnvironmentName,
                name.span,
                format!(
                    "ephemeral environment name `{}` may only use lowercase letters, digits and hyphens",
                    name.value
                ),
            )
            .with_help("the environment deploys as stage `ephemeral-<name>`, and stage names use lowercase letters, digits and hyphens"),
        );
    }
    let obj = Obj::new(
        value,
        format!("ephemeral environment `{}`", name.value),
        sink,
    )?;
    obj.check_keys(ENV_KEYS, sink);
    let triggers = obj.required("triggers", sink).and_then(|v| {
        list(v, &obj.field("triggers"), sink).map(|items| {
            items
                .iter()
                .filter_map(|t| read_trigger(t, &obj.what, sink))
                .collect()
        })
    });
    let release = obj.required("release", sink).and_then(|v| {
        list(v, &obj.field("release"), sink).map(|items| {
            items
                .iter()
                .filter_map(|r| read_release(r, &obj.what, sink))
                .collect()
        })
    });
    let on_release = obj.required_enum::<OnRelease>("on_release", sink);
    let account_id = obj
        .required("account_id", sink)
        .and_then(|v| read_account_id(v, &obj.what, sink));
    let region = obj.required_str("region", sink);
    let region = region.filter(|r| check_region(r, &obj.what, sink));
    // Every missing part was reported; the environment is kept with placeholders so that its
    // `skip` list and its name are still checked against the steps and stages.
    Some(EphemeralEnvironment {
        vars: obj.optional_map("vars", sink),
        skip: obj.optional_str_list("skip", sink).unwrap_or_default(),
        name: name.clone(),
        triggers: triggers.unwrap_or_default(),
        release: release.unwrap_or_default(),
        on_release: on_release.unwrap_or_else(|| Spanned::unspanned(OnRelease::DeployMain)),
        account_id: account_id.unwrap_or_default(),
        region: region.unwrap_or_default(),
        span: value.span,
    })
}

fn list<'a>(value: &'a Value, what: &str, sink: &mut Sink) -> Option<&'a [Value]> {
    match &value.kind {
        ValueKind::List(items) => Some(items),
        _ => {
            sink.error(
                Code::WrongType,
                value.span,
                format!("{what} must be a list, found {}", value.describe()),
            );
            None
        }
    }
}

fn read_trigger(value: &Value, owner: &str, sink: &mut Sink) -> Option<EphemeralTrigger> {
    let obj = Obj::new(value, format!("a trigger of {owner}"), sink)?;
    obj.check_keys(&["on", "target_branches"], sink);
    let on = obj.required_enum::<EphemeralTriggerKind>("on", sink)?;
    let target_branches = obj.optional_str_list("target_branches", sink);
    if on.value == EphemeralTriggerKind::PullRequest
        && target_branches.as_ref().is_none_or(Vec::is_empty)
    {
        sink.push(
            Diagnostic::new(
                Code::IncompleteRule,
                on.span,
                format!("a `pull_request` trigger of {owner} needs `target_branches`"),
            )
            .with_help("add `target_branches: [\"feat-*\"]` (branch globs)"),
        );
    }
    Some(EphemeralTrigger {
        on,
        target_branches: target_branches.unwrap_or_default(),
        span: value.span,
    })
}

fn read_release(value: &Value, owner: &str, sink: &mut Sink) -> Option<ReleaseRule> {
    let obj = Obj::new(value, format!("a release rule of {owner}"), sink)?;
    obj.check_keys(&["on", "after_idle_hours"], sink);
    let on = obj.required_enum::<ReleaseKind>("on", sink)?;
    let hours = match obj.get("after_idle_hours") {
        None => None,
        Some(v) => match v.kind {
            ValueKind::Int(i) if i > 0 => Some(Spanned::new(i as f64, v.span)),
            ValueKind::Float(f) if f > 0.0 && f.is_finite() => Some(Spanned::new(f, v.span)),
            _ => {
                sink.error(
                    Code::InvalidNumber,
                    v.span,
                    format!("`after_idle_hours` of {owner} must be a positive number of hours, found {v}"),
                );
                None
            }
        },
    };
    if on.value == ReleaseKind::Timeout && obj.get("after_idle_hours").is_none() {
        sink.push(
            Diagnostic::new(
                Code::IncompleteRule,
                on.span,
                format!("a `timeout` release rule of {owner} needs `after_idle_hours`"),
            )
            .with_help("add `after_idle_hours: 24`"),
        );
    }
    Some(ReleaseRule {
        on,
        after_idle_hours: hours,
        span: value.span,
    })
}

//! Reading the `events` list, and each event's action, from the YAML tree.

use std::time::Duration;

use devramps_core::pipeline::{Spanned, Value, ValueKind, suggest};

use crate::action::{
    ACTION_KEYS, Action, AlarmState, Answer, DEFAULT_ACTOR, Push, ScriptedOutcome, ScriptedResult,
    StepRef, StoreOp, TerraformPlan,
};
use crate::duration::format_duration;
use crate::reader::{Fields, Reader, list};
use crate::scenario::ScenarioEvent;

/// Reads the `events` list; events with errors are left out (the errors are recorded).
pub(crate) fn read_events(
    reader: &mut Reader<'_>,
    value: &Value,
    run_until: Option<Duration>,
) -> Vec<ScenarioEvent> {
    if value.is_null() {
        return Vec::new();
    }
    let Some(items) = value.as_list() else {
        reader.error_help(
            value.span,
            format!("`events` must be a list, found {}", value.describe()),
            "write each event as a list item: `- push: { commit: c1 }`",
        );
        return Vec::new();
    };
    let mut events = Vec::new();
    // The time of the previous event, as far as it is known.
    let mut previous = Duration::ZERO;
    let mut late_reported = false;
    for item in items {
        let Some(map) = item.as_map() else {
            reader.error_help(
                item.span,
                format!("an event must be a map, found {}", item.describe()),
                "write for example `- at: 5m` and, below it, `push: { commit: c2 }`",
            );
            continue;
        };
        let mut allowed = vec!["at"];
        allowed.extend_from_slice(ACTION_KEYS);
        let unknown = reader.unknown_keys(map, "in an event", &allowed);

        let at = match map.get("at") {
            None => Some(previous),
            Some(value) => reader.duration(value, "`at`").and_then(|at| {
                if at < previous {
                    reader.error_help(
                        value.span,
                        format!(
                            "`at` is {}, earlier than the previous event's {}",
                            format_duration(at),
                            format_duration(previous)
                        ),
                        "events apply in file order: list them by time",
                    );
                    return None;
                }
                if let Some(limit) = run_until.filter(|limit| at > *limit && !late_reported) {
                    late_reported = true;
                    reader.error_help(
                        value.span,
                        format!(
                            "`at` is {}, after `run_until` ({})",
                            format_duration(at),
                            format_duration(limit)
                        ),
                        format!("raise `run_until` to at least {}", format_duration(at)),
                    );
                    return None;
                }
                Some(at)
            }),
        };
        if let Some(at) = at {
            previous = at;
        }

        let actions: Vec<_> = map
            .iter()
            .filter(|(k, _)| ACTION_KEYS.contains(&k.value.as_str()))
            .collect();
        let action = match actions.as_slice() {
            [] if unknown => None,
            [] => {
                reader.error_help(
                    item.span,
                    "the event has no action",
                    format!("add one of {}", list(ACTION_KEYS)),
                );
                None
            }
            [(key, value)] => read_action(reader, key, value),
            [_, (second, _), ..] => {
                let names: Vec<&str> = actions.iter().map(|(k, _)| k.value.as_str()).collect();
                reader.error_help(
                    second.span,
                    format!(
                        "the event has {} actions: {}",
                        names.len(),
                        list_and(&names)
                    ),
                    "write one action per event; events with the same `at` apply in file order",
                );
                None
            }
        };
        if let (Some(at), Some(action)) = (at, action) {
            events.push(ScenarioEvent {
                at,
                action,
                span: item.span,
            });
        }
    }
    events
}

/// `` `a`, `b` and `c` ``.
fn list_and(items: &[&str]) -> String {
    list(items).replace("` or `", "` and `")
}

/// Reads the action under `key` (one of `ACTION_KEYS`). Returns `None` after recording the
/// errors when the fields are wrong.
pub(crate) fn read_action(
    reader: &mut Reader<'_>,
    key: &Spanned<String>,
    value: &Value,
) -> Option<Action> {
    let before = reader.errors.len();
    let action = read_fields(reader, key, value)?;
    (reader.errors.len() == before).then_some(action)
}

fn read_fields(reader: &mut Reader<'_>, key: &Spanned<String>, value: &Value) -> Option<Action> {
    let name = key.value.as_str();
    let fields = |reader: &mut Reader<'_>, allowed: &[&str]| {
        Fields::read(reader, name, key.span, value, allowed)
    };
    // Missing or wrong fields are recorded in `reader`; defaults only fill the gaps so that the
    // rest of the event is still checked.
    let text = |f: &Fields<'_>, reader: &mut Reader<'_>, field: &str| {
        f.required_string(reader, field)
            .map(|s| s.value)
            .unwrap_or_default()
    };
    let stage = |f: &Fields<'_>, reader: &mut Reader<'_>| {
        f.required_string(reader, "stage").unwrap_or_default()
    };
    let action = match name {
        "push" => {
            let f = fields(
                reader,
                &[
                    "commit",
                    "branch",
                    "changed",
                    "delivery",
                    "deleted",
                    "pipeline_yaml",
                ],
            )?;
            Action::Push(Push {
                commit: text(&f, reader, "commit"),
                branch: f.optional_string(reader, "branch").map(|s| s.value),
                changed: changed(&f, reader),
                delivery: f.optional_string(reader, "delivery").map(|s| s.value),
                pipeline_yaml: f.optional_string(reader, "pipeline_yaml").map(|s| s.value),
                deleted: flag(&f, reader, "deleted"),
            })
        }
        "outcome" => Action::Outcome(read_outcome(reader, key, value)?),
        "approve" | "reject" => {
            let f = fields(reader, &["commit", "stage", "step", "actor", "comment"])?;
            let answer = Answer {
                commit: text(&f, reader, "commit"),
                stage: stage(&f, reader),
                step: f.required_string(reader, "step").unwrap_or_default(),
                actor: f
                    .optional_string(reader, "actor")
                    .map_or_else(|| DEFAULT_ACTOR.to_owned(), |s| s.value),
                comment: f.optional_string(reader, "comment").map(|s| s.value),
            };
            if name == "approve" {
                Action::Approve(answer)
            } else {
                Action::Reject(answer)
            }
        }
        "retry" | "cancel" => {
            let f = fields(reader, &["commit", "stage"])?;
            let (commit, stage) = (text(&f, reader, "commit"), stage(&f, reader));
            if name == "retry" {
                Action::Retry { commit, stage }
            } else {
                Action::Cancel { commit, stage }
            }
        }
        "rollback" | "roll_forward" => {
            let f = fields(reader, &["stage", "to"])?;
            let (stage, to) = (stage(&f, reader), text(&f, reader, "to"));
            if name == "rollback" {
                Action::Rollback { stage, to }
            } else {
                Action::RollForward { stage, to }
            }
        }
        "stop_promotions" | "resume_promotions" | "unblock" => {
            let f = fields(reader, &["stage"])?;
            let stage = stage(&f, reader);
            match name {
                "stop_promotions" => Action::StopPromotions { stage },
                "resume_promotions" => Action::ResumePromotions { stage },
                _ => Action::Unblock { stage },
            }
        }
        "bypass" => {
            let f = fields(reader, &["stage", "commit"])?;
            Action::Bypass {
                stage: stage(&f, reader),
                commit: text(&f, reader, "commit"),
            }
        }
        "alarm" => {
            let f = fields(reader, &["stage", "state"])?;
            let stage = stage(&f, reader);
            let state = f
                .required_string(reader, "state")
                .and_then(|s| choice(reader, &s, &f.what("state"), ALARM_STATES));
            Action::Alarm {
                stage,
                state: state.unwrap_or(AlarmState::Ok),
            }
        }
        "patch" => {
            let f = fields(reader, &["commit", "changed"])?;
            Action::Patch {
                commit: text(&f, reader, "commit"),
                changed: changed(&f, reader),
            }
        }
        "release_patch" => {
            fields(reader, &[])?;
            Action::ReleasePatch
        }
        "approve_pipeline" | "reject_pipeline" => {
            let f = fields(reader, &["commit"])?;
            let commit = text(&f, reader, "commit");
            if name == "approve_pipeline" {
                Action::ApprovePipeline { commit }
            } else {
                Action::RejectPipeline { commit }
            }
        }
        "store_fault" => {
            let f = fields(reader, &["op", "times"])?;
            let op = f
                .required_string(reader, "op")
                .and_then(|s| choice(reader, &s, &f.what("op"), STORE_OPS));
            let times = match f.get("times") {
                Some((_, v)) => attempt(reader, v, &f.what("times")),
                None => Some(1),
            };
            Action::StoreFault {
                op: op.unwrap_or(StoreOp::Append),
                times: times.unwrap_or(1),
            }
        }
        "restart" => {
            // `restart: {}` or `restart:` with nothing: down for no time.
            let down = if value.is_null() {
                None
            } else {
                let f = fields(reader, &["down"])?;
                f.get("down")
                    .and_then(|(_, v)| reader.duration(v, &f.what("down")))
            };
            Action::Restart {
                down: down.unwrap_or(Duration::ZERO),
            }
        }
        _ => {
            reader.error(key.span, format!("unknown action `{name}`"));
            return None;
        }
    };
    Some(action)
}

const RESULTS: &[(&str, ScriptedResult)] = &[
    ("succeed", ScriptedResult::Succeed),
    ("fail", ScriptedResult::Fail),
    ("hang", ScriptedResult::Hang),
    ("ask_approval", ScriptedResult::AskApproval),
];

const STORE_OPS: &[(&str, StoreOp)] = &[("append", StoreOp::Append), ("read", StoreOp::Read)];

const ALARM_STATES: &[(&str, AlarmState)] = &[("ALARM", AlarmState::Alarm), ("OK", AlarmState::Ok)];

fn read_outcome(
    reader: &mut Reader<'_>,
    key: &Spanned<String>,
    value: &Value,
) -> Option<ScriptedOutcome> {
    let allowed = [
        "commit", "stage", "step", "build", "result", "duration", "attempt", "outputs", "plan",
    ];
    let f = Fields::read(reader, "outcome", key.span, value, &allowed)?;
    let commit = f
        .required_string(reader, "commit")
        .map(|s| s.value)
        .unwrap_or_default();
    let target = match (f.get("step"), f.get("build")) {
        (Some(_), Some((build_key, _))) => {
            reader.error_help(
                build_key.span,
                "`outcome` has both `step` and `build`",
                "script a step or a build, not both: write two events",
            );
            None
        }
        (Some((_, step)), None) => reader.string(step, &f.what("step")).map(StepRef::Step),
        (None, Some((_, build))) => reader.string(build, &f.what("build")).map(StepRef::Build),
        (None, None) => {
            reader.error_help(
                f.span,
                "`outcome` is missing `step` or `build`",
                "name the step (`step: <name or id>`) or the artifact (`build: <artifact id>`)",
            );
            None
        }
    };
    let stage = match target {
        Some(StepRef::Step(_)) => f.required_string(reader, "stage"),
        _ => f.optional_string(reader, "stage"),
    };
    let result = f
        .required_string(reader, "result")
        .and_then(|s| choice(reader, &s, &f.what("result"), RESULTS));
    let duration = f
        .get("duration")
        .and_then(|(_, v)| reader.duration(v, &f.what("duration")));
    let attempt = match f.get("attempt") {
        Some((_, v)) => attempt(reader, v, &f.what("attempt")),
        None => Some(1),
    };
    let outputs = match f.get("outputs") {
        None => serde_json::Map::new(),
        Some((_, v)) => match v.as_map() {
            Some(map) => map
                .iter()
                .map(|(k, v)| (k.value.clone(), v.to_json()))
                .collect(),
            None => {
                reader.error(
                    v.span,
                    format!(
                        "{} must be a map of output names to values, found {}",
                        f.what("outputs"),
                        v.describe()
                    ),
                );
                serde_json::Map::new()
            }
        },
    };
    let plan = f
        .get("plan")
        .map(|(_, v)| terraform_plan(reader, v, &f.what("plan")));
    if let (Some(StepRef::Build(_)), Some(ScriptedResult::AskApproval)) = (&target, result) {
        reader.error_help(
            f.span,
            "`ask_approval` is for custom steps, not builds",
            "script the build with `succeed`, `fail` or `hang`",
        );
    }
    Some(ScriptedOutcome {
        commit,
        stage,
        target: target?,
        result: result?,
        duration,
        attempt: attempt?,
        outputs,
        plan,
    })
}

/// `plan: {create: N, update: N, delete: N}`; a count left out is 0.
fn terraform_plan(reader: &mut Reader<'_>, value: &Value, what: &str) -> TerraformPlan {
    let mut plan = TerraformPlan::default();
    let Some(map) = value.as_map() else {
        reader.error_help(
            value.span,
            format!("{what} must be a map, found {}", value.describe()),
            "write for example `plan: { create: 1, update: 0, delete: 2 }`",
        );
        return plan;
    };
    reader.unknown_keys(map, &format!("in {what}"), &["create", "update", "delete"]);
    for (key, count) in map.iter() {
        let slot = match key.value.as_str() {
            "create" => &mut plan.create,
            "update" => &mut plan.update,
            "delete" => &mut plan.delete,
            _ => continue,
        };
        let what = format!("`{}` of {what}", key.value);
        match count.kind {
            ValueKind::Int(n) => match u32::try_from(n) {
                Ok(n) => *slot = n,
                Err(_) => reader.error(count.span, format!("{what} must be 0 or more, found {n}")),
            },
            _ => reader.error(
                count.span,
                format!("{what} must be an integer, found {}", count.describe()),
            ),
        }
    }
    plan
}

fn attempt(reader: &mut Reader<'_>, value: &Value, what: &str) -> Option<u32> {
    match value.kind {
        ValueKind::Int(n) if n >= 1 => match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                reader.error(value.span, format!("{what} is too large: {n}"));
                None
            }
        },
        ValueKind::Int(n) => {
            reader.error_help(
                value.span,
                format!("{what} must be 1 or more, found {n}"),
                "attempts count from 1 (the first run); each retry adds one",
            );
            None
        }
        _ => {
            reader.error(
                value.span,
                format!("{what} must be an integer, found {}", value.describe()),
            );
            None
        }
    }
}

/// An optional boolean field (default `false`).
fn flag(f: &Fields<'_>, reader: &mut Reader<'_>, field: &str) -> bool {
    match f.get(field) {
        None => false,
        Some((_, v)) => match v.kind {
            ValueKind::Bool(b) => b,
            _ => {
                reader.error(
                    v.span,
                    format!(
                        "{} must be `true` or `false`, found {}",
                        f.what(field),
                        v.describe()
                    ),
                );
                false
            }
        },
    }
}

fn changed(f: &Fields<'_>, reader: &mut Reader<'_>) -> Vec<String> {
    match f.get("changed") {
        Some((_, v)) => reader.repo_paths(v, &f.what("changed")),
        None => Vec::new(),
    }
}

/// One of a fixed set of words, exactly as written in the format.
fn choice<T: Copy>(
    reader: &mut Reader<'_>,
    word: &Spanned<String>,
    what: &str,
    options: &[(&str, T)],
) -> Option<T> {
    if let Some((_, value)) = options.iter().find(|(o, _)| *o == word.value) {
        return Some(*value);
    }
    let names: Vec<&str> = options.iter().map(|(o, _)| *o).collect();
    let message = format!("{what} must be {}, found `{}`", list(&names), word.value);
    let close = names
        .iter()
        .find(|o| o.eq_ignore_ascii_case(&word.value))
        .copied()
        .or_else(|| suggest(&word.value, names.iter().copied()));
    match close {
        Some(close) => reader.error_help(word.span, message, format!("did you mean `{close}`?")),
        None => reader.error(word.span, message),
    }
    None
}

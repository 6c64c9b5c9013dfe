//! [`write_scenario`]: a [`Scenario`] as the YAML text that [`parse_scenario`] reads back to
//! the same scenario (every field; source places aside).
//!
//! [`parse_scenario`]: crate::parse_scenario

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::action::{Action, AlarmState, DEFAULT_ACTOR, ScriptedResult, StepRef, StoreOp};
use crate::duration::format_duration;
use crate::scenario::{
    DEFAULT_RUN_UNTIL, DEFAULT_SCENARIO_START, Defaults, PipelineRef, Scenario, ScenarioEvent,
};

/// Writes `scenario` as a scenario file meant to be saved at `file`: a `pipeline:` path is
/// written relative to `file`'s folder (so that reading the text back from `file` gives the
/// same path), an inline pipeline as a literal block. Fields at their defaults are left out;
/// an event's `at` is written when it differs from the previous event's.
///
/// ```
/// use std::path::Path;
/// use devramps_sim::{parse_scenario, random::write_scenario};
///
/// let text = "pipeline: p/pipeline.yaml\nslug: api\nevents:\n  - push: { commit: c1 }\n  - at: 5m\n    retry: { commit: c1, stage: staging }\n";
/// let file = Path::new("sims/a.yaml");
/// let scenario = parse_scenario(text, file).unwrap();
/// let written = write_scenario(&scenario, file);
/// let mut again = parse_scenario(&written, file).unwrap();
/// again.pipeline_span = scenario.pipeline_span;
/// for (a, b) in again.events.iter_mut().zip(&scenario.events) { a.span = b.span; }
/// assert_eq!(again, scenario);
/// ```
pub fn write_scenario(scenario: &Scenario, file: &Path) -> String {
    let mut out = String::new();
    match &scenario.pipeline {
        PipelineRef::Path(path) => {
            let folder = file.parent().unwrap_or(Path::new(""));
            let relative = relative_to(path, folder);
            let _ = writeln!(out, "pipeline: {}", scalar(&relative.to_string_lossy()));
        }
        PipelineRef::Inline(text) => {
            out.push_str("pipeline_yaml:");
            block(&mut out, text, 2);
        }
    }
    let _ = writeln!(out, "slug: {}", scalar(&scenario.slug));
    if scenario.start != DEFAULT_SCENARIO_START {
        let _ = writeln!(out, "start: \"{}\"", scenario.start);
    }
    let defaults = Defaults::default();
    let mut written = Vec::new();
    for (name, value, default) in [
        (
            "step_duration",
            scenario.defaults.step_duration,
            defaults.step_duration,
        ),
        (
            "build_duration",
            scenario.defaults.build_duration,
            defaults.build_duration,
        ),
        (
            "mirror_duration",
            scenario.defaults.mirror_duration,
            defaults.mirror_duration,
        ),
    ] {
        if value != default {
            written.push(format!("{name}: {}", format_duration(value)));
        }
    }
    if !written.is_empty() {
        let _ = writeln!(out, "defaults: {{ {} }}", written.join(", "));
    }
    if scenario.run_until != DEFAULT_RUN_UNTIL {
        let _ = writeln!(out, "run_until: {}", format_duration(scenario.run_until));
    }
    if scenario.events.is_empty() {
        out.push_str("events: []\n");
        return out;
    }
    out.push_str("events:\n");
    let mut previous = std::time::Duration::ZERO;
    for event in &scenario.events {
        write_event(&mut out, event, previous);
        previous = event.at;
    }
    out
}

fn write_event(out: &mut String, event: &ScenarioEvent, previous: std::time::Duration) {
    let mut prefix = "  - ";
    if event.at != previous {
        let _ = writeln!(out, "{prefix}at: {}", format_duration(event.at));
        prefix = "    ";
    }
    out.push_str(prefix);
    out.push_str(event.action.key());
    let fields = fields(&event.action);
    if let Action::Push(push) = &event.action
        && let Some(yaml) = &push.pipeline_yaml
    {
        // A definition is a block below the other fields.
        out.push_str(":\n");
        for (name, value) in &fields {
            let _ = writeln!(out, "      {name}: {value}");
        }
        out.push_str("      pipeline_yaml:");
        block(out, yaml, 8);
        return;
    }
    match &event.action {
        Action::ReleasePatch => out.push_str(": {}\n"),
        _ => {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(out, ": {{ {} }}", inner.join(", "));
        }
    }
}

/// The fields of an action, in the format's order, each value written as YAML (flow style).
fn fields(action: &Action) -> Vec<(&'static str, String)> {
    let mut f: Vec<(&'static str, String)> = Vec::new();
    match action {
        Action::Push(push) => {
            f.push(("commit", scalar(&push.commit)));
            if let Some(branch) = &push.branch {
                f.push(("branch", scalar(branch)));
            }
            if !push.changed.is_empty() {
                f.push(("changed", list(&push.changed)));
            }
            if let Some(delivery) = &push.delivery {
                f.push(("delivery", scalar(delivery)));
            }
            if push.deleted {
                f.push(("deleted", "true".to_owned()));
            }
        }
        Action::Outcome(o) => {
            f.push(("commit", scalar(&o.commit)));
            if let Some(stage) = &o.stage {
                f.push(("stage", scalar(stage)));
            }
            match &o.target {
                StepRef::Step(step) => f.push(("step", scalar(step))),
                StepRef::Build(artifact) => f.push(("build", scalar(artifact))),
            }
            let result = match o.result {
                ScriptedResult::Succeed => "succeed",
                ScriptedResult::Fail => "fail",
                ScriptedResult::Hang => "hang",
                ScriptedResult::AskApproval => "ask_approval",
            };
            f.push(("result", result.to_owned()));
            if let Some(duration) = o.duration {
                f.push(("duration", format_duration(duration)));
            }
            if o.attempt != 1 {
                f.push(("attempt", o.attempt.to_string()));
            }
            if !o.outputs.is_empty() {
                // JSON is YAML's flow style.
                f.push((
                    "outputs",
                    serde_json::Value::Object(o.outputs.clone()).to_string(),
                ));
            }
            if let Some(plan) = o.plan {
                f.push((
                    "plan",
                    format!(
                        "{{ create: {}, update: {}, delete: {} }}",
                        plan.create, plan.update, plan.delete
                    ),
                ));
            }
        }
        Action::Approve(a) | Action::Reject(a) => {
            f.push(("commit", scalar(&a.commit)));
            f.push(("stage", scalar(&a.stage)));
            f.push(("step", scalar(&a.step)));
            if a.actor != DEFAULT_ACTOR {
                f.push(("actor", scalar(&a.actor)));
            }
            if let Some(comment) = &a.comment {
                f.push(("comment", scalar(comment)));
            }
        }
        Action::Retry { commit, stage } | Action::Cancel { commit, stage } => {
            f.push(("commit", scalar(commit)));
            f.push(("stage", scalar(stage)));
        }
        Action::Rollback { stage, to } | Action::RollForward { stage, to } => {
            f.push(("stage", scalar(stage)));
            f.push(("to", scalar(to)));
        }
        Action::StopPromotions { stage }
        | Action::ResumePromotions { stage }
        | Action::Unblock { stage } => f.push(("stage", scalar(stage))),
        Action::Bypass { stage, commit } => {
            f.push(("stage", scalar(stage)));
            f.push(("commit", scalar(commit)));
        }
        Action::Alarm { stage, state } => {
            f.push(("stage", scalar(stage)));
            let state = match state {
                AlarmState::Alarm => "ALARM",
                AlarmState::Ok => "OK",
            };
            f.push(("state", state.to_owned()));
        }
        Action::Patch { commit, changed } => {
            f.push(("commit", scalar(commit)));
            if !changed.is_empty() {
                f.push(("changed", list(changed)));
            }
        }
        Action::ReleasePatch => {}
        Action::ApprovePipeline { commit } | Action::RejectPipeline { commit } => {
            f.push(("commit", scalar(commit)));
        }
        Action::StoreFault { op, times } => {
            let op = match op {
                StoreOp::Append => "append",
                StoreOp::Read => "read",
            };
            f.push(("op", op.to_owned()));
            if *times != 1 {
                f.push(("times", times.to_string()));
            }
        }
        Action::Restart { down } => {
            if !down.is_zero() {
                f.push(("down", format_duration(*down)));
            }
        }
    }
    f
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| scalar(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A string as a YAML scalar: plain when that reads back as the same string, else
/// double-quoted (JSON's escapes are YAML's).
fn scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '_' | '.'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        text.to_owned()
    } else {
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

/// Writes `text` after a key: as a literal block indented by `indent` when that keeps every
/// character, else as a double-quoted scalar on the key's line.
fn block(out: &mut String, text: &str, indent: usize) {
    let literal = !text.is_empty()
        && text
            .chars()
            .all(|c| c == '\n' || (!c.is_control() && c != '\u{feff}'))
        // A line of spaces only would be read as an empty line.
        && text.split('\n').all(|l| l.is_empty() || !l.trim().is_empty())
        && text.split('\n').all(|l| l == l.trim_end() || !l.ends_with('\t'));
    if !literal {
        let _ = writeln!(out, " {}", serde_json::Value::String(text.to_owned()));
        return;
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    // An indentation indicator when the first line starts with a space (or the text with
    // empty lines), so that the block's indentation is not guessed from it.
    let indicator = if body.starts_with(' ') || body.starts_with('\n') {
        indent.to_string()
    } else {
        String::new()
    };
    let _ = writeln!(out, " |{indicator}{chomp}");
    let pad = " ".repeat(indent);
    for line in text.split('\n').take(body.split('\n').count()) {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

/// `path` relative to `folder`, lexically (the file system is not touched): the path as
/// given when it is absolute and `folder` is not, or when it cannot be expressed otherwise.
fn relative_to(path: &Path, folder: &Path) -> PathBuf {
    if folder.as_os_str().is_empty() {
        return path.to_path_buf();
    }
    if let Ok(rest) = path.strip_prefix(folder) {
        return rest.to_path_buf();
    }
    if path.is_absolute() != folder.is_absolute() {
        return path.to_path_buf();
    }
    let ours: Vec<Component<'_>> = path.components().collect();
    let theirs: Vec<Component<'_>> = folder.components().collect();
    let common = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
    if theirs[common..]
        .iter()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return path.to_path_buf();
    }
    let mut relative = PathBuf::new();
    for _ in common..theirs.len() {
        relative.push("..");
    }
    for component in &ours[common..] {
        relative.push(component);
    }
    relative
}

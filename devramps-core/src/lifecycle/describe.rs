//! [`describe`]: a record as one line for people (live views, examples, chat messages).

use super::record::{Event, Record};
use super::types::StageState;

/// One line per record, for people (`None` for records people need not see).
///
/// The line names the revision and stage first (`r3 prod       SUCCEEDED`), steps indented
/// under their stage, and reasons after a colon; it carries no time (callers add theirs).
pub fn describe(record: &Record) -> Option<String> {
    let line = match &record.event {
        Event::DeploymentAccepted {
            revision, commit, ..
        } => format!("r{revision} accepted ({})", short(commit)),
        Event::PushIgnored {
            commit,
            reason,
            git_ref: Some(git_ref),
            ..
        } if commit.is_empty() => format!("push of {git_ref} ignored: {reason}"),
        Event::PushIgnored {
            commit,
            reason,
            git_ref: Some(git_ref),
            ..
        } => format!("push of {git_ref} ({}) ignored: {reason}", short(commit)),
        Event::PushIgnored { commit, reason, .. } => {
            format!("push of {} ignored: {reason}", short(commit))
        }
        Event::SynthesisFailed {
            revision,
            diagnostics,
        } => format!("r{revision} synthesis failed: {}", diagnostics.join("; ")),
        Event::StageState {
            revision,
            stage,
            state,
            waiting_for,
            superseded_by,
            reason,
            ..
        } => {
            let mut s = format!("r{revision} {stage:<10} {}", state.as_str());
            if let Some(w) = waiting_for {
                s.push_str(&format!(" (waiting for {})", w.as_str()));
            }
            if let Some(by) = superseded_by {
                s.push_str(&format!(" (superseded by r{by})"));
            }
            if let Some(r) = reason.as_ref().filter(|_| *state != StageState::Succeeded) {
                s.push_str(&format!(": {r}"));
            }
            s
        }
        Event::BuildStarted {
            revision,
            artifact,
            stage,
        } => format!(
            "r{revision} build {artifact}{} started",
            stage
                .as_ref()
                .map(|s| format!(" for {s}"))
                .unwrap_or_default()
        ),
        Event::BuildFinished {
            revision,
            artifact,
            succeeded,
            reason,
            ..
        } => format!(
            "r{revision} build {artifact} {}{}",
            if *succeeded { "succeeded" } else { "FAILED" },
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::BuildReused {
            revision,
            artifact,
            commit,
        } => format!("r{revision} reuses {artifact} built at {}", short(commit)),
        Event::PhaseStarted {
            revision,
            stage,
            phase,
            skipped,
        } if !skipped => format!("r{revision} {stage:<10} {}", phase.as_str()),
        Event::StepState {
            revision,
            stage,
            step,
            state,
            reason,
            ..
        } => {
            let mut s = format!("r{revision} {stage:<10}   {step} {}", state.as_str());
            if let Some(r) = reason {
                s.push_str(&format!(": {r}"));
            }
            s
        }
        Event::StepPolling {
            revision,
            stage,
            step,
            polling,
        } => format!(
            "r{revision} {stage:<10}   {step} polling ({} poll{} so far)",
            polling.polls,
            if polling.polls == 1 { "" } else { "s" }
        ),
        Event::ApprovalRequired {
            revision,
            stage,
            step,
            reason,
        } => format!(
            "r{revision} {stage:<10}   {step} waits for approval{}",
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::Approved {
            revision,
            stage,
            step,
            ..
        } => format!(
            "r{revision} {stage:<10}   {step} approved by {}",
            record.actor
        ),
        Event::Rejected {
            revision,
            stage,
            step,
            ..
        } => format!(
            "r{revision} {stage:<10}   {step} rejected by {}",
            record.actor
        ),
        Event::Refused {
            operation,
            rule,
            reason,
        } => format!("{operation} refused ({rule}): {reason}"),
        _ => return None,
    };
    Some(line)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

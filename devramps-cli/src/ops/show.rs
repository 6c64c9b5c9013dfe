//! `devramps status` and `devramps logs`: what the store holds, for people and tools.

use devramps_core::lifecycle::{PipelineState, StageState, StepState};
use serde::Serialize;

use super::{Approval, LogsArgs, Session, StatusArgs, approvals};
use crate::output::{Format, Status, emit, usage_error};

/// Runs `devramps status`.
pub(crate) fn status(args: &StatusArgs) -> Status {
    let shown = Session::open(&args.at).and_then(|session| {
        let state = session.state()?;
        let records = session
            .runtime
            .block_on(session.engine.history(&session.slug))
            .map_err(|e| format!("cannot read the log: {e}"))?;
        let _ = session.runtime.block_on(session.engine.stop());
        Ok((session.slug, state, records))
    });
    let (slug, state, records) = match shown {
        Ok(shown) => shown,
        Err(message) => {
            usage_error(&message);
            return Status::Usage;
        }
    };
    let end = records.last().map(|r| r.at).unwrap_or_default();
    let report = devramps_sim::log_report(&slug, &state, &records, end);
    let text = match args.format {
        Format::Json => {
            #[derive(Serialize)]
            struct Json<'a> {
                slug: &'a str,
                stages: &'a devramps_sim::StageMap<devramps_sim::StageSummary>,
                deployments: &'a [devramps_sim::DeploymentReport],
                approvals: Vec<Approval>,
            }
            let json = Json {
                slug: &slug,
                stages: &report.stages,
                deployments: &report.deployments,
                approvals: approvals(&state),
            };
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
        }
        Format::Text => status_text(&slug, &state, &report),
    };
    emit(&text, Status::Success)
}

fn status_text(slug: &str, state: &PipelineState, report: &devramps_sim::Report) -> String {
    use std::fmt::Write as _;
    let mut out = format!("pipeline {slug}\n");
    for (name, summary) in report.stages.iter() {
        let current = match (summary.current_revision, &summary.current_commit) {
            (Some(r), Some(c)) => format!("r{r} ({})", c.get(..12).unwrap_or(c)),
            _ => "nothing deployed".to_owned(),
        };
        let _ = writeln!(out, "\n{name}: {current}");
        if !summary.blockers.is_empty() {
            let _ = writeln!(out, "  blockers: {}", summary.blockers.join(", "));
        }
        for d in state.deployments.values() {
            let Some(run) = d.stage(name) else { continue };
            let plan = d.plan();
            let steps: Vec<String> = plan
                .and_then(|p| p.stages.iter().find(|s| s.name == *name))
                .map(|s| {
                    s.steps
                        .iter()
                        .zip(&run.steps)
                        .filter(|(_, r)| {
                            matches!(r.state, StepState::Running | StepState::WaitingApproval)
                        })
                        .map(|(p, r)| format!("{} {}", p.key(), r.state.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            if run.state.holds_lock() {
                let _ = writeln!(
                    out,
                    "  in progress: r{} {} {}",
                    d.revision,
                    run.state.as_str(),
                    steps.join(", ")
                );
            } else if run.state == StageState::NotStarted
                && !run.state.is_terminal(run.waiting_for)
                && d.stages.iter().any(|r| r.state != StageState::NotStarted)
            {
                let waiting = run.waiting_for.map_or("PREVIOUS_STAGE", |w| w.as_str());
                let _ = writeln!(out, "  queued: r{} (waiting for {waiting})", d.revision);
            }
        }
    }
    let waiting = approvals(state);
    if !waiting.is_empty() {
        let _ = writeln!(out, "\nwaiting for a person:");
        for a in waiting {
            let _ = writeln!(
                out,
                "  r{} {} {}: devramps approve --stage {} --step {} --revision {}",
                a.revision, a.stage, a.step, a.stage, a.step, a.revision
            );
        }
    }
    out
}

/// Runs `devramps logs`: the log lines of one step execution.
pub(crate) fn logs(args: &LogsArgs) -> Status {
    let result = Session::open(&args.at).and_then(|session| {
        let state = session.state()?;
        if let Some(artifact) = args.step.strip_prefix("build:") {
            let key = devramps_sim::build_execution(
                &session.slug,
                &state,
                &args.stage,
                artifact.trim(),
                args.revision,
            )
            .ok_or_else(|| {
                format!(
                    "no build of artifact `{}` by stage `{}`",
                    artifact.trim(),
                    args.stage
                )
            })?;
            let lines = session
                .runtime
                .block_on(session.engine.build_logs(&key))
                .map_err(|e| format!("cannot read the logs of {key}: {e}"))?;
            let _ = session.runtime.block_on(session.engine.stop());
            return Ok(lines);
        }
        let found = devramps_sim::step_execution(
            &session.slug,
            &state,
            &args.stage,
            &args.step,
            args.revision,
        );
        let Some((key, step_type)) = found else {
            return Err(format!(
                "no run of step `{}` in stage `{}`{}",
                args.step,
                args.stage,
                args.revision
                    .map(|r| format!(" for revision {r}"))
                    .unwrap_or_default()
            ));
        };
        let lines = session
            .runtime
            .block_on(session.engine.step_logs(&step_type, &key))
            .map_err(|e| format!("cannot read the logs of {key}: {e}"))?;
        let _ = session.runtime.block_on(session.engine.stop());
        Ok(lines)
    });
    match result {
        Ok(lines) => {
            let text: String = lines
                .iter()
                .map(|l| {
                    format!(
                        "{} {:<5} {}\n",
                        l.timestamp.as_deref().unwrap_or("-"),
                        l.level,
                        l.message
                    )
                })
                .collect();
            emit(&text, Status::Success)
        }
        Err(message) => {
            usage_error(&message);
            Status::Usage
        }
    }
}

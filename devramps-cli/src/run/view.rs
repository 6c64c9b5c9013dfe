//! The live view of `devramps run`: one line per change of a stage or step, the step logs as
//! they are written, and the command that answers a wait for a person.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use devramps_core::backend::{ExecutionKey, LogEntry, Unit};
use devramps_core::engine::Engine;
use devramps_core::lifecycle::{Event, PipelineState, Record, StageState, StepState, describe};

use super::Target;
use crate::output::Format;

/// What the view has shown so far.
pub(super) struct View {
    /// Where lines go: stdout for text, stderr when stdout holds the JSON report.
    to_stderr: bool,
    slug: String,
    commit: String,
    /// The `--repo`/`--store` arguments the answering commands repeat.
    locate: String,
    /// Records shown.
    shown: usize,
    /// Log lines shown, per execution.
    logs: BTreeMap<ExecutionKey, usize>,
    /// Waits for a person already explained.
    hinted: BTreeSet<(String, String)>,
}

impl View {
    pub(super) fn new(
        format: Format,
        target: &Target,
        store: &Option<String>,
        repo: &Path,
    ) -> Self {
        let mut locate = String::new();
        if repo != Path::new(".") {
            locate.push_str(&format!(" --repo {}", repo.display()));
        }
        locate.push_str(&format!(" --pipeline {}", target.slug));
        if let Some(store) = store {
            locate.push_str(&format!(" --store {store}"));
        }
        View {
            to_stderr: format == Format::Json,
            slug: target.slug.clone(),
            commit: target.commit.clone(),
            locate,
            shown: 0,
            logs: BTreeMap::new(),
            hinted: BTreeSet::new(),
        }
    }

    fn line(&self, text: &str) {
        // The view is best effort: a closed terminal must not stop the deployment.
        if self.to_stderr {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    pub(super) fn started(&self, revision: u64) {
        self.line(&format!(
            "devramps run: pipeline `{}`, commit {}, revision {revision}",
            self.slug,
            short(&self.commit)
        ));
    }

    /// Shows the records after those shown, the new log lines of running steps, and how to
    /// answer waits for a person.
    pub(super) async fn update(
        &mut self,
        engine: &Engine,
        records: &[Record],
        state: &PipelineState,
        revision: u64,
    ) {
        for record in records.iter().skip(self.shown) {
            if let Some(line) = describe(record) {
                let zone = jiff::tz::TimeZone::system();
                let time = zone.to_datetime(record.at).strftime("%H:%M:%S");
                self.line(&format!("{time}  {line}"));
            }
            if let Event::ApprovalRequired {
                revision: r,
                stage,
                step,
                ..
            } = &record.event
                && self.hinted.insert((stage.clone(), step.clone()))
            {
                self.line(&format!(
                    "    waiting for a person: devramps approve{} --stage {stage} --step {step} \
                     --revision {r}   (or `devramps reject ...`)",
                    self.locate
                ));
            }
        }
        self.shown = self.shown.max(records.len());
        self.step_logs(engine, state, revision).await;
    }

    async fn step_logs(&mut self, engine: &Engine, state: &PipelineState, revision: u64) {
        let Some(d) = state.deployments.get(&revision) else {
            return;
        };
        let Some(plan) = d.plan() else {
            return;
        };
        for run in &d.stages {
            let Some(stage) = plan.stages.iter().find(|s| s.name == run.name) else {
                continue;
            };
            for artifact in run.builds.keys() {
                let unit = Unit::build(artifact);
                let key = ExecutionKey::new(&self.slug, revision, &run.name, run.attempt, unit);
                let Ok(lines) = engine.build_logs(&key).await else {
                    continue;
                };
                let label = format!("build:{artifact}");
                self.show_new_lines(key, &run.name, &label, &lines);
            }
            for (step, step_run) in stage.steps.iter().zip(&run.steps) {
                if step_run.state == StepState::Pending || step_run.state == StepState::Skipped {
                    continue;
                }
                let key = ExecutionKey::new(
                    &self.slug,
                    revision,
                    &run.name,
                    run.attempt,
                    Unit::step(step.key()),
                );
                let Ok(lines) = engine.step_logs(&step.step_type, &key).await else {
                    continue;
                };
                self.show_new_lines(key, &run.name, step.key(), &lines);
            }
        }
    }

    /// Shows the lines of execution `key` (of `what` in `stage`) not shown yet.
    fn show_new_lines(&mut self, key: ExecutionKey, stage: &str, what: &str, lines: &[LogEntry]) {
        let seen = self.logs.entry(key).or_default();
        let new: Vec<String> = lines
            .iter()
            .skip(*seen)
            .map(|l| format!("    {stage} {what:<8} | {:<5} {}", l.level, l.message))
            .collect();
        *seen = lines.len();
        for line in new {
            self.line(&line);
        }
    }

    /// The closing lines.
    pub(super) fn finished(&self, state: &PipelineState, revision: u64, interrupted: bool) {
        if interrupted {
            self.line(&format!(
                "stopped waiting; revision {revision} goes on when `devramps run` runs again \
                 (step processes keep running)"
            ));
            return;
        }
        let Some(d) = state.deployments.get(&revision) else {
            return;
        };
        if !d.synthesis_errors.is_empty() {
            self.line(&format!("revision {revision}: synthesis failed"));
            return;
        }
        let stages: Vec<String> = d
            .stages
            .iter()
            .map(|run| match run.state {
                StageState::NotStarted => format!("{} NOT_STARTED", run.name),
                other => format!("{} {}", run.name, other.as_str()),
            })
            .collect();
        self.line(&format!("revision {revision}: {}", stages.join(", ")));
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

//! `devramps simulate --random N [--seed S] [--out DIR] PIPELINE.yaml`: random histories of a
//! pipeline through the simulator, every lifecycle invariant checked after every event; the
//! first failure is shrunk and written as a scenario file.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use devramps_sim::random::{
    Histories, HistoryConfig, Property, RandomOutcome, Violation, run_random, write_scenario,
};
use devramps_sim::{PipelineRef, Report, Scenario};

use crate::output::{Status, emit};

/// The environment variable that adds a deliberately broken property, for the tests of this
/// command only: `at-most-one-deployment` (broken by any history that deploys twice).
pub(crate) const BROKEN_PROPERTY_ENV: &str = "DEVRAMPS_TEST_BROKEN_PROPERTY";

/// Runs `count` random histories of the pipeline at `pipeline`.
pub(crate) fn run(pipeline: &Path, count: u32, seed: u64, out: &Path) -> Status {
    let text = match std::fs::read_to_string(pipeline) {
        Ok(text) => text,
        Err(e) => return usage(&format!("error: cannot read {}: {e}", pipeline.display())),
    };
    let histories = match Histories::new(&text, HistoryConfig::default()) {
        Ok(histories) => histories,
        Err(errors) => {
            let mut stderr = io::stderr().lock();
            for error in errors {
                let _ = writeln!(stderr, "{}:{error}", pipeline.display());
            }
            return Status::Usage;
        }
    };
    let broken = std::env::var(BROKEN_PROPERTY_ENV).ok();
    let at_most_one = |_: &Scenario, report: &Report| -> Vec<Violation> {
        match report.deployments.get(1) {
            Some(second) => vec![Violation::new(
                "at-most-one-deployment",
                None,
                format!("revision {} was accepted (test property)", second.revision),
            )],
            None => Vec::new(),
        }
    };
    let mut properties: Vec<&dyn Property> = Vec::new();
    if broken.as_deref() == Some("at-most-one-deployment") {
        properties.push(&at_most_one);
    }
    let terminal = io::stderr().is_terminal();
    let mut progress = |passed: u32| {
        if terminal && (passed.is_multiple_of(50) || passed == count) {
            let _ = write!(io::stderr().lock(), "\r{passed}/{count} histories");
        }
    };
    let outcome = run_random(&histories, &text, count, seed, &properties, &mut progress);
    if terminal {
        let _ = writeln!(io::stderr().lock());
    }
    match outcome {
        RandomOutcome::Passed(coverage) => {
            let summary = format!("seed {seed}: {}", coverage.summary());
            emit(&summary, Status::Success)
        }
        RandomOutcome::Failed(failure) => {
            write_failure(pipeline, seed, out, failure.scenario, &failure.violations)
        }
    }
}

/// Writes the shrunk history into `out` and prints it; exit 1.
fn write_failure(
    pipeline: &Path,
    seed: u64,
    out: &Path,
    mut scenario: Scenario,
    violations: &[Violation],
) -> Status {
    if let Err(e) = std::fs::create_dir_all(out) {
        return usage(&format!("error: cannot create {}: {e}", out.display()));
    }
    let rule = violations.first().map_or("?", |v| v.rule.as_str());
    let file = out.join(format!("random-seed{seed}-{}.yaml", file_word(rule)));
    // Absolute paths, so that the pipeline's path can be written relative to the file.
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let file_abs = absolute(out).join(file.file_name().unwrap_or_default());
    scenario.pipeline = PipelineRef::Path(absolute(pipeline));
    let mut text = format!(
        "# devramps simulate --random (seed {seed}): a shrunk history that breaks {rule}\n"
    );
    for violation in violations {
        text.push_str(&format!("# {violation}\n"));
    }
    text.push_str(&format!("# re-run: devramps simulate {}\n", file.display()));
    text.push_str(&write_scenario(&scenario, &file_abs));
    if let Err(e) = std::fs::write(&file, &text) {
        return usage(&format!("error: cannot write {}: {e}", file.display()));
    }
    let printed = format!("{text}# written to {}\n", file.display());
    emit(&printed, Status::Invalid)
}

/// A rule id or property name as a word of a file name.
fn file_word(rule: &str) -> String {
    rule.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn usage(message: &str) -> Status {
    // Ignore failures: stderr is the last resort.
    let _ = writeln!(io::stderr().lock(), "{message}");
    Status::Usage
}

/// The default `--out`.
pub(crate) fn default_out() -> PathBuf {
    PathBuf::from(".")
}

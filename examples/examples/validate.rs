//! Discover and validate every pipeline of a repository with the library, as an embedding
//! platform would before accepting a push.
//!
//! ```text
//! cargo run -p devramps-examples --example validate -- [REPO]
//! ```
//!
//! `REPO` defaults to the sample repository in `examples/repo`.

use std::path::{Path, PathBuf};

use devramps_core::pipeline::{self, Severity};

/// One pipeline's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// The pipeline's slug.
    pub slug: String,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Stage names, in promotion order (empty when invalid).
    pub stages: Vec<String>,
}

/// Validates every pipeline under `repo/.devramps/` and prints a line per pipeline.
pub fn run(repo: &Path) -> std::io::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for found in pipeline::discover(repo)? {
        let text = std::fs::read_to_string(&found.path)?;
        let checked = devramps_core::plan::check(&text);
        for d in &checked.diagnostics {
            println!("{}:{d}", found.path.display());
        }
        let count = |s| {
            checked
                .diagnostics
                .iter()
                .filter(|d| d.severity == s)
                .count()
        };
        let stages: Vec<String> = checked
            .definition
            .iter()
            .flat_map(|def| def.stages.iter().map(|s| s.name.value.clone()))
            .collect();
        let outcome = Outcome {
            slug: found.slug,
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            stages,
        };
        match &checked.definition {
            Some(def) => println!(
                "{:<6} valid: {} stage(s) [{}], {} step(s), {} artifact(s), tracks `{}`",
                outcome.slug,
                def.stages.len(),
                outcome.stages.join(" -> "),
                def.steps.len(),
                def.artifacts.len(),
                def.tracked_branch()
            ),
            None => println!("{:<6} invalid: {} error(s)", outcome.slug, outcome.errors),
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let repo = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("repo"));
    let outcomes = run(&repo)?;
    if outcomes.iter().any(|o| o.errors > 0) {
        std::process::exit(1);
    }
    Ok(())
}

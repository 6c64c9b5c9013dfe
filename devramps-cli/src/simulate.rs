//! `devramps simulate`: runs a scenario through the real engine on in-memory backends (the
//! event log and the leases where `--store` says) and prints its report
//! (`shared/spec/scenario-format.md`).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use devramps_sim::{SimulateError, render_text, simulate_file_with, to_json};

use crate::output::{Format, Status, emit};
use crate::store_url::{self, StoreUrl};

/// The long description of `devramps simulate` (`--help`).
pub(crate) const LONG_ABOUT: &str = "Run a scenario through the deployment engine and report \
        what happened.\n\n\
        A scenario names a pipeline (`pipeline:` a file relative to the scenario, or \
        `pipeline_yaml:` inline), a virtual clock start, default durations and a list of \
        events (pushes, scripted step outcomes, approvals, retries, cancels). It runs on \
        in-memory backends and a virtual clock, so a run of days takes milliseconds, and the \
        same scenario always gives the same report, byte for byte.\n\n\
        `--format json` (the default when stdout is not a terminal) prints `{end, deployments, \
        builds, stages, events, violations}`; `--format text` (the default on a terminal) a \
        readable timeline.\n\n\
        `--store` puts the event log and the leases in memory (`memory:`, the default) or in a \
        local store file (`sqlite:PATH`, which must hold no events yet: a simulation starts \
        from an empty log); the report is the same either way.\n\n\
        Exit codes: 0 the scenario ran (whatever the deployments did); 2 the scenario or its \
        pipeline is invalid or unreadable: each problem goes to stderr as \
        `path:line:column: error: message`, and nothing is printed on stdout; 2 too when the \
        store cannot be opened or already holds events.\n\n\
        `--random N PIPELINE.yaml` runs N random histories of the pipeline (pushes, step \
        outcomes, people's operations, alarms, clock jumps across windows and daylight-saving \
        changes, store faults, restarts) and checks the lifecycle rules after every event. \
        On the first violation the history is shrunk to a minimal one, written to `--out` \
        (default `.`) as a scenario file with the broken rule in a comment, and printed: exit \
        1. Otherwise a summary of what the histories reached is printed: exit 0. The same \
        `--seed` (default 0) gives the same output, byte for byte; a count of the histories \
        run shows on stderr when it is a terminal. Exit 2 when the pipeline is invalid.";

/// The examples shown after the help of `devramps simulate`.
pub(crate) const AFTER_HELP: &str = "Examples:\n  \
        devramps simulate sims/weekend-push.yaml                 # timeline on a terminal\n  \
        devramps simulate sims/weekend-push.yaml --format json | jq '.deployments'\n  \
        devramps simulate --random 1000 --seed 7 --out failures .devramps/api/pipeline.yaml";

/// Arguments of `devramps simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The scenario file (with `--random`: the pipeline file).
    #[arg(value_name = "SCENARIO")]
    pub(crate) scenario: PathBuf,

    /// Run N random histories of the pipeline given instead of a scenario, checking every
    /// lifecycle invariant after every event; the first failure is shrunk and written to
    /// `--out` as a scenario file (exit 1).
    #[arg(long, value_name = "N", conflicts_with_all = ["format", "store"])]
    pub(crate) random: Option<u32>,

    /// With `--random`: the seed of the histories (default 0); the same seed gives the same
    /// output.
    #[arg(long, value_name = "S", requires = "random")]
    pub(crate) seed: Option<u64>,

    /// With `--random`: where to write a failing history (default `.`; created if missing).
    #[arg(long, value_name = "DIR", requires = "random")]
    pub(crate) out: Option<PathBuf>,

    /// Report format: `text` (a timeline, the default when stdout is a terminal) or `json`
    /// (the report, a stable interface; the default otherwise).
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,

    /// Where the event log and the leases live: `memory:` (the default) or `sqlite:PATH` (a
    /// local store file holding no events yet).
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
}

/// Runs `devramps simulate`.
pub(crate) fn run(args: &SimulateArgs) -> Status {
    if let Some(count) = args.random {
        let out = args
            .out
            .clone()
            .unwrap_or_else(crate::simulate_random::default_out);
        return crate::simulate_random::run(&args.scenario, count, args.seed.unwrap_or(0), &out);
    }
    let url = match args.store.as_deref() {
        None => StoreUrl::Memory,
        // The state directory only names the default store, which is not simulate's.
        Some(url) => match store_url::parse(Some(url), Path::new(".")) {
            Ok(url) => url,
            Err(e) => return usage(&format!("error: --store: {e}")),
        },
    };
    let (store, lock) = match store_url::open(&url) {
        Ok(opened) => opened,
        Err(e) => return usage(&format!("error: --store {}: {e}", store_name(args))),
    };
    let report = match simulate_file_with(&args.scenario, store, lock) {
        Ok(report) => report,
        Err(SimulateError::Scenario(errors)) => {
            let mut stderr = io::stderr().lock();
            for error in &errors {
                // Ignore failures: stderr is the last resort.
                let _ = writeln!(stderr, "{error}");
            }
            return Status::Usage;
        }
        Err(SimulateError::Store(e)) => {
            return usage(&format!(
                "error: --store {}: {e}\n  help: give a new file (sqlite:) or prefix (s3://), or `--store memory:`",
                store_name(args)
            ));
        }
    };
    let format = args.format.unwrap_or(if io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    let text = match format {
        Format::Text => render_text(&report),
        Format::Json => to_json(&report),
    };
    emit(&text, Status::Success)
}

/// The `--store` as given (`memory:` when not).
fn store_name(args: &SimulateArgs) -> &str {
    args.store.as_deref().unwrap_or("memory:")
}

/// Prints `message` to stderr; exit code 2.
fn usage(message: &str) -> Status {
    // Ignore failures: stderr is the last resort.
    let _ = writeln!(io::stderr().lock(), "{message}");
    Status::Usage
}

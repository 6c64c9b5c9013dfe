//! The `devramps` command line: a thin shell over [`devramps_core`].
//!
//! Everything the binary does, an embedding program can do with the crates; this crate only
//! parses arguments, reads files and prints reports. The commands follow the CLI contract
//! (`shared/spec/cli.md`):
//!
//! - `devramps validate [PATH ...] [--format text|json]` checks pipeline definitions
//!   ([`validate`]);
//! - `devramps plan [--repo DIR] [--pipeline SLUG] [--commit REV] [--base REV] [--changed PATH
//!   ...] ...` synthesizes the deployment plan of a pipeline at a commit of a git repository
//!   ([`plan`]), read through [`devramps_git::GitRepository`];
//! - `devramps simulate SCENARIO [--format json|text]` runs a scenario through the engine on
//!   in-memory backends and a virtual clock and reports what happened ([`simulate`]);
//!   `devramps simulate --random N PIPELINE` runs random histories of a pipeline and checks
//!   the lifecycle rules ([`simulate_random`]);
//! - `devramps schema` prints the JSON Schema of `pipeline.yaml` ([`schema`]);
//! - `devramps serve` runs the engine behind the HTTP API of `devramps-serve`, and
//!   `devramps token new` makes its tokens ([`serve`]).
//!
//! Exit codes: 0 success, 1 the input was checked and found wrong, 2 usage error or unreadable
//! input. Reports go to stdout, errors about the invocation to stderr.
#![forbid(unsafe_code)]

mod custom_params;
mod github;
mod local;
mod ops;
mod output;
mod plan;
mod plan_definition;
mod plan_text;
mod render;
mod report;
mod run;
mod schema;
mod serve;
mod simulate;
mod simulate_random;
mod store_url;
mod targets;
mod validate;

use std::process::ExitCode;

/// mimalloc: the engine allocates many small, short-lived values (records, states, reports);
/// the system allocator spent a third of `simulate --random` in malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// The `devramps` command line.
#[derive(Debug, Parser)]
#[command(
    name = "devramps",
    version,
    about = "Check and inspect devramps deployment pipelines",
    long_about = "Check and inspect devramps deployment pipelines (`.devramps/<slug>/pipeline.yaml`).\n\n\
                  Exit codes: 0 success, 1 the input was checked and found wrong (an invalid \
                  pipeline), 2 usage error or unreadable input. Reports go to stdout, errors \
                  about the invocation to stderr.",
    after_help = "Examples:\n  \
                  devramps validate                      # every pipeline under ./.devramps/\n  \
                  devramps validate .devramps/api/pipeline.yaml --format json\n  \
                  devramps plan --pipeline api --commit HEAD --format json\n  \
                  devramps simulate sims/weekend-push.yaml --format json\n  \
                  devramps schema > pipeline.schema.json"
)]
struct Cli {
    /// The command to run.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check pipeline definitions without running anything.
    #[command(long_about = validate::LONG_ABOUT, after_help = validate::AFTER_HELP)]
    Validate(validate::ValidateArgs),
    /// Show the deployment plan of a pipeline at a commit, without running it.
    #[command(long_about = plan::LONG_ABOUT, after_help = plan::AFTER_HELP)]
    Plan(plan::PlanArgs),
    /// Run a scenario through the deployment engine on a virtual clock and report.
    #[command(long_about = simulate::LONG_ABOUT, after_help = simulate::AFTER_HELP)]
    Simulate(simulate::SimulateArgs),
    /// Print the JSON Schema of pipeline.yaml.
    #[command(long_about = schema::LONG_ABOUT, after_help = schema::AFTER_HELP)]
    Schema(schema::SchemaArgs),
    /// Deploy a commit of a local git repository for real, on this machine.
    #[command(long_about = run::LONG_ABOUT, after_help = run::AFTER_HELP)]
    Run(run::RunArgs),
    /// Show a pipeline's stages: what runs, what is queued, what blocks, what waits.
    Status(ops::StatusArgs),
    /// Print the log lines of a step's execution.
    Logs(ops::LogsArgs),
    /// Run the engine with its HTTP front door: webhooks, the operations API, metrics.
    #[command(long_about = serve::LONG_ABOUT, after_help = serve::AFTER_HELP)]
    Serve(serve::ServeArgs),
    /// Tokens of the API of `devramps serve`.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// An operation on a stage, recorded with its actor and reason.
    #[command(flatten)]
    Operation(ops::Operation),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match &cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Run(args) => run::run(args),
        Command::Status(args) => ops::status(args),
        Command::Logs(args) => ops::logs(args),
        Command::Serve(args) => serve::run(args),
        Command::Token(command) => serve::token(command),
        Command::Operation(op) => ops::operate(op),
    };
    status.into()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

//! What every command shares: the exit status, the output format, writing to stdout, colours.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::ValueEnum;

/// How a command ended, as its exit code (`shared/spec/cli.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    /// Exit code 0: success (for `validate`, every pipeline is valid; warnings allowed).
    Success,
    /// Exit code 1: the input was checked and found wrong.
    Invalid,
    /// Exit code 2: usage error or unreadable input.
    Usage,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        match status {
            Status::Success => ExitCode::SUCCESS,
            Status::Invalid => ExitCode::from(1),
            Status::Usage => ExitCode::from(2),
        }
    }
}

/// The format of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: readable text (problems with their source line), not meant to be parsed.
    #[default]
    Text,
    /// For tools: one JSON document, a stable interface.
    Json,
}

/// Whether text output may use ANSI colours: only when stdout is a terminal and `NO_COLOR` is
/// unset or empty (<https://no-color.org>).
pub(crate) fn use_color() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes a finished report to stdout and returns `status`.
///
/// A closed pipe (`devramps validate | head`) is not an error: the reader has what it wanted.
/// Any other write failure is reported on stderr and ends with [`Status::Usage`].
pub(crate) fn emit(report: &str, status: Status) -> Status {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => status,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => status,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            Status::Usage
        }
    }
}

/// Prints an error about the invocation (not a report) to stderr.
pub(crate) fn usage_error(message: &str) {
    // Ignore failures: stderr is the last resort.
    let _ = writeln!(io::stderr().lock(), "error: {message}");
}

/// Runs `command` (an async command of the binary) on a tokio runtime of two worker threads
/// and waits for it; a runtime that cannot start, or an error the command returns, is a usage
/// error (exit 2) with its message.
pub(crate) fn on_runtime<F>(command: F) -> Status
where
    F: std::future::Future<Output = Result<Status, String>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            usage_error(&format!("cannot start the runtime: {e}"));
            return Status::Usage;
        }
    };
    match runtime.block_on(command) {
        Ok(status) => status,
        Err(message) => {
            usage_error(&message);
            Status::Usage
        }
    }
}

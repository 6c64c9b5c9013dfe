//! Running one Terraform command: in a process group of its own, its output logged (redacted)
//! or captured (bounded), stopped with SIGINT (then SIGKILL after the grace period) when the
//! caller drops the future or [`cancel`](super::TerraformRunner::cancel) is called.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devramps_core::exec::LogEntry;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use super::folder::KeyDir;
use super::stop::{Guard, interrupt};
use crate::steps::process::ProcessId;

/// The most of a captured stdout (`show -json`, `output -json`) read.
pub(super) const MAX_CAPTURE_BYTES: u64 = 512 * 1024 * 1024;
/// The end of stderr kept in memory, to quote its errors.
const STDERR_TAIL_BYTES: usize = 64 * 1024;
/// A logged line longer than this is cut.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// How much of the quoted errors a failure message carries.
const MAX_QUOTE_CHARS: usize = 4000;

/// Replaces secrets and sensitive values in text: request secrets by `[REDACTED]`, the values
/// of sensitive outputs by `(sensitive)`. Kept in memory only.
#[derive(Debug, Default)]
pub(super) struct Redactor {
    values: Mutex<Vec<(String, &'static str)>>,
}

impl Redactor {
    /// Learns `values` to replace by `with`.
    pub(super) fn learn(&self, values: impl IntoIterator<Item = String>, with: &'static str) {
        let mut known = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        for v in values {
            if !v.is_empty() && !known.iter().any(|(k, _)| *k == v) {
                known.push((v, with));
            }
        }
        known.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    }

    /// `text` with every known value replaced.
    pub(super) fn redact(&self, text: &str) -> String {
        let known = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = text.to_owned();
        for (value, with) in known.iter() {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), with);
            }
        }
        text
    }
}

/// The command running for a key, if any, and whether it was cancelled.
#[derive(Debug, Default)]
pub(super) struct Running {
    /// The process group of the running command (0: none).
    pgid: AtomicI32,
    /// Set by `cancel`: the running command was interrupted, no further one starts.
    cancelled: AtomicBool,
}

impl Running {
    /// Marks the operation cancelled and interrupts its running command; returns the process
    /// group interrupted, if one ran.
    pub(super) fn cancel(&self, grace: Duration) -> Option<i32> {
        self.cancelled.store(true, Ordering::SeqCst);
        let pgid = self.pgid.load(Ordering::SeqCst);
        (pgid > 0).then(|| {
            interrupt(pgid, grace);
            pgid
        })
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Makes `pgid` (a group this runner did not start) the one a cancel interrupts.
    pub(super) fn adopt(&self, pgid: i32) {
        self.pgid.store(pgid, Ordering::SeqCst);
    }
}

/// One command to run.
#[derive(Debug)]
pub(super) struct Command<'a> {
    /// The Terraform subcommand (`plan`), for messages.
    pub(super) name: &'static str,
    /// Its arguments after the binary.
    pub(super) args: Vec<OsString>,
    /// Where it runs.
    pub(super) cwd: &'a Path,
    /// Extra environment (`TF_VAR_*`).
    pub(super) env: Vec<(String, String)>,
    /// Keep stdout in memory and out of the log (machine output that may hold sensitive
    /// values).
    pub(super) capture: bool,
}

/// What the runner's configuration gives every command.
#[derive(Debug)]
pub(super) struct Context<'a> {
    pub(super) binary: &'a Path,
    pub(super) env: &'a [(OsString, OsString)],
    pub(super) grace: Duration,
    pub(super) dir: &'a KeyDir,
    pub(super) redactor: &'a Arc<Redactor>,
    pub(super) running: &'a Arc<Running>,
}

/// Why a command failed: a message for people, already redacted.
#[derive(Debug)]
pub(super) struct Failed(pub(super) String);

/// Runs `command`; returns its stdout when captured. A non-zero exit fails with Terraform's
/// `Error:` text from stderr.
pub(super) async fn run(ctx: &Context<'_>, command: Command<'_>) -> Result<Vec<u8>, Failed> {
    let name = command.name;
    if ctx.running.is_cancelled() {
        return Err(cancelled(name));
    }
    log(
        ctx,
        "info",
        &format!("running {} {}", ctx.binary.display(), join(&command.args)),
    );
    let mut cmd = tokio::process::Command::new(ctx.binary);
    cmd.args(&command.args)
        .current_dir(command.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // Only `params.variables` feed the root's variables (they were checked against it).
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"TF_VAR_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TF_IN_AUTOMATION", "1").env("TF_INPUT", "0");
    cmd.envs(ctx.env.iter().map(|(k, v)| (k, v)));
    cmd.envs(command.env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().map_err(|e| {
        Failed(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "terraform not found: install Terraform (or OpenTofu) and put it on PATH, or set \
                 the binary (looked for `{}`)",
                ctx.binary.display()
            )
        } else {
            format!("cannot start `{}`: {e}", ctx.binary.display())
        })
    })?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let mut guard = Guard {
        pgid,
        grace: ctx.grace,
        armed: pgid > 0,
        dir: ctx.dir.clone(),
        name,
    };
    ctx.running.pgid.store(pgid, Ordering::SeqCst);
    if let Some(id) = child.id().and_then(|p| ProcessId::of(p).ok())
        && let Err(e) = id.write(&ctx.dir.pid_file())
    {
        tracing::warn!(folder = %ctx.dir.dir.display(), error = %e, "cannot record terraform's pid");
    }
    if ctx.running.is_cancelled() {
        // Cancelled between the check and the spawn.
        ctx.running.cancel(ctx.grace);
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = if command.capture {
        tokio::spawn(capture(stdout))
    } else {
        tokio::spawn(log_lines(
            stdout,
            ctx.dir.clone(),
            ctx.redactor.clone(),
            name,
            "info",
            false,
        ))
    };
    let err_task = tokio::spawn(log_lines(
        stderr,
        ctx.dir.clone(),
        ctx.redactor.clone(),
        name,
        "error",
        true,
    ));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(child.wait().await);
    });
    let status = rx.await;
    guard.armed = false;
    ctx.running.pgid.store(0, Ordering::SeqCst);
    let _ = std::fs::remove_file(ctx.dir.pid_file());
    let stdout = drain(out_task).await;
    let stderr = drain(err_task).await;
    let status = match status {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(Failed(format!("cannot wait for terraform {name}: {e}"))),
        Err(_) => return Err(Failed(format!("lost terraform {name}'s exit status"))),
    };
    if status.success() {
        return match stdout {
            Captured::Whole(bytes) => Ok(bytes),
            Captured::TooLong => Err(Failed(format!(
                "terraform {name} wrote more than {MAX_CAPTURE_BYTES} bytes, the most read"
            ))),
            Captured::Logged(_) => Ok(Vec::new()),
        };
    }
    if ctx.running.is_cancelled() {
        return Err(cancelled(name));
    }
    let exit = match status.code() {
        Some(code) => format!("exit {code}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            format!("killed by signal {}", status.signal().unwrap_or(0))
        }
    };
    let stderr = match stderr {
        Captured::Logged(text) => text,
        _ => String::new(),
    };
    let message = format!(
        "terraform {name} failed ({exit}): {}",
        quote_errors(&stderr)
    );
    Err(Failed(ctx.redactor.redact(&message)))
}

/// The error of a cancelled operation.
fn cancelled(name: &str) -> Failed {
    Failed(format!(
        "cancelled: terraform was interrupted (SIGINT) during `{name}`; resources it was \
         changing may be left half done (the next deployment reconciles them)"
    ))
}

/// The arguments as one line for the log.
fn join(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Appends one entry to the key's log.
pub(super) fn log(ctx: &Context<'_>, level: &str, message: &str) {
    append(ctx.dir, &ctx.redactor.redact(message), level);
}

pub(super) fn append(dir: &KeyDir, message: &str, level: &str) {
    let entry = LogEntry::new(level, message).with_timestamp(jiff::Timestamp::now().to_string());
    if let Err(e) = dir.append_log(&[entry]) {
        tracing::warn!(folder = %dir.dir.display(), error = %e, "cannot write the Terraform log");
    }
}

/// What a reader task ends with.
enum Captured {
    /// All of stdout.
    Whole(Vec<u8>),
    /// Stdout passed the limit.
    TooLong,
    /// Logged; with the tail kept (stderr) or nothing.
    Logged(String),
}

/// Reads all of `stream`, up to [`MAX_CAPTURE_BYTES`].
async fn capture(stream: Option<impl AsyncRead + Unpin>) -> Captured {
    let Some(stream) = stream else {
        return Captured::Whole(Vec::new());
    };
    let mut bytes = Vec::new();
    let mut limited = stream.take(MAX_CAPTURE_BYTES + 1);
    if limited.read_to_end(&mut bytes).await.is_err() {
        return Captured::Whole(bytes);
    }
    if bytes.len() as u64 > MAX_CAPTURE_BYTES {
        // Read on to the end so the process is not stuck on a full pipe.
        let mut rest = limited.into_inner();
        let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
        return Captured::TooLong;
    }
    Captured::Whole(bytes)
}

/// Logs each line of `stream` (redacted, cut to [`MAX_LINE_BYTES`]); keeps the last
/// [`STDERR_TAIL_BYTES`] when `keep`.
async fn log_lines(
    stream: Option<impl AsyncRead + Unpin>,
    dir: KeyDir,
    redactor: Arc<Redactor>,
    name: &'static str,
    level: &'static str,
    keep: bool,
) -> Captured {
    let mut tail = String::new();
    let Some(stream) = stream else {
        return Captured::Logged(tail);
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if keep {
            tail.push_str(text);
            tail.push('\n');
            if tail.len() > 2 * STDERR_TAIL_BYTES {
                let cut = tail.len() - STDERR_TAIL_BYTES;
                let cut = (cut..tail.len())
                    .find(|i| tail.is_char_boundary(*i))
                    .unwrap_or(0);
                tail.drain(..cut);
            }
        }
        let mut shown = redactor.redact(text);
        if shown.len() > MAX_LINE_BYTES {
            let cut = (0..=MAX_LINE_BYTES)
                .rev()
                .find(|i| shown.is_char_boundary(*i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown.push_str(" [...]");
        }
        append(&dir, &format!("terraform {name}: {shown}"), level);
    }
    Captured::Logged(tail)
}

/// Waits for a reader task; a reader kept open by a leftover process is given up after a few
/// seconds.
async fn drain(task: tokio::task::JoinHandle<Captured>) -> Captured {
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(captured)) => captured,
        Ok(Err(_)) => Captured::Logged(String::new()),
        Err(_) => {
            abort.abort();
            Captured::Logged(String::new())
        }
    }
}

/// Terraform's error diagnostics in `stderr`: each `Error:` line with the lines that follow
/// it up to the next diagnostic (the frame characters of newer versions removed), blank
/// lines dropped; else the last lines of stderr.
pub(super) fn quote_errors(stderr: &str) -> String {
    let mut quoted: Vec<&str> = Vec::new();
    let mut inside = false;
    for raw in stderr.lines() {
        let line = raw.trim_start_matches(['│', '╷', '╵']).trim();
        if line.starts_with("Error:") {
            inside = true;
        } else if line.starts_with("Warning:") || raw.starts_with('╵') {
            inside = false;
        }
        if inside && !line.is_empty() {
            quoted.push(line);
        }
    }
    if quoted.is_empty() {
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        quoted = lines[lines.len().saturating_sub(20)..].to_vec();
    }
    if quoted.is_empty() {
        return "(no error output)".to_owned();
    }
    let text = quoted.join("\n");
    if text.chars().count() > MAX_QUOTE_CHARS {
        let mut cut: String = text.chars().take(MAX_QUOTE_CHARS).collect();
        cut.push_str(" [...]");
        return cut;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_quoted_with_their_detail_in_both_styles() {
        let plain = "\nError: No value for required variable\n\n  on main.tf line 10:\n  10: variable \"prefix\" {\n\nThe root module input variable \"prefix\" is not set.\n";
        let q = quote_errors(plain);
        assert!(
            q.starts_with("Error: No value for required variable\non main.tf line 10:"),
            "{q}"
        );
        assert!(q.ends_with("is not set."), "{q}");
        let framed = "╷\n│ Warning: something\n│ \n│ detail of the warning\n╵\n╷\n│ Error: Saved plan is stale\n│ \n│ The given plan file can no longer be applied.\n╵\n";
        assert_eq!(
            quote_errors(framed),
            "Error: Saved plan is stale\nThe given plan file can no longer be applied."
        );
        assert_eq!(
            quote_errors("panic: boom\n\ngoroutine 1\n"),
            "panic: boom\ngoroutine 1"
        );
        assert_eq!(quote_errors(""), "(no error output)");
    }

    #[test]
    fn the_redactor_replaces_longest_first() {
        let r = Redactor::default();
        r.learn(["tok".to_owned()], "[REDACTED]");
        r.learn(["tok-123".to_owned(), String::new()], "(sensitive)");
        assert_eq!(
            r.redact("a tok-123 b tok c"),
            "a (sensitive) b [REDACTED] c"
        );
    }
}

//! The task that watches a running invocation: reaps it when it is the runner's child (and
//! records how it ended), keeps its output files bounded, enforces a cancel's deadline, and
//! says when it ended. Also the reading of an execution's logs.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devramps_core::backend::LogEntry;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::CustomStepOptions;
use super::layout::{self, Invocation};
use super::process::{self, ProcessId};
use super::protocol;

/// How often a watcher looks at a running invocation's files.
const TICK: Duration = Duration::from_millis(50);
/// The most log lines [`collect_logs`] returns (the last ones).
const MAX_LOG_ENTRIES: usize = 10_000;

/// What a watcher watches.
pub(crate) struct Watcher {
    pub(crate) inv: Invocation,
    pub(crate) leader: ProcessId,
    pub(crate) options: CustomStepOptions,
    pub(crate) watched: Arc<Mutex<HashMap<PathBuf, watch::Receiver<bool>>>>,
}

impl Watcher {
    /// Watches until the process ends, then sends `true` on `done`.
    pub(crate) async fn run(
        self,
        mut child: Option<tokio::process::Child>,
        done: watch::Sender<bool>,
    ) {
        loop {
            self.tick();
            match &mut child {
                Some(ours) => {
                    tokio::select! {
                        status = ours.wait() => {
                            let text = match status {
                                Ok(status) => describe(status),
                                Err(e) => format!("could not be waited for: {e}"),
                            };
                            let _ = process::write_atomic(&self.inv.file("exit"), text.as_bytes());
                            break;
                        }
                        () = tokio::time::sleep(TICK) => {}
                    }
                }
                None if !self.leader.is_alive() => break,
                None => tokio::time::sleep(TICK).await,
            }
        }
        self.tick();
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.inv.dir);
        let _ = done.send(true);
    }

    /// Bounds the output files and kills a cancelled group whose grace has passed.
    fn tick(&self) {
        let limit = self.options.capture_limit;
        for name in ["stdout", "stderr"] {
            if let Err(e) = process::keep_bounded(&self.inv.file(name), limit) {
                tracing::warn!(file = name, error = %e, "could not bound a step's output");
            }
        }
        if let Ok(entries) = fs::read_dir(self.inv.log_dir()) {
            for entry in entries.flatten() {
                let _ = process::keep_bounded(&entry.path(), limit);
            }
        }
        if let Some(asked) = cancelled_at(&self.inv)
            && now_ms().saturating_sub(asked) >= millis(self.options.cancel_grace)
        {
            let _ = self.leader.signal_group(Signal::SIGKILL);
        }
    }
}

/// How a child ended, for a failure reason: "exited with status 3", "was killed by SIGKILL".
fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("was killed by {signal}"),
            Err(_) => format!("was killed by signal {signal}"),
        },
        (None, None) => "ended".to_owned(),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

/// Records that a cancel was asked, and when (the first ask counts).
pub(crate) fn mark_cancelled(inv: &Invocation) -> io::Result<()> {
    if cancelled_at(inv).is_some() {
        return Ok(());
    }
    process::write_atomic(&inv.file("cancelled"), now_ms().to_string().as_bytes())
}

fn cancelled_at(inv: &Invocation) -> Option<u64> {
    fs::read_to_string(inv.file("cancelled"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The log lines of every invocation of the execution in `key_dir`, in the order they ran
/// (each file read as a tail of at most `limit` bytes; the last [`MAX_LOG_ENTRIES`] lines).
pub(crate) fn collect_logs(key_dir: &Path, limit: u64) -> io::Result<Vec<LogEntry>> {
    let mut invocations: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(key_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(rank) = name.to_str().and_then(layout::invocation_rank) {
            invocations.push((rank, entry.path()));
        }
    }
    invocations.sort();
    let mut entries = Vec::new();
    for (_, dir) in invocations {
        let mut files: Vec<PathBuf> = match fs::read_dir(dir.join("logs")) {
            Ok(files) => files
                .flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        files.sort();
        for file in files {
            let (bytes, skipped) = process::read_tail(&file, limit)?;
            if skipped > 0 {
                entries.push(LogEntry::new(
                    "info",
                    format!(
                        "[devramps: {skipped} earlier bytes of {} left out]",
                        file.display()
                    ),
                ));
            }
            let text = String::from_utf8_lossy(&bytes);
            entries.extend(text.lines().filter_map(protocol::log_entry));
        }
    }
    if entries.len() > MAX_LOG_ENTRIES {
        entries.drain(..entries.len() - MAX_LOG_ENTRIES);
    }
    Ok(entries)
}

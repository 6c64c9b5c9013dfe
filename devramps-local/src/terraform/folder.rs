//! One Terraform step's folder under the state directory: what makes `plan` and `apply`
//! idempotent per key, after a restart too.
//!
//! ```text
//! <state>/terraform/<key>/
//!   checkout/        the exported commit; Terraform runs in checkout/<source>
//!   plan.tfplan      the saved plan (Terraform's own file: it may hold sensitive values)
//!   plan.json        the plan's summary, written once the saved plan is complete
//!   applying         written just before `apply` starts
//!   applied.json     the outputs (sensitive ones redacted), once applied
//!   failed.json      why the apply failed, once it did
//!   terraform.log    Terraform's output, JSON Lines, bounded, sensitive values redacted
//!   running.pid      the running command's pid and start time (its process group)
//! <state>/terraform/state/<state key>   the local state files (StateBackend::Local)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use devramps_core::exec::{ExecutionKey, InfraPlan, LogEntry, Outputs};
use serde::{Deserialize, Serialize};

use crate::steps::process::{keep_bounded, private_file, read_tail, write_atomic};

/// Above this size the log file is cut (to its last quarter).
const MAX_LOG_BYTES: u64 = 1024 * 1024;
/// What [`KeyDir::logs`] reads: the log's last bytes ...
pub(super) const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// ... and at most this many of their lines.
pub(super) const LOG_TAIL_LINES: usize = 4000;

/// A saved plan, as `plan.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Summary {
    /// The summary returned by `plan`.
    pub(super) plan: InfraPlan,
    /// The SHA-256 of `plan.tfplan`, hex.
    pub(super) sha256: String,
    /// The commit planned.
    pub(super) commit: String,
    /// The root planned.
    pub(super) source: String,
}

/// An apply that ended, as `applied.json` or `failed.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Applied {
    /// The plan applied.
    pub(super) plan_id: String,
    /// The outputs, sensitive ones redacted (`applied.json`).
    #[serde(default)]
    pub(super) outputs: Outputs,
    /// Why it failed (`failed.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

/// The paths of one key's folder.
#[derive(Clone, Debug)]
pub(super) struct KeyDir {
    /// The folder's name (the key, as one safe path component).
    pub(super) name: String,
    /// The folder.
    pub(super) dir: PathBuf,
}

impl KeyDir {
    /// The folder of `key` under `state_dir/terraform/`.
    pub(super) fn new(state_dir: &Path, key: &ExecutionKey) -> Self {
        let name = safe_name(&key.to_string());
        KeyDir {
            dir: state_dir.join("terraform").join(&name),
            name,
        }
    }

    pub(super) fn checkout(&self) -> PathBuf {
        self.dir.join("checkout")
    }
    pub(super) fn plan_file(&self) -> PathBuf {
        self.dir.join("plan.tfplan")
    }
    fn summary(&self) -> PathBuf {
        self.dir.join("plan.json")
    }
    pub(super) fn applying(&self) -> PathBuf {
        self.dir.join("applying")
    }
    fn applied(&self) -> PathBuf {
        self.dir.join("applied.json")
    }
    fn failed(&self) -> PathBuf {
        self.dir.join("failed.json")
    }
    /// The running command's pid and start time (its process group), while it runs.
    pub(super) fn pid_file(&self) -> PathBuf {
        self.dir.join("running.pid")
    }
    pub(super) fn log(&self) -> PathBuf {
        self.dir.join("terraform.log")
    }

    pub(super) fn read_summary(&self) -> std::io::Result<Option<Summary>> {
        read_json(&self.summary())
    }
    pub(super) fn write_summary(&self, summary: &Summary) -> std::io::Result<()> {
        write_json(&self.summary(), summary)
    }
    pub(super) fn read_applied(&self) -> std::io::Result<Option<Applied>> {
        read_json(&self.applied())
    }
    pub(super) fn write_applied(&self, applied: &Applied) -> std::io::Result<()> {
        write_json(&self.applied(), applied)
    }
    pub(super) fn read_failed(&self) -> std::io::Result<Option<Applied>> {
        read_json(&self.failed())
    }
    pub(super) fn write_failed(&self, failed: &Applied) -> std::io::Result<()> {
        write_json(&self.failed(), failed)
    }

    /// Removes what a plan that never completed left (a checkout, a partial plan file).
    pub(super) fn clear_partial_plan(&self) -> std::io::Result<()> {
        remove_dir(&self.checkout())?;
        match std::fs::remove_file(self.plan_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Appends entries to the log (already redacted) and keeps it bounded.
    pub(super) fn append_log(&self, entries: &[LogEntry]) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut bytes, entry).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
        }
        let mut file = private_file(&self.log(), true)?;
        file.write_all(&bytes)?;
        keep_bounded(&self.log(), MAX_LOG_BYTES)?;
        Ok(())
    }

    /// The log's last entries ([`LOG_TAIL_BYTES`], [`LOG_TAIL_LINES`]).
    pub(super) fn logs(&self) -> std::io::Result<Vec<LogEntry>> {
        let (bytes, skipped) = read_tail(&self.log(), LOG_TAIL_BYTES)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        let mut out = Vec::new();
        if skipped > 0 || from > 0 {
            out.push(LogEntry::new(
                "info",
                format!("[devramps: earlier output dropped; the log keeps the last {LOG_TAIL_LINES} lines or {LOG_TAIL_BYTES} bytes]"),
            ));
        }
        for line in &lines[from..] {
            match serde_json::from_str::<LogEntry>(line) {
                Ok(entry) => out.push(entry),
                // The note of a cut, or a line cut in half.
                Err(_) => out.push(LogEntry::new("info", *line)),
            }
        }
        Ok(out)
    }

    /// Rewrites the log with `redact` applied to every line (once sensitive values are known).
    pub(super) fn redact_log(&self, redact: impl Fn(&str) -> String) -> std::io::Result<()> {
        let text = match std::fs::read(self.log()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let redacted = redact(&text);
        if redacted != text {
            write_atomic(&self.log(), redacted.as_bytes())?;
        }
        Ok(())
    }
}

/// Removes a folder and what it holds; a missing one is fine.
pub(super) fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads a JSON record of the runner; `None` when it does not exist.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    crate::jobdir::read_json(path, "the Terraform runner")
}

pub(super) use crate::jobdir::{safe_name, write_json};

/// A slash-separated key (`pipeline/stage/step/terraform.tfstate`) as a relative path whose
/// every component is safe (`.` and `..` cannot appear; empty components are dropped).
pub(super) fn safe_path(key: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for part in key.split('/').filter(|p| !p.is_empty()) {
        let safe: String = part
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        out.push(match safe.as_str() {
            "." => "%2E".to_owned(),
            ".." => "%2E%2E".to_owned(),
            _ => safe,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_and_paths_stay_inside() {
        assert_eq!(
            safe_name("api/r3/prod/a1/infra"),
            "api%2Fr3%2Fprod%2Fa1%2Finfra"
        );
        assert_eq!(
            safe_path("/app/../prod//x y/terraform.tfstate"),
            PathBuf::from("app/%2E%2E/prod/x%20y/terraform.tfstate")
        );
    }

    #[test]
    fn the_log_reads_back_its_entries_and_is_redacted_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let key = ExecutionKey::new("p", 1, "s", 1, devramps_core::exec::Unit::step("infra"));
        let kd = KeyDir::new(dir.path(), &key);
        std::fs::create_dir_all(&kd.dir).unwrap();
        kd.append_log(&[LogEntry::new("info", "plan: token = tok-123")])
            .unwrap();
        kd.redact_log(|t| t.replace("tok-123", "(sensitive)"))
            .unwrap();
        let logs = kd.logs().unwrap();
        assert_eq!(logs, [LogEntry::new("info", "plan: token = (sensitive)")]);
    }
}

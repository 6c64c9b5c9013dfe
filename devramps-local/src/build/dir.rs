//! A build's folder under the state directory: what survives the engine, so that a restarted
//! runner re-attaches to a running build, or reads its result, instead of building again.
//!
//! ```text
//! <state>/builds/<key>/
//!   job.json      the artifact type and what the builder needs after the command (no secrets)
//!   state.json    the deadline                                   (written before the start)
//!   pid           the wrapper shell's pid and start time          (written after the start)
//!   output.fifo   the command's stdout and stderr, read by the runner
//!   output.log    what the command printed, secrets redacted, bounded
//!   exit_code     the command's exit status                       (written by the wrapper)
//!   result.json   the outcome                                     (written last)
//!   checkout/     the exported commit, removed once the result is written (kept on failure
//!                 when asked)
//! ```

use std::path::{Path, PathBuf};

use devramps_core::exec::{ExecutionKey, Outcome};
use serde::{Deserialize, Serialize};

use crate::jobdir::safe_name;

/// What a build records before its command starts, for the steps after it (no secrets).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    /// The artifact type, as spelled in `pipeline.yaml`.
    pub(crate) artifact_type: String,
    /// What the builder needs once the command succeeded (its own shape).
    pub(crate) finish: serde_json::Value,
}

/// When a started build times out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JobState {
    /// In milliseconds since the Unix epoch (wall clock, so it holds across restarts).
    pub(crate) deadline_ms: u64,
    /// The timeout in minutes, for the message.
    pub(crate) timeout_minutes: f64,
}

/// The paths of one build's folder.
#[derive(Clone, Debug)]
pub(crate) struct BuildDir {
    /// The folder.
    pub(crate) dir: PathBuf,
}

impl BuildDir {
    /// The folder of `key` under `state_dir`.
    pub(crate) fn new(state_dir: &Path, key: &ExecutionKey) -> Self {
        BuildDir {
            dir: state_dir.join("builds").join(safe_name(&key.to_string())),
        }
    }

    pub(crate) fn job(&self) -> PathBuf {
        self.dir.join("job.json")
    }
    pub(crate) fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub(crate) fn pid(&self) -> PathBuf {
        self.dir.join("pid")
    }
    pub(crate) fn fifo(&self) -> PathBuf {
        self.dir.join("output.fifo")
    }
    pub(crate) fn output(&self) -> PathBuf {
        self.dir.join("output.log")
    }
    pub(crate) fn exit_code(&self) -> PathBuf {
        self.dir.join("exit_code")
    }
    pub(crate) fn result(&self) -> PathBuf {
        self.dir.join("result.json")
    }
    /// The exported commit: the build's working directory.
    pub(crate) fn checkout(&self) -> PathBuf {
        self.dir.join("checkout")
    }
    /// A file of the builder's own (a digest, a download).
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The recorded outcome, if the build ended.
    pub(crate) fn read_result(&self) -> std::io::Result<Option<Outcome>> {
        read_json(&self.result())
    }

    /// Records the outcome (creating the folder again if the build removed it).
    pub(crate) fn write_result(&self, outcome: &Outcome) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_json(&self.result(), outcome)
    }

    /// The exit code the wrapper wrote, if it has.
    pub(crate) fn read_exit_code(&self) -> std::io::Result<Option<i32>> {
        crate::jobdir::read_exit_code(&self.exit_code())
    }
}
/// Reads a JSON record of a build; `None` when it does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    crate::jobdir::read_json(path, "a build")
}

pub(crate) use crate::jobdir::write_json;

//! A gate's folder under the state directory: what survives the engine (the process group, the
//! deadline, the exit code the wrapper writes, the output, the result), so that a restarted
//! runner re-attaches instead of running the tests again.
//!
//! ```text
//! <state>/gates/<key>/
//!   state.json    pid (= process group), deadline, test type   (written once, after spawn)
//!   output.log    the command's stdout and stderr, capped        (written by the command)
//!   exit_code     the command's exit status                       (written by the wrapper)
//!   jest.json     jest's summary, for testType jest               (written by jest)
//!   result.json   the outcome                                     (written last, by the runner)
//!   checkout/     the exported commit, removed once the result is written
//! ```

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use devramps_core::exec::{ExecutionKey, Outcome};
use serde::{Deserialize, Serialize};

use super::params::TestType;

/// How much of the output's end a failure reason carries.
pub(super) const TAIL_BYTES: u64 = 4 * 1024;
/// Above this size the output file is cut to its last [`KEEP_BYTES`].
pub(super) const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// What a cut output file keeps.
pub(super) const KEEP_BYTES: u64 = 1024 * 1024;
/// The largest jest summary read.
const MAX_JEST_BYTES: u64 = 64 * 1024 * 1024;

/// What a restarted runner needs to re-attach to a running gate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct GateState {
    /// The wrapper shell's pid, which is also its process group's id.
    pub(super) pgid: i32,
    /// When it times out, in milliseconds since the Unix epoch (wall clock, so it holds
    /// across restarts).
    pub(super) deadline_ms: u64,
    /// `timeout` as written, for the message.
    pub(super) timeout_minutes: f64,
    /// How results are read.
    pub(super) test_type: TestType,
}

/// The paths of one gate's folder.
#[derive(Clone, Debug)]
pub(super) struct GateDir {
    /// The folder.
    pub(super) dir: PathBuf,
}

impl GateDir {
    /// The folder of `key` under `state_dir`.
    pub(super) fn new(state_dir: &Path, key: &ExecutionKey) -> Self {
        GateDir {
            dir: state_dir
                .join("gates")
                .join(crate::jobdir::safe_name(&key.to_string())),
        }
    }

    pub(super) fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub(super) fn output(&self) -> PathBuf {
        self.dir.join("output.log")
    }
    pub(super) fn exit_code(&self) -> PathBuf {
        self.dir.join("exit_code")
    }
    pub(super) fn jest(&self) -> PathBuf {
        self.dir.join("jest.json")
    }
    pub(super) fn result(&self) -> PathBuf {
        self.dir.join("result.json")
    }
    pub(super) fn checkout(&self) -> PathBuf {
        self.dir.join("checkout")
    }

    /// The recorded outcome, if the gate ended.
    pub(super) fn read_result(&self) -> std::io::Result<Option<Outcome>> {
        read_json(&self.result())
    }

    /// The re-attach state, if the command was started.
    pub(super) fn read_state(&self) -> std::io::Result<Option<GateState>> {
        read_json(&self.state())
    }

    /// The exit code the wrapper wrote, if it has.
    pub(super) fn read_exit_code(&self) -> std::io::Result<Option<i32>> {
        crate::jobdir::read_exit_code(&self.exit_code())
    }
}

/// Reads a JSON record of a gate; `None` when it does not exist.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    crate::jobdir::read_json(path, "a test gate")
}

pub(super) use crate::jobdir::write_json as write_json_atomic;

/// The last `bytes` of the file at `path` (fewer when it is shorter), as text; the first,
/// partial line is dropped when the file was cut.
pub(super) fn tail(path: &Path, bytes: u64) -> std::io::Result<String> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(bytes).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(match (start > 0, text.find('\n')) {
        (true, Some(i)) if i + 1 < text.len() => text[i + 1..].to_owned(),
        _ => text,
    })
}

/// Cuts the output file to its last [`KEEP_BYTES`] once it grew past [`MAX_LOG_BYTES`], so a
/// chatty test cannot fill the disk. The command writes with `O_APPEND`, so its next write
/// lands at the new end; a write between the read and the cut is lost (it is a log).
pub(super) fn cap_output(path: &Path) -> std::io::Result<()> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if len <= MAX_LOG_BYTES {
        return Ok(());
    }
    let kept = tail(path, KEEP_BYTES)?;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(0)?;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    let dropped = len.saturating_sub(kept.len() as u64);
    writeln!(
        file,
        "[devramps: {dropped} earlier bytes of output dropped; the log keeps the last {KEEP_BYTES}]"
    )?;
    file.write_all(kept.as_bytes())
}

/// Jest's counts, from the JSON summary `jest --json` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JestSummary {
    /// `numPassedTests`.
    pub(super) num_passed_tests: u64,
    /// `numFailedTests`.
    pub(super) num_failed_tests: u64,
}

/// The jest summary at `path`: `Ok(None)` when there is none, an error text when it is not
/// jest's JSON.
pub(super) fn read_jest(path: &Path) -> Result<Option<JestSummary>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_JEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_JEST_BYTES {
        return Err(format!(
            "`{}` is larger than {MAX_JEST_BYTES} bytes",
            path.display()
        ));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        format!(
            "`{}` is not jest's JSON summary (numPassedTests, numFailedTests): {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_drops_a_cut_first_line_and_the_cap_keeps_the_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out");
        let mut text = String::new();
        for i in 0..400_000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&path, &text).expect("write");
        let t = tail(&path, 20).expect("tail");
        assert_eq!(t, "line 399999\n");
        cap_output(&path).expect("no cut under the limit");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            text.len() as u64
        );
        let big = text.repeat(3);
        std::fs::write(&path, &big).expect("write");
        cap_output(&path).expect("cut");
        let after = std::fs::read_to_string(&path).expect("read");
        assert!(after.len() as u64 <= KEEP_BYTES + 200, "{}", after.len());
        assert!(after.starts_with("[devramps: "), "{}", &after[..80]);
        assert!(after.ends_with("line 399999\n"));
    }
}

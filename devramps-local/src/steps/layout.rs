//! Where the runner keeps an execution on disk:
//!
//! ```text
//! <state dir>/executions/<key>/current          the invocation the key is at
//! <state dir>/executions/<key>/<invocation>/    run | run-approved | poll-<n>
//!     input.json   (0600: params may hold secrets)   output.json   (the step's result)
//!     pid          (`<pid> <start time>`)             exit          (how our child ended)
//!     stdout, stderr (bounded)   logs/<execution id>.jsonl   failed (could not start)
//!     cancelled    (a cancel was asked)
//! ```

use std::path::{Path, PathBuf};

use devramps_core::backend::{ExecutionKey, StepRequest};

/// Longest directory name kept as it is; longer ones are cut and end with a hash.
const MAX_NAME: usize = 180;

/// The invocation a request is: the first run, the run after an approval, or poll `n`.
pub(crate) fn invocation(request: &StepRequest) -> String {
    match &request.polling {
        Some(polling) => format!("poll-{}", u64::from(polling.polls) + 1),
        None if request.approved => "run-approved".to_owned(),
        None => "run".to_owned(),
    }
}

/// The order invocations of one key run in: `run`, `run-approved`, then the polls.
pub(crate) fn invocation_rank(name: &str) -> Option<u64> {
    match name {
        "run" => Some(0),
        "run-approved" => Some(1),
        _ => name
            .strip_prefix("poll-")?
            .parse::<u64>()
            .ok()?
            .checked_add(1),
    }
}

/// A file name for `text`: letters, digits and `-` kept, every other byte as `_XX`.
fn escape(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
}

/// FNV-1a: a hash that is the same on every machine and Rust version.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The directory name of a key: its parts escaped, joined by `.` (never inside a part), so
/// distinct keys get distinct names; very long names are cut and end with a hash.
pub(crate) fn key_dir_name(key: &ExecutionKey) -> String {
    let mut name = String::new();
    escape(&key.pipeline, &mut name);
    name.push_str(&format!(".r{}.", key.revision));
    escape(&key.stage, &mut name);
    name.push_str(&format!(".a{}.", key.attempt));
    escape(&key.unit.to_string(), &mut name);
    if name.len() > MAX_NAME {
        let hash = fnv(&name);
        name.truncate(MAX_NAME);
        name.push_str(&format!("~{hash:016x}"));
    }
    name
}

/// The files of one invocation.
#[derive(Clone, Debug)]
pub(crate) struct Invocation {
    /// Its directory.
    pub(crate) dir: PathBuf,
    /// The execution id given to the step (`--execution-id`, `DEVRAMPS_EXECUTION_ID`).
    pub(crate) execution_id: String,
}

impl Invocation {
    /// Invocation `name` of the key whose directory is `key_dir`.
    pub(crate) fn new(key_dir: &Path, name: &str) -> Self {
        let key_name = key_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Invocation {
            dir: key_dir.join(name),
            execution_id: format!("{key_name}.{name}"),
        }
    }

    /// A file of the invocation.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Its log directory (`--log-dir`).
    pub(crate) fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devramps_core::backend::Unit;

    #[test]
    fn key_names_are_safe_and_distinct() {
        let a = ExecutionKey::new("app", 3, "prod", 1, Unit::step("deploy/web"));
        let b = ExecutionKey::new("app", 3, "prod", 1, Unit::step("deploy_2Fweb"));
        let (na, nb) = (key_dir_name(&a), key_dir_name(&b));
        assert_eq!(na, "app.r3.prod.a1.deploy_2Fweb");
        assert_ne!(na, nb);
        let long = ExecutionKey::new("app", 3, "prod", 1, Unit::step("x".repeat(500)));
        let name = key_dir_name(&long);
        assert!(name.len() < 200, "{name}");
        let dots = key_dir_name(&ExecutionKey::new("..", 1, "", 1, Unit::step("a/..")));
        assert_eq!(dots, "_2E_2E.r1..a1.a_2F_2E_2E");
    }

    #[test]
    fn invocations_rank_in_the_order_they_run() {
        let ranks: Vec<_> = [
            "run",
            "run-approved",
            "poll-1",
            "poll-2",
            "poll-10",
            "other",
        ]
        .iter()
        .map(|n| invocation_rank(n))
        .collect();
        assert_eq!(ranks, [Some(0), Some(1), Some(2), Some(3), Some(11), None]);
    }
}

//! What a step registry offers: its `SYNTHESIZE-METADATA` job (reference §9.3), read into
//! [`StepMetadata`], and a [`StepCatalog`] of the step types of several registries with their
//! compiled parameter schemas.
//!
//! ```no_run
//! use devramps_local::steps::{StepCatalog, StepRegistry, synthesize_metadata};
//! # fn main() -> Result<(), devramps_local::steps::MetadataError> {
//! let registry = StepRegistry::npm("../step-registry");
//! for step in synthesize_metadata(&registry)? {
//!     println!("{}: {}", step.step_type, step.short_description.unwrap_or_default());
//! }
//! let catalog = StepCatalog::from_registries(&[registry])?;
//! let entry = catalog.get("CUSTOM:SCRIPT:DEPLOY").expect("offered");
//! let violations = entry.check(&serde_json::json!({"replicas": "x"}));
//! # let _ = violations;
//! # Ok(())
//! # }
//! ```

mod catalog;

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use catalog::{CatalogEntry, ParamViolation, StepCatalog, ViolationKind};

use super::StepRegistry;

/// How long a registry may take to answer `SYNTHESIZE-METADATA` before it is killed.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(60);

/// The most characters of a registry's output or result quoted in an error.
const QUOTE_LIMIT: usize = 400;
/// The largest `SYNTHESIZE-METADATA` result file read (the limit of a step's result file); a
/// larger one is refused without being read on.
pub(super) const RESULT_LIMIT: u64 = 16 << 20;

/// What a registry says about one of its step types (an entry of `data.metadata` of the
/// `SYNTHESIZE-METADATA` result; reference §9.3). Field names are the protocol's (camelCase);
/// fields the protocol does not define are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepMetadata {
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The type as the registry registered it: the full `CUSTOM:SCRIPT:DEPLOY`, or a short
    /// `cdn-invalidate` used in pipelines as `CUSTOM:CDN-INVALIDATE` (see [`StepCatalog`]).
    /// It is the `type` of the registry's `EXECUTE` jobs.
    pub step_type: String,
    /// A one-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    /// A longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    /// A YAML example of the step in a pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml_example: Option<String>,
    /// The JSON Schema of the step's `params` (generated from the step's Zod schema).
    pub params_json_schema: serde_json::Value,
    /// Where the step is documented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

/// Why the step types of a registry could not be read. Every case names the registry's
/// directory; what the registry wrote is quoted, cut to a few hundred characters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The registry's directory does not exist or is not a directory.
    #[error("step registry `{}` is not a directory", registry.display())]
    NotADirectory {
        /// The registry's directory.
        registry: PathBuf,
    },
    /// An npm registry (started with `npm run start-step-registry`) whose `package.json` is
    /// missing, unreadable or has no `start-step-registry` script.
    #[error("step registry `{}` cannot be started with npm: {problem}", registry.display())]
    NoStartScript {
        /// The registry's directory.
        registry: PathBuf,
        /// What is wrong with its `package.json`.
        problem: String,
    },
    /// The registry's command could not be started (for example `npm` is not installed).
    #[error("cannot start `{program}` for the step registry `{}`: {source}{hint}",
            registry.display(),
            hint = if source.kind() == io::ErrorKind::NotFound {
                " (is it installed and on PATH?)"
            } else { "" })]
    Start {
        /// The registry's directory.
        registry: PathBuf,
        /// The program that could not be started.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// Preparing or reading the job's files failed.
    #[error("step registry `{}`: cannot {what}: {source}", registry.display())]
    Io {
        /// The registry's directory.
        registry: PathBuf,
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The registry did not finish within the timeout; it was killed.
    #[error("step registry `{}` did not answer SYNTHESIZE-METADATA within {} s and was killed{output}",
            registry.display(), after.as_secs())]
    TimedOut {
        /// The registry's directory.
        registry: PathBuf,
        /// The timeout.
        after: Duration,
        /// What it printed (quoted), or empty.
        output: String,
    },
    /// The registry exited without writing a result file, or wrote an empty one.
    #[error("step registry `{}` wrote {what} for SYNTHESIZE-METADATA ({status}){output}",
            registry.display())]
    NoResult {
        /// The registry's directory.
        registry: PathBuf,
        /// `no result file` or `an empty result file`.
        what: &'static str,
        /// How the process ended.
        status: String,
        /// What it printed (quoted), or empty.
        output: String,
    },
    /// The result is not what the protocol says.
    #[error("step registry `{}` wrote a malformed SYNTHESIZE-METADATA result: {problem}; found: {found}",
            registry.display())]
    Malformed {
        /// The registry's directory.
        registry: PathBuf,
        /// What is wrong.
        problem: String,
        /// The part of the result concerned (quoted, cut).
        found: String,
    },
    /// The registry answered `FAILED`.
    #[error("step registry `{}` failed SYNTHESIZE-METADATA{code}: {error}", registry.display(),
            code = error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Failed {
        /// The registry's directory.
        registry: PathBuf,
        /// Its `error` (cut).
        error: String,
        /// Its `errorCode`, if any.
        error_code: Option<String>,
    },
    /// A step type's `paramsJsonSchema` is not a valid JSON Schema.
    #[error("step registry `{}`: the paramsJsonSchema of `{step_type}` is not a valid JSON Schema: {problem}",
            registry.display())]
    InvalidSchema {
        /// The registry's directory.
        registry: PathBuf,
        /// The step type.
        step_type: String,
        /// What is wrong (cut).
        problem: String,
    },
    /// Two registries (or one registry twice) offer the same pipeline step type.
    #[error("step type `{pipeline_type}` is offered by the step registry `{}` and again by `{}`{}",
            first.display(), second.display(),
            if first == second { " (twice)" } else { ": give only one of them" })]
    DuplicateType {
        /// The type as pipelines write it.
        pipeline_type: String,
        /// The registry that offered it first.
        first: PathBuf,
        /// The registry that offered it again.
        second: PathBuf,
    },
}

/// Runs the registry's `SYNTHESIZE-METADATA` job and reads the step types it offers, waiting
/// at most [`METADATA_TIMEOUT`].
///
/// # Errors
///
/// See [`MetadataError`]: the registry cannot be started, times out, writes no result or a
/// malformed one, or answers `FAILED`.
pub fn synthesize_metadata(registry: &StepRegistry) -> Result<Vec<StepMetadata>, MetadataError> {
    synthesize_metadata_within(registry, METADATA_TIMEOUT)
}

/// [`synthesize_metadata`] with another timeout. The registry runs in a process group of its
/// own, killed whole on timeout (npm starts node as a child) and once the job is over (nothing
/// it left behind keeps running).
///
/// # Errors
///
/// As [`synthesize_metadata`].
pub fn synthesize_metadata_within(
    registry: &StepRegistry,
    timeout: Duration,
) -> Result<Vec<StepMetadata>, MetadataError> {
    let dir = registry.dir().to_path_buf();
    if !dir.is_dir() {
        return Err(MetadataError::NotADirectory { registry: dir });
    }
    check_npm_script(registry)?;
    let io_error = |what: &str| {
        let registry = dir.clone();
        let what = what.to_owned();
        move |source| MetadataError::Io {
            registry,
            what,
            source,
        }
    };
    let work = tempfile::Builder::new()
        .prefix("devramps-metadata-")
        .tempdir()
        .map_err(io_error("create a temporary directory"))?;
    let result = work.path().join("result.json");
    let logs = work.path().join("logs");
    std::fs::create_dir(&logs).map_err(io_error("create the log directory"))?;
    let stdout = File::create(work.path().join("stdout")).map_err(io_error("create a file"))?;
    let stderr = File::create(work.path().join("stderr")).map_err(io_error("create a file"))?;
    let args: Vec<OsString> = vec![
        "--input".into(),
        r#"{"job":"SYNTHESIZE-METADATA"}"#.into(),
        "--output".into(),
        result.clone().into_os_string(),
        "--log-dir".into(),
        logs.into_os_string(),
        "--execution-id".into(),
        "synthesize-metadata".into(),
    ];
    let mut command = registry.process(&args);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command.spawn().map_err(|source| MetadataError::Start {
        registry: dir.clone(),
        program,
        source,
    })?;
    let ended = wait(&mut child, timeout);
    kill_group(&child);
    let output = || printed(work.path());
    let status = match ended {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Reap the killed leader; its status says nothing more.
            let _ = child.kill();
            let _ = child.wait();
            return Err(MetadataError::TimedOut {
                registry: dir,
                after: timeout,
                output: output(),
            });
        }
        Err(e) => return Err(io_error("wait for the registry")(e)),
    };
    let text = match File::open(&result).and_then(|file| {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(file, RESULT_LIMIT + 1), &mut bytes)?;
        Ok(bytes)
    }) {
        Ok(bytes) if bytes.len() as u64 > RESULT_LIMIT => {
            return Err(MetadataError::Malformed {
                registry: dir,
                problem: format!(
                    "the result file is larger than the limit of {} MiB",
                    RESULT_LIMIT >> 20
                ),
                found: format!("{}", result.display()),
            });
        }
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MetadataError::NoResult {
                registry: dir,
                what: "no result file",
                status: describe(status),
                output: output(),
            });
        }
        Err(e) => return Err(io_error("read the result file")(e)),
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(MetadataError::NoResult {
            registry: dir,
            what: "an empty result file",
            status: describe(status),
            output: output(),
        });
    }
    let text = String::from_utf8_lossy(&text);
    parse_metadata_result(&dir, &text)
}

/// Reads the text of a `SYNTHESIZE-METADATA` result file written by the registry in
/// `registry` (named in errors). Never panics, whatever the text.
///
/// # Errors
///
/// [`MetadataError::Malformed`] when the text is not a result of the protocol or an entry is
/// not step metadata; [`MetadataError::Failed`] when the result is `FAILED`.
pub fn parse_metadata_result(
    registry: &Path,
    text: &str,
) -> Result<Vec<StepMetadata>, MetadataError> {
    let malformed = |problem: String, found: &dyn std::fmt::Display| MetadataError::Malformed {
        registry: registry.to_path_buf(),
        problem,
        found: quote(&found.to_string()),
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| malformed(format!("it is not JSON ({e})"), &text))?;
    let Some(object) = value.as_object() else {
        return Err(malformed("it is not a JSON object".into(), &value));
    };
    match object.get("status").and_then(serde_json::Value::as_str) {
        Some("SUCCESS") => {}
        Some("FAILED") => {
            let text_of = |key: &str| {
                object.get(key).map(|v| match v.as_str() {
                    Some(s) => quote(s),
                    None => quote(&v.to_string()),
                })
            };
            return Err(MetadataError::Failed {
                registry: registry.to_path_buf(),
                error: text_of("error").unwrap_or_else(|| "(no error message)".into()),
                error_code: text_of("errorCode"),
            });
        }
        Some(other) => {
            return Err(malformed(
                format!("status `{}` is neither SUCCESS nor FAILED", quote(other)),
                &value,
            ));
        }
        None => return Err(malformed("it has no string `status`".into(), &value)),
    }
    let Some(list) = object
        .get("data")
        .and_then(|d| d.get("metadata"))
        .and_then(serde_json::Value::as_array)
    else {
        return Err(malformed(
            "a SUCCESS result needs `data.metadata`, a list".into(),
            &value,
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let step = StepMetadata::deserialize(entry).map_err(|e| {
            malformed(
                format!("data.metadata[{i}] is not step metadata: {e}"),
                entry,
            )
        })?;
        let valid_type =
            !step.step_type.trim().is_empty() && !step.step_type.chars().any(char::is_control);
        if !valid_type {
            return Err(malformed(
                format!("data.metadata[{i}] has an empty or unprintable stepType"),
                entry,
            ));
        }
        out.push(step);
    }
    Ok(out)
}

/// For a registry started with `npm run ... start-step-registry`: its `package.json` must have
/// that script (npm's own complaint is silenced by `--silent`).
fn check_npm_script(registry: &StepRegistry) -> Result<(), MetadataError> {
    let command = registry.command();
    let npm_script = command.first().is_some_and(|p| p == "npm")
        && command.iter().any(|a| a == "start-step-registry");
    if !npm_script {
        return Ok(());
    }
    let path = registry.dir().join("package.json");
    let problem = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("it has no package.json".to_owned()),
        Err(e) => Some(format!("cannot read its package.json: {e}")),
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Err(e) => Some(format!("its package.json is not JSON: {e}")),
            Ok(json) if json.pointer("/scripts/start-step-registry").is_none() => Some(
                "its package.json has no `start-step-registry` script (in `scripts`)".to_owned(),
            ),
            Ok(_) => None,
        },
    };
    match problem {
        Some(problem) => Err(MetadataError::NoStartScript {
            registry: registry.dir().to_path_buf(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Waits for `child` until `timeout`: `Some(status)` when it ended, `None` on timeout.
fn wait(child: &mut std::process::Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Kills the process group `child` leads (ignoring a group already gone).
fn kill_group(child: &std::process::Child) {
    if let Ok(id) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(id),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// How a process ended, for messages.
fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("ended by {status}"),
    }
}

/// What the registry printed (the end of stderr, else of stdout), as `; it printed: ...`, or
/// empty.
fn printed(work: &Path) -> String {
    for name in ["stderr", "stdout"] {
        // The end of what it printed is what explains a failure; the rest is not read.
        if let Ok((bytes, _)) = super::process::read_tail(&work.join(name), 64 << 10) {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            if !text.is_empty() {
                return format!("; its {name}: {}", quote_tail(text));
            }
        }
    }
    String::new()
}

/// `text` cut to its first [`QUOTE_LIMIT`] characters, control characters escaped.
pub(crate) fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(QUOTE_LIMIT)
        .flat_map(|c| {
            if c.is_control() && c != ' ' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().nth(QUOTE_LIMIT).is_some() {
        out.push('…');
    }
    out
}

/// `text` cut to its last [`QUOTE_LIMIT`] characters (where errors usually are).
fn quote_tail(text: &str) -> String {
    let count = text.chars().count();
    if count <= QUOTE_LIMIT {
        return quote(text);
    }
    let tail: String = text.chars().skip(count - QUOTE_LIMIT).collect();
    format!("…{}", quote(&tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_and_escaped() {
        assert_eq!(quote("a\nb"), "a\\nb");
        let long = "x".repeat(QUOTE_LIMIT + 10);
        assert_eq!(quote(&long).chars().count(), QUOTE_LIMIT + 1);
        assert!(quote_tail(&format!("{long}END")).ends_with("END"));
    }

    #[test]
    fn failed_results_carry_error_and_code() {
        let e = parse_metadata_result(
            Path::new("/r"),
            r#"{"status":"FAILED","error":"boom","errorCode":"REGISTRY_ERROR"}"#,
        )
        .expect_err("failed");
        assert_eq!(
            e.to_string(),
            "step registry `/r` failed SYNTHESIZE-METADATA (REGISTRY_ERROR): boom"
        );
    }
}

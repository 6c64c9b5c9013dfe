//! Which registry serves which `CUSTOM:*` type: a configured route, else the only registry,
//! else the registry whose `SYNTHESIZE-METADATA` lists the type (asked once, lazily).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::StepRegistry;
use super::metadata::RESULT_LIMIT;
use super::process::{self, ProcessId};

/// The registries of a runner and the routes to them.
#[derive(Clone, Debug)]
pub(crate) struct Routes {
    registries: Vec<StepRegistry>,
    routes: BTreeMap<String, usize>,
    discovered: OnceCell<Discovered>,
}

/// What the registries' metadata said: the registry of each type, and the registries that
/// could not tell.
#[derive(Clone, Debug)]
struct Discovered {
    types: BTreeMap<String, usize>,
    problems: Vec<String>,
}

impl Routes {
    pub(crate) fn new(registries: Vec<StepRegistry>) -> Self {
        Routes {
            registries,
            routes: BTreeMap::new(),
            discovered: OnceCell::new(),
        }
    }

    /// Routes `step_type` to `registry` (added when it is not one of them yet).
    pub(crate) fn route(&mut self, step_type: String, registry: StepRegistry) {
        let index = match self.registries.iter().position(|r| *r == registry) {
            Some(index) => index,
            None => {
                self.registries.push(registry);
                self.registries.len() - 1
            }
        };
        self.routes.insert(step_type, index);
    }

    /// The registry serving `step_type`, or why there is none. `scratch` is a directory for
    /// the metadata invocations.
    pub(crate) async fn registry_for(
        &self,
        step_type: &str,
        scratch: &Path,
        timeout: Duration,
    ) -> Result<&StepRegistry, String> {
        if let Some(index) = self.routes.get(step_type) {
            return Ok(&self.registries[*index]);
        }
        match self.registries.as_slice() {
            [] => {
                return Err(format!(
                    "no step registry is configured for `{step_type}` (give one with --step-registry DIR)"
                ));
            }
            [only] => return Ok(only),
            _ => {}
        }
        let discovered = self
            .discovered
            .get_or_init(|| discover(&self.registries, scratch, timeout))
            .await;
        if let Some(index) = discovered.types.get(step_type) {
            return Ok(&self.registries[*index]);
        }
        let dirs: Vec<String> = self
            .registries
            .iter()
            .map(|r| format!("`{}`", r.dir().display()))
            .collect();
        let mut reason = format!(
            "no step registry offers `{step_type}` (asked {})",
            dirs.join(", ")
        );
        for problem in &discovered.problems {
            reason.push_str("; ");
            reason.push_str(problem);
        }
        Err(reason)
    }
}

/// Asks every registry for its metadata; the first registry listing a type serves it.
async fn discover(registries: &[StepRegistry], scratch: &Path, timeout: Duration) -> Discovered {
    let mut found = Discovered {
        types: BTreeMap::new(),
        problems: Vec::new(),
    };
    for (index, registry) in registries.iter().enumerate() {
        let dir = scratch.join(format!("metadata-{index}"));
        match step_types(registry, &dir, timeout).await {
            Ok(types) => {
                for step_type in types {
                    found.types.entry(step_type).or_insert(index);
                }
            }
            Err(problem) => found.problems.push(format!(
                "the registry in `{}` gave no metadata: {problem}",
                registry.dir().display()
            )),
        }
    }
    found
}

/// The `stepType`s of a registry's `SYNTHESIZE-METADATA` answer.
async fn step_types(
    registry: &StepRegistry,
    dir: &Path,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let output = dir.join("output.json");
    let _ = std::fs::remove_file(&output);
    let args: Vec<OsString> = vec![
        "--input".into(),
        r#"{"job":"SYNTHESIZE-METADATA"}"#.into(),
        "--output".into(),
        output.clone().into(),
        "--log-dir".into(),
        dir.join("logs").into(),
        "--execution-id".into(),
        "metadata".into(),
    ];
    let stderr_path = dir.join("stderr");
    let stderr = process::private_file(&stderr_path, false).map_err(|e| e.to_string())?;
    let mut command = registry.process(&args);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut child = tokio::process::Command::from(command)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", show(registry)))?;
    let leader = child.id().and_then(|pid| ProcessId::of(pid).ok());
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            if let Some(leader) = leader {
                let _ = leader.signal_group(nix::sys::signal::Signal::SIGKILL);
            }
            return Err(format!("no answer within {} s", timeout.as_secs()));
        }
    }
    let (bytes, more) = process::read_head(&output, RESULT_LIMIT).map_err(|e| {
        let (tail, _) = process::read_tail(&stderr_path, 2000).unwrap_or_default();
        format!(
            "no result file ({e}); stderr: {}",
            process::text_tail(&tail, 500)
        )
    })?;
    if more {
        return Err(format!(
            "the result file is larger than the limit of {} MiB",
            RESULT_LIMIT >> 20
        ));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("bad result: {e}"))?;
    let metadata = value
        .pointer("/data/metadata")
        .and_then(Value::as_array)
        .ok_or_else(|| "the result has no `data.metadata` list".to_owned())?;
    Ok(metadata
        .iter()
        .filter_map(|m| m.get("stepType")?.as_str().map(str::to_owned))
        .collect())
}

/// A registry's command line and directory, for messages.
pub(crate) fn show(registry: &StepRegistry) -> String {
    let words: Vec<String> = registry
        .command()
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    format!("`{}` in `{}`", words.join(" "), registry.dir().display())
}

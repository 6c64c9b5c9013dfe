//! [`TerraformRunner`]: the [`InfrastructureSynthesizer`] that runs a real `terraform` (or
//! `tofu`) for Terraform steps (reference §4.2), on this machine.
//!
//! - `plan` exports the commit into `<state>/terraform/<key>/checkout` and goes to the root
//!   (`request.source`). It checks, before Terraform runs, that the root declares an empty
//!   `backend "s3" {}` and that `request.variables` names every variable without a default and
//!   no undeclared one (the error names both lists). Then `init`, `plan -out=plan.tfplan` and
//!   `show -json` ([`classify`]) give the summary, saved next to the plan. A second `plan` of
//!   the same key returns the saved summary without running Terraform (after a restart too).
//! - `apply` applies exactly that saved plan (`apply plan.tfplan`; a plan whose id is not the
//!   saved one is refused) and returns `output -json`'s values; outputs Terraform marks
//!   sensitive are `"(sensitive)"` in the outputs, the logs and the errors. The outputs are
//!   recorded, so a second `apply` of the key returns them; a failed apply is recorded too.
//! - Variables go to Terraform as `TF_VAR_<name>` in its environment (strings as they are,
//!   other values as JSON), never in a file; inherited `TF_VAR_*` are removed. Terraform gets
//!   the process's environment otherwise (`TF_CLI_CONFIG_FILE`, credentials), with
//!   `TF_IN_AUTOMATION=1` and `TF_INPUT=0`.
//! - The state: [`StateBackend::Local`] (the default) writes a `devramps_backend_override.tf`
//!   into the checkout that replaces the root's `backend "s3" {}` with a local state file
//!   `<state>/terraform/state/<state key>`; [`StateBackend::S3`] configures the root's S3
//!   backend with `-backend-config` `bucket`, `key` and `region` from `request.state`
//!   (credentials come from the environment only).
//! - Every command runs in a process group of its own. Dropping a `plan` or `apply` future
//!   (the engine does on cancel) or [`TerraformRunner::cancel`] sends SIGINT to the group,
//!   which lets Terraform stop cleanly, and SIGKILL once the grace period has passed.
//! - [`TerraformRunner::logs`] gives Terraform's output (bounded: the last 4,000 lines or
//!   256 KiB), secrets and sensitive values redacted.
//!
//! The runner needs a tokio runtime with I/O and time enabled.

mod classify;
mod folder;
mod hcl;
mod operations;
mod run;
mod stop;
mod values;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::InfrastructureSynthesizer;
use devramps_core::exec::{ExecutionKey, InfraPlan, InfraRequest, LogEntry, Outputs};
use devramps_core::{Error, Result};
use devramps_git::GitRepository;

pub use classify::{PlanJsonError, classify};

use folder::KeyDir;
use run::{Redactor, Running};

/// The backend name in errors.
const BACKEND: &str = "terraform";

/// Where Terraform keeps the state of a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateBackend {
    /// A local state file, `<state_dir>/terraform/state/<request.state.key>`, through a
    /// generated `devramps_backend_override.tf` that overrides the root's `backend "s3" {}`.
    #[default]
    Local,
    /// The root's S3 backend, configured from `request.state` (bucket, key, region).
    S3 {
        /// An S3-compatible endpoint (for example a local test server); with it, path-style
        /// addressing and no credential validation are configured too.
        endpoint: Option<String>,
    },
}

/// Runs Terraform for Terraform steps; see the [module docs](self).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use devramps_git::GitRepository;
/// use devramps_local::terraform::{StateBackend, TerraformRunner};
///
/// let repo = Arc::new(GitRepository::discover(".")?);
/// let runner = TerraformRunner::new(repo, std::path::Path::new(".devramps/state"))
///     .binary("tofu")
///     .state_backend(StateBackend::S3 { endpoint: None })
///     .grace(Duration::from_secs(30));
/// # let _ = runner;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TerraformRunner {
    config: Arc<Config>,
    shared: Arc<Shared>,
}

/// The runner's settings.
#[derive(Clone, Debug)]
struct Config {
    repo: Arc<GitRepository>,
    state_dir: PathBuf,
    binary: PathBuf,
    backend: StateBackend,
    grace: Duration,
    keep_failed: bool,
    env: Vec<(OsString, OsString)>,
}

/// What clones of a runner share: per-key locks, running commands and redactions.
#[derive(Debug, Default)]
struct Shared {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    redactors: Mutex<HashMap<String, Arc<Redactor>>>,
}

impl TerraformRunner {
    /// A runner exporting commits of `repo` and keeping its folders under
    /// `state_dir/terraform/`; it runs `terraform` from the PATH, with a local state file.
    pub fn new(repo: Arc<GitRepository>, state_dir: &Path) -> Self {
        TerraformRunner {
            config: Arc::new(Config {
                repo,
                // Terraform runs in the checkout: paths handed to it must be absolute.
                state_dir: std::path::absolute(state_dir)
                    .unwrap_or_else(|_| state_dir.to_path_buf()),
                binary: PathBuf::from("terraform"),
                backend: StateBackend::Local,
                grace: Duration::from_secs(10),
                keep_failed: false,
                env: Vec::new(),
            }),
            shared: Arc::new(Shared::default()),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Runs `binary` (a name looked up on the PATH, or a path): `terraform` by default;
    /// `tofu` works too.
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.config_mut().binary = binary.into();
        self
    }

    /// Keeps the state in `backend` ([`StateBackend::Local`] by default).
    pub fn state_backend(mut self, backend: StateBackend) -> Self {
        self.config_mut().backend = backend;
        self
    }

    /// How long an interrupted Terraform has to stop after SIGINT before its process group
    /// gets SIGKILL (10 s by default).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config_mut().grace = grace;
        self
    }

    /// Keeps the checkout of a failed plan or apply, to look at (removed by default).
    pub fn keep_failed(mut self, keep: bool) -> Self {
        self.config_mut().keep_failed = keep;
        self
    }

    /// Sets an environment variable for every Terraform command, over the process's own
    /// (for example `TF_CLI_CONFIG_FILE`).
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.config_mut().env.push((name.into(), value.into()));
        self
    }

    /// Terraform's output for `key` so far (the last 4,000 lines or 256 KiB), one entry a
    /// line, secrets and sensitive values redacted; empty when nothing ran.
    pub async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let dir = KeyDir::new(&self.config.state_dir, key);
        let redactor = self.redactor(&dir);
        let logs = dir
            .logs()
            .map_err(|e| io_error(key, "read the Terraform log", &e))?;
        Ok(logs
            .into_iter()
            .map(|mut entry| {
                entry.message = redactor.redact(&entry.message);
                entry
            })
            .collect())
    }

    /// Interrupts the Terraform command running for `key` (SIGINT to its process group, then
    /// SIGKILL after the grace period): a running `apply` returns a "cancelled" error, and the
    /// operation starts no further command. Nothing running is fine.
    pub async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        let dir = KeyDir::new(&self.config.state_dir, key);
        let running = self.running_of(&dir);
        let note = match running.as_ref().and_then(|r| r.cancel(self.config.grace)) {
            Some(pgid) => format!(
                "cancel requested: SIGINT sent to terraform (process group {pgid}); SIGKILL \
                 after {:?} if it has not stopped",
                self.config.grace
            ),
            None if running.is_some() => {
                "cancel requested: no terraform command runs now; none will start".to_owned()
            }
            None => "cancel requested: nothing runs for this key".to_owned(),
        };
        if dir.dir.is_dir() {
            let entry =
                LogEntry::new("error", note).with_timestamp(jiff::Timestamp::now().to_string());
            dir.append_log(&[entry])
                .map_err(|e| io_error(key, "write the Terraform log", &e))?;
        }
        Ok(())
    }

    /// The lock of one key's folder: one operation at a time.
    fn lock_of(&self, dir: &KeyDir) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.entry(dir.name.clone()).or_default().clone()
    }

    /// The redactions known for a key (in memory only).
    fn redactor(&self, dir: &KeyDir) -> Arc<Redactor> {
        let mut all = self
            .shared
            .redactors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.entry(dir.name.clone()).or_default().clone()
    }

    fn running_of(&self, dir: &KeyDir) -> Option<Arc<Running>> {
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        running.get(&dir.name).cloned()
    }

    /// Registers a new operation of `dir`'s key; it is unregistered when the returned
    /// registration is dropped.
    fn register(&self, dir: &KeyDir) -> Registration<'_> {
        let running = Arc::new(Running::default());
        self.shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.name.clone(), running.clone());
        Registration {
            runner: self,
            name: dir.name.clone(),
            running,
        }
    }
}

/// An operation in progress, known to [`TerraformRunner::cancel`].
struct Registration<'a> {
    runner: &'a TerraformRunner,
    name: String,
    running: Arc<Running>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut all = self
            .runner
            .shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if all
            .get(&self.name)
            .is_some_and(|r| Arc::ptr_eq(r, &self.running))
        {
            all.remove(&self.name);
        }
    }
}

/// The root folder of `source` in `checkout`: a repository path (a leading `/` is the
/// repository's root) without `..`.
fn root_dir(checkout: &Path, source: &str) -> std::result::Result<PathBuf, String> {
    let mut out = checkout.to_path_buf();
    for component in Path::new(source.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "the Terraform root `{source}` is not a path inside the repository (no `..`)"
                ));
            }
        }
    }
    Ok(out)
}

/// The names of `request.variables` (an object, or nothing).
fn variable_names(request: &InfraRequest) -> std::result::Result<BTreeSet<String>, String> {
    match request.variables.redacted_json() {
        serde_json::Value::Object(map) => Ok(map.keys().cloned().collect()),
        serde_json::Value::Null => Ok(BTreeSet::new()),
        other => Err(format!(
            "`params.variables` of the Terraform root `{}` must be a map of variable names to \
             values, not {}",
            request.source,
            match other {
                serde_json::Value::Array(_) => "a list",
                serde_json::Value::String(_) => "text",
                serde_json::Value::Number(_) => "a number",
                _ => "a boolean",
            }
        )),
    }
}

/// The secrets of `request.variables`, for redaction.
fn secrets(value: &devramps_core::expr::FinalValue) -> Vec<String> {
    use devramps_core::expr::FinalValue;
    fn collect(value: &FinalValue, out: &mut Vec<String>) {
        match value {
            FinalValue::Plain(_) => {}
            FinalValue::Secret(s) => out.push(s.expose().to_owned()),
            FinalValue::List(items) => items.iter().for_each(|v| collect(v, out)),
            FinalValue::Map(entries) => entries.iter().for_each(|(_, v)| collect(v, out)),
        }
    }
    let mut out = Vec::new();
    collect(value, &mut out);
    out
}

/// An I/O failure on `key`'s folder.
fn io_error(key: &ExecutionKey, what: &str, e: &std::io::Error) -> Error {
    Error::backend(BACKEND, format!("{what} for `{key}`"), e.to_string())
}

#[async_trait]
impl InfrastructureSynthesizer for TerraformRunner {
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
        self.plan_once(request).await
    }

    async fn apply(&self, request: &InfraRequest, plan: &InfraPlan) -> Result<Outputs> {
        self.apply_once(request, plan).await
    }

    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        TerraformRunner::logs(self, key).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roots_stay_inside_the_checkout() {
        let c = Path::new("/s/checkout");
        assert_eq!(root_dir(c, "/infra/app").unwrap(), c.join("infra/app"));
        assert_eq!(root_dir(c, "./infra").unwrap(), c.join("infra"));
        assert_eq!(root_dir(c, "/").unwrap(), c.to_path_buf());
        assert!(
            root_dir(c, "infra/../../x")
                .unwrap_err()
                .contains("no `..`")
        );
    }
}

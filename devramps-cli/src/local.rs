//! The backends of `devramps run`, `status` and the operations: one machine's durable store,
//! the git repository, the process runners, the real clock, secrets from the environment, and
//! clear failures for the work that needs a cloud.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use devramps_core::backend::{
    Backends, BuildRequest, DynBuildRunner, DynSourceRepository, DynStepRunner, ExecutionKey,
    InfraPlan, InfraRequest, InfrastructureSynthesizer, LogEntry, Outcome, Outputs, Runner,
    SecretScope, SecretSource, StepRequest, StepRunners, TokioClock,
};
use devramps_core::expr::SecretString;
use devramps_core::{Error, Result};
use devramps_git::GitRepository;
use devramps_local::build::{
    ArtifactStore, Builds, DockerOptions, LocalArtifactStore, LocalMirror, RegistryMap, Tool,
};
use devramps_local::gate::TestGateRunner;
use devramps_local::steps::{CustomStepRunner, StepRegistry};
use devramps_local::terraform::{StateBackend, TerraformRunner};

use crate::store_url::StoreUrl;

/// What the cloud-only work says when `devramps run` meets it.
const NEEDS_AWS: &str = "the AWS backends; on this machine `devramps run` runs CUSTOM:* steps \
                         (--step-registry), DEVRAMPS:APPROVAL:TEST test gates, bakes, builds \
                         and Terraform";

/// The local backends and where their files live.
#[derive(Clone, Debug)]
pub(crate) struct Local {
    /// The bundle.
    pub(crate) backends: Backends,
    /// Where the runners keep their executions (`.devramps/state/` of the repository).
    #[allow(dead_code)]
    pub(crate) state_dir: PathBuf,
}

/// Where the commits come from, whether this machine can check them out, and where the
/// runners keep their files.
#[derive(Clone)]
pub(crate) struct Origin {
    /// The engine's source repository.
    pub(crate) source: DynSourceRepository,
    /// A local clone to check commits out of (the test gate), or why there is none.
    pub(crate) checkout: std::result::Result<Arc<GitRepository>, NoCheckout>,
    /// Where the runners keep their executions.
    pub(crate) state_dir: PathBuf,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field(
                "checkout",
                &self.checkout.as_ref().map(|r| r.path().to_owned()),
            )
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// A local git repository: the source and the checkouts, its `.devramps/state/`.
    pub(crate) fn git(repo: &Arc<GitRepository>) -> Self {
        Origin {
            source: repo.clone(),
            checkout: Ok(repo.clone()),
            state_dir: state_dir(repo),
        }
    }

    /// A source with no local clone (GitHub): what needs a checkout fails as `no_checkout`
    /// says.
    pub(crate) fn remote(
        source: DynSourceRepository,
        state_dir: PathBuf,
        no_checkout: NoCheckout,
    ) -> Self {
        Origin {
            source,
            checkout: Err(no_checkout),
            state_dir,
        }
    }
}

/// Why the steps that need a checkout of the commit (the test gate) cannot run.
#[derive(Clone, Debug)]
pub(crate) struct NoCheckout {
    /// Who cannot (`devramps serve --github`).
    pub(crate) who: String,
    /// What they need and what to do instead.
    pub(crate) why: String,
}

/// Opens the backends over the repository `repo`, the store at `store`, with the step
/// registries `registries`.
pub(crate) fn open(
    repo: &Arc<GitRepository>,
    store: &StoreUrl,
    registries: &[PathBuf],
) -> std::result::Result<Local, String> {
    open_from(&Origin::git(repo), store, registries)
}

/// Opens the backends over `origin`, the store at `store`, with the step registries
/// `registries`.
pub(crate) fn open_from(
    origin: &Origin,
    store: &StoreUrl,
    registries: &[PathBuf],
) -> std::result::Result<Local, String> {
    let state_dir = origin.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", state_dir.display()))?;
    // Keep `git status` clean: nothing under the state directory is source.
    let ignore = state_dir.join(".gitignore");
    if !ignore.exists() {
        let _ = std::fs::write(&ignore, "*\n");
    }
    let (events, lock) = crate::store_url::open(store)?;
    let steps = LocalSteps::new(&state_dir, origin.checkout.as_ref(), registries);
    let infra: Arc<dyn InfrastructureSynthesizer> = match &origin.checkout {
        Ok(repo) => Arc::new(terraform(repo, &state_dir, store)),
        Err(no) => Arc::new(NoCheckoutFor(no.clone())),
    };
    let artifacts: Arc<dyn ArtifactStore> =
        Arc::new(LocalArtifactStore::new(state_dir.join("artifacts")));
    let builds: DynBuildRunner = match &origin.checkout {
        Ok(repo) => Arc::new(Builds::local(
            repo.clone(),
            &state_dir,
            artifacts.clone(),
            docker_options()?,
        )),
        Err(no) => Arc::new(NoCheckoutFor(no.clone())),
    };
    let mirror = Arc::new(LocalMirror::new(artifacts, state_dir.join("mirror")));
    let backends = Backends::builder(Arc::new(TokioClock::new()))
        .store(events)
        .lock(lock)
        .source(origin.source.clone())
        .builds(builds)
        .resources(mirror.clone())
        .mirror(mirror)
        .infra(infra)
        .secrets(Arc::new(EnvSecrets))
        .steps(StepRunners::new().with_fallback(Arc::new(steps)))
        .build();
    Ok(Local {
        backends,
        state_dir,
    })
}

/// The environment variable naming the image builder (`docker`, `podman` or `buildah`;
/// default: the first that works here).
pub(crate) const DOCKER_TOOL_VARIABLE: &str = "DEVRAMPS_DOCKER_TOOL";

/// The environment variable naming the registry (`HOST:PORT`, plain HTTP on loopback) that
/// stands for every ECR registry the plan names, on this machine.
pub(crate) const REGISTRY_VARIABLE: &str = "DEVRAMPS_REGISTRY";

/// How images are built here: `$DEVRAMPS_DOCKER_TOOL`, and every `*.amazonaws.com` registry
/// mapped to `$DEVRAMPS_REGISTRY` when it is set.
fn docker_options() -> std::result::Result<DockerOptions, String> {
    let mut options = DockerOptions::default();
    if let Some(tool) = std::env::var(DOCKER_TOOL_VARIABLE)
        .ok()
        .filter(|t| !t.is_empty())
    {
        let tool = match tool.as_str() {
            "docker" => Tool::Docker,
            "podman" => Tool::Podman,
            "buildah" => Tool::Buildah,
            other => {
                return Err(format!(
                    "{DOCKER_TOOL_VARIABLE}=`{other}`: give docker, podman or buildah"
                ));
            }
        };
        options = options.tool(tool);
    }
    if let Some(registry) = std::env::var(REGISTRY_VARIABLE)
        .ok()
        .filter(|r| !r.is_empty())
    {
        options = options.registries(RegistryMap::new().map("*", registry).insecure(true));
    }
    Ok(options)
}

/// The environment variable naming the Terraform binary (default `terraform` on PATH; `tofu`
/// works too).
pub(crate) const TERRAFORM_VARIABLE: &str = "DEVRAMPS_TERRAFORM";

/// The Terraform runner of one machine: `$DEVRAMPS_TERRAFORM` (default `terraform`), in
/// checkouts under the state directory; the state in the organization's state bucket with the
/// AWS backends (an `AWS_ENDPOINT_URL` in the environment is where that S3 is), else in a local
/// state file under `.devramps/state/terraform/` (cli.md).
fn terraform(repo: &Arc<GitRepository>, state_dir: &Path, store: &StoreUrl) -> TerraformRunner {
    let binary = std::env::var_os(TERRAFORM_VARIABLE)
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "terraform".into());
    let backend = match store {
        StoreUrl::S3 { .. } => StateBackend::S3 {
            endpoint: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|e| !e.is_empty()),
        },
        StoreUrl::Memory | StoreUrl::Sqlite(_) => StateBackend::Local,
    };
    TerraformRunner::new(repo.clone(), state_dir)
        .binary(binary)
        .state_backend(backend)
}

/// `.devramps/state/` of the repository's work tree (or of the git directory of a bare one).
pub(crate) fn state_dir(repo: &GitRepository) -> PathBuf {
    let root = repo.path();
    let root = if root.file_name().is_some_and(|n| n == ".git") {
        root.parent().unwrap_or(root)
    } else {
        root
    };
    root.join(".devramps").join("state")
}

/// The step runners of one machine: `CUSTOM:*` steps through the step registries, test gates
/// in a checkout of the deployed commit (when there is a local clone); every other type needs
/// a cloud.
#[derive(Clone)]
pub(crate) struct LocalSteps {
    custom: Option<DynStepRunner>,
    gate: Option<DynStepRunner>,
    /// Why there is no test gate runner (no local clone).
    no_gate: Option<NoCheckout>,
}

impl fmt::Debug for LocalSteps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSteps")
            .field("custom", &self.custom.is_some())
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

impl LocalSteps {
    fn new(
        state_dir: &Path,
        checkout: std::result::Result<&Arc<GitRepository>, &NoCheckout>,
        registries: &[PathBuf],
    ) -> Self {
        let registries: Vec<StepRegistry> = registries.iter().map(StepRegistry::npm).collect();
        // Always a custom step runner, even without registries: it re-attaches to, and
        // cancels, the step processes a `run` started, from any terminal.
        let custom = CustomStepRunner::new(state_dir.join("steps"), registries);
        let (gate, no_gate): (Option<DynStepRunner>, _) = match checkout {
            Ok(repo) => (
                Some(Arc::new(TestGateRunner::new(repo.clone(), state_dir))),
                None,
            ),
            Err(no) => (None, Some(no.clone())),
        };
        LocalSteps {
            custom: Some(Arc::new(custom)),
            gate,
            no_gate,
        }
    }

    /// The runner of `step_type`, or why there is none.
    fn runner(&self, step_type: &str) -> Result<&DynStepRunner> {
        let (runner, why) = if step_type.starts_with("CUSTOM:") {
            (
                self.custom.as_ref(),
                "a step registry that offers it (--step-registry DIR)".to_owned(),
            )
        } else if step_type == "DEVRAMPS:APPROVAL:TEST" {
            if let (None, Some(no)) = (&self.gate, &self.no_gate) {
                return Err(Error::NotSupported {
                    operation: format!("`{step_type}` steps: they need {}", no.why),
                    backend: no.who.clone(),
                });
            }
            (self.gate.as_ref(), "the test gate runner".to_owned())
        } else {
            (None, NEEDS_AWS.to_owned())
        };
        runner.ok_or_else(|| Error::NotSupported {
            operation: format!("`{step_type}` steps: they need {why}"),
            backend: "`devramps run` on this machine".to_owned(),
        })
    }
}

#[async_trait]
impl Runner<StepRequest> for LocalSteps {
    async fn start(&self, request: StepRequest) -> Result<()> {
        self.runner(&request.step_type)?.start(request).await
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        // The key does not name the type: ask each runner; the one that knows it answers.
        let mut last = Error::not_found(format!("execution {key}"));
        for runner in self.custom.iter().chain(&self.gate) {
            match runner.wait(key).await {
                Err(e @ Error::NotFound { .. }) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        for runner in self.custom.iter().chain(&self.gate) {
            runner.cancel(key).await?;
        }
        Ok(())
    }

    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let mut last = Error::not_found(format!("execution {key}"));
        for runner in self.custom.iter().chain(&self.gate) {
            match runner.logs(key).await {
                Err(e @ (Error::NotFound { .. } | Error::NotSupported { .. })) => last = e,
                other => return other,
            }
        }
        Err(last)
    }
}

/// The work that needs a checkout of the commit (Terraform, builds) where there is no local
/// clone: it fails saying who cannot and why.
#[derive(Clone, Debug)]
pub(crate) struct NoCheckoutFor(pub(crate) NoCheckout);

impl NoCheckoutFor {
    fn error(&self, what: &str) -> Error {
        Error::NotSupported {
            operation: format!("{what}: it needs {}", self.0.why),
            backend: self.0.who.clone(),
        }
    }
}

#[async_trait]
impl Runner<BuildRequest> for NoCheckoutFor {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        Err(self.error(&format!("building artifact `{}`", request.artifact)))
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        Err(Error::not_found(format!("execution {key}")))
    }

    async fn cancel(&self, _key: &ExecutionKey) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl InfrastructureSynthesizer for NoCheckoutFor {
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
        Err(self.error(&format!("planning the Terraform at `{}`", request.source)))
    }

    async fn apply(&self, request: &InfraRequest, _plan: &InfraPlan) -> Result<Outputs> {
        Err(self.error(&format!("applying the Terraform at `{}`", request.source)))
    }
}

/// Secrets from the environment: `secret("NAME")` is `DEVRAMPS_SECRET_NAME`,
/// `stage_secret("NAME")` in stage `prod` is `DEVRAMPS_STAGE_SECRET_PROD_NAME` (names upper-cased,
/// other characters than letters and digits as `_`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnvSecrets;

impl EnvSecrets {
    /// The environment variable of a secret.
    pub(crate) fn variable(scope: &SecretScope, name: &str) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        match scope {
            SecretScope::Stage { stage, .. } => {
                format!("DEVRAMPS_STAGE_SECRET_{}_{}", clean(stage), clean(name))
            }
            _ => format!("DEVRAMPS_SECRET_{}", clean(name)),
        }
    }
}

#[async_trait]
impl SecretSource for EnvSecrets {
    async fn secret(&self, scope: &SecretScope, name: &str) -> Result<Option<SecretString>> {
        Ok(std::env::var(EnvSecrets::variable(scope, name))
            .ok()
            .map(SecretString::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_named_after_their_scope() {
        let stage = SecretScope::Stage {
            pipeline: "api".into(),
            stage: "prod-eu".into(),
        };
        assert_eq!(
            EnvSecrets::variable(&SecretScope::Organization, "db.password"),
            "DEVRAMPS_SECRET_DB_PASSWORD"
        );
        assert_eq!(
            EnvSecrets::variable(&stage, "token"),
            "DEVRAMPS_STAGE_SECRET_PROD_EU_TOKEN"
        );
    }
}

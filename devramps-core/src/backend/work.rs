//! The runners of the work a stage-deployment does: builds, resource validation, mirroring,
//! infrastructure and steps. Every execution carries a stable idempotency key (L20); the
//! requests and outcomes are in [`crate::exec`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::exec::{
    BuildRequest, ExecutionKey, InfraPlan, InfraRequest, LogEntry, MirrorRequest, Outcome, Outputs,
    StepRequest, ValidationRequest,
};

/// Runs executions of one role: `Runner<BuildRequest>` builds artifacts (DevRamps' build
/// VMs), `Runner<StepRequest>` runs steps of one or more types. One trait for every role, so a
/// wrapper (retries, metrics) is written once; [`DynBuildRunner`] and [`DynStepRunner`] name
/// the shared forms the [`Backends`](super::Backends) hold.
///
/// # Contract
///
/// - `start` begins the execution of `request.key()`; starting a key that was started before
///   does not start it again (it re-attaches).
/// - `wait(key)` completes when that execution ends, with its [`Outcome`]; it may be called
///   again (after a restart) and returns the same outcome. An unknown key fails with
///   [`Error::NotFound`].
/// - `cancel(key)` asks a running execution to stop; `wait` then returns `Failed` (or the
///   outcome it reached first). Cancelling an ended or unknown execution does nothing.
#[async_trait]
pub trait Runner<R: Send + Sync + 'static>: Send + Sync + Debug + 'static {
    /// Starts (or re-attaches to) an execution.
    async fn start(&self, request: R) -> Result<()>;
    /// Waits for an execution's end.
    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome>;
    /// Asks an execution to stop.
    async fn cancel(&self, key: &ExecutionKey) -> Result<()>;
    /// The log lines the execution wrote so far (all its invocations, in order), for people
    /// and the CLI. A runner that keeps no logs fails with [`Error::NotSupported`] (the
    /// default); an unknown key fails with [`Error::NotFound`].
    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let _ = key;
        Err(Error::not_supported(
            "execution logs",
            std::any::type_name::<Self>(),
        ))
    }
}

/// A shared step runner: a [`Runner`] of [`StepRequest`]s.
pub type DynStepRunner = Arc<dyn Runner<StepRequest>>;
/// A shared build runner: a [`Runner`] of [`BuildRequest`]s.
pub type DynBuildRunner = Arc<dyn Runner<BuildRequest>>;

/// Step runners by step type, with an optional fallback for every other type.
#[derive(Clone, Debug, Default)]
pub struct StepRunners {
    by_type: BTreeMap<String, DynStepRunner>,
    fallback: Option<DynStepRunner>,
}

impl StepRunners {
    /// An empty registry: every step type is unsupported.
    pub fn new() -> Self {
        StepRunners::default()
    }

    /// Registers the runner of `step_type`.
    pub fn with(mut self, step_type: impl Into<String>, runner: DynStepRunner) -> Self {
        self.by_type.insert(step_type.into(), runner);
        self
    }

    /// Registers the runner of every type without its own.
    pub fn with_fallback(mut self, runner: DynStepRunner) -> Self {
        self.fallback = Some(runner);
        self
    }

    /// Every registered runner (each once), for operations that concern any of them.
    pub fn all(&self) -> Vec<&DynStepRunner> {
        let mut out: Vec<&DynStepRunner> = Vec::new();
        for runner in self.by_type.values().chain(self.fallback.as_ref()) {
            if !out.iter().any(|r| Arc::ptr_eq(r, runner)) {
                out.push(runner);
            }
        }
        out
    }

    /// The runner of `step_type`, or [`Error::NotSupported`].
    pub fn get(&self, step_type: &str) -> Result<&DynStepRunner> {
        self.by_type
            .get(step_type)
            .or(self.fallback.as_ref())
            .ok_or_else(|| Error::NotSupported {
                operation: format!("steps of type `{step_type}`"),
                backend: "step runner registry".to_owned(),
            })
    }
}

/// Resource validation (phase 2 of L4): the stage's registries and buckets exist.
///
/// # Contract
///
/// `validate` returns every missing or inaccessible resource of the request at once, each
/// described for a person (what, where, and what to do), empty when all exist; errors are for
/// failures to look (the engine retries [`Error::Unavailable`]). It changes nothing.
#[async_trait]
pub trait ResourceValidator: Send + Sync + Debug + 'static {
    /// The resources of the request missing in the stage.
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>>;
}

/// Artifact mirroring (phase 3 of L4).
///
/// # Contract
///
/// `mirror` makes the destination hold the artifact; mirroring what is already there
/// succeeds without copying (so a rollback's re-check is cheap).
#[async_trait]
pub trait ArtifactMirror: Send + Sync + Debug + 'static {
    /// Copies one artifact into a stage.
    async fn mirror(&self, request: &MirrorRequest) -> Result<()>;
}

/// Infrastructure synthesis (phase 4 of L4): plan, then apply.
///
/// # Contract
///
/// `plan` has no effect on the infrastructure; `apply(plan)` applies exactly that plan and
/// returns the Terraform outputs. Both are idempotent per request key.
#[async_trait]
pub trait InfrastructureSynthesizer: Send + Sync + Debug + 'static {
    /// Plans the changes.
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan>;
    /// Applies a plan; returns the outputs.
    async fn apply(&self, request: &InfraRequest, plan: &InfraPlan) -> Result<Outputs>;
    /// The log lines of the plans and applies of `key` so far, for people and the CLI. A
    /// synthesizer that keeps no logs fails with [`Error::NotSupported`] (the default); an
    /// unknown key fails with [`Error::NotFound`].
    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        let _ = key;
        Err(Error::not_supported(
            "infrastructure logs",
            std::any::type_name::<Self>(),
        ))
    }
}

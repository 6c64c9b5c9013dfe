//! Contracts of the backends the engine runs against. Each trait is small, dyn-compatible
//! (`Arc<dyn Trait>`), documents its `# Contract`, and has an in-memory implementation in
//! `devramps-memory`. [`Backends`] bundles one of each, made with [`Backends::builder`].

mod alarm;
mod bundle;
mod clock;
mod forward;
mod lock;
mod secret;
mod source;
mod store;
#[cfg(feature = "tokio")]
mod tokio_clock;
mod work;

use std::sync::Arc;

pub use crate::exec::{
    BuildRequest, ChangeAction, ExecutionKey, ImageRef, InfraPlan, InfraRequest, LogEntry,
    MirrorRequest, Outcome, Outputs, Polling, ResourceChange, StageArtifact, StageTarget,
    StepRequest, TerraformState, Unit, ValidationRequest,
};
pub use alarm::{AlarmChange, AlarmId, AlarmSource, DynAlarmSource};
pub use bundle::BackendsBuilder;
pub use clock::{Clock, DynClock};
pub use lock::{DeploymentLock, DynDeploymentLock, Lease};
pub use secret::{DynSecretSource, SecretScope, SecretSource};
pub use source::{DirEntry, DynSourceRepository, SourceRepository, SourceRepositoryExt};
pub use store::{AppendOptions, DynEventStore, EventStore, EventStoreExt, Snapshot, StoredEvent};
#[cfg(feature = "tokio")]
pub use tokio_clock::TokioClock;
pub use work::{
    ArtifactMirror, DynBuildRunner, DynStepRunner, InfrastructureSynthesizer, ResourceValidator,
    Runner, StepRunners,
};

/// One of each backend. Build it with [`Backends::builder`]: every piece not given fails with
/// [`Error::NotSupported`](crate::Error::NotSupported) when used, so nothing is faked by
/// accident.
///
/// The fields are public for now so that existing callers can replace a piece with
/// struct-update syntax; prefer the builder.
#[derive(Clone, Debug)]
pub struct Backends {
    /// The event log.
    pub store: DynEventStore,
    /// Leases.
    pub lock: DynDeploymentLock,
    /// Repository access (definitions and changed paths).
    pub source: DynSourceRepository,
    /// Artifact builds.
    pub builds: DynBuildRunner,
    /// Resource validation.
    pub resources: Arc<dyn ResourceValidator>,
    /// Artifact mirroring.
    pub mirror: Arc<dyn ArtifactMirror>,
    /// Terraform.
    pub infra: Arc<dyn InfrastructureSynthesizer>,
    /// Step runners by type.
    pub steps: StepRunners,
    /// Secrets.
    pub secrets: DynSecretSource,
    /// Time.
    pub clock: DynClock,
    /// Alarm state changes (L15).
    pub alarms: DynAlarmSource,
}

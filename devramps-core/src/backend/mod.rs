//! Contracts of the backends the engine runs against. Each trait is small, dyn-compatible
//! (`Arc<dyn Trait>`), documents its `# Contract`, and has an in-memory implementation in
//! `devramps-memory`. [`Backends`] bundles one of each.

mod alarm;
mod clock;
mod lock;
mod notify;
mod secret;
mod source;
mod store;
mod work;

use std::sync::Arc;

pub use crate::exec::{
    BuildRequest, ExecutionKey, InfraPlan, InfraRequest, MirrorRequest, Outcome, Outputs,
    StageTarget, StepRequest, Unit,
};
pub use alarm::{AlarmChange, AlarmId, AlarmSource, DynAlarmSource};
pub use clock::{Clock, DynClock};
pub use lock::{DeploymentLock, DynDeploymentLock, Lease};
pub use notify::{DynNotifier, Notification, Notifier};
pub use secret::{DynSecretSource, SecretScope, SecretSource};
pub use source::{DirEntry, DynSourceRepository, SourceRepository, SourceRepositoryExt};
pub use store::{AppendOptions, DynEventStore, EventStore, EventStoreExt, Snapshot, StoredEvent};
pub use work::{
    ArtifactMirror, BuildRunner, DynBuildRunner, DynStepRunner, InfrastructureSynthesizer,
    ResourceValidator, Runner, StepRunner, StepRunners,
};

/// One of each backend. Replace a piece with struct-update syntax:
/// `Backends { store: my_store, ..devramps_memory::backends().0 }`.
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
    /// Notifications.
    pub notifier: DynNotifier,
    /// Alarm state changes (L15).
    pub alarms: DynAlarmSource,
}

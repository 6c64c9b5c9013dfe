//! [`Backends::builder`]: a bundle built on purpose. Every piece not given is [`Unsupported`]:
//! it fails loudly, with [`Error::NotSupported`], the first time it is used, instead of
//! quietly doing nothing.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{
    AlarmChange, AlarmId, AlarmSource, ArtifactMirror, Backends, BuildRequest, DeploymentLock,
    DirEntry, DynAlarmSource, DynBuildRunner, DynClock, DynDeploymentLock, DynEventStore,
    DynSecretSource, DynSourceRepository, EventStore, ExecutionKey, InfraPlan, InfraRequest,
    InfrastructureSynthesizer, Lease, MirrorRequest, Outcome, Outputs, ResourceValidator, Runner,
    SecretScope, SecretSource, SourceRepository, StepRunners, StoredEvent, ValidationRequest,
};
use crate::error::{Error, Result};
use crate::exec::AlarmState;
use crate::expr::SecretString;

impl Backends {
    /// Starts a bundle on `clock`; give each other piece with the builder's methods, then
    /// [`build`](BackendsBuilder::build). Every piece not given fails with
    /// [`Error::NotSupported`] when used (steps of a type with no runner too), so a bundle
    /// never fakes what it was not given.
    ///
    /// The clock is the one piece required up front: time cannot fail loudly (`now` returns a
    /// timestamp, not a result).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use async_trait::async_trait;
    /// # use devramps_core::backend::{Backends, Clock, EventStore, AppendOptions};
    /// # use jiff::Timestamp;
    /// # #[derive(Debug)] struct Frozen;
    /// # #[async_trait] impl Clock for Frozen {
    /// #     fn now(&self) -> Timestamp { Timestamp::UNIX_EPOCH }
    /// #     async fn sleep_until(&self, _: Timestamp) {}
    /// # }
    /// let backends = Backends::builder(Arc::new(Frozen)).build();
    /// let append = backends.store.append("api", 0, vec![], AppendOptions::default());
    /// let error = futures::executor::block_on(append).unwrap_err();
    /// assert!(error.to_string().contains("does not support"), "{error}");
    /// ```
    pub fn builder(clock: DynClock) -> BackendsBuilder {
        BackendsBuilder {
            backends: Backends {
                store: Arc::new(Unsupported::new("event store")),
                lock: Arc::new(Unsupported::new("lease service")),
                source: Arc::new(Unsupported::new("source repository")),
                builds: Arc::new(Unsupported::new("build runner")),
                resources: Arc::new(Unsupported::new("resource validator")),
                mirror: Arc::new(Unsupported::new("artifact mirror")),
                infra: Arc::new(Unsupported::new("infrastructure synthesizer")),
                steps: StepRunners::new(),
                secrets: Arc::new(Unsupported::new("secret source")),
                clock,
                alarms: Arc::new(Unsupported::new("alarm source")),
            },
        }
    }
}

/// Builds a [`Backends`]: see [`Backends::builder`].
#[derive(Clone, Debug)]
#[must_use = "call `build` to get the bundle"]
pub struct BackendsBuilder {
    backends: Backends,
}

impl BackendsBuilder {
    /// The event log.
    pub fn store(mut self, store: DynEventStore) -> Self {
        self.backends.store = store;
        self
    }

    /// Leases.
    pub fn lock(mut self, lock: DynDeploymentLock) -> Self {
        self.backends.lock = lock;
        self
    }

    /// Repository access.
    pub fn source(mut self, source: DynSourceRepository) -> Self {
        self.backends.source = source;
        self
    }

    /// Artifact builds.
    pub fn builds(mut self, builds: DynBuildRunner) -> Self {
        self.backends.builds = builds;
        self
    }

    /// Resource validation.
    pub fn resources(mut self, resources: Arc<dyn ResourceValidator>) -> Self {
        self.backends.resources = resources;
        self
    }

    /// Artifact mirroring.
    pub fn mirror(mut self, mirror: Arc<dyn ArtifactMirror>) -> Self {
        self.backends.mirror = mirror;
        self
    }

    /// Terraform.
    pub fn infra(mut self, infra: Arc<dyn InfrastructureSynthesizer>) -> Self {
        self.backends.infra = infra;
        self
    }

    /// Step runners by type (a type without a runner fails with [`Error::NotSupported`]).
    pub fn steps(mut self, steps: StepRunners) -> Self {
        self.backends.steps = steps;
        self
    }

    /// Secrets.
    pub fn secrets(mut self, secrets: DynSecretSource) -> Self {
        self.backends.secrets = secrets;
        self
    }

    /// Time (replaces the clock given to [`Backends::builder`]).
    pub fn clock(mut self, clock: DynClock) -> Self {
        self.backends.clock = clock;
        self
    }

    /// Alarm state changes (L15).
    pub fn alarms(mut self, alarms: DynAlarmSource) -> Self {
        self.backends.alarms = alarms;
        self
    }

    /// The bundle.
    pub fn build(self) -> Backends {
        self.backends
    }
}

/// The piece of a [`Backends`] nobody gave to the builder, for every contract: each call
/// fails with [`Error::NotSupported`] naming the operation and the missing piece.
///
/// The one method that cannot fail, [`AlarmSource::subscribe`], answers what is true of a
/// missing alarm source: a stream that never yields (no alarm ever changes); reading an
/// alarm's state fails. The clock has no unsupported form: [`Backends::builder`] requires it.
#[derive(Clone, Debug)]
pub(crate) struct Unsupported {
    piece: &'static str,
}

impl Unsupported {
    pub(crate) fn new(piece: &'static str) -> Self {
        Unsupported { piece }
    }

    fn fail<T>(&self, operation: &str) -> Result<T> {
        Err(Error::NotSupported {
            operation: operation.to_owned(),
            backend: format!(
                "the bundle: no {} was given to `Backends::builder`",
                self.piece
            ),
        })
    }
}

#[async_trait]
impl EventStore for Unsupported {
    async fn append(
        &self,
        stream: &str,
        _: u64,
        _: Vec<serde_json::Value>,
        _: super::AppendOptions,
    ) -> Result<u64> {
        self.fail(&format!("appending to `{stream}`"))
    }
    async fn read(&self, stream: &str, _: u64, _: Option<usize>) -> Result<Vec<StoredEvent>> {
        self.fail(&format!("reading `{stream}`"))
    }
    async fn last_seq(&self, stream: &str) -> Result<u64> {
        self.fail(&format!("reading the end of `{stream}`"))
    }
    async fn streams(&self) -> Result<Vec<String>> {
        self.fail("listing streams")
    }
}

#[async_trait]
impl DeploymentLock for Unsupported {
    async fn acquire(
        &self,
        key: &str,
        _: &str,
        _: std::time::Duration,
        _: jiff::Timestamp,
    ) -> Result<Option<Lease>> {
        self.fail(&format!("acquiring the lease of `{key}`"))
    }
    async fn renew(
        &self,
        lease: &Lease,
        _: std::time::Duration,
        _: jiff::Timestamp,
    ) -> Result<Lease> {
        self.fail(&format!("renewing the lease of `{}`", lease.key))
    }
    async fn release(&self, lease: &Lease) -> Result<()> {
        self.fail(&format!("releasing the lease of `{}`", lease.key))
    }
    async fn current(&self, key: &str, _: jiff::Timestamp) -> Result<Option<Lease>> {
        self.fail(&format!("reading the lease of `{key}`"))
    }
}

#[async_trait]
impl SourceRepository for Unsupported {
    async fn resolve(&self, rev: &str) -> Result<String> {
        self.fail(&format!("resolving `{rev}`"))
    }
    async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        self.fail(&format!("reading `{path}` at `{commit}`"))
    }
    async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        self.fail(&format!(
            "listing the paths changed from `{from}` to `{to}`"
        ))
    }
    async fn first_parent(&self, commit: &str) -> Result<Option<String>> {
        self.fail(&format!("reading the parent of `{commit}`"))
    }
    async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>> {
        self.fail(&format!("listing `{path}` at `{commit}`"))
    }
}

#[async_trait]
impl Runner<BuildRequest> for Unsupported {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        self.fail(&format!("starting `{}`", request.key))
    }
    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        self.fail(&format!("waiting for `{key}`"))
    }
    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        self.fail(&format!("cancelling `{key}`"))
    }
}

#[async_trait]
impl ResourceValidator for Unsupported {
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
        self.fail(&format!(
            "validating the resources of stage `{}`",
            request.target.stage
        ))
    }
}

#[async_trait]
impl ArtifactMirror for Unsupported {
    async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
        let stage = &request.target.stage;
        self.fail(&format!(
            "mirroring `{}` into stage `{stage}`",
            request.artifact
        ))
    }
}

#[async_trait]
impl InfrastructureSynthesizer for Unsupported {
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
        self.fail(&format!("planning `{}`", request.key))
    }
    async fn apply(&self, request: &InfraRequest, _: &InfraPlan) -> Result<Outputs> {
        self.fail(&format!("applying `{}`", request.key))
    }
}

#[async_trait]
impl SecretSource for Unsupported {
    async fn secret(&self, _: &SecretScope, name: &str) -> Result<Option<SecretString>> {
        self.fail(&format!("reading the secret `{name}`"))
    }
}

#[async_trait]
impl AlarmSource for Unsupported {
    fn subscribe(&self) -> BoxStream<'static, AlarmChange> {
        Box::pin(futures::stream::pending())
    }
    async fn state(&self, alarm: &AlarmId) -> Result<Option<AlarmState>> {
        self.fail(&format!("reading the alarm `{}`", alarm.name))
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::backend::{AppendOptions, Clock, SecretSource};

    #[derive(Debug)]
    struct Frozen;

    #[async_trait]
    impl Clock for Frozen {
        fn now(&self) -> jiff::Timestamp {
            jiff::Timestamp::UNIX_EPOCH
        }
        async fn sleep_until(&self, _: jiff::Timestamp) {}
    }

    fn not_supported<T: std::fmt::Debug>(result: Result<T>, piece: &str) {
        match result {
            Err(Error::NotSupported { backend, .. }) => {
                assert!(backend.contains(piece), "{backend} names {piece}")
            }
            other => panic!("expected NotSupported naming {piece}, got {other:?}"),
        }
    }

    #[test]
    fn every_piece_not_given_fails_loudly() {
        let b = Backends::builder(Arc::new(Frozen)).build();
        let key = ExecutionKey {
            pipeline: "api".into(),
            revision: 1,
            stage: "prod".into(),
            attempt: 1,
            unit: crate::exec::Unit::step("deploy"),
        };
        block_on(async {
            let append = b.store.append("api", 0, vec![], AppendOptions::default());
            not_supported(append.await, "event store");
            not_supported(b.store.streams().await, "event store");
            let ttl = std::time::Duration::from_secs(1);
            let now = b.clock.now();
            not_supported(b.lock.acquire("k", "h", ttl, now).await, "lease service");
            not_supported(b.source.resolve("HEAD").await, "source repository");
            not_supported(b.builds.wait(&key).await, "build runner");
            not_supported(b.steps.get("CUSTOM:X").map(|_| ()), "");
            let scope = SecretScope::Organization;
            not_supported(b.secrets.secret(&scope, "X").await, "secret source");
            let alarm = AlarmId {
                name: "a".into(),
                account_id: "1".into(),
                region: "r".into(),
            };
            not_supported(b.alarms.state(&alarm).await, "alarm source");
        });
    }

    #[test]
    fn given_pieces_replace_the_unsupported_ones() {
        #[derive(Debug)]
        struct Empty;
        #[async_trait]
        impl SecretSource for Empty {
            async fn secret(&self, _: &SecretScope, _: &str) -> Result<Option<SecretString>> {
                Ok(None)
            }
        }
        let b = Backends::builder(Arc::new(Frozen))
            .secrets(Arc::new(Empty))
            .build();
        let found = block_on(b.secrets.secret(&SecretScope::Organization, "X"));
        assert!(matches!(found, Ok(None)), "{found:?}");
        assert_eq!(b.clock.now(), jiff::Timestamp::UNIX_EPOCH);
    }
}

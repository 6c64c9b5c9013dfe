//! How the conformance kit sets up each in-memory backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::backend::{
    AppendOptions, BuildRequest, DynDeploymentLock, DynEventStore, EventStore, MirrorRequest,
    StageTarget, StepRequest, StoredEvent,
};
use devramps_core::expr::{ArtifactLocation, FinalValue};
use devramps_core::pipeline::ArtifactType;
use devramps_core::testkit::runner::SLOW;
use devramps_core::testkit::source::HISTORY;
use devramps_core::testkit::{
    AlarmFixture, Capabilities, EngineFixture, Harness, MirrorFixture, RunnerFixture, Runtime,
    SourceFixture, Time,
};
use devramps_core::{Error, Result};
use devramps_memory::{
    Behavior, DEFAULT_START, FaultOptions, FaultyStore, InMemoryAlarms, InMemoryEventStore,
    InMemoryLock, InMemoryMirror, InMemorySource, ManualClock, Match, ScriptedBuildRunner,
    scripted_backends,
};

/// A backend made by `make`, run on tokio; cleanup sleeps on tokio's timer (so the runtime
/// must be the kit's tokio runtime) and counts itself.
pub(crate) struct OnTokio<B> {
    make: fn() -> B,
    /// How many cleanups ran.
    pub(crate) cleaned: Arc<AtomicUsize>,
}

impl<B> OnTokio<B> {
    fn new(make: fn() -> B) -> Self {
        OnTokio {
            make,
            cleaned: Arc::default(),
        }
    }
}

impl OnTokio<DynEventStore> {
    pub(crate) fn store() -> Self {
        OnTokio::new(|| Arc::new(InMemoryEventStore::new()))
    }
}

impl OnTokio<DynDeploymentLock> {
    pub(crate) fn lock() -> Self {
        OnTokio::new(|| Arc::new(InMemoryLock::new()))
    }
}

impl OnTokio<EngineFixture> {
    pub(crate) fn engine() -> Self {
        OnTokio::new(|| engine(0))
    }
}

impl<B> Harness for OnTokio<B> {
    type Backend = B;

    fn runtime(&self) -> Runtime {
        Runtime::Tokio
    }

    async fn setup(&self) -> B {
        tokio::task::yield_now().await;
        (self.make)()
    }

    async fn cleanup(&self, backend: B) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(backend);
        self.cleaned.fetch_add(1, Ordering::SeqCst);
    }
}

/// A store that cannot fence nor list its streams, and says so.
#[derive(Debug, Default)]
pub(crate) struct NoFencingNoListing(InMemoryEventStore);

fn not_supported<T>(operation: &str) -> Result<T> {
    Err(Error::NotSupported {
        operation: operation.to_owned(),
        backend: "a store without fencing or listing".to_owned(),
    })
}

#[async_trait]
impl EventStore for NoFencingNoListing {
    async fn append(
        &self,
        stream: &str,
        expected_last: u64,
        events: Vec<serde_json::Value>,
        options: AppendOptions,
    ) -> Result<u64> {
        if options.fencing_token.is_some() {
            return not_supported("fencing tokens");
        }
        self.0.append(stream, expected_last, events, options).await
    }

    async fn read(
        &self,
        stream: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        self.0.read(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &str) -> Result<u64> {
        self.0.last_seq(stream).await
    }

    async fn streams(&self) -> Result<Vec<String>> {
        not_supported("listing streams")
    }
}

/// [`NoFencingNoListing`] with the capabilities it has.
pub(crate) struct Limited;

impl Harness for Limited {
    type Backend = NoFencingNoListing;

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
            .with_fencing(false)
            .with_list_streams(false)
    }

    async fn setup(&self) -> NoFencingNoListing {
        NoFencingNoListing::default()
    }
}

/// [`HISTORY`] in an [`InMemorySource`], with 40-hex-digit commit ids.
pub(crate) fn source() -> SourceFixture {
    let repo = InMemorySource::new();
    let commits: Vec<String> = (1..=HISTORY.len()).map(|i| format!("{i:040x}")).collect();
    for (commit, id) in HISTORY.iter().zip(&commits) {
        let parent = commit.parent.map(|p| commits[p].as_str());
        repo.commit(id, parent, commit.files.iter().copied());
    }
    SourceFixture {
        repo: Arc::new(repo),
        commits,
    }
}

fn manual(clock: ManualClock) -> Time {
    Time::manual(move || clock.advance_to_next_deadline().is_some())
}

/// The fallback step runner of [`scripted_backends`], with `slow` steps hanging.
pub(crate) fn step_runner() -> RunnerFixture<StepRequest> {
    let (bundle, handles) = scripted_backends();
    handles.steps.script(Match::step(SLOW), Behavior::hang());
    let runner = match bundle.steps.get("CUSTOM:CONFORMANCE") {
        Ok(runner) => runner.clone(),
        Err(e) => panic!("the scripted bundle runs every step type: {e}"),
    };
    RunnerFixture {
        runner,
        request: Box::new(|key| {
            StepRequest::new(
                key,
                "CUSTOM:CONFORMANCE",
                FinalValue::Plain(serde_json::json!({})),
            )
        }),
        time: manual(handles.clock),
    }
}

/// A scripted build runner on its own manual clock, with `slow` builds hanging.
pub(crate) fn build_runner() -> RunnerFixture<BuildRequest> {
    let clock = ManualClock::new(DEFAULT_START);
    let runner = ScriptedBuildRunner::new("conformance builds", Arc::new(clock.clone()));
    runner.script(Match::step(SLOW), Behavior::hang());
    RunnerFixture {
        runner: Arc::new(runner),
        request: Box::new(|key| {
            BuildRequest::new(
                key,
                "image",
                ArtifactType::DockerBuild,
                "c1",
                FinalValue::Plain(serde_json::json!({})),
            )
        }),
        time: manual(clock),
    }
}

/// In-memory alarms; a change reaches subscribers at once, so no time needs to pass.
pub(crate) fn alarms() -> AlarmFixture {
    let alarms = InMemoryAlarms::new();
    let setter = alarms.clone();
    AlarmFixture {
        source: Arc::new(alarms),
        set: Box::new(move |alarm, state| {
            setter.set(alarm, state);
            Box::pin(async { Ok(()) })
        }),
        time: Time::manual(|| false),
    }
}

/// An in-memory mirror and a Docker image to copy into prod.
pub(crate) fn mirror() -> MirrorFixture {
    let mirror = InMemoryMirror::new();
    let probe = mirror.clone();
    let image_url = "222222222222.dkr.ecr.us-east-1.amazonaws.com/api:c1".to_owned();
    MirrorFixture {
        mirror: Arc::new(mirror),
        request: MirrorRequest::new(
            StageTarget::new("api", "prod", "222222222222", "us-east-1"),
            "image",
            ArtifactType::DockerBuild,
            "c1",
            ArtifactLocation {
                image_url,
                image_tag: "c1".to_owned(),
                ..ArtifactLocation::default()
            },
        ),
        holds: Box::new(move |request| {
            let held = probe.contains(request);
            Box::pin(async move { Ok(held) })
        }),
    }
}

/// [`scripted_backends`], its store behind a [`FaultyStore`] yielding `latency_yields` times
/// per call (none: the store as is).
pub(crate) fn engine(latency_yields: u32) -> EngineFixture {
    let (mut backends, handles) = scripted_backends();
    if latency_yields > 0 {
        let options = FaultOptions {
            latency_yields,
            ..FaultOptions::default()
        };
        backends.store = Arc::new(FaultyStore::new(handles.store.clone(), options));
    }
    EngineFixture {
        backends,
        time: manual(handles.clock),
    }
}

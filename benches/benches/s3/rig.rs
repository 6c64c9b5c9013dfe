//! What the S3 benchmark's parts share: moto's endpoint, fresh buckets, a client whose
//! requests are counted by kind, an observer counting the engine's appends, and engines on
//! the scripted backends with the state on S3.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::backend::Backends;
use devramps_core::engine::{Appended, Engine, EngineConfig, Observer};
use devramps_core::lifecycle::{Event, StageState};
use devramps_core::pipeline::{PIPELINE_DIR, PIPELINE_FILE};
use devramps_memory::{Behavior, MemoryHandles, scripted_backends};

/// Said when moto is not configured.
pub(crate) const HOW_TO_RUN: &str = "\
the s3 benchmark needs an S3 API (moto): run it with
    scripts/bench-s3            # installs and starts moto like scripts/test, then runs it
    scripts/bench-s3 --quick    # criterion's quick mode
or start moto yourself and set
    AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
    AWS_REGION=us-east-1 cargo bench -p devramps-benches --bench s3";

/// moto's endpoint, from `AWS_ENDPOINT_URL`; panics with [`HOW_TO_RUN`] when it is unset.
pub(crate) fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("AWS_ENDPOINT_URL is not set: {HOW_TO_RUN}"),
    }
}

/// S3 requests by kind: `"<GET|PUT|LIST|HEAD|...> <log|snapshot|lease>"`, each attempt counted
/// (the store's own retries included), as the SDK sends them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Requests(Arc<Mutex<BTreeMap<String, u64>>>);

impl Requests {
    /// The counts since the last call, and starts again from zero.
    pub(crate) fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "benchmark request counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request();
        let uri = request.uri();
        let method = request.method();
        // Path-style: a LIST is a GET of the bucket with `list-type=2`.
        let kind = if method == "GET" && uri.contains("list-type=2") {
            "LIST"
        } else {
            method
        };
        let object = if uri.contains("/leases/") {
            "lease"
        } else if uri.contains("snapshot.json") {
            "snapshot"
        } else {
            "log"
        };
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(format!("{kind} {object}"))
            .or_default() += 1;
        Ok(())
    }
}

/// `counts` as `12 (LIST log 6, PUT log 6)`.
pub(crate) fn describe(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// A client on moto (path-style), counting its requests in `requests` when given.
pub(crate) async fn client(requests: Option<Requests>) -> aws_sdk_s3::Client {
    endpoint();
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true);
    if let Some(requests) = requests {
        config = config.interceptor(requests);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A location under `prefix` in a bucket of its own, reached by a client counting in
/// `requests` when given.
pub(crate) async fn fresh_location(prefix: &str, requests: Option<Requests>) -> S3Location {
    static N: AtomicUsize = AtomicUsize::new(0);
    let bucket = format!(
        "devramps-bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let client = client(requests).await;
    if let Err(e) = client.create_bucket().bucket(&bucket).send().await {
        panic!(
            "could not create bucket `{bucket}` on {}: {}\n{HOW_TO_RUN}",
            endpoint(),
            aws_sdk_s3::error::DisplayErrorContext(&e)
        );
    }
    S3Location::new(client, bucket, prefix)
}

/// Counts an engine's appends that wrote records (fence appends write none and are not
/// observed), their records, and the stage-deployments that succeeded.
#[derive(Debug, Default)]
pub(crate) struct AppendCounter {
    appends: AtomicU64,
    records: AtomicU64,
    succeeded: AtomicU64,
    /// `(first seq, records)` of each append, in order.
    batches: Mutex<Vec<(u64, usize)>>,
}

impl AppendCounter {
    /// Appends so far.
    pub(crate) fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// Records so far.
    pub(crate) fn records(&self) -> u64 {
        self.records.load(Ordering::SeqCst)
    }

    /// Stage-deployments that succeeded so far.
    pub(crate) fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::SeqCst)
    }

    /// The sizes of the appends so far, in order.
    pub(crate) fn batch_sizes(&self) -> Vec<usize> {
        let batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = 1;
        for &(first, n) in batches.iter() {
            assert_eq!(first, next, "the observed appends follow each other");
            next = first + n as u64;
        }
        batches.iter().map(|&(_, n)| n).collect()
    }
}

impl Observer for AppendCounter {
    fn appended(&self, append: &Appended<'_>) {
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.records
            .fetch_add(append.records.len() as u64, Ordering::SeqCst);
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((append.first_seq, append.records.len()));
        let done = append.records.iter().filter(|r| {
            matches!(
                r.event,
                Event::StageState {
                    state: StageState::Succeeded,
                    ..
                }
            )
        });
        self.succeeded
            .fetch_add(done.count() as u64, Ordering::SeqCst);
    }
}

/// Waits (without asking the engine, which would read the store) until `done` holds; panics
/// after a minute.
pub(crate) async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: not done after a minute"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The path of a pipeline's definition in the repository.
pub(crate) fn definition_path(slug: &str) -> String {
    format!("/{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}")
}

/// An engine (instance `instance`) on the scripted backends with its steps doing `steps`, its
/// event log and leases at `location`, counting its appends in `counter`; its driver runs on
/// the current tokio runtime. `setup` adds commits before it starts.
pub(crate) fn s3_engine(
    instance: &str,
    location: &S3Location,
    steps: Behavior,
    counter: Arc<AppendCounter>,
    setup: impl FnOnce(&MemoryHandles),
) -> (Engine, tokio::task::JoinHandle<()>) {
    let (bundle, handles) = scripted_backends();
    handles.steps.set_default(steps);
    setup(&handles);
    let backends = Backends {
        store: Arc::new(S3EventStore::new(location.clone())),
        lock: Arc::new(S3Lock::new(location.clone())),
        ..bundle
    };
    let config = EngineConfig::new(instance).with_observer(counter);
    let (engine, driver) = Engine::new(backends, config);
    let driving = tokio::spawn(async move {
        driver.run().await.expect("the engine runs");
    });
    (engine, driving)
}

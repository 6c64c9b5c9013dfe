//! `devramps serve` (issue 15, performance): webhook ingest against a bare axum handler, and
//! `GET` of a pipeline's state with 10,000 revisions in its history; real HTTP on 127.0.0.1.
//!
//! - Ingest: `POST /webhooks/github` (size check, HMAC verification, parse, the push recorded
//!   in the durable local store with fsync, 202) from 64 concurrent keep-alive connections,
//!   first each sending its next delivery as soon as the last is answered (the most the server
//!   takes: with 64 deliveries always waiting, latency is 64 / throughput), then at 1,000
//!   deliveries/s offered on a schedule (the latency at the goal's load, counted from the
//!   planned send time, so a server that falls behind pays for it); each
//!   delivery has a new id and pushes the commit already deployed, so each is one durable
//!   append (`push_ignored`) and nothing else. The same load against a bare axum handler that
//!   reads the body and answers 202 gives the floor of HTTP and the client on this machine.
//! - State: `GET /api/v1/pipelines/app` over an engine whose pipeline has 10,000 revisions
//!   (in-memory store: the state is in the engine's memory either way), one request at a time:
//!   with the log unchanged between requests (the answer kept by the server), and with a push
//!   of a new commit before each request (a new deployment), so that each answer is new.
//!
//! Run with `cargo bench -p devramps-benches --bench serve`; `cargo test --benches` runs it once
//! at 1/10 of the sizes. Summary lines (`serve: ...`) give deliveries/s and p99 for both
//! handlers and the state's p50 and p99 in both cases, measured over fixed runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use criterion::{Criterion, criterion_group};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_github::webhook::sign;
use devramps_local::store::LocalStore;
use devramps_memory::scripted_backends;
use devramps_serve::{ServeConfig, router};
use futures::future::join_all;

/// Concurrent connections of the ingest load.
const CONNECTIONS: usize = 64;
/// Deliveries per connection in a measuring run.
const PER_CONNECTION: usize = 40;
/// Revisions in the history of the state benchmark, in a measuring run.
const REVISIONS: u64 = 10_000;
/// The rate offered in the open-loop run (the goal's).
const OFFERED: f64 = 1_000.0;
/// GETs of the state summary, in a measuring run.
const GETS: usize = 200;

const SECRET: &str = "bench-secret";
const SHA: &str = "1111111111111111111111111111111111111111";
const PIPELINE: &str = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
    pipeline_updates_require_approval: NEVER\n  stages:\n    \
    - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n    \
    - { name: prod, account_id: \"222222222222\", region: us-east-1 }\n  steps:\n    \
    - { name: Bake, id: bake, type: \"DEVRAMPS:APPROVAL:BAKE\", params: { duration_minutes: 30 } }\n  \
    artifacts: {}\n";

static FULL: AtomicBool = AtomicBool::new(false);

fn scaled(n: usize) -> usize {
    if FULL.load(Ordering::Relaxed) {
        n
    } else {
        (n / 10).max(1)
    }
}

async fn listen(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The server with the durable local store, after a first push that deployed `SHA`.
async fn ingest_server(dir: &std::path::Path) -> SocketAddr {
    let (mut backends, handles) = scripted_backends();
    let store = LocalStore::open(dir.join("state.db")).expect("store");
    backends.store = Arc::new(store.clone());
    backends.lock = Arc::new(store);
    handles
        .source
        .commit(SHA, None, [(".devramps/app/pipeline.yaml", PIPELINE)]);
    let (engine, driver) = Engine::new(backends.clone(), EngineConfig::new("bench"));
    tokio::spawn(driver.run());
    engine
        .push("app", PushRequest::new("main", SHA))
        .await
        .expect("first push");
    let secrets = devramps_github::webhook::WebhookSecrets::from_lines(SECRET).expect("secret");
    listen(router(
        engine,
        ServeConfig::new(&backends).with_webhook_secrets(secrets),
    ))
    .await
}

fn body() -> String {
    format!(
        r#"{{"ref": "refs/heads/main", "before": "{SHA}", "after": "{SHA}", "created": false,
            "deleted": false, "forced": false, "repository": {{"full_name": "o/app"}},
            "pusher": {{"name": "octocat"}}, "head_commit": {{"id": "{SHA}", "message": "x"}}}}"#
    )
}

/// When a delivery is sent: as soon as the connection's previous one is answered (closed
/// loop: the most the server takes), or on a schedule at a fixed rate over all connections
/// (open loop: the latency at that load, counted from the planned time so that a late send
/// counts against the server).
#[derive(Clone, Copy)]
enum Pace {
    Saturate,
    Offered(f64),
}

/// `n` deliveries per connection over `CONNECTIONS` connections: (deliveries/s, p99).
async fn load(url: &str, per_connection: usize, start: usize, pace: Pace) -> (f64, Duration) {
    let body = body();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    // Each connection is opened and used once first (not measured); all start together once
    // every one is warm, so the figures are of deliveries, not of connection setup.
    let warmed = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
    let go = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
    let start_at: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let tasks = (0..CONNECTIONS).map(|c| {
        let (url, body, signature) = (url.to_owned(), body.clone(), signature.clone());
        let (warmed, go, start_at) = (warmed.clone(), go.clone(), start_at.clone());
        tokio::spawn(async move {
            // One client per connection: its own keep-alive connection.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let send = |delivery: String| {
                client
                    .post(&url)
                    .header("x-github-event", "push")
                    .header("x-github-delivery", delivery)
                    .header("x-hub-signature-256", &signature)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
            };
            let response = send(format!("d-{start}-{c}-warm")).await.expect("answered");
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            let _ = response.bytes().await;
            warmed.wait().await;
            go.wait().await;
            let started = *start_at.get().expect("set before the start");
            let mut latencies = Vec::with_capacity(per_connection);
            for i in 0..per_connection {
                let t = match pace {
                    Pace::Saturate => Instant::now(),
                    Pace::Offered(rate) => {
                        let nth = (i * CONNECTIONS + c) as f64;
                        let planned = started + Duration::from_secs_f64(nth / rate);
                        tokio::time::sleep_until(planned.into()).await;
                        planned
                    }
                };
                let response = send(format!("d-{start}-{c}-{i}")).await.expect("answered");
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                let _ = response.bytes().await;
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let tasks: Vec<_> = tasks.collect();
    warmed.wait().await;
    let started = Instant::now();
    let _ = start_at.set(started);
    go.wait().await;
    let mut latencies: Vec<Duration> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("task"))
        .collect();
    let took = started.elapsed();
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    (latencies.len() as f64 / took.as_secs_f64(), p99)
}

/// A pipeline with `revisions` revisions in its history (in memory), served, and its engine.
async fn state_server(revisions: u64) -> (SocketAddr, Engine) {
    let (backends, handles) = scripted_backends();
    let mut parent: Option<String> = None;
    // The history, then the commits pushed between requests.
    for r in 1..=revisions + GETS as u64 {
        let id = format!("{r:040x}");
        handles.source.commit(
            &id,
            parent.as_deref(),
            [(".devramps/app/pipeline.yaml", PIPELINE)],
        );
        parent = Some(id);
    }
    let (engine, driver) = Engine::new(backends.clone(), EngineConfig::new("bench"));
    tokio::spawn(driver.run());
    for r in 1..=revisions {
        engine
            .push("app", PushRequest::new("main", format!("{r:040x}")))
            .await
            .expect("push");
    }
    let served = listen(router(engine.clone(), ServeConfig::new(&backends))).await;
    (served, engine)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let ingest = runtime.block_on(ingest_server(dir.path()));
    let bare = runtime.block_on(listen(Router::new().route(
        "/bare",
        post(|_body: axum::body::Bytes| async { StatusCode::ACCEPTED }),
    )));
    let webhook_url = format!("http://{ingest}/webhooks/github");
    let bare_url = format!("http://{bare}/bare");
    let per = scaled(PER_CONNECTION);
    for (name, url) in [
        ("bare axum 202", &bare_url),
        ("webhook ingest", &webhook_url),
    ] {
        let (rate, p99) = runtime.block_on(load(url, per, 0, Pace::Saturate));
        println!(
            "serve: {name}: {rate:.0} deliveries/s, p99 {:.1} ms ({CONNECTIONS} connections x \
             {per} deliveries, each sent when the last is answered)",
            p99.as_secs_f64() * 1000.0
        );
    }
    // At the goal's rate: 1,000 deliveries/s offered over the same 64 connections.
    for (name, url, start) in [
        ("bare axum 202", &bare_url, 1),
        ("webhook ingest", &webhook_url, 1),
    ] {
        let (rate, p99) = runtime.block_on(load(url, per, start, Pace::Offered(OFFERED)));
        println!(
            "serve: {name} at {OFFERED:.0} deliveries/s offered: {rate:.0} deliveries/s, p99 \
             {:.1} ms from the planned send ({CONNECTIONS} connections x {per} deliveries)",
            p99.as_secs_f64() * 1000.0
        );
    }

    let revisions = if FULL.load(Ordering::Relaxed) {
        REVISIONS
    } else {
        REVISIONS / 10
    };
    let built = Instant::now();
    let (state, engine) = runtime.block_on(state_server(revisions));
    let state_url = format!("http://{state}/api/v1/pipelines/app");
    let client = reqwest::Client::new();
    let get = |client: &reqwest::Client| {
        let url = state_url.clone();
        let client = client.clone();
        async move {
            client
                .get(&url)
                .send()
                .await
                .expect("GET")
                .bytes()
                .await
                .expect("body")
        }
    };
    // Checked outside the timed part: the body is the state (its deployments among it).
    let check = |body: &[u8]| {
        let deployments = b"\"deployments\":";
        assert!(
            body.starts_with(b"{\"slug\"")
                && body.windows(deployments.len()).any(|w| w == deployments),
            "a state answer"
        );
        body.len()
    };
    let built = built.elapsed();
    // The log unchanged between requests (the answer kept), then changed before each: a push
    // of a new commit (a new deployment, the one before it superseded in staging).
    for changed in [false, true] {
        let mut latencies = Vec::new();
        let mut size = 0;
        for i in 0..scaled(GETS) {
            if changed {
                let commit = format!("{:040x}", revisions + 1 + i as u64);
                runtime
                    .block_on(engine.push("app", PushRequest::new("main", commit)))
                    .expect("push");
            }
            let t = Instant::now();
            let body = runtime.block_on(get(&client));
            latencies.push(t.elapsed());
            size = check(&body);
        }
        latencies.sort();
        let p = |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)];
        let case = if changed {
            "the log changed before each"
        } else {
            "the log unchanged"
        };
        println!(
            "serve: GET state with {revisions} revisions, {case}: p50 {:.1} ms, p99 {:.1} ms \
             ({} KB, history built in {:.1} s)",
            p(50).as_secs_f64() * 1000.0,
            p(99).as_secs_f64() * 1000.0,
            size / 1024,
            built.as_secs_f64()
        );
    }

    let mut group = c.benchmark_group("serve");
    let mut round = 1_000_000;
    group.bench_function("webhook ingest: 64 concurrent deliveries", |b| {
        b.iter(|| {
            round += 1;
            runtime.block_on(load(&webhook_url, 1, round, Pace::Saturate))
        })
    });
    group.bench_function("bare axum 202: 64 concurrent requests", |b| {
        b.iter(|| runtime.block_on(load(&bare_url, 1, 0, Pace::Saturate)))
    });
    group.bench_function(format!("GET state, {revisions} revisions"), |b| {
        b.iter(|| runtime.block_on(get(&client)).len())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = devramps_benches::short_criterion();
    targets = bench
}

fn main() {
    FULL.store(devramps_benches::measuring(), Ordering::Relaxed);
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! The fault proxy under the real AWS SDK, in front of a real moto server.
//!
//! moto is found through `AWS_ENDPOINT_URL` (as `.ci/run` sets it); the tests fail, saying how to
//! start it, when that is unset.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use devramps_s3_faults::{FaultPlan, FaultProxy, FaultProxyError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// moto's endpoint, from `AWS_ENDPOINT_URL`.
fn moto() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: these tests need a moto server. Start one with\n  \
             python3 -m venv /tmp/moto-venv && /tmp/moto-venv/bin/pip install 'moto[server]'\n  \
             /tmp/moto-venv/bin/moto_server -H 127.0.0.1 -p 5055 &\n\
             then run the tests with AWS_ENDPOINT_URL=http://127.0.0.1:5055 (.ci/run does this)"
        ),
    }
}

/// An S3 client on `endpoint` as the store would build one, making at most `attempts` attempts
/// per request (retries back off from 10 ms, to keep the tests fast).
fn client(endpoint: &str, attempts: u32) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "fault-proxy-tests",
        ))
        .force_path_style(true)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A bucket name no other test (or earlier run against the same moto) uses.
fn bucket(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("faults-{test}-{}-{nanos}", std::process::id())
}

/// Creates `name` directly on moto (no faults).
async fn create_bucket(name: &str) {
    client(&moto(), 1)
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {name} on moto: {e:?}"));
}

async fn read(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{:?}", e.code()))?;
    let bytes = object.body.collect().await.map_err(|e| e.to_string())?;
    Ok(bytes.into_bytes().to_vec())
}

#[tokio::test]
async fn without_faults_everything_passes_through_and_is_counted() {
    let proxy = FaultProxy::start(&moto(), FaultPlan::passthrough()).expect("proxy starts");
    let s3 = client(proxy.endpoint(), 1);
    let name = bucket("pass");
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket through the proxy");
    s3.put_object()
        .bucket(&name)
        .key("a/1.json")
        .body(ByteStream::from_static(b"{\"n\":1}"))
        .send()
        .await
        .expect("put through the proxy");
    assert_eq!(
        read(&s3, &name, "a/1.json").await.as_deref(),
        Ok(&b"{\"n\":1}"[..])
    );
    let listed = s3
        .list_objects_v2()
        .bucket(&name)
        .prefix("a/")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1.json"]);

    // Conditional writes reach moto with their headers: the second create-only put is refused.
    let put_new = |body: &'static [u8]| {
        s3.put_object()
            .bucket(&name)
            .key("a/2.json")
            .if_none_match("*")
            .body(ByteStream::from_static(body))
            .send()
    };
    put_new(b"first").await.expect("first create-only put");
    let refused = put_new(b"second")
        .await
        .expect_err("second create-only put must be refused");
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(412),
        "{refused:?}"
    );
    assert_eq!(
        read(&s3, &name, "a/2.json").await.as_deref(),
        Ok(&b"first"[..])
    );

    let counts = proxy.counts();
    // create, put, get, list, put, put, get
    assert_eq!(counts.requests, 7, "{counts:?}");
    assert_eq!(
        (counts.method("PUT"), counts.method("GET")),
        (4, 3),
        "{counts:?}"
    );
    assert_eq!(
        (counts.forwarded, counts.faults(), counts.upstream_failures),
        (7, 0, 0)
    );
    assert!(
        counts.connections < counts.requests,
        "keep-alive reuses connections: {counts:?}"
    );
    proxy.reset_counts();
    assert_eq!(proxy.counts().requests, 0);
}

#[tokio::test]
async fn with_error_share_one_every_request_gets_a_retryable_5xx_and_nothing_is_written() {
    let name = bucket("errors");
    create_bucket(&name).await;
    let plan = FaultPlan {
        error_share: 1.0,
        seed: 11,
        ..FaultPlan::passthrough()
    };
    let proxy = FaultProxy::start(&moto(), plan).expect("proxy starts");

    let once = client(proxy.endpoint(), 1);
    let mut codes = Vec::new();
    for i in 0..30 {
        let err = once
            .put_object()
            .bucket(&name)
            .key(format!("k{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("every request fails");
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        match (status, code.as_deref()) {
            (Some(500), Some("InternalError"))
            | (Some(503), Some("SlowDown"))
            | (Some(503), Some("ServiceUnavailable")) => {}
            other => panic!("unexpected error {other:?}: {err:?}"),
        }
        codes.extend(code);
    }
    let counts = proxy.counts();
    assert_eq!((counts.requests, counts.forwarded), (30, 0), "{counts:?}");
    assert_eq!(
        counts.internal_errors + counts.slow_downs + counts.service_unavailable,
        30
    );
    assert!(
        counts.internal_errors > 0 && counts.slow_downs > 0 && counts.service_unavailable > 0,
        "all three kinds are drawn: {counts:?}"
    );
    assert_eq!(
        counts.internal_errors,
        codes.iter().filter(|c| *c == "InternalError").count() as u64
    );

    // The SDK treats them as transient: with 3 attempts allowed it makes 3.
    proxy.reset_counts();
    let err = client(proxy.endpoint(), 3)
        .head_bucket()
        .bucket(&name)
        .send()
        .await
        .expect_err("still failing");
    assert_eq!(proxy.counts().requests, 3, "the SDK retried: {err:?}");

    // Nothing reached moto.
    let direct = client(&moto(), 1);
    let listed = direct
        .list_objects_v2()
        .bucket(&name)
        .send()
        .await
        .expect("list on moto");
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn a_write_dropped_after_forwarding_fails_for_the_client_but_lands_in_moto() {
    let name = bucket("drop");
    create_bucket(&name).await;
    let plan = FaultPlan {
        drop_after_write_share: 1.0,
        seed: 3,
        ..FaultPlan::passthrough()
    };
    let proxy = FaultProxy::start(&moto(), plan).expect("proxy starts");
    let s3 = client(proxy.endpoint(), 1);

    let err = s3
        .put_object()
        .bucket(&name)
        .key("ambiguous")
        .if_none_match("*")
        .body(ByteStream::from_static(b"landed"))
        .send()
        .await
        .expect_err("the client gets no answer");
    assert!(
        err.raw_response().is_none(),
        "no HTTP answer, a dropped connection: {err:?}"
    );
    let counts = proxy.counts();
    assert_eq!(
        (counts.dropped_after_write, counts.forwarded),
        (1, 1),
        "{counts:?}"
    );

    // The write is in moto all the same: the ambiguous outcome.
    assert_eq!(
        read(&client(&moto(), 1), &name, "ambiguous")
            .await
            .as_deref(),
        Ok(&b"landed"[..])
    );
    // Reads are never dropped.
    assert_eq!(
        read(&s3, &name, "ambiguous").await.as_deref(),
        Ok(&b"landed"[..])
    );
    assert_eq!(proxy.counts().dropped_after_write, 1);

    // The SDK retries a dropped connection on its own: a create-only put retried after its first
    // attempt landed is what a store must resolve (here every attempt is dropped again).
    proxy.reset_counts();
    let err = client(proxy.endpoint(), 3)
        .put_object()
        .bucket(&name)
        .key("retried")
        .body(ByteStream::from_static(b"again"))
        .send()
        .await
        .expect_err("every attempt dropped");
    assert_eq!(
        proxy.counts().dropped_after_write,
        3,
        "the SDK retried: {err:?}"
    );
}

#[tokio::test]
async fn delays_hold_requests_back_within_the_range() {
    let name = bucket("delay");
    create_bucket(&name).await;
    let delay = (Duration::from_millis(200), Duration::from_millis(300));
    let plan = FaultPlan {
        delay: Some(delay),
        ..FaultPlan::passthrough()
    };
    let proxy = FaultProxy::start(&moto(), plan).expect("proxy starts");
    let s3 = client(proxy.endpoint(), 1);
    for _ in 0..3 {
        let started = Instant::now();
        s3.head_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("head bucket");
        let took = started.elapsed();
        assert!(
            took >= delay.0,
            "took {took:?}, less than the minimum delay"
        );
    }
    proxy
        .set_plan(FaultPlan::passthrough())
        .expect("valid plan");
    let started = Instant::now();
    s3.head_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("head bucket");
    assert!(
        started.elapsed() < delay.0,
        "no delay after set_plan: {:?}",
        started.elapsed()
    );
    let counts = proxy.counts();
    assert_eq!(
        (counts.requests, counts.delayed, counts.method("HEAD")),
        (4, 3, 4),
        "{counts:?}"
    );
}

/// Runs 40 sequential HEADs through a fresh proxy with `plan` and returns which failed.
async fn failures(plan: FaultPlan) -> (Vec<bool>, u64) {
    let name = bucket("seed");
    create_bucket(&name).await;
    let proxy = FaultProxy::start(&moto(), plan).expect("proxy starts");
    let s3 = client(proxy.endpoint(), 1);
    let mut failed = Vec::new();
    for _ in 0..40 {
        failed.push(s3.head_bucket().bucket(&name).send().await.is_err());
    }
    (failed, proxy.counts().faults())
}

#[tokio::test]
async fn a_seeded_share_fails_the_same_requests_every_run() {
    let plan = FaultPlan {
        error_share: 0.5,
        seed: 42,
        ..FaultPlan::passthrough()
    };
    let (first, faults) = failures(plan.clone()).await;
    let (again, _) = failures(plan.clone()).await;
    let (other_seed, _) = failures(FaultPlan { seed: 43, ..plan }).await;
    assert_eq!(first, again, "same seed, same faults");
    assert_ne!(first, other_seed, "another seed, other faults");
    let failed = first.iter().filter(|f| **f).count() as u64;
    assert_eq!(failed, faults);
    assert!(
        (8..=32).contains(&failed),
        "about half of 40 fail, got {failed}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_answers_bad_gateway() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let proxy = FaultProxy::start(
        &format!("http://127.0.0.1:{port}"),
        FaultPlan::passthrough(),
    )
    .expect("proxy starts");
    let err = client(proxy.endpoint(), 1)
        .head_bucket()
        .bucket("nothing-there")
        .send()
        .await
        .expect_err("no upstream");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(502),
        "{err:?}"
    );
    assert_eq!(proxy.counts().upstream_failures, 1);
}

#[test]
fn bad_plans_and_upstreams_are_refused_with_what_is_wrong() {
    let bad_share = FaultPlan {
        error_share: 1.5,
        ..FaultPlan::passthrough()
    };
    let err = FaultProxy::start("http://127.0.0.1:1", bad_share).expect_err("share above 1");
    assert!(matches!(err, FaultProxyError::BadPlan(_)) && err.to_string().contains("error_share"));
    let nan = FaultPlan {
        drop_after_write_share: f64::NAN,
        ..FaultPlan::passthrough()
    };
    assert!(FaultProxy::start("http://127.0.0.1:1", nan).is_err());
    let inverted = FaultPlan {
        delay: Some((Duration::from_secs(2), Duration::from_secs(1))),
        ..FaultPlan::passthrough()
    };
    assert!(FaultProxy::start("http://127.0.0.1:1", inverted).is_err());
    for upstream in [
        "https://127.0.0.1:5055",
        "not a url",
        "http://127.0.0.1:5055/prefix",
    ] {
        let err = FaultProxy::start(upstream, FaultPlan::passthrough()).expect_err(upstream);
        assert!(err.to_string().contains(upstream), "{err}");
    }

    let proxy = FaultProxy::start("http://127.0.0.1:1/", FaultPlan::passthrough()).expect("starts");
    assert!(proxy.endpoint().starts_with("http://127.0.0.1:"));
    let err = proxy
        .set_plan(FaultPlan {
            error_share: -0.1,
            ..FaultPlan::passthrough()
        })
        .expect_err("negative share");
    assert!(err.to_string().contains("-0.1"), "{err}");
    assert_eq!(
        proxy.plan(),
        FaultPlan::passthrough(),
        "a refused plan changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_with_retries_get_through_faults_and_large_bodies_pass_unchanged() {
    let name = bucket("load");
    create_bucket(&name).await;
    let plan = FaultPlan {
        error_share: 0.3,
        delay: Some((Duration::ZERO, Duration::from_millis(5))),
        seed: 9,
        ..FaultPlan::passthrough()
    };
    let proxy = FaultProxy::start(&moto(), plan).expect("proxy starts");
    let s3 = client(proxy.endpoint(), 10);
    let puts = (0..40).map(|i| {
        let (s3, name) = (s3.clone(), name.clone());
        tokio::spawn(async move {
            s3.put_object()
                .bucket(&name)
                .key(format!("k{i:02}"))
                .body(ByteStream::from(format!("value {i}").into_bytes()))
                .send()
                .await
                .map_err(|e| format!("put k{i:02}: {e:?}"))
        })
    });
    for put in puts.collect::<Vec<_>>() {
        put.await
            .expect("task")
            .expect("retries get through 30% errors");
    }
    let counts = proxy.counts();
    assert_eq!(
        counts.method("PUT"),
        40 + counts.faults(),
        "each fault cost one retry: {counts:?}"
    );
    assert!(counts.faults() > 0, "{counts:?}");

    // A body of 3 MiB goes through byte for byte.
    proxy
        .set_plan(FaultPlan::passthrough())
        .expect("valid plan");
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    s3.put_object()
        .bucket(&name)
        .key("big")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .expect("big put");
    assert!(
        read(&client(&moto(), 1), &name, "big").await == Ok(big.clone()),
        "big body in moto"
    );
    assert!(
        read(&s3, &name, "big").await == Ok(big),
        "big body back through the proxy"
    );

    let direct = client(&moto(), 1);
    let listed = direct
        .list_objects_v2()
        .bucket(&name)
        .send()
        .await
        .expect("list on moto");
    assert_eq!(listed.key_count(), Some(41));
}

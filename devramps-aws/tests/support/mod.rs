//! What the tests share: moto's endpoint (from `AWS_ENDPOINT_URL`, failing with how to start
//! moto when unset), a fresh bucket per test, and a client that counts its requests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use devramps_aws::S3Location;

/// How to get moto, said when `AWS_ENDPOINT_URL` is unset.
pub const HOW_TO_START_MOTO: &str = "\
the devramps-aws tests need an S3 API: set AWS_ENDPOINT_URL to a running moto server, e.g.
    python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]'
    target/moto-venv/bin/moto_server -H 127.0.0.1 -p 5000 &
    export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=test \\
        AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
(.ci/run does this itself)";

/// Fails the test with [`HOW_TO_START_MOTO`] when moto is not configured.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("{HOW_TO_START_MOTO}"),
    }
}

/// A bucket name no other test uses.
pub fn fresh_bucket_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("devramps-test-{:016x}", h.finish())
}

/// Counts the requests sent through a client, by HTTP method.
#[derive(Debug, Default, Clone)]
pub struct Counter {
    pub gets: Arc<AtomicUsize>,
    pub all: Arc<AtomicUsize>,
}

impl Counter {
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "request counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request();
        self.all.fetch_add(1, Ordering::SeqCst);
        // GET of an object (a LIST is a GET of the bucket with `list-type=2`).
        if request.method() == "GET" && !request.uri().contains("list-type") {
            self.gets.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A new client on moto (its own connection pool), counting its requests.
pub async fn client(counter: Option<Counter>) -> aws_sdk_s3::Client {
    endpoint();
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true);
    if let Some(counter) = counter {
        config = config.interceptor(counter);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A new client (its own connection pool) on the S3 API at `endpoint`: moto, or a fault proxy
/// in front of it.
pub async fn client_at(endpoint_url: &str) -> aws_sdk_s3::Client {
    endpoint();
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .endpoint_url(endpoint_url)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates a fresh bucket and returns its name.
pub async fn fresh_bucket() -> String {
    let bucket = fresh_bucket_name();
    let client = client(None).await;
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "could not create bucket `{bucket}` on {}: {}\n{HOW_TO_START_MOTO}",
                endpoint(),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    bucket
}

/// A location in a fresh bucket, through [`S3Location::from_env`].
pub async fn fresh_location(prefix: &str) -> S3Location {
    let bucket = fresh_bucket().await;
    S3Location::from_env(bucket, prefix).await
}

/// Puts a raw object (as a foreign writer would).
pub async fn put_raw(bucket: &str, key: &str, body: &str) {
    client(None)
        .await
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

/// The keys of a bucket under `prefix`.
pub async fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let out = client(None)
        .await
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

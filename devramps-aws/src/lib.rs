//! The engine's state on S3: [`S3EventStore`] (the event log, with fencing tokens and
//! snapshots) and [`S3Lock`] (leases), both on one bucket under a key prefix, many pipelines
//! per bucket, many engines (processes) per bucket.
//!
//! Both use only S3's conditional writes (`If-None-Match: *` to create, `If-Match: <etag>` to
//! replace) and strongly consistent reads and lists; no versioning, no other service. Point
//! them at a bucket with [`S3Location::from_env`] (the AWS SDK's standard environment:
//! credentials chain, `AWS_REGION`, `AWS_ENDPOINT_URL` for moto or another S3 API) or with a
//! client of your own ([`S3Location::new`]).
//!
//! Layout under the prefix (`<s>` is the stream name with `/` and `%` percent-encoded):
//!
//! | key | what |
//! |---|---|
//! | `streams/<s>/log/<batch 20 digits>-<first seq 20 digits>.json` | one append (a batch): its events, their first seq, the stream's highest fencing token; immutable |
//! | `streams/<s>/snapshot.json` | the latest snapshot of the stream, with the batch it ends with |
//! | `leases/<key>.json` | a lease: holder, token, expiry, whether released |
//!
//! See [`store`] and [`lock`] for why this is correct under races, and the clock assumptions.
//!
//! Every call is retried with a bounded backoff on transient failures (5xx, SlowDown,
//! throttling, timeouts, dropped connections) and then fails with
//! [`Error::Unavailable`](devramps_core::Error::Unavailable); the SDK's own retries are turned
//! off for the client given, because a retried conditional PUT could report a write that
//! landed as lost. Missing buckets, access denied and bad credentials are
//! [`Error::Backend`](devramps_core::Error::Backend) naming the bucket, key and operation.
//!
//! [`mirror`] is artifact mirroring into AWS stages ([`AwsMirror`]): images from the root ECR
//! repository to the stage's (ECR's API, blobs over the OCI distribution API with
//! [`mirror::OciCopier`]), bundles from the root S3 bucket to the stage's.
//!
//! [`CloudWatchAlarmSource`] (an `AlarmSource`, L15) polls the stages' CloudWatch alarms as
//! each stage's deployment role; [`SecretsManagerSource`] (a `SecretSource`) reads the
//! organization's and stages' secrets from Secrets Manager with the base credentials.

#![forbid(unsafe_code)]

use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;

pub mod alarms;
pub mod lock;
pub mod mirror;
pub mod runtime;
mod s3;
pub mod secrets;
pub mod stage;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;

pub use alarms::CloudWatchAlarmSource;
pub use lock::S3Lock;
pub use mirror::AwsMirror;
pub use secrets::SecretsManagerSource;
pub use stage::{AwsStages, StageOptions};
pub use store::S3EventStore;
pub use validate::AwsResourceValidator;

/// A bucket and a key prefix, with the client that reaches them.
#[derive(Clone, Debug)]
pub struct S3Location {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Location {
    /// A location whose client comes from the AWS SDK's standard environment
    /// (`aws_config::load_defaults(BehaviorVersion::latest())`: credentials chain, region,
    /// `AWS_ENDPOINT_URL`). When `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) is set, the
    /// client uses path-style addressing, as moto and most S3-compatible servers need.
    pub async fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> S3Location {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(custom_endpoint)
            .build();
        S3Location::new(aws_sdk_s3::Client::from_conf(config), bucket, prefix)
    }

    /// A location reached through `client`. Its interceptors and endpoint are kept; its
    /// retries are turned off (this crate retries itself, resolving ambiguous writes) and
    /// each attempt times out after 20 seconds.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> S3Location {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .build(),
            )
            .build();
        let prefix: String = prefix.into();
        S3Location {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/` (empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The client (with this crate's retry and timeout settings).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// `<prefix>/<rest>`, or `<rest>` under an empty prefix.
    pub(crate) fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }
}

/// A name made into one key segment: `%` and `/` percent-encoded, so `a/b` and `a%2Fb` stay
/// distinct streams and no stream's keys lie under another's.
pub(crate) fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`encode_segment`]; `None` when `segment` is not one it makes.
pub(crate) fn decode_segment(segment: &str) -> Option<String> {
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%2F") => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    if rest.contains('/') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_stay_distinct() {
        for name in ["api", "a/b", "a%2Fb", "100%", "c/x/y"] {
            let encoded = encode_segment(name);
            assert!(!encoded.contains('/'), "{encoded}");
            assert_eq!(decode_segment(&encoded).as_deref(), Some(name));
        }
        assert_ne!(encode_segment("a/b"), encode_segment("a%2Fb"));
        assert_eq!(decode_segment("a%zz"), None);
    }
}

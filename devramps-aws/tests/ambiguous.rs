//! Ambiguous writes on moto: the response of a conditional PUT that S3 carried out is lost (an
//! SDK interceptor fails it after the request was sent). The store reads the key back and
//! answers with what happened: the append succeeded, once.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use devramps_aws::{S3EventStore, S3Location};
use devramps_core::backend::{AppendOptions, EventStore, EventStoreExt};
use serde_json::json;

/// Fails the next `drops` PUTs that S3 carried out, as if their response was lost.
#[derive(Debug, Clone)]
struct DropPutResponses {
    drops: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Intercept for DropPutResponses {
    fn name(&self) -> &'static str {
        "drop PUT responses"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let is_put = context
            .output_or_error()
            .and_then(Result::ok)
            .and_then(|output| output.downcast_ref::<PutObjectOutput>())
            .is_some();
        if is_put
            && self
                .drops
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return Err("connection reset after the request was sent (injected)".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_lost_put_response_is_resolved_by_reading_the_key_back() {
    let bucket = support::fresh_bucket().await;
    let faults = DropPutResponses {
        drops: Arc::new(AtomicUsize::new(0)),
        dropped: Arc::default(),
    };
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .interceptor(faults.clone())
        .build();
    let store = S3EventStore::new(S3Location::new(
        aws_sdk_s3::Client::from_conf(config),
        bucket.clone(),
        "p",
    ));
    let plain = S3EventStore::new(S3Location::from_env(bucket.clone(), "p").await);

    let mut last = 0;
    for round in 0..3usize {
        faults.drops.store(1, Ordering::SeqCst);
        let before = faults.dropped.load(Ordering::SeqCst);
        last = store
            .append(
                "api",
                last,
                vec![json!(round), json!(round)],
                AppendOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("round {round}: the append landed, so it succeeds: {e}"));
        assert_eq!(last, 2 * (round as u64 + 1));
        assert!(
            faults.dropped.load(Ordering::SeqCst) > before,
            "a response was dropped"
        );
    }
    let events = plain.read_all("api").await.unwrap();
    let payloads: Vec<_> = events.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(
        payloads,
        [json!(0), json!(0), json!(1), json!(1), json!(2), json!(2)],
        "each append is stored once"
    );
    assert_eq!(
        support::keys(&bucket, "p/streams/api/log/").await.len(),
        3,
        "one batch per append, none written twice"
    );
}

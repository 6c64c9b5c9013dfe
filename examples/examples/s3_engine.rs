//! The engine with its state on S3: the event log and the leases in a bucket, everything else
//! given by the embedder. Point it at moto or at a real account through the AWS SDK's standard
//! environment (see README, "The state on S3"):
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
//!   AWS_REGION=us-east-1 cargo run -p devramps-examples --example s3_engine -- my-bucket demo
//! ```
//!
//! It creates the bucket when it does not exist, deploys one push through staging and prod with
//! steps that succeed at once (stand-ins for real runners), and prints what the log holds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::backend::{
    Backends, EventStore, ExecutionKey, Outcome, Runner, StepRequest, StepRunners, TokioClock,
};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::StageState;
use devramps_core::{Error, Result};

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, type: "CUSTOM:DEPLOY" }
  artifacts: {}
"#;

/// Steps that succeed as soon as they start: a stand-in for your runners.
#[derive(Debug)]
struct Instant;

#[async_trait]
impl Runner<StepRequest> for Instant {
    async fn start(&self, _request: StepRequest) -> Result<()> {
        Ok(())
    }
    async fn wait(&self, _key: &ExecutionKey) -> Result<Outcome> {
        Ok(Outcome::Succeeded {
            outputs: Default::default(),
        })
    }
    async fn cancel(&self, _key: &ExecutionKey) -> Result<()> {
        Ok(())
    }
}

/// Deploys one push with the state under `s3://bucket/prefix`; returns the final state of each
/// stage and the number of records in the log on S3.
pub async fn run(bucket: &str, prefix: &str) -> Result<(StageState, StageState, u64)> {
    let location = S3Location::from_env(bucket, prefix).await;
    // Create the bucket when it does not exist (moto starts empty).
    if location
        .client()
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .is_err()
    {
        location
            .client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| {
                Error::backend("s3", format!("create bucket {bucket}"), format!("{e:?}"))
            })?;
    }
    let store = Arc::new(S3EventStore::new(location.clone()));
    let source = devramps_memory::InMemorySource::new();
    source.commit("c1", None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    let backends = Backends::builder(Arc::new(TokioClock::new()))
        .store(store.clone())
        .lock(Arc::new(S3Lock::new(location)))
        .source(Arc::new(source))
        .resources(Arc::new(devramps_memory::InMemoryResources::new()))
        .steps(StepRunners::new().with_fallback(Arc::new(Instant)))
        .build();
    let (engine, driver) = Engine::new(backends, EngineConfig::new("s3-example"));
    let driving = tokio::spawn(driver.run());
    engine.push("app", PushRequest::new("main", "c1")).await?;
    let stage = |state: &devramps_core::lifecycle::PipelineState, name: &str| {
        state.deployments[&1]
            .stage(name)
            .map_or(StageState::NotStarted, |s| s.state)
    };
    let mut state = engine.state("app").await?;
    for _ in 0..600 {
        if stage(&state, "prod").is_terminal(None)
            && stage(&state, "prod") != StageState::NotStarted
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = engine.state("app").await?;
    }
    engine.stop().await?;
    let _ = driving.await;
    let records = store.last_seq("app").await?;
    Ok((stage(&state, "staging"), stage(&state, "prod"), records))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let bucket = args.next().unwrap_or_else(|| "devramps".to_owned());
    let prefix = args.next().unwrap_or_else(|| "example".to_owned());
    let (staging, prod, records) = run(&bucket, &prefix).await?;
    println!("staging: {staging:?}, prod: {prod:?}; {records} records in s3://{bucket}/{prefix}");
    Ok(())
}

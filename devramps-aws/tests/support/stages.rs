//! What the mirror tests share on moto: a CI/CD account of its own (111111111111, assumed from
//! the test credentials so the "base credentials" act there), stage targets in another account
//! (222222222222, through the stage role `AwsStages` assumes), unique names.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use devramps_aws::AwsStages;
use devramps_core::backend::StageTarget;

/// The CI/CD account of the tests.
pub const CICD: &str = "111111111111";
/// The stages' account.
pub const STAGE: &str = "222222222222";

/// A name no other test (or earlier run) uses, lowercase.
pub fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// `AwsStages` whose base credentials are a session in the CI/CD account (moto gives
/// `AssumeRole` credentials that act in the role's account), in `us-east-1`.
pub async fn cicd_stages() -> AwsStages {
    super::support::endpoint();
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sts = aws_sdk_sts::Client::new(&shared);
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{CICD}:role/cicd"))
        .role_session_name("devramps-tests")
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "AssumeRole on moto: {}\n{}",
                aws_sdk_sts::error::DisplayErrorContext(&e),
                super::support::HOW_TO_START_MOTO
            )
        });
    let c = out.credentials().unwrap();
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "cicd",
    );
    let config = shared
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .region(aws_config::Region::new("us-east-1"))
        .build();
    AwsStages::new(config)
}

/// A stage of a fresh pipeline in the stages' account, in `region`.
pub fn stage_target(region: &str) -> StageTarget {
    StageTarget::new(unique("p"), "prod", STAGE, region)
}

/// The S3 requests sent so far by (the base credentials, the stage's role).
pub fn s3_requests(stages: &AwsStages, target: &StageTarget) -> (u64, u64) {
    use devramps_aws::stage::{Principal, Service};
    let counts = stages.requests();
    let get = |p: Principal| counts.get(&(p, Service::S3)).copied().unwrap_or(0);
    (get(Principal::Base), get(AwsStages::principal(target)))
}

//! Stage credentials: the AWS identity a stage's work runs as, and one SDK client per
//! (principal, region, service).
//!
//! The CI/CD account's work (the root repositories and buckets, the Terraform state bucket,
//! secrets) runs with the **base credentials**: the SDK's default chain
//! (`aws_config::load_defaults`: environment, profile, web identity, instance role), in the
//! base region unless another is asked for. A stage's work (its repositories, buckets, alarms)
//! runs as the stage's **deployment role**, assumed with STS from the base credentials:
//!
//! | what | value |
//! |---|---|
//! | role | `arn:<partition>:iam::<account>:role/DevRamps-<pipeline>-<stage>-DeploymentRole` ([`naming::stage_role`], at most 64 characters) |
//! | session name | `devramps-<pipeline>-<stage>` (normalized, at most 64 characters) |
//! | session length | 1 hour ([`StageOptions::session`]) |
//! | refreshed | when less than 5 minutes are left ([`StageOptions::refresh_before`]) |
//!
//! Credentials are cached per role and shared by every client of that role (the clients keep
//! no cache of their own), so a stage's S3, ECR and CloudWatch clients in two regions cost one
//! `AssumeRole` per session. Clients are made once per (principal, region, service) and kept.
//!
//! Every request any of these clients sends is counted per principal and service
//! ([`AwsStages::requests`]), so a caller can report what a phase cost.

mod errors;
mod role;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{IdentityCache, Region};
use devramps_core::backend::StageTarget;
use devramps_core::plan::naming;
use devramps_core::{Error, Result};

pub use errors::{AwsFailure, classify};
use role::StageRole;

/// Options of the stage sessions.
#[derive(Clone, Debug)]
pub struct StageOptions {
    /// How long an assumed-role session lasts (STS `DurationSeconds`); 1 hour by default.
    pub session: Duration,
    /// How long before its expiry a session is renewed; 5 minutes by default.
    pub refresh_before: Duration,
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions {
            session: Duration::from_secs(3600),
            refresh_before: Duration::from_secs(300),
        }
    }
}

/// Who a client acts as.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// The base credentials (the CI/CD account).
    Base,
    /// A stage's deployment role, by ARN.
    Role(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Base => f.write_str("base credentials"),
            Principal::Role(arn) => f.write_str(arn),
        }
    }
}

/// The AWS services the stage work uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// S3.
    S3,
    /// ECR.
    Ecr,
    /// CloudWatch.
    CloudWatch,
    /// Secrets Manager.
    SecretsManager,
    /// STS.
    Sts,
}

impl Service {
    /// The service's name, as errors and counts name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Ecr => "ecr",
            Service::CloudWatch => "cloudwatch",
            Service::SecretsManager => "secretsmanager",
            Service::Sts => "sts",
        }
    }
}

/// The clients of one service, per (principal, region).
#[derive(Debug)]
struct Clients<C>(Mutex<HashMap<(Principal, String), C>>);

impl<C> Default for Clients<C> {
    fn default() -> Self {
        Clients(Mutex::default())
    }
}

impl<C: Clone> Clients<C> {
    /// The client of `principal` in `region`, made with `make` on first use.
    fn get(&self, principal: &Principal, region: &str, make: impl FnOnce() -> C) -> C {
        let mut clients = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry((principal.clone(), region.to_owned()))
            .or_insert_with(make)
            .clone()
    }
}

/// Requests sent, per (principal, service).
#[derive(Debug, Default)]
struct Counts(Mutex<BTreeMap<(Principal, Service), Arc<AtomicU64>>>);

impl Counts {
    fn counter(&self, principal: &Principal, service: Service) -> Arc<AtomicU64> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .entry((principal.clone(), service))
            .or_default()
            .clone()
    }

    fn snapshot(&self) -> BTreeMap<(Principal, Service), u64> {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Counts every request a client sends (each attempt, retries included).
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

impl aws_sdk_s3::config::Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "devramps-count-requests"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct Inner {
    base: SdkConfig,
    options: StageOptions,
    roles: Mutex<HashMap<String, Arc<StageRole>>>,
    s3: Clients<aws_sdk_s3::Client>,
    ecr: Clients<aws_sdk_ecr::Client>,
    cloudwatch: Clients<aws_sdk_cloudwatch::Client>,
    secrets: Clients<aws_sdk_secretsmanager::Client>,
    sts: Clients<aws_sdk_sts::Client>,
    counts: Counts,
}

/// The base credentials, the stages' assumed roles and the clients made with them. Clones
/// share everything.
#[derive(Clone)]
pub struct AwsStages {
    inner: Arc<Inner>,
}

impl fmt::Debug for AwsStages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsStages")
            .field("base_region", &self.base_region())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl AwsStages {
    /// Stages whose base credentials, region and endpoint come from the SDK's standard
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL` for
    /// moto, ...).
    pub async fn from_env() -> AwsStages {
        AwsStages::new(aws_config::load_defaults(BehaviorVersion::latest()).await)
    }

    /// Stages on the base configuration `base` (credentials, region, endpoint).
    pub fn new(base: SdkConfig) -> AwsStages {
        AwsStages::with_options(base, StageOptions::default())
    }

    /// Stages on `base`, with `options`.
    pub fn with_options(base: SdkConfig, options: StageOptions) -> AwsStages {
        AwsStages {
            inner: Arc::new(Inner {
                base,
                options,
                roles: Mutex::default(),
                s3: Clients::default(),
                ecr: Clients::default(),
                cloudwatch: Clients::default(),
                secrets: Clients::default(),
                sts: Clients::default(),
                counts: Counts::default(),
            }),
        }
    }

    /// The base configuration's region (`us-east-1` when it names none).
    pub fn base_region(&self) -> String {
        self.inner
            .base
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.as_ref().to_owned())
    }

    /// The ARN of the deployment role of `target` (see the module's table).
    pub fn role_arn(target: &StageTarget) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            partition(&target.region),
            target.account_id,
            naming::stage_role(&target.pipeline, &target.stage)
        )
    }

    /// The session name of `target`'s assumed role: `devramps-<pipeline>-<stage>`, normalized
    /// and at most 64 characters (STS's limit).
    pub fn session_name(target: &StageTarget) -> String {
        naming::limit(
            &naming::normalize(&format!("devramps-{}-{}", target.pipeline, target.stage)),
            64,
        )
    }

    /// Who `target`'s work runs as.
    pub fn principal(target: &StageTarget) -> Principal {
        Principal::Role(AwsStages::role_arn(target))
    }

    /// Assumes `target`'s role now (or takes the cached session) and returns the account the
    /// session is in, from STS `GetCallerIdentity` with the role's credentials.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] naming the role when it cannot be assumed (it does not exist, or
    /// does not trust the base credentials) or the credentials are refused;
    /// [`Error::Unavailable`] on throttling and transient failures.
    pub async fn verify(&self, target: &StageTarget) -> Result<String> {
        let principal = AwsStages::principal(target);
        let role = self.role(target);
        role.credentials().await?;
        let sts = self.sts(&principal, &target.region);
        let identity =
            sts.get_caller_identity().send().await.map_err(|e| {
                classify("sts", "GetCallerIdentity").error(e, &principal.to_string())
            })?;
        Ok(identity.account().unwrap_or_default().to_owned())
    }

    /// The account of the base credentials (STS `GetCallerIdentity`): the CI/CD account.
    ///
    /// # Errors
    ///
    /// As [`verify`](AwsStages::verify), for the base credentials.
    pub async fn verify_base(&self) -> Result<String> {
        let identity = self
            .sts(&Principal::Base, &self.base_region())
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("sts", "GetCallerIdentity").error(e, "the base credentials"))?;
        identity
            .account()
            .map(str::to_owned)
            .ok_or_else(|| incomplete("sts", "GetCallerIdentity", "account"))
    }

    /// The cached role of `target`, made on first use.
    fn role(&self, target: &StageTarget) -> Arc<StageRole> {
        let arn = AwsStages::role_arn(target);
        // Made before the roles' lock is taken: a client's making takes that lock.
        let sts = self.sts(&Principal::Base, &self.base_region());
        let mut roles = self
            .inner
            .roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        roles
            .entry(arn.clone())
            .or_insert_with(|| {
                Arc::new(StageRole::new(
                    sts,
                    arn,
                    AwsStages::session_name(target),
                    self.inner.options.clone(),
                ))
            })
            .clone()
    }

    /// The SDK configuration of `principal` in `region`.
    fn config(&self, principal: &Principal, region: &str) -> SdkConfig {
        let mut builder = self
            .inner
            .base
            .to_builder()
            .region(Region::new(region.to_owned()));
        if let Principal::Role(arn) = principal {
            let role = self
                .inner
                .roles
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(arn)
                .cloned();
            if let Some(role) = role {
                // The role keeps the one cache; the clients ask it every time.
                builder = builder
                    .credentials_provider(SharedCredentialsProvider::new(role.provider()))
                    .identity_cache(IdentityCache::no_cache());
            }
        }
        builder.build()
    }

    /// The configuration and request counter of a new client.
    fn parts(
        &self,
        principal: &Principal,
        region: &str,
        service: Service,
    ) -> (SdkConfig, CountRequests) {
        let config = self.config(principal, region);
        let counter = CountRequests(self.inner.counts.counter(principal, service));
        (config, counter)
    }

    /// Makes sure `target`'s role is known, and returns its principal.
    fn stage_principal(&self, target: &StageTarget) -> Principal {
        self.role(target);
        AwsStages::principal(target)
    }

    /// The S3 client of `target` (its role, its region).
    pub fn stage_s3(&self, target: &StageTarget) -> aws_sdk_s3::Client {
        let principal = self.stage_principal(target);
        self.s3(&principal, &target.region)
    }

    /// The ECR client of `target`.
    pub fn stage_ecr(&self, target: &StageTarget) -> aws_sdk_ecr::Client {
        let principal = self.stage_principal(target);
        self.ecr(&principal, &target.region)
    }

    /// The CloudWatch client of `target`.
    pub fn stage_cloudwatch(&self, target: &StageTarget) -> aws_sdk_cloudwatch::Client {
        let principal = self.stage_principal(target);
        self.cloudwatch(&principal, &target.region)
    }

    /// The S3 client of the base credentials in `region`.
    pub fn base_s3(&self, region: &str) -> aws_sdk_s3::Client {
        self.s3(&Principal::Base, region)
    }

    /// The ECR client of the base credentials in `region`.
    pub fn base_ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        self.ecr(&Principal::Base, region)
    }

    /// The Secrets Manager client of the base credentials in `region`.
    pub fn base_secrets(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        let principal = Principal::Base;
        self.inner.secrets.get(&principal, region, || {
            let (config, count) = self.parts(&principal, region, Service::SecretsManager);
            let config = aws_sdk_secretsmanager::config::Builder::from(&config)
                .interceptor(count)
                .build();
            aws_sdk_secretsmanager::Client::from_conf(config)
        })
    }

    fn s3(&self, principal: &Principal, region: &str) -> aws_sdk_s3::Client {
        let path_style = self.inner.base.endpoint_url().is_some();
        self.inner.s3.get(principal, region, || {
            let (config, count) = self.parts(principal, region, Service::S3);
            let config = aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(path_style)
                .interceptor(count)
                .build();
            aws_sdk_s3::Client::from_conf(config)
        })
    }

    fn ecr(&self, principal: &Principal, region: &str) -> aws_sdk_ecr::Client {
        self.inner.ecr.get(principal, region, || {
            let (config, count) = self.parts(principal, region, Service::Ecr);
            let config = aws_sdk_ecr::config::Builder::from(&config)
                .interceptor(count)
                .build();
            aws_sdk_ecr::Client::from_conf(config)
        })
    }

    fn cloudwatch(&self, principal: &Principal, region: &str) -> aws_sdk_cloudwatch::Client {
        self.inner.cloudwatch.get(principal, region, || {
            let (config, count) = self.parts(principal, region, Service::CloudWatch);
            let config = aws_sdk_cloudwatch::config::Builder::from(&config)
                .interceptor(count)
                .build();
            aws_sdk_cloudwatch::Client::from_conf(config)
        })
    }

    fn sts(&self, principal: &Principal, region: &str) -> aws_sdk_sts::Client {
        self.inner.sts.get(principal, region, || {
            let (config, count) = self.parts(principal, region, Service::Sts);
            let config = aws_sdk_sts::config::Builder::from(&config)
                .interceptor(count)
                .build();
            aws_sdk_sts::Client::from_conf(config)
        })
    }

    /// The requests sent so far by every client, per principal and service (each attempt
    /// counts; `AssumeRole` calls are the base credentials' `sts` requests).
    pub fn requests(&self) -> BTreeMap<(Principal, Service), u64> {
        self.inner.counts.snapshot()
    }

    /// The `AssumeRole` calls made so far for `target`'s role.
    pub fn assume_role_calls(&self, target: &StageTarget) -> u64 {
        let arn = AwsStages::role_arn(target);
        self.inner
            .roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&arn)
            .map_or(0, |r| r.calls())
    }
}

/// The AWS partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// An error for a value an AWS answer lacks.
pub(crate) fn incomplete(service: &str, operation: &str, what: &str) -> Error {
    Error::backend(service, operation, format!("the answer has no {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_and_session_names_follow_the_naming() {
        let target = StageTarget::new("api", "prod", "222222222222", "us-west-2");
        assert_eq!(
            AwsStages::role_arn(&target),
            "arn:aws:iam::222222222222:role/DevRamps-api-prod-DeploymentRole"
        );
        assert_eq!(AwsStages::session_name(&target), "devramps-api-prod");
        let china = StageTarget::new("api", "prod", "222222222222", "cn-north-1");
        assert!(AwsStages::role_arn(&china).starts_with("arn:aws-cn:iam::"));
        let long = StageTarget::new("p".repeat(40), "Stage With Spaces".repeat(3), "1", "r");
        let session = AwsStages::session_name(&long);
        assert!(session.len() <= 64, "{session}");
        assert!(
            session
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{session}"
        );
    }
}

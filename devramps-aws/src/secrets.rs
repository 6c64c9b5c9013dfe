//! [`SecretsManagerSource`]: the secrets of `secret("N")` and `stage_secret("N")`, read from AWS
//! Secrets Manager in the CI/CD account with the base credentials.
//!
//! # Where each secret lives
//!
//! | scope | expression | secret id (name) |
//! |---|---|---|
//! | [`SecretScope::Organization`] | `${{ secret("N") }}` | `devramps/<organization>/N` |
//! | [`SecretScope::Stage`] | `${{ stage_secret("N") }}` in stage `S` of pipeline `P` | `devramps/<organization>/P/S/N` |
//!
//! `<organization>` is the organization's slug given to [`SecretsManagerSource::new`]. Pipeline
//! slugs and stage names are `[a-z0-9-]+` and secret names may not contain `/` (a name with one
//! is refused), so the mapping is one to one: an organization secret can never be read as a
//! stage's, nor one stage's as another's. The prefix `devramps/<organization>/` lets one IAM
//! policy (`secretsmanager:GetSecretValue` on `devramps/<organization>/*`) grant exactly the
//! secrets devramps may read. Stage secrets are per pipeline and stage (not per stage name
//! across pipelines), as [`SecretScope::Stage`] names both.
//!
//! Secrets are read with the base credentials (the CI/CD account, where the organization's
//! user-managed secrets are stored) in one region: the base region unless
//! [`SecretsManagerSource::with_region`] says otherwise. The current version (`AWSCURRENT`) is
//! read, and only its text (`SecretString`): a secret holding binary data only is an
//! [`Error::Backend`] saying so.
//!
//! # Caching
//!
//! A value read is kept for a TTL (5 minutes by default, [`SecretsManagerSource::with_ttl`]):
//! a second read of the same secret within the TTL sends no request. A missing secret is not
//! cached (creating it takes effect at the next read), and a secret deleted or changed takes
//! effect at the latest one TTL later.
//!
//! # Missing and deleted secrets
//!
//! `ResourceNotFoundException` (no such secret) and a secret scheduled for deletion
//! (`InvalidRequestException`, "marked for deletion") are `Ok(None)`: the engine then fails the
//! step that needs the secret, naming it (see `devramps_core::engine`).
//!
//! Values exist only as [`SecretString`]: they are never logged, never in errors (errors name
//! the secret id, never its value) and never in this type's `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use devramps_core::backend::{SecretScope, SecretSource};
use devramps_core::expr::SecretString;
use devramps_core::{Error, Result};

use crate::stage::{AwsStages, classify};

/// How long a value read is kept by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// A [`SecretSource`] on AWS Secrets Manager (see the [module docs](self) for the names, the
/// credentials and the cache). Clones share the cache.
#[derive(Clone)]
pub struct SecretsManagerSource {
    stages: AwsStages,
    organization: String,
    region: String,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, (Instant, SecretString)>>>,
}

impl fmt::Debug for SecretsManagerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("SecretsManagerSource")
            .field("organization", &self.organization)
            .field("region", &self.region)
            .field("ttl", &self.ttl)
            .field("cached_secrets", &cached)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerSource {
    /// The secrets of the organization whose slug is `organization`, read with `stages`' base
    /// credentials in its base region, cached for [`DEFAULT_TTL`].
    pub fn new(stages: AwsStages, organization: impl Into<String>) -> Self {
        let region = stages.base_region();
        SecretsManagerSource {
            stages,
            organization: organization.into(),
            region,
            ttl: DEFAULT_TTL,
            cache: Arc::default(),
        }
    }

    /// Reads the secrets in `region` instead of the base region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Keeps values read for `ttl` (`Duration::ZERO`: no caching).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The region the secrets are read in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The Secrets Manager name of secret `name` in `scope` (see the module's table).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when `name` (or a pipeline or stage name) is empty or holds a
    /// character Secrets Manager does not allow in names, or a `/` (which would reach into
    /// another scope).
    pub fn secret_id(&self, scope: &SecretScope, name: &str) -> Result<String> {
        let org = &self.organization;
        match scope {
            SecretScope::Organization => {
                check_segment("secret name", name)?;
                Ok(format!("devramps/{org}/{name}"))
            }
            SecretScope::Stage { pipeline, stage } => {
                check_segment("pipeline slug", pipeline)?;
                check_segment("stage name", stage)?;
                check_segment("secret name", name)?;
                Ok(format!("devramps/{org}/{pipeline}/{stage}/{name}"))
            }
        }
    }

    /// Forgets every cached value (the next reads go to Secrets Manager).
    pub fn clear_cache(&self) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn cached(&self, id: &str) -> Option<SecretString> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Reads `id` from Secrets Manager (on the crate's runtime).
    async fn fetch(&self, id: String) -> Result<Option<SecretString>> {
        let client = self.stages.base_secrets(&self.region);
        let task = crate::runtime::runtime()?.spawn(async move {
            let answer = client.get_secret_value().secret_id(&id).send().await;
            match answer {
                Ok(out) => match (out.secret_string(), out.secret_binary()) {
                    (Some(text), _) => Ok(Some((id, SecretString::new(text)))),
                    (None, Some(_)) => Err(Error::backend(
                        "secretsmanager",
                        format!("GetSecretValue secret `{id}`"),
                        "the secret holds binary data (SecretBinary); devramps reads only \
                         text secrets (SecretString): store the value as text",
                    )),
                    (None, None) => Err(crate::stage::incomplete(
                        "secretsmanager",
                        "GetSecretValue",
                        "SecretString",
                    )),
                },
                Err(e) if gone(&e) => Ok(None),
                Err(e) => Err(classify("secretsmanager", "GetSecretValue")
                    .error(e, &format!("secret `{id}`"))),
            }
        });
        let found = task.await.map_err(|e| {
            Error::backend(
                "secretsmanager",
                "GetSecretValue",
                format!("the call died: {e}"),
            )
        })??;
        Ok(found.map(|(id, value)| {
            if !self.ttl.is_zero() {
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, (Instant::now(), value.clone()));
            }
            value
        }))
    }
}

/// Whether Secrets Manager says the secret does not exist or is scheduled for deletion.
fn gone(
    error: &aws_sdk_secretsmanager::error::SdkError<
        GetSecretValueError,
        aws_sdk_secretsmanager::config::http::HttpResponse,
    >,
) -> bool {
    let Some(service) = error.as_service_error() else {
        return false;
    };
    if service.is_resource_not_found_exception() {
        return true;
    }
    // AWS: "...because it was marked for deletion."; moto: "...currently marked deleted."
    service.code() == Some("InvalidRequestException")
        && service
            .message()
            .is_some_and(|m| m.contains("marked for deletion") || m.contains("marked deleted"))
}

/// Refuses a part of a secret id that is empty, holds a `/` or a character Secrets Manager does
/// not allow (`[A-Za-z0-9_+=.@-]` are allowed).
fn check_segment(what: &str, segment: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=.@-".contains(c);
    if segment.is_empty() || !segment.chars().all(allowed) {
        return Err(Error::backend(
            "secretsmanager",
            "name a secret",
            format!(
                "the {what} `{segment}` cannot be part of a Secrets Manager name (only \
                 letters, digits and `_+=.@-`, no `/`)"
            ),
        ));
    }
    Ok(())
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secret(&self, scope: &SecretScope, name: &str) -> Result<Option<SecretString>> {
        let id = self.secret_id(scope, name)?;
        if let Some(value) = self.cached(&id) {
            return Ok(Some(value));
        }
        self.fetch(id).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn source() -> SecretsManagerSource {
        let config = aws_config::SdkConfig::builder()
            .region(aws_sdk_secretsmanager::config::Region::new("eu-west-1"))
            .build();
        SecretsManagerSource::new(AwsStages::new(config), "acme")
    }

    #[test]
    fn names_follow_the_table_and_cannot_cross_scopes() {
        let s = source();
        assert_eq!(s.region(), "eu-west-1");
        assert_eq!(
            s.secret_id(&SecretScope::Organization, "API_KEY").unwrap(),
            "devramps/acme/API_KEY"
        );
        let stage = SecretScope::Stage {
            pipeline: "api".into(),
            stage: "prod".into(),
        };
        assert_eq!(
            s.secret_id(&stage, "DB").unwrap(),
            "devramps/acme/api/prod/DB"
        );
        for bad in ["api/prod/DB", "", "a b", "x%2F"] {
            let e = s.secret_id(&SecretScope::Organization, bad).unwrap_err();
            assert!(e.to_string().contains("cannot be part"), "{bad}: {e}");
        }
    }
}

//! One stage's deployment role: credentials from STS `AssumeRole`, cached and renewed before
//! they expire, one `AssumeRole` at a time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use devramps_core::Result;
use tokio::sync::Mutex;

use super::StageOptions;
use super::errors::classify;

/// A deployment role and its current session.
pub(crate) struct StageRole {
    sts: aws_sdk_sts::Client,
    arn: String,
    session_name: String,
    options: StageOptions,
    /// The session's credentials; the lock is held across an `AssumeRole`, so callers that
    /// need new credentials at once wait for the one call.
    current: Mutex<Option<Credentials>>,
    calls: AtomicU64,
}

impl fmt::Debug for StageRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials are left out on purpose.
        f.debug_struct("StageRole")
            .field("arn", &self.arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

impl StageRole {
    pub(crate) fn new(
        sts: aws_sdk_sts::Client,
        arn: String,
        session_name: String,
        options: StageOptions,
    ) -> StageRole {
        StageRole {
            sts,
            arn,
            session_name,
            options,
            current: Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    /// The `AssumeRole` calls made so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A credentials provider for SDK clients, backed by this role's cache.
    pub(crate) fn provider(self: &Arc<Self>) -> RoleProvider {
        RoleProvider(Arc::clone(self))
    }

    /// Credentials with more than `refresh_before` left: the cached ones, or a new session.
    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        let mut current = self.current.lock().await;
        if let Some(credentials) = current.as_ref()
            && fresh(credentials, self.options.refresh_before)
        {
            return Ok(credentials.clone());
        }
        let credentials = self.assume().await?;
        *current = Some(credentials.clone());
        Ok(credentials)
    }

    async fn assume(&self) -> Result<Credentials> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let seconds = i32::try_from(self.options.session.as_secs())
            .unwrap_or(i32::MAX)
            .max(900);
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.arn)
            .role_session_name(&self.session_name)
            .duration_seconds(seconds)
            .send()
            .await
            .map_err(|e| {
                classify("sts", "AssumeRole").error(
                    e,
                    &format!(
                        "role {} (is the stage bootstrapped, and does the role trust these \
                         credentials?)",
                        self.arn
                    ),
                )
            })?;
        let Some(c) = out.credentials() else {
            return Err(super::incomplete("sts", "AssumeRole", "credentials"));
        };
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            expiry,
            "devramps-stage-role",
        ))
    }
}

/// Whether `credentials` have more than `margin` left (credentials without an expiry do).
fn fresh(credentials: &Credentials, margin: Duration) -> bool {
    match credentials.expiry() {
        None => true,
        Some(expiry) => expiry
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > margin),
    }
}

/// The SDK's view of a [`StageRole`].
#[derive(Debug, Clone)]
pub(crate) struct RoleProvider(Arc<StageRole>);

impl ProvideCredentials for RoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_before_they_expire() {
        let at = |secs: u64| {
            Credentials::new(
                "a",
                "s",
                None,
                Some(SystemTime::now() + Duration::from_secs(secs)),
                "t",
            )
        };
        let margin = Duration::from_secs(300);
        assert!(fresh(&at(3600), margin));
        assert!(!fresh(&at(200), margin), "less than the margin left");
        assert!(fresh(&Credentials::new("a", "s", None, None, "t"), margin));
        let expired = Credentials::new(
            "a",
            "s",
            None,
            Some(SystemTime::now() - Duration::from_secs(1)),
            "t",
        );
        assert!(!fresh(&expired, margin));
    }
}

//! [`InMemorySecrets`]: organization and stage secrets held in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{SecretScope, SecretSource};
use devramps_core::expr::SecretString;

/// A [`SecretSource`] whose secrets are set and deleted by hand. A secret that was never set,
/// or was deleted, reads as `Ok(None)`. Values are kept as [`SecretString`], so they never
/// appear in `Debug` output. Clones share the secrets.
#[derive(Clone, Debug, Default)]
pub struct InMemorySecrets {
    secrets: Arc<Mutex<BTreeMap<(SecretScope, String), SecretString>>>,
}

impl InMemorySecrets {
    /// No secrets.
    pub fn new() -> Self {
        InMemorySecrets::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(SecretScope, String), SecretString>> {
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets a secret in any scope.
    pub fn set(&self, scope: SecretScope, name: &str, value: impl Into<String>) {
        self.lock()
            .insert((scope, name.to_owned()), SecretString::new(value));
    }

    /// Sets an organization secret: `secret("name")`.
    pub fn set_org(&self, name: &str, value: impl Into<String>) {
        self.set(SecretScope::Organization, name, value);
    }

    /// Sets a stage secret: `stage_secret("name")` in `stage` of `pipeline`.
    pub fn set_stage(&self, pipeline: &str, stage: &str, name: &str, value: impl Into<String>) {
        let scope = SecretScope::Stage {
            pipeline: pipeline.to_owned(),
            stage: stage.to_owned(),
        };
        self.set(scope, name, value);
    }

    /// Deletes a secret; returns whether it existed.
    pub fn delete(&self, scope: &SecretScope, name: &str) -> bool {
        self.lock()
            .remove(&(scope.clone(), name.to_owned()))
            .is_some()
    }
}

#[async_trait]
impl SecretSource for InMemorySecrets {
    async fn secret(&self, scope: &SecretScope, name: &str) -> Result<Option<SecretString>> {
        Ok(self.lock().get(&(scope.clone(), name.to_owned())).cloned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::executor::block_on;

    use super::*;

    #[test]
    fn set_read_delete_by_scope() {
        let secrets = InMemorySecrets::new();
        secrets.set_org("TOKEN", "org-value");
        secrets.set_stage("api", "prod", "TOKEN", "prod-value");
        let prod = SecretScope::Stage {
            pipeline: "api".into(),
            stage: "prod".into(),
        };
        let read = |scope: &SecretScope| block_on(secrets.secret(scope, "TOKEN")).unwrap();
        assert_eq!(
            read(&SecretScope::Organization).unwrap().expose(),
            "org-value"
        );
        assert_eq!(read(&prod).unwrap().expose(), "prod-value");
        assert!(
            !format!("{secrets:?}").contains("value"),
            "values are redacted"
        );
        assert!(secrets.delete(&prod, "TOKEN"));
        assert!(!secrets.delete(&prod, "TOKEN"));
        assert_eq!(read(&prod), None);
    }
}

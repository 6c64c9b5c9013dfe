//! Secrets, fetched just before the step that needs them (build-plane resolution).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::expr::SecretString;

/// Where a secret lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretScope {
    /// The organization: `secret("N")`.
    Organization,
    /// One stage of one pipeline: `stage_secret("N")`.
    Stage {
        /// Pipeline slug.
        pipeline: String,
        /// Stage name.
        stage: String,
    },
}

/// A source of secret values.
///
/// # Contract
///
/// `secret` returns the current value, or `Ok(None)` when no such secret exists (a deleted
/// secret fails the step that needs it). Values never appear in errors.
#[async_trait]
pub trait SecretSource: Send + Sync + Debug + 'static {
    /// The value of a secret.
    async fn secret(&self, scope: &SecretScope, name: &str) -> Result<Option<SecretString>>;
}

/// A shared [`SecretSource`].
pub type DynSecretSource = Arc<dyn SecretSource>;

/// Forwards every method, so `Arc<S>` and `Box<S>` (including `Arc<dyn SecretSource>`) are
/// secret sources too.
macro_rules! forward_secret_source {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: SecretSource + ?Sized> SecretSource for $pointer<T> {
            async fn secret(
                &self,
                scope: &SecretScope,
                name: &str,
            ) -> Result<Option<SecretString>> {
                (**self).secret(scope, name).await
            }
        }
    )*};
}

forward_secret_source!(Arc, Box);

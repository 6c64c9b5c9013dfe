//! Forwarding impls of the work contracts ([`Runner`], [`ResourceValidator`],
//! [`ArtifactMirror`], [`InfrastructureSynthesizer`]) for `Arc<T>` and `Box<T>`, so that a
//! shared or boxed backend (including a trait object) is a backend too and a wrapper need not
//! re-implement every method. The other contracts have theirs next to their trait.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    ArtifactMirror, ExecutionKey, InfraPlan, InfraRequest, InfrastructureSynthesizer, LogEntry,
    MirrorRequest, Outcome, Outputs, ResourceValidator, Runner, ValidationRequest,
};
use crate::error::Result;

macro_rules! forward_work {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<R, T> Runner<R> for $pointer<T>
        where
            R: Send + Sync + 'static,
            T: Runner<R> + ?Sized,
        {
            async fn start(&self, request: R) -> Result<()> {
                (**self).start(request).await
            }

            async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
                (**self).wait(key).await
            }

            async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
                (**self).cancel(key).await
            }
            async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
                (**self).logs(key).await
            }
        }

        #[async_trait]
        impl<T: ResourceValidator + ?Sized> ResourceValidator for $pointer<T> {
            async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
                (**self).validate(request).await
            }
        }

        #[async_trait]
        impl<T: ArtifactMirror + ?Sized> ArtifactMirror for $pointer<T> {
            async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
                (**self).mirror(request).await
            }
        }

        #[async_trait]
        impl<T: InfrastructureSynthesizer + ?Sized> InfrastructureSynthesizer for $pointer<T> {
            async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
                (**self).plan(request).await
            }

            async fn apply(&self, request: &InfraRequest, plan: &InfraPlan) -> Result<Outputs> {
                (**self).apply(request, plan).await
            }

            async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
                InfrastructureSynthesizer::logs(&**self, key).await
            }
        }
    )*};
}

forward_work!(Arc, Box);

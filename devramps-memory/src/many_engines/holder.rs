//! A runner decorator that checks, at every start, that its instance holds the lease (L21).

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{DynDeploymentLock, ExecutionKey, Outcome, Runner};
use jiff::Timestamp;

use super::SLUG;
use crate::ScriptedRequest;

/// A runner decorator of one instance: every start (or re-attach) checks that the instance
/// holds the pipeline's lease at that moment (L21), and remembers it when not.
#[derive(Debug)]
pub(super) struct HolderOnly<R: Send + Sync + 'static> {
    pub(super) inner: Arc<dyn Runner<R>>,
    pub(super) instance: String,
    pub(super) lock: DynDeploymentLock,
    pub(super) breaches: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl<R: ScriptedRequest + std::fmt::Debug> Runner<R> for HolderOnly<R> {
    async fn start(&self, request: R) -> devramps_core::Result<()> {
        // The grant last made and not released, expired or not: a holder may renew an
        // expired lease nobody took over, so work under it is still its own.
        let holder = match self.lock.current(SLUG, Timestamp::MIN).await {
            Ok(holder) => holder,
            // The lease service did not answer: nothing to judge by; the engine's own call
            // would have had to pass it too.
            Err(_) => return self.inner.start(request).await,
        };
        if holder.as_ref().is_none_or(|l| l.holder != self.instance) {
            let breach = format!(
                "{} started {} while the lease was {holder:?}",
                self.instance,
                request.key()
            );
            self.breaches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(breach);
        }
        self.inner.start(request).await
    }

    async fn wait(&self, key: &ExecutionKey) -> devramps_core::Result<Outcome> {
        self.inner.wait(key).await
    }

    async fn cancel(&self, key: &ExecutionKey) -> devramps_core::Result<()> {
        self.inner.cancel(key).await
    }
}

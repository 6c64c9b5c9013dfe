//! Requests to the engine as the simulator makes them: delivered again after transient
//! errors, waited for on the virtual clock, or asked without moving it; and the report's log.

use std::future::Future;

use devramps_core::backend::Clock;
use devramps_core::engine::Engine;
use devramps_core::lifecycle::Record;
use futures::FutureExt;
use futures::task::LocalSpawnExt;

use super::{FIRST_BACKOFF, MAX_BACKOFF, MAX_REDELIVERIES, MAX_STEPS, Sim};
use crate::time::add;

impl Sim<'_> {
    /// Delivers a request to the engine and waits for its answer ([`Sim::answer`]); when the
    /// engine answers with a transient error, delivers it again after a delay on the virtual
    /// clock (1s, doubling, at most 1m), as a webhook sender or a person would.
    pub(super) fn call<F, Fut>(&mut self, request: F) -> devramps_core::Result<Vec<Record>>
    where
        F: Fn(Engine, String) -> Fut,
        Fut: Future<Output = devramps_core::Result<Vec<Record>>> + 'static,
    {
        let mut delay = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            let answer = self.answer(request(self.engine.clone(), self.scenario.slug.clone()));
            match answer {
                Err(e) if e.is_transient() && tries < MAX_REDELIVERIES => {
                    tries += 1;
                    let at = add(self.handles.clock.now(), delay);
                    self.advance_to(at);
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                answer => return answer,
            }
        }
    }

    /// Waits for the engine's answer to `request`. A request the store did not take waits in
    /// the engine for its backoff on the virtual clock (`store_fault`), so the clock runs on,
    /// stopping at every deadline, until the answer comes.
    pub(super) fn answer<Fut>(&mut self, request: Fut) -> devramps_core::Result<Vec<Record>>
    where
        Fut: Future<Output = devramps_core::Result<Vec<Record>>> + 'static,
    {
        let unanswered = |why: String| {
            devramps_core::Error::backend("simulator", "deliver a request to the engine", why)
        };
        let mut handle = match self.pool.spawner().spawn_local_with_handle(request) {
            Ok(handle) => handle,
            Err(e) => return Err(unanswered(e.to_string())),
        };
        for _ in 0..MAX_STEPS {
            self.pool.run_until_stalled();
            if let Some(answer) = (&mut handle).now_or_never() {
                return answer;
            }
            if self.handles.clock.next_deadline().is_none() {
                break;
            }
            self.handles.clock.advance_to_next_deadline();
            self.settle();
        }
        Err(unanswered(
            "the engine did not answer and nothing was left to wait for".to_owned(),
        ))
    }

    /// The engine's answer to `request` if it comes without the clock moving, else `None`.
    /// An engine that is resuming behind a store fault waits on the virtual clock before it
    /// serves requests; waiting for its answer here, with the clock stopped, would wait for
    /// ever. The caller asks again after the clock moved.
    pub(super) fn answer_now<T: 'static>(
        &mut self,
        request: impl Future<Output = T> + 'static,
    ) -> Option<T> {
        let mut handle = self.pool.spawner().spawn_local_with_handle(request).ok()?;
        self.pool.run_until_stalled();
        (&mut handle).now_or_never()
    }

    /// The pipeline's log for the report: the log as the store holds it behind the injected
    /// faults, or when that store cannot be read, the engine's history if it can answer now.
    pub(super) fn history(&mut self) -> Vec<Record> {
        // Read behind the injected faults first: a `store_fault` still pending when the run
        // ends is the engine's, not the report's (it must not empty the log).
        let slug = self.scenario.slug.clone();
        if let Ok(records) = self.handles.log.records(&slug, 0, None) {
            return records;
        }
        // The engine may be resuming behind a fault: ask without waiting with the clock stopped.
        self.answer_now({
            let (engine, slug) = (self.engine.clone(), slug.clone());
            async move { engine.history(&slug).await }
        })
        .and_then(Result::ok)
        .unwrap_or_default()
    }
}

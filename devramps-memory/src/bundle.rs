//! [`scripted_backends`]: the whole in-memory bundle, scripted runners included, with typed
//! handles for scripting it.

use std::sync::Arc;

use devramps_core::backend::{Backends, StepRunners};
use jiff::Timestamp;

use crate::{
    InMemoryAlarms, InMemoryEventStore, InMemoryLock, InMemoryMirror, InMemoryResources,
    InMemorySecrets, InMemorySource, ManualClock, ScriptedBuildRunner, ScriptedInfra,
    ScriptedStepRunner,
};

/// Where the clock of [`scripted_backends`] starts: Monday 2026-01-05T17:00:00Z (09:00 in
/// `America/Los_Angeles`, when Pacific working hours open).
pub const DEFAULT_START: Timestamp = Timestamp::constant(1_767_632_400, 0);

/// Typed access to the pieces of the bundle returned by [`scripted_backends`]. Each field is a clone
/// sharing state with the piece inside the bundle, so scripting or inspecting it here affects
/// what the engine sees.
#[derive(Clone, Debug)]
pub struct MemoryHandles {
    /// The event log.
    pub store: InMemoryEventStore,
    /// Leases.
    pub lock: InMemoryLock,
    /// The repository: add commits here.
    pub source: InMemorySource,
    /// Time: advance it to finish builds and steps and open windows.
    pub clock: ManualClock,
    /// Artifact builds.
    pub builds: ScriptedBuildRunner,
    /// The fallback runner of every step type.
    pub steps: ScriptedStepRunner,
    /// Resource validation.
    pub resources: InMemoryResources,
    /// Artifact mirroring.
    pub mirror: InMemoryMirror,
    /// Terraform.
    pub infra: ScriptedInfra,
    /// Secrets.
    pub secrets: InMemorySecrets,
    /// Alarms: set their state here (L15).
    pub alarms: InMemoryAlarms,
}

/// Every backend in memory, on a [`ManualClock`] at [`DEFAULT_START`], **with scripted work**:
/// builds, steps and Terraform do nothing real; unless scripted otherwise through the handles,
/// every build and step succeeds one minute (of the manual clock) after it starts. Returns the
/// bundle and the handles to script and inspect it.
///
/// For tests, examples and simulation only: **never deploy with it**, nothing would be
/// deployed. To embed devramps, build a bundle of real backends with
/// [`Backends::builder`] (the in-memory store, lease service and source are real and may be
/// given to it; a piece not given fails loudly instead of pretending).
pub fn scripted_backends() -> (Backends, MemoryHandles) {
    let clock = ManualClock::new(DEFAULT_START);
    let handles = MemoryHandles {
        store: InMemoryEventStore::new(),
        lock: InMemoryLock::new(),
        source: InMemorySource::new(),
        builds: ScriptedBuildRunner::new("scripted build runner", Arc::new(clock.clone())),
        steps: ScriptedStepRunner::new("scripted step runner", Arc::new(clock.clone())),
        clock,
        resources: InMemoryResources::new(),
        mirror: InMemoryMirror::new(),
        infra: ScriptedInfra::new(),
        secrets: InMemorySecrets::new(),
        alarms: InMemoryAlarms::new(),
    };
    let h = handles.clone();
    let bundle = Backends::builder(Arc::new(h.clock))
        .store(Arc::new(h.store))
        .lock(Arc::new(h.lock))
        .source(Arc::new(h.source))
        .builds(Arc::new(h.builds))
        .resources(Arc::new(h.resources))
        .mirror(Arc::new(h.mirror))
        .infra(Arc::new(h.infra))
        .steps(StepRunners::new().with_fallback(Arc::new(h.steps)))
        .secrets(Arc::new(h.secrets))
        .alarms(Arc::new(h.alarms))
        .build();
    (bundle, handles)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use devramps_core::backend::{AppendOptions, Clock};
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn handles_share_state_with_the_bundle() {
        let (bundle, handles) = scripted_backends();
        assert_eq!(bundle.clock.now().to_string(), "2026-01-05T17:00:00Z");
        handles.clock.advance(std::time::Duration::from_secs(5));
        assert_eq!(bundle.clock.now(), handles.clock.now());
        block_on(async {
            let events = vec![serde_json::json!({})];
            bundle
                .store
                .append("api", 0, events, AppendOptions::default())
                .await
                .unwrap();
        });
        assert_eq!(handles.store.total_events(), 1);
        assert!(bundle.steps.get("ANY:STEP:TYPE").is_ok(), "fallback runner");
    }
}

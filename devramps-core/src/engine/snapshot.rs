//! Loading a pipeline's machine from its latest snapshot and the records after it, and saving
//! a snapshot every [`EngineConfig::snapshot_every`](super::EngineConfig::snapshot_every)
//! records.
//!
//! Snapshots only make loading faster: a snapshot that cannot be used (none saved, another
//! format version, one that does not decode, a store that fails to load it) means a replay of
//! the whole log, with a warning; a snapshot that cannot be saved is logged and changes
//! nothing else.

use super::driver::EngineDriver;
use crate::backend::{Backends, Snapshot};
use crate::error::{Error, Result};
use crate::lifecycle::Machine;

/// Rebuilds a pipeline's machine from its latest usable snapshot and the records after it,
/// or from the whole log. A free function so that the driver's future borrows only the
/// (shareable) backends across the reads, and stays `Send`.
pub(super) async fn load(backends: &Backends, pipeline: &str) -> Result<Machine> {
    let mut machine = match backends.store.load_snapshot(pipeline).await {
        Ok(Some(snapshot)) => usable(pipeline, &snapshot).unwrap_or_else(|| Machine::new(pipeline)),
        Ok(None) => Machine::new(pipeline),
        Err(e) => {
            tracing::warn!(pipeline = %pipeline, error = %e, "could not load the snapshot: replaying the whole log");
            Machine::new(pipeline)
        }
    };
    let events = backends
        .store
        .read(pipeline, machine.state().applied, None)
        .await?;
    let records = super::records_of(pipeline, events)?;
    machine.apply(&records);
    Ok(machine)
}

/// The machine a snapshot holds, or `None` (with a warning) when it cannot be used.
fn usable(pipeline: &str, snapshot: &Snapshot) -> Option<Machine> {
    match Machine::from_snapshot(pipeline, &snapshot.state) {
        Ok(machine) if machine.state().applied == snapshot.seq => Some(machine),
        Ok(machine) => {
            tracing::warn!(
                pipeline = %pipeline,
                seq = snapshot.seq,
                applied = machine.state().applied,
                "the snapshot's state does not match its seq: replaying the whole log"
            );
            None
        }
        Err(e) => {
            tracing::warn!(pipeline = %pipeline, seq = snapshot.seq, error = %e, "unusable snapshot: replaying the whole log");
            None
        }
    }
}

impl EngineDriver {
    /// After an append that took `pipeline`'s log from `before` records to its machine's:
    /// saves a snapshot when the log crossed a multiple of `snapshot_every`. Best effort.
    /// (`&mut self`: the driver is `Send` but not `Sync`, and its futures must stay `Send`.)
    pub(super) async fn snapshot_if_due(&mut self, pipeline: &str, before: u64) {
        let every = self.config.snapshot_every;
        let Some(machine) = self
            .pipelines
            .get(pipeline)
            .and_then(|p| p.machine.as_ref())
        else {
            return;
        };
        let seq = machine.state().applied;
        if every == 0 || seq / every == before / every {
            return;
        }
        let saved = match machine.snapshot() {
            Ok(state) => {
                self.backends
                    .store
                    .save_snapshot(pipeline, Snapshot { seq, state })
                    .await
            }
            Err(e) => Err(e),
        };
        match saved {
            Ok(()) => tracing::debug!(pipeline = %pipeline, seq, "snapshot saved"),
            Err(Error::NotSupported { .. }) => {
                tracing::debug!(pipeline = %pipeline, "the store keeps no snapshots");
            }
            Err(e) => {
                tracing::warn!(pipeline = %pipeline, seq, error = %e, "could not save a snapshot")
            }
        }
    }
}

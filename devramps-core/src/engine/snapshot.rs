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

/// Whether a snapshot is due at `seq` when the last one was taken (or the machine loaded) at
/// `base`: after `every` records, and after a quarter of the log when that is more. Writing a
/// snapshot costs the size of the state, which grows with the log: spacing them in proportion
/// keeps their total cost linear in the log (a fixed spacing made a long push storm
/// quadratic), while the tail a restart replays stays under a quarter of the log.
fn snapshot_due(every: u64, base: u64, seq: u64) -> bool {
    every > 0 && seq.saturating_sub(base) >= every.max(base / 4)
}

impl EngineDriver {
    /// After an append to `pipeline`'s log: saves a snapshot when [`snapshot_due`]. Best
    /// effort.
    /// (`&mut self`: the driver is `Send` but not `Sync`, and its futures must stay `Send`.)
    pub(super) async fn snapshot_if_due(&mut self, pipeline: &str) {
        let every = self.config.snapshot_every;
        let Some(machine) = self
            .pipelines
            .get(pipeline)
            .and_then(|p| p.machine.as_ref())
        else {
            return;
        };
        let seq = machine.state().applied;
        let base = self.pipelines.get(pipeline).map_or(0, |p| p.snapshot_base);
        if !snapshot_due(every, base, seq) {
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
        // Tried at `seq`: the next try waits as long, whether it was saved or not.
        self.pipeline(pipeline).snapshot_base = seq;
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

#[cfg(test)]
mod tests {
    use super::snapshot_due;

    #[test]
    fn snapshots_come_every_n_records_then_every_quarter_of_the_log() {
        assert!(!snapshot_due(0, 0, 1_000_000), "0 turns them off");
        assert!(!snapshot_due(1000, 0, 999));
        assert!(snapshot_due(1000, 0, 1000));
        assert!(snapshot_due(1000, 3000, 4000));
        assert!(!snapshot_due(1000, 8000, 9999), "a quarter of 8000 is 2000");
        assert!(snapshot_due(1000, 8000, 10_000));
        // Taken at each due point from 0, the snapshots of a 300,000-record log number few.
        let (mut base, mut count) = (0, 0);
        for seq in 1..=300_000 {
            if snapshot_due(1000, base, seq) {
                base = seq;
                count += 1;
            }
        }
        assert!((15..40).contains(&count), "{count} snapshots");
    }
}

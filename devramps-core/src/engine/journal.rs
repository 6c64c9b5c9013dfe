//! [`InputJournal`]: an observer of what an engine instance recorded and why.

use std::fmt::Debug;

use jiff::Timestamp;

use crate::lifecycle::{Input, Record};

/// One append of an engine instance: the inputs it fed to the machine, the `now` it fed them
/// at, and the records they produced, written from sequence number `first_seq` on.
///
/// Feeding `inputs` in order, each with `now`, to a [`Machine`](crate::lifecycle::Machine)
/// whose state is the fold of the log's records before `first_seq` produces exactly
/// `records`: the entries of every instance, in `first_seq` order, replay the log.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct JournalEntry<'a> {
    /// The pipeline (the stream).
    pub pipeline: &'a str,
    /// The instance that appended ([`EngineConfig::instance`](super::EngineConfig::instance)).
    pub instance: &'a str,
    /// The sequence number of the first record written.
    pub first_seq: u64,
    /// The inputs, in the order they were fed.
    pub inputs: &'a [Input],
    /// The records written (never empty).
    pub records: &'a [Record],
    /// The time the inputs were fed at.
    pub now: Timestamp,
    /// The fencing token presented: `Some` when the instance held the pipeline's lease.
    pub fencing_token: Option<u64>,
}

/// Observes every append of an engine instance ([`EngineConfig::journal`]).
///
/// # Contract
///
/// - [`recorded`](InputJournal::recorded) is called once per successful append that wrote
///   records, after the append and before the work it implies starts, on the driver's task:
///   it must return quickly and must not wait for the engine.
/// - It cannot refuse or undo the append; an observer that fails keeps that to itself.
/// - One instance's entries come in log order. Instances sharing a store each call their own
///   observer; merge their entries by [`JournalEntry::first_seq`].
///
/// [`EngineConfig::journal`]: super::EngineConfig::journal
pub trait InputJournal: Send + Sync + Debug + 'static {
    /// Called after an append.
    fn recorded(&self, entry: &JournalEntry<'_>);
}

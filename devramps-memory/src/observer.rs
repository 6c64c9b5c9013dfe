//! [`RecordingObserver`]: an engine observer that keeps every append it was told about.

use std::sync::{Arc, Mutex, PoisonError};

use devramps_core::engine::{Appended, Observer};
use devramps_core::lifecycle::{Input, Record};
use jiff::Timestamp;

/// One append, as a [`RecordingObserver`] keeps it. It serializes (as JSON, say) so that
/// engines in other processes can journal their appends to files a test merges.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ObservedAppend {
    /// The pipeline.
    pub pipeline: String,
    /// The instance that appended.
    pub instance: String,
    /// The sequence number of the first record.
    pub first_seq: u64,
    /// The inputs fed.
    pub inputs: Vec<Input>,
    /// The records written.
    pub records: Vec<Record>,
    /// When the inputs were fed.
    pub now: Timestamp,
    /// The fencing token presented.
    pub fencing_token: Option<u64>,
}

/// An [`Observer`] that records every append, in the order it was told. Clones share what
/// was recorded, so several engine instances can share one (an audit trail of a cluster).
#[derive(Clone, Debug, Default)]
pub struct RecordingObserver {
    seen: Arc<Mutex<Vec<ObservedAppend>>>,
}

impl RecordingObserver {
    /// An observer that has seen nothing.
    pub fn new() -> Self {
        RecordingObserver::default()
    }

    /// Every append seen, in order.
    pub fn appends(&self) -> Vec<ObservedAppend> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every record seen, with its sequence number, in the order seen.
    pub fn records(&self) -> Vec<(u64, Record)> {
        self.appends()
            .into_iter()
            .flat_map(|a| (a.first_seq..).zip(a.records))
            .collect()
    }
}

impl ObservedAppend {
    /// An owned copy of what an observer was told.
    pub fn of(append: &Appended<'_>) -> Self {
        ObservedAppend {
            pipeline: append.pipeline.to_owned(),
            instance: append.instance.to_owned(),
            first_seq: append.first_seq,
            inputs: append.inputs.to_vec(),
            records: append.records.to_vec(),
            now: append.now,
            fencing_token: append.fencing_token,
        }
    }
}

impl Observer for RecordingObserver {
    fn appended(&self, append: &Appended<'_>) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ObservedAppend::of(append));
    }
}

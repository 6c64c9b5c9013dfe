//! [`Observer`]: told about every durable append of an engine instance — notifications,
//! commit statuses, audit trails and metrics are each one observer.

use std::fmt::Debug;
use std::sync::Arc;

use jiff::Timestamp;

use crate::lifecycle::{Input, Record};

/// One durable append of an engine instance: the records written from sequence number
/// `first_seq` on, and the inputs that produced them, fed to the machine at `now`.
///
/// Feeding `inputs` in order, each with `now`, to a [`Machine`](crate::lifecycle::Machine)
/// whose state is the fold of the log's records before `first_seq` produces exactly
/// `records`: the appends of every instance, in `first_seq` order, replay the log.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Appended<'a> {
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

/// Observes the appends of an engine instance ([`EngineConfig::observers`]).
///
/// # Contract
///
/// - [`appended`](Observer::appended) is called once per durable append that wrote records,
///   after the store acknowledged it and before the work it implies starts, by the instance
///   that appended. Each record is appended by exactly one instance, so with the same
///   observers on every instance each record is observed **at most once**, across restarts
///   and several engines. A record whose append was acknowledged to nobody (the answer was
///   lost, or the instance died right after) is not observed: an observer that must see
///   every record reads the log from its own cursor ([`Engine::history`]).
/// - It runs on the driver's task: it must return quickly and never wait for the engine
///   (queue slow work, such as an HTTP call, to a task of its own).
/// - It cannot refuse or undo the append; an observer that fails keeps that to itself.
/// - One instance's appends of a pipeline come in log order.
///
/// [`EngineConfig::observers`]: super::EngineConfig::observers
/// [`Engine::history`]: super::Engine::history
pub trait Observer: Send + Sync + Debug + 'static {
    /// Called after a durable append.
    fn appended(&self, append: &Appended<'_>);
}

/// A shared [`Observer`].
pub type DynObserver = Arc<dyn Observer>;

impl<T: Observer + ?Sized> Observer for Arc<T> {
    fn appended(&self, append: &Appended<'_>) {
        (**self).appended(append);
    }
}

impl<T: Observer + ?Sized> Observer for Box<T> {
    fn appended(&self, append: &Appended<'_>) {
        (**self).appended(append);
    }
}

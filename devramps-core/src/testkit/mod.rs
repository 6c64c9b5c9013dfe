//! The conformance kit (feature `testkit`): the cases every backend implementation must pass,
//! as plain async functions over trait objects, and macros that expand them into one named
//! `#[test]` per case.
//!
//! In a backend crate's `tests/conformance.rs`:
//!
//! ```text
//! mod store {
//!     devramps_core::store_conformance_tests!(my_crate::MyEventStore::new_for_tests());
//! }
//! mod lock {
//!     devramps_core::lock_conformance_tests!(my_crate::MyLock::new_for_tests());
//! }
//! ```
//!
//! The expression is evaluated once per test, so each case gets a fresh, isolated backend. It
//! may produce any type implementing the trait, or an `Arc<dyn EventStore>` /
//! `Arc<dyn DeploymentLock>`. Each macro invocation defines functions named after the cases,
//! so invoke each macro at most once per module.
//!
//! The cases panic (this is test code) with a message naming the contract clause broken.

pub mod lock;
pub mod store;

use crate::backend::{DeploymentLock, EventStore};

/// Runs a future to completion on the current thread (re-exported from `futures`), so the
/// generated tests need no runtime.
pub use futures::executor::block_on;

/// Unwraps a result, panicking with what was being done and the error.
#[track_caller]
pub(crate) fn ok<T>(result: crate::Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: unexpected error: {error}"),
    }
}

/// Borrows a value as `&dyn EventStore`: implemented for every [`EventStore`] and for
/// `Arc<dyn EventStore>`.
pub trait AsDynEventStore {
    /// The store as a trait object.
    fn as_dyn_event_store(&self) -> &dyn EventStore;
}

impl<T: EventStore> AsDynEventStore for T {
    fn as_dyn_event_store(&self) -> &dyn EventStore {
        self
    }
}

/// Borrows a value as `&dyn DeploymentLock`: implemented for every [`DeploymentLock`] and for
/// `Arc<dyn DeploymentLock>`.
pub trait AsDynDeploymentLock {
    /// The lock service as a trait object.
    fn as_dyn_deployment_lock(&self) -> &dyn DeploymentLock;
}

impl<T: DeploymentLock> AsDynDeploymentLock for T {
    fn as_dyn_deployment_lock(&self) -> &dyn DeploymentLock {
        self
    }
}

/// Expands to one `#[test]` per [`EventStore`] conformance case
/// ([`testkit::store`](crate::testkit::store)), each with a fresh store from the expression.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_tests!(
            store,
            as_dyn_event_store,
            AsDynEventStore,
            $make,
            [
                append_to_empty_stream,
                cas_conflict_writes_nothing,
                append_is_atomic,
                read_after_and_limit,
                seq_contiguous,
                unknown_stream_is_empty,
                streams_sorted_and_independent,
                fencing_tokens,
                empty_append_fences,
                empty_append_checks_expected,
                concurrent_appends_one_wins,
                snapshot_roundtrip_or_not_supported,
            ]
        );
    };
}

/// Expands to one `#[test]` per [`DeploymentLock`] conformance case
/// ([`testkit::lock`](crate::testkit::lock)), each with a fresh lock service from the
/// expression.
#[macro_export]
macro_rules! lock_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_tests!(
            lock,
            as_dyn_deployment_lock,
            AsDynDeploymentLock,
            $make,
            [
                acquire_free_key,
                second_holder_refused_while_live,
                reacquire_by_holder_extends,
                expired_lease_taken_with_greater_token,
                renew_extends_live_lease,
                renew_after_loss_conflicts,
                release_frees_key,
                release_stale_lease_does_nothing,
                tokens_strictly_increase,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($module:ident, $as_dyn:ident, $trait:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                use $crate::testkit::$trait as _;
                let backend = $make;
                $crate::testkit::block_on($crate::testkit::$module::$case(backend.$as_dyn()));
            }
        )*
    };
}

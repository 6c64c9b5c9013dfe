//! The conformance kit (feature `testkit`): the cases every backend implementation must pass,
//! as plain async functions, and macros that expand them into one named `#[test]` per case.
//!
//! | macro | cases | what setup makes |
//! |---|---|---|
//! | [`store_conformance_tests!`](crate::store_conformance_tests) | [`store`] | any [`EventStore`](crate::backend::EventStore) |
//! | [`lock_conformance_tests!`](crate::lock_conformance_tests) | [`lock`] | any [`DeploymentLock`](crate::backend::DeploymentLock) |
//! | [`source_conformance_tests!`](crate::source_conformance_tests) | [`source`] | a [`SourceFixture`] |
//! | [`runner_conformance_tests!`](crate::runner_conformance_tests) | [`runner`] | a [`RunnerFixture`] |
//! | [`alarm_conformance_tests!`](crate::alarm_conformance_tests) | [`alarm`] | an [`AlarmFixture`] |
//! | [`mirror_conformance_tests!`](crate::mirror_conformance_tests) | [`mirror`] | a [`MirrorFixture`] |
//! | [`engine_conformance_tests!`](crate::engine_conformance_tests) | [`engine`] | an [`EngineFixture`] |
//!
//! A backend crate implements [`Harness`] (async setup and cleanup of a fresh, isolated
//! backend, its [`Capabilities`] and the [`Runtime`] its futures need) and, in its
//! `tests/conformance.rs`:
//!
//! ```text
//! mod store {
//!     devramps_core::store_conformance_tests!(harness = my_crate::testing::StoreHarness::new());
//! }
//! mod lock {
//!     // Shorthand for a backend made by an expression: no cleanup, every capability,
//!     // `futures::executor`.
//!     devramps_core::lock_conformance_tests!(my_crate::MyLock::new_for_tests());
//! }
//! ```
//!
//! The expression is evaluated once per test, and every test sets up its own backend and
//! cleans it up afterwards, even when the case fails. Each macro invocation defines functions
//! named after the cases, so invoke each macro at most once per module.
//!
//! The cases panic (this is test code) with a message naming the contract clause broken.

pub mod alarm;
pub mod engine;
pub mod lock;
pub mod mirror;
pub mod runner;
pub mod source;
pub mod store;

mod harness;

pub use alarm::AlarmFixture;
pub use engine::EngineFixture;
pub use harness::{Capabilities, Fresh, Harness, Runtime, Time, until};
pub use mirror::MirrorFixture;
pub use runner::RunnerFixture;
pub use source::SourceFixture;

/// Runs a future to completion on the current thread (re-exported from `futures`).
pub use futures::executor::block_on;

/// Unwraps a result, panicking with what was being done and the error.
#[track_caller]
pub(crate) fn ok<T>(result: crate::Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: unexpected error: {error}"),
    }
}

/// Expands to one `#[test]` per [`EventStore`](crate::backend::EventStore) conformance case
/// ([`testkit::store`](crate::testkit::store)). Give a harness (`harness = expr`) whose setup
/// makes any `EventStore` (an `Arc<dyn EventStore>` is one), or an expression making the store.
#[macro_export]
macro_rules! store_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            store,
            [$($make)+],
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

/// Expands to one `#[test]` per [`DeploymentLock`](crate::backend::DeploymentLock)
/// (lease service) conformance case ([`testkit::lock`](crate::testkit::lock)). Give a harness
/// (`harness = expr`) or an expression making the lease service.
#[macro_export]
macro_rules! lock_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            lock,
            [$($make)+],
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
                renew_by_another_holder_conflicts,
                keys_are_independent,
            ]
        );
    };
}

/// Expands to one `#[test]` per [`SourceRepository`](crate::backend::SourceRepository)
/// conformance case ([`testkit::source`](crate::testkit::source)); setup makes a
/// [`SourceFixture`].
#[macro_export]
macro_rules! source_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            source,
            [$($make)+],
            [
                resolve_known_and_unknown,
                read_file_present_absent_and_unknown_commit,
                changed_paths_sorted_files_only,
                first_parent_of_root_and_child,
                list_dir_sorted_with_kinds,
                pipeline_slugs_and_text,
                reads_are_pure,
            ]
        );
    };
}

/// Expands to one `#[test]` per [`Runner`](crate::backend::Runner) conformance case
/// ([`testkit::runner`](crate::testkit::runner)); setup makes a [`RunnerFixture`].
#[macro_export]
macro_rules! runner_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            runner,
            [$($make)+],
            [
                start_then_wait_ends,
                start_again_reattaches,
                wait_twice_returns_the_same_outcome,
                cancel_running_fails_it,
                cancel_ended_or_unknown_does_nothing,
                unknown_key_not_found,
            ]
        );
    };
}

/// Expands to one `#[test]` per [`AlarmSource`](crate::backend::AlarmSource) conformance case
/// ([`testkit::alarm`](crate::testkit::alarm)); setup makes an [`AlarmFixture`].
#[macro_export]
macro_rules! alarm_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            alarm,
            [$($make)+],
            [
                unknown_alarm_has_no_state,
                state_reads_back_what_was_set,
                subscription_sees_later_changes_in_order,
                subscriptions_are_independent,
            ]
        );
    };
}

/// Expands to one `#[test]` per [`ArtifactMirror`](crate::backend::ArtifactMirror)
/// conformance case ([`testkit::mirror`](crate::testkit::mirror)); setup makes a
/// [`MirrorFixture`].
#[macro_export]
macro_rules! mirror_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            mirror,
            [$($make)+],
            [mirror_places_the_artifact, mirror_again_succeeds_and_keeps_it]
        );
    };
}

/// Expands to the engine smoke test ([`testkit::engine`](crate::testkit::engine)) over a
/// whole [`Backends`](crate::backend::Backends) bundle; setup makes an [`EngineFixture`].
#[macro_export]
macro_rules! engine_conformance_tests {
    ($($make:tt)+) => {
        $crate::__conformance_tests!(
            engine,
            [$($make)+],
            [one_push_through_one_stage_succeeds]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($module:ident, [harness = $harness:expr], [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::__run(
                    $harness,
                    |backend, caps| ::std::boxed::Box::pin($crate::testkit::$module::$case(
                        $crate::testkit::$module::subject(backend),
                        caps,
                    )),
                );
            }
        )*
    };
    ($module:ident, [$make:expr], [$($case:ident),* $(,)?]) => {
        $crate::__conformance_tests!(
            $module,
            [harness = $crate::testkit::Fresh(|| $make)],
            [$($case),*]
        );
    };
}

#[doc(hidden)]
pub use harness::run as __run;

//! # devramps-core
//!
//! The runtime-agnostic core of devramps, a Rust SDK for push-to-production deployment
//! pipelines. You embed it: you give it backends (where the log lives, how work runs, where
//! the code is), it gives you an [`engine::Engine`] that turns pushes into revisions and moves
//! them stage by stage under the lifecycle rules L1..L21. It depends on no async runtime
//! (a real-time clock for tokio is behind the feature `tokio`), opens no sockets and reads no
//! clock of its own.
//!
//! ## Embedding it
//!
//! 1. **Backends.** [`backend::Backends`] holds one of each contract; build it with
//!    [`backend::Backends::builder`], and every piece you do not give fails loudly with
//!    [`Error::NotSupported`] when used. Each contract is a small, dyn-compatible trait with a
//!    `# Contract` section: [`backend::EventStore`] (the log, compare-and-swap and fencing),
//!    [`backend::DeploymentLock`] (leases), [`backend::SourceRepository`],
//!    [`backend::Runner`] of builds and of steps (start, re-attach, wait, cancel by
//!    idempotency key), [`backend::ResourceValidator`], [`backend::ArtifactMirror`],
//!    [`backend::InfrastructureSynthesizer`], [`backend::SecretSource`], [`backend::Clock`]
//!    and [`backend::AlarmSource`]. `Arc<T>` and `Box<T>` of a backend are backends too.
//! 2. **Which exist.** `devramps-memory` implements every contract in memory (the store,
//!    lease service and source for real; the runners scripted: `scripted_backends()` fakes
//!    work and is for tests only), with a manual clock and fault-injecting decorators;
//!    `devramps-git` reads a git repository on disk; `devramps-sim` drives scenarios.
//! 3. **A custom backend** is one trait impl: `examples/custom_store.rs` is an event store in
//!    a few dozen lines that passes the kit and runs a deployment.
//! 4. **Errors.** Return [`Error::Conflict`] for a lost compare-and-swap,
//!    [`Error::Unavailable`] for anything transient (throttling, 5xx, timeouts: the engine
//!    retries with backoff and never changes an outcome because of it), [`Error::NotFound`]
//!    for what does not exist, [`Error::Backend`] with the SDK's error as `source` for a
//!    failure that retrying will not fix, and [`Error::NotSupported`] for what the backend
//!    cannot do at all. The table is in [`Error`].
//! 5. **The test kit** (`devramps_core::testkit`, behind the feature `testkit`): one macro
//!    per contract expands to one named `#[test]` per case, over a harness with async setup
//!    and cleanup, capability flags and a runtime choice (tokio or futures), so a backend on a
//!    real service runs the same cases as the in-memory one.
//! 6. **Watching.** An [`engine::Observer`] is told after each durable append (notifications,
//!    commit statuses, audit trails); [`engine::Engine::history`] reads the log.
//!
//! Inside, imports point down: `source` (spans, YAML, diagnostics) < [`expr`] (the `${{ }}`
//! language) < [`pipeline`] (the model and its structural checks) < [`plan`] (synthesis and
//! the full check) < [`exec`] (the vocabulary of work) < [`lifecycle`] (the sans-IO machine:
//! its state is the fold of the log) < [`engine`] (the async driver). [`backend`] holds only
//! the traits.
//!
//! ## Reading a pipeline
//!
//! ```
//! use devramps_core::{pipeline::Severity, plan};
//!
//! let yaml = r#"
//! version: "1.0.0"
//! pipeline:
//!   cloud_provider: AWS
//!   pipeline_updates_require_approval: NEVER
//!   stages:
//!     - name: staging
//!       account_id: "111111111111"
//!       region: us-east-1
//!   steps:
//!     - name: Deploy
//!       type: CUSTOM:SCRIPT:DEPLOY
//!   artifacts: {}
//! "#;
//! // The full check of `devramps validate`: structure (`pipeline::check`) and expressions.
//! let checked = plan::check(yaml);
//! assert!(checked.diagnostics.iter().all(|d| d.severity != Severity::Error));
//! let definition = checked.definition.expect("valid pipeline");
//! assert_eq!(definition.stages[0].name.value, "staging");
//!
//! // Every problem of a file is reported at once, each with a stable code and a location.
//! let broken = plan::check("version: \"2.0\"\npipeline:\n  cloud_provider: GCP\n");
//! let codes: Vec<&str> = broken.diagnostics.iter().map(|d| d.code.as_str()).collect();
//! assert!(codes.contains(&"E0007") && codes.contains(&"E0008"));
//! ```
#![forbid(unsafe_code)]

pub use error::{BoxError, Error, Result};

pub mod backend;
pub mod engine;
mod error;
pub mod exec;
pub mod expr;
pub mod lifecycle;
pub mod pipeline;
pub mod plan;
pub mod source;
#[cfg(feature = "testkit")]
pub mod testkit;

//! # devramps-core
//!
//! The runtime-agnostic core of devramps, a Rust SDK for push-to-production deployment
//! pipelines. This crate holds the typed model of `pipeline.yaml`, its parser with precise
//! source locations, validation with stable diagnostic codes, and pipeline discovery in a
//! repository. It depends on no async runtime, opens no sockets and reads no clock.
//!
//! ```
//! use devramps_core::pipeline::{self, Severity};
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
//! let checked = pipeline::check(yaml);
//! assert!(checked.diagnostics.iter().all(|d| d.severity != Severity::Error));
//! let definition = checked.definition.expect("valid pipeline");
//! assert_eq!(definition.stages[0].name.value, "staging");
//!
//! // Every problem of a file is reported at once, each with a stable code and a location.
//! let broken = pipeline::check("version: \"2.0\"\npipeline:\n  cloud_provider: GCP\n");
//! let codes: Vec<&str> = broken.diagnostics.iter().map(|d| d.code.as_str()).collect();
//! assert!(codes.contains(&"E0007") && codes.contains(&"E0008"));
//! ```
#![forbid(unsafe_code)]

pub use error::{BoxError, Error, Result};

pub mod backend;
pub mod engine;
mod error;
pub mod expr;
pub mod lifecycle;
pub mod pipeline;
pub mod plan;
#[cfg(feature = "testkit")]
pub mod testkit;

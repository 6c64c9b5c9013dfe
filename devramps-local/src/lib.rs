//! Backends for one machine, durable and real: what `devramps run` deploys with.
//!
//! - [`store`]: an embedded, durable [`EventStore`](devramps_core::backend::EventStore) and
//!   [`DeploymentLock`](devramps_core::backend::DeploymentLock) in one database file, safe for
//!   several processes and for `kill -9` at any point.
//! - [`source`]: a git repository on disk as the
//!   [`SourceRepository`](devramps_core::backend::SourceRepository).
//! - [`build`]: artifact builds and imports (bundles, Docker images) in clean checkouts, and
//!   a folder as the artifact store.
//! - [`steps`]: the process runner of `CUSTOM:*` steps, speaking the DevRamps step protocol.
//! - [`gate`]: the runner of `DEVRAMPS:APPROVAL:TEST` test gates.
//! - [`terraform`]: the [`TerraformRunner`] of Terraform steps, running a real `terraform`.
//! - [`notify`]: notifications (Slack incoming webhooks) as an engine observer.
#![forbid(unsafe_code)]

pub mod build;
pub mod gate;
mod jobdir;
pub mod notify;
pub mod source;
pub mod steps;
pub mod store;
pub mod terraform;

pub use terraform::TerraformRunner;

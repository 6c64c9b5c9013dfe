//! Image mirroring: copying an image from one registry (the pipeline's root repository) to
//! another (a stage's), over the OCI distribution API.
//!
//! [`OciCopier`] is the registry-to-registry copy: manifests (single images and multi-arch
//! indexes), config and layer blobs, skipping what the destination already has, mounting
//! across repositories of one registry, verifying every digest. ECR's part (authorization
//! tokens, repositories) comes on top of it; here a registry's credentials are a
//! [`RegistryAuth`].

mod blob;
pub mod oci;
mod wire;

pub use oci::{CopyReport, OciCopier, OciCopierOptions, RegistryAuth};

/// An image reference (devramps-core's `devramps_core::exec::ImageRef`, re-exported here
/// for the copier's callers).
pub use devramps_core::exec::ImageRef;

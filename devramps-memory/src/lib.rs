//! In-memory backends for devramps: real implementations of the core's backend contracts that
//! keep their state in memory, for embedding, tests and simulation. Cloning a backend shares its
//! state; iteration order is deterministic.
//!
//! ```
//! use devramps_core::backend::{SourceRepository, SourceRepositoryExt};
//! use devramps_memory::InMemorySource;
//!
//! let repo = InMemorySource::new();
//! repo.commit("c1", None, [("/.devramps/api/pipeline.yaml", "version: \"1.0.0\"\n"), ("/README.md", "hi")]);
//! repo.commit_changes("c2", "c1", [("/src/main.rs", Some("fn main() {}"))]);
//! futures::executor::block_on(async {
//!     assert_eq!(repo.changed_paths("c1", "c2").await.unwrap(), ["/src/main.rs"]);
//!     assert_eq!(repo.pipeline_slugs("c2").await.unwrap(), ["api"]);
//! });
//! ```
#![forbid(unsafe_code)]

mod source;

pub use source::InMemorySource;

//! Contracts of the backends the engine runs against, one file per trait.

mod source;

pub use source::{DirEntry, DynSourceRepository, SourceRepository, SourceRepositoryExt};

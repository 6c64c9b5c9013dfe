//! The local source: a git repository on disk, read through libgit2 ([`GitRepository`]).
//!
//! The code lives in `devramps-git` so that programs that only read git (`devramps plan`) need
//! not depend on this crate; it is re-exported here so that one crate gives every local backend.

pub use devramps_git::GitRepository;

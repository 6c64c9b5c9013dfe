//! The library half of the `devramps` command line: what it reads that other programs may want
//! too.
//!
//! - [`git::GitRepository`] reads a local git repository (files at a commit, changed paths,
//!   parents, directory listings) as a [`devramps_core::backend::SourceRepository`]; `devramps
//!   plan` synthesizes deployment plans from it.
//!
//! The commands themselves (argument parsing, reports) live in the `devramps` binary.
#![forbid(unsafe_code)]

pub mod git;

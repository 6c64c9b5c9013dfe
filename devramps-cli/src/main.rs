//! The `devramps` command line.
#![forbid(unsafe_code)]

fn main() {}

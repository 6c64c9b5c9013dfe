//! Shared inputs of the devramps benchmarks.
#![forbid(unsafe_code)]

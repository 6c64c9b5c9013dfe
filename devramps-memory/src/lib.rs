//! In-memory backends for devramps.
#![forbid(unsafe_code)]

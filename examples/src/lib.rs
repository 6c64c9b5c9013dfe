//! Runnable examples of embedding devramps; see the `examples/` folder of this package.
#![forbid(unsafe_code)]

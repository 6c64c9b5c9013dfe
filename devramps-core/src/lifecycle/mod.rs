//! The deployment lifecycle of `lifecycle.md`. This module holds the time windows (L8).

mod window;

pub use window::PACIFIC_ZONE;

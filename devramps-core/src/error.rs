//! The crate's error type: one enum whose cases callers act on.

use crate::pipeline::Diagnostics;

/// What can go wrong in devramps' core and its backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Something named does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, for example "commit `abc123`".
        what: String,
    },
    /// A conditional write lost a race: re-read and decide again.
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted.
        what: String,
    },
    /// An operation that the lifecycle rules do not allow now.
    #[error("{operation} refused ({rule}): {reason}")]
    Refused {
        /// The operation, for example "retry".
        operation: String,
        /// The rule id, for example "L11".
        rule: String,
        /// Why, for example "revision 7 is queued in prod".
        reason: String,
    },
    /// Input that was checked and found wrong.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    /// A backend could not do what was asked.
    #[error("{backend} failed to {operation}: {message}")]
    Backend {
        /// The backend, for example "git".
        backend: String,
        /// What it was doing, for example "read `/x` at `abc`".
        operation: String,
        /// What went wrong and, where known, what to do.
        message: String,
    },
    /// A backend that cannot do this at all.
    #[error("{backend} does not support {operation}")]
    NotSupported {
        /// The operation.
        operation: String,
        /// The backend.
        backend: String,
    },
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Backend`] error.
    pub fn backend(
        backend: impl Into<String>,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            operation: operation.into(),
            message: message.into(),
        }
    }

    /// A [`Error::NotFound`] error.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

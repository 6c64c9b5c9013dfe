//! The crate's error type: one enum whose cases callers act on.
//!
//! | case | meaning | what the engine does |
//! |---|---|---|
//! | [`Error::NotFound`] | something named does not exist | reports it |
//! | [`Error::Conflict`] | a conditional write lost a race | re-reads and decides again |
//! | [`Error::Refused`] | the lifecycle rules do not allow the operation now | records a `refused` event and returns this |
//! | [`Error::Invalid`] | checked input was found wrong | reports every diagnostic |
//! | [`Error::Unavailable`] | a transient failure: throttling, 5xx, a timeout | retries with backoff; never changes an outcome |
//! | [`Error::Backend`] | a backend failed for good | fails what depended on it, with this message |
//! | [`Error::NotSupported`] | a backend cannot do this at all | fails loudly |
//!
//! Backends keep the error they got from their SDK as the `source` of [`Error::Backend`] or
//! [`Error::Unavailable`], so `std::error::Error::source` chains reach it.

use std::time::Duration;

use crate::pipeline::Diagnostics;

/// The underlying cause of a backend error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// An operation that the lifecycle rules do not allow now. The engine has recorded a
    /// `refused` event with the same rule and reason.
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
    /// A transient failure (throttling, a 5xx answer, a timeout, a connection reset): the same
    /// call may succeed later. The engine retries it with backoff; a runner's `wait` answering
    /// this makes the engine wait again (re-attach), never fail the stage.
    #[error("{backend} is unavailable to {operation}: {message}{}", retry_hint(.retry_after))]
    Unavailable {
        /// The backend, for example "s3".
        backend: String,
        /// What it was doing, for example "append to `api`".
        operation: String,
        /// What it answered, for example "503 SlowDown".
        message: String,
        /// When to try again, if the backend said.
        retry_after: Option<Duration>,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A backend could not do what was asked, and trying again will not help.
    #[error("{backend} failed to {operation}: {message}")]
    Backend {
        /// The backend, for example "git".
        backend: String,
        /// What it was doing, for example "read `/x` at `abc`".
        operation: String,
        /// What went wrong and, where known, what to do.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
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

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {}s)", d.as_secs_f64()),
        None => String::new(),
    }
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Backend`] error without a source.
    pub fn backend(
        backend: impl Into<String>,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            operation: operation.into(),
            message: message.into(),
            source: None,
        }
    }

    /// A [`Error::Backend`] error caused by `source`; the message is `source`'s.
    pub fn backend_from(
        backend: impl Into<String>,
        operation: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        let source = source.into();
        Error::Backend {
            backend: backend.into(),
            operation: operation.into(),
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// A transient [`Error::Unavailable`] error without a source or a retry hint.
    pub fn unavailable(
        backend: impl Into<String>,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Unavailable {
            backend: backend.into(),
            operation: operation.into(),
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// A [`Error::NotFound`] error.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// A [`Error::NotSupported`] error.
    pub fn not_supported(operation: impl Into<String>, backend: impl Into<String>) -> Self {
        Error::NotSupported {
            operation: operation.into(),
            backend: backend.into(),
        }
    }

    /// Whether the same call may succeed later ([`Error::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// The delay the backend asked for before trying again, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::backend_from("s3", "append to `api`", io);
        assert_eq!(e.to_string(), "s3 failed to append to `api`: reset by peer");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("reset by peer"));
        assert!(!e.is_transient());
    }

    #[test]
    fn unavailable_is_transient_and_says_when_to_retry() {
        let e = Error::Unavailable {
            backend: "s3".into(),
            operation: "append to `api`".into(),
            message: "503 SlowDown".into(),
            retry_after: Some(Duration::from_millis(1500)),
            source: None,
        };
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(
            e.to_string(),
            "s3 is unavailable to append to `api`: 503 SlowDown (retry after 1.5s)"
        );
    }
}

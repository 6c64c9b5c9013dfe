//! Test support: fault injection for code that talks to S3 through the real AWS SDK.
//!
//! [`FaultProxy`] is a loopback HTTP/1.1 proxy that sits between an S3 client and an S3 API
//! (in this project's tests, the `moto` server on 127.0.0.1). Point the SDK's endpoint at
//! [`FaultProxy::endpoint`] (with path-style addressing) and the proxy forwards each request to
//! the upstream unchanged, except that, as its seeded [`FaultPlan`] draws:
//!
//! - a share of requests is answered with an S3 error **without being forwarded**:
//!   `500 InternalError`, `503 SlowDown` or `503 ServiceUnavailable`, each with the XML body S3
//!   sends (the SDK classifies all three as transient, retryable errors);
//! - a share of writes (PUT, POST, DELETE) is forwarded, the upstream's answer is read in full
//!   (so the write has landed), and then the client's connection is closed without an answer:
//!   the *ambiguous outcome* a store has to resolve by reading back;
//! - every request may be held back by a random delay from a range before it is handled.
//!
//! The proxy counts the requests it saw (in all and by method) and the faults it injected by kind
//! ([`FaultProxy::counts`]), so a benchmark can count S3 requests with it, and its plan can be
//! changed while it runs ([`FaultProxy::set_plan`]).
//!
//! Headers go through untouched (only hop-by-hop headers such as `Connection` are dropped), in
//! particular `Host`: the SDK signs the `Host` of the endpoint it talks to, the proxy's
//! `127.0.0.1:PORT`, and moto does not check SigV4 signatures, so forwarded requests are
//! accepted as they are. A real S3 endpoint would refuse them: this proxy is for moto.
//!
//! The proxy runs on a thread of its own with its own tokio runtime, so it can be started from
//! synchronous code, from any async runtime, and it outlives the test runtime that started it
//! until the [`FaultProxy`] handle is dropped.
//!
//! ```no_run
//! use devramps_s3_faults::{FaultPlan, FaultProxy};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), devramps_s3_faults::FaultProxyError> {
//! // moto started with `moto_server -H 127.0.0.1 -p 5055`
//! let proxy = FaultProxy::start(
//!     "http://127.0.0.1:5055",
//!     FaultPlan {
//!         error_share: 0.2,
//!         drop_after_write_share: 0.05,
//!         delay: Some((Duration::from_millis(1), Duration::from_millis(20))),
//!         seed: 7,
//!     },
//! )?;
//! // Give `proxy.endpoint()` (http://127.0.0.1:PORT) to the S3 client, with
//! // `force_path_style(true)`; later:
//! proxy.set_plan(FaultPlan::passthrough())?;
//! println!("{} requests, {} faults", proxy.counts().requests, proxy.counts().faults());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod proxy;

pub use proxy::FaultProxy;

use std::collections::BTreeMap;
use std::time::Duration;

/// What the proxy does to the requests it sees; each draw comes from a generator seeded with
/// [`FaultPlan::seed`], so one sequence of requests meets the same faults every run (requests
/// that arrive concurrently may take the draws in a different order).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Share of requests (0.0 to 1.0) answered with a 5xx S3 error without being forwarded: one
    /// of `500 InternalError`, `503 SlowDown`, `503 ServiceUnavailable`, drawn evenly.
    pub error_share: f64,
    /// Share of writes (PUT, POST, DELETE; 0.0 to 1.0) that are forwarded and then answered by
    /// closing the connection without a response. Drawn only for writes that got no error.
    pub drop_after_write_share: f64,
    /// If set, every request first waits a delay drawn evenly from `(min, max)`, bounds included.
    pub delay: Option<(Duration, Duration)>,
    /// Seed of the generator that draws the faults and delays.
    pub seed: u64,
}

impl FaultPlan {
    /// A plan that forwards everything at once: no errors, no drops, no delay.
    pub fn passthrough() -> Self {
        Self {
            error_share: 0.0,
            drop_after_write_share: 0.0,
            delay: None,
            seed: 0,
        }
    }

    /// Checks the shares are within 0.0..=1.0 and the delay range is ordered.
    fn validate(&self) -> Result<(), FaultProxyError> {
        for (name, share) in [
            ("error_share", self.error_share),
            ("drop_after_write_share", self.drop_after_write_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(FaultProxyError::BadPlan(format!(
                    "{name} is {share}; a share must be between 0.0 and 1.0"
                )));
            }
        }
        if let Some((min, max)) = self.delay
            && min > max
        {
            return Err(FaultProxyError::BadPlan(format!(
                "delay range ({min:?}, {max:?}) has its minimum above its maximum"
            )));
        }
        Ok(())
    }
}

impl Default for FaultPlan {
    /// [`FaultPlan::passthrough`].
    fn default() -> Self {
        Self::passthrough()
    }
}

/// What the proxy saw and did since it started (or since [`FaultProxy::reset_counts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Client connections accepted (fewer than requests when clients keep connections alive).
    pub connections: u64,
    /// Requests received from clients, faulted or not.
    pub requests: u64,
    /// Requests received, by HTTP method (`"GET"`, `"PUT"`, ...).
    pub by_method: BTreeMap<String, u64>,
    /// Requests sent on to the upstream (including those dropped after the write).
    pub forwarded: u64,
    /// Requests answered `500 InternalError` without forwarding.
    pub internal_errors: u64,
    /// Requests answered `503 SlowDown` without forwarding.
    pub slow_downs: u64,
    /// Requests answered `503 ServiceUnavailable` without forwarding.
    pub service_unavailable: u64,
    /// Writes forwarded whose client connection was then closed without an answer.
    pub dropped_after_write: u64,
    /// Requests held back by a delay (a drawn delay of zero counts too).
    pub delayed: u64,
    /// Requests the upstream could not be reached for (answered `502 BadGateway`): not a fault
    /// of the plan but of the setup, e.g. moto not running.
    pub upstream_failures: u64,
}

impl FaultCounts {
    /// Requests received with this HTTP method (case-sensitive, e.g. `"PUT"`).
    pub fn method(&self, method: &str) -> u64 {
        self.by_method.get(method).copied().unwrap_or(0)
    }

    /// Faults the plan injected: errors answered plus writes dropped (delays not included).
    pub fn faults(&self) -> u64 {
        self.internal_errors + self.slow_downs + self.service_unavailable + self.dropped_after_write
    }
}

/// Why a [`FaultProxy`] could not start or take a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultProxyError {
    /// The upstream endpoint is not an `http://HOST:PORT` URL.
    #[error(
        "fault proxy: upstream `{upstream}` is not usable: {reason} (expected http://HOST:PORT, e.g. moto's http://127.0.0.1:5055)"
    )]
    BadUpstream {
        /// The endpoint as given.
        upstream: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plan has a share outside 0.0..=1.0 or an inverted delay range.
    #[error("fault proxy: bad fault plan: {0}")]
    BadPlan(String),
    /// Binding the loopback listener or starting the proxy's runtime or thread failed.
    #[error("fault proxy: could not {action}: {source}")]
    Io {
        /// What the proxy was doing.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

//! The proxy itself: a hyper HTTP/1.1 server on 127.0.0.1 whose service draws a fault for each
//! request and otherwise forwards it, body buffered, through a pooled hyper client.

use crate::{FaultCounts, FaultPlan, FaultProxyError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// A running fault-injecting proxy in front of an S3 API; see the crate docs.
///
/// Dropping the handle stops the proxy: its listener closes and open connections are cut.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: Uri,
    draws: Mutex<(FaultPlan, SplitMix64)>,
    counts: Mutex<FaultCounts>,
}

/// What one request gets, drawn under one lock so a request's draws stay together.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Forward,
    Error(StatusCode, &'static str, &'static str),
    DropAfterWrite,
}

const ERRORS: [Fate; 3] = [
    Fate::Error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    Fate::Error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SlowDown",
        "Please reduce your request rate.",
    ),
    Fate::Error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "Service is unable to handle request.",
    ),
];

/// Headers that belong to one connection, not to the request: never forwarded either way.
/// `expect` too: the proxy has the whole body already and sends it at once.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

type ServiceError = Box<dyn std::error::Error + Send + Sync>;

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1` (a free port) forwarding to `upstream`, an
    /// `http://HOST:PORT` endpoint such as moto's, with `plan`. The proxy runs on its own thread
    /// and runtime; this call does not need (and does not block) a caller's runtime.
    pub fn start(upstream: &str, plan: FaultPlan) -> Result<Self, FaultProxyError> {
        plan.validate()?;
        let upstream = parse_upstream(upstream)?;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| FaultProxyError::Io {
                action: "bind 127.0.0.1:0",
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FaultProxyError::Io {
                action: "read the bound address",
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| FaultProxyError::Io {
                action: "make the listener non-blocking",
                source,
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| FaultProxyError::Io {
                action: "build the proxy's runtime",
                source,
            })?;
        let rng = SplitMix64(plan.seed);
        let shared = Arc::new(Shared {
            upstream,
            draws: Mutex::new((plan, rng)),
            counts: Mutex::new(FaultCounts::default()),
        });
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("s3-fault-proxy-{}", addr.port()))
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))
            .map_err(|source| FaultProxyError::Io {
                action: "spawn the proxy thread",
                source,
            })?;
        Ok(Self {
            endpoint: format!("http://{addr}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The proxy's endpoint, `http://127.0.0.1:PORT`: give it to the S3 client.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Replaces the plan for the requests that arrive from now on, and reseeds the generator
    /// with the new plan's seed.
    pub fn set_plan(&self, plan: FaultPlan) -> Result<(), FaultProxyError> {
        plan.validate()?;
        let rng = SplitMix64(plan.seed);
        *lock(&self.shared.draws) = (plan, rng);
        Ok(())
    }

    /// The plan in force.
    pub fn plan(&self) -> FaultPlan {
        lock(&self.shared.draws).0.clone()
    }

    /// What the proxy saw and did so far.
    pub fn counts(&self) -> FaultCounts {
        lock(&self.shared.counts).clone()
    }

    /// Sets every count back to zero (e.g. after a test's setup requests).
    pub fn reset_counts(&self) {
        *lock(&self.shared.counts) = FaultCounts::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A poisoned lock only means a panic elsewhere; plain data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse_upstream(upstream: &str) -> Result<Uri, FaultProxyError> {
    let bad = |reason: &str| FaultProxyError::BadUpstream {
        upstream: upstream.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = upstream
        .trim_end_matches('/')
        .parse()
        .map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only plain http:// is supported"));
    }
    if uri.authority().is_none() {
        return Err(bad("no host"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(bad("a path after the host is not supported"));
    }
    Ok(uri)
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // e.g. too many open files: wait a little rather than spin
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        lock(&shared.counts).connections += 1;
        let (shared, client) = (Arc::clone(&shared), client.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                handle(Arc::clone(&shared), client.clone(), request)
            });
            // A dropped-after-write request ends the connection with an error: expected.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    client: Client<HttpConnector, Full<Bytes>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ServiceError> {
    let is_write = matches!(
        *request.method(),
        Method::PUT | Method::POST | Method::DELETE
    );
    let (delay, fate) = {
        let mut draws = lock(&shared.draws);
        let (plan, rng) = &mut *draws;
        let delay = plan
            .delay
            .map(|(min, max)| min + (max - min).mul_f64(rng.unit()));
        let fate = if rng.unit() < plan.error_share {
            ERRORS[(rng.next() % 3) as usize]
        } else if is_write && rng.unit() < plan.drop_after_write_share {
            Fate::DropAfterWrite
        } else {
            Fate::Forward
        };
        (delay, fate)
    };
    {
        let mut counts = lock(&shared.counts);
        counts.requests += 1;
        *counts
            .by_method
            .entry(request.method().to_string())
            .or_default() += 1;
        if delay.is_some() {
            counts.delayed += 1;
        }
        match fate {
            Fate::Error(_, "InternalError", _) => counts.internal_errors += 1,
            Fate::Error(_, "SlowDown", _) => counts.slow_downs += 1,
            Fate::Error(..) => counts.service_unavailable += 1,
            Fate::DropAfterWrite | Fate::Forward => counts.forwarded += 1,
        }
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let (status, code, message) = match fate {
        Fate::Error(status, code, message) => (status, code, message),
        Fate::Forward | Fate::DropAfterWrite => {
            let response = match forward(&shared.upstream, &client, request).await {
                Ok(response) => response,
                Err(reason) => {
                    lock(&shared.counts).upstream_failures += 1;
                    return Ok(s3_error(StatusCode::BAD_GATEWAY, "BadGateway", &reason));
                }
            };
            if fate == Fate::DropAfterWrite {
                lock(&shared.counts).dropped_after_write += 1;
                return Err("fault proxy: connection dropped after the write, as planned".into());
            }
            return Ok(response);
        }
    };
    Ok(s3_error(status, code, message))
}

/// Sends `request` to the upstream with its body buffered and its headers as they came (less
/// hop-by-hop ones), and reads the whole answer.
async fn forward(
    upstream: &Uri,
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, String> {
    let (mut parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the client's request body: {e}"))?
        .to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{}", path.trim_start_matches('/'))
        .parse()
        .map_err(|e| format!("building the upstream URL for {path}: {e}"))?;
    let chunked = parts.headers.remove(header::TRANSFER_ENCODING).is_some();
    strip_hop_by_hop(&mut parts.headers);
    if chunked || parts.headers.contains_key(header::CONTENT_LENGTH) {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let response = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("upstream {upstream} did not answer: {e:?}"))?;
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the upstream's response body: {e}"))?
        .to_bytes();
    parts.headers.remove(header::TRANSFER_ENCODING);
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(HeaderName::from_static(name));
    }
}

/// An S3-style error answer: the status, and the XML body S3 sends with it.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>devramps-fault-proxy</RequestId></Error>",
        message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    headers.insert(
        "x-amz-request-id",
        HeaderValue::from_static("devramps-fault-proxy"),
    );
    response
}

/// A small seeded generator (SplitMix64): enough for test faults, the same on every platform.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in [0, 1): a share of 1.0 always hits, 0.0 never does.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

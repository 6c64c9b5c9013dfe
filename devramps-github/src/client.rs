//! A small GitHub REST client: authentication, rate limits waited out, transient failures
//! retried, `Link` pagination.

use std::time::Duration;

use devramps_core::{Error, Result};
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::auth::Auth;

/// GitHub's API root.
pub const GITHUB_API: &str = "https://api.github.com";

/// The default of [`GitHubClient::with_max_rate_wait`]: a request waits at most this long,
/// in total, for rate limits to reset before it fails as unavailable.
pub const DEFAULT_MAX_RATE_WAIT: Duration = Duration::from_secs(15 * 60);

/// How many times a 5xx answer or a connection failure is tried again.
const RETRIES: u32 = 3;

/// A GitHub REST API client. Cloning shares the connection pool and the App token.
#[derive(Clone, Debug)]
pub struct GitHubClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    max_rate_wait: Duration,
}

/// One answer: its status, its JSON body (`Null` when empty) and the next page's URL.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) json: Value,
    pub(crate) next: Option<Url>,
}

impl GitHubClient {
    /// A client of `api` (`https://api.github.com`, `https://HOST/api/v3` for GitHub
    /// Enterprise Server, or a loopback fake).
    pub fn new(api: &str, auth: Auth) -> Result<Self> {
        let mut base = Url::parse(api).map_err(|e| {
            Error::backend("github", format!("use the API URL `{api}`"), e.to_string())
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("devramps/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::backend_from("github", "build the HTTP client", e))?;
        Ok(GitHubClient {
            http,
            base,
            auth,
            max_rate_wait: DEFAULT_MAX_RATE_WAIT,
        })
    }

    /// With the longest total wait for rate limits per request.
    pub fn with_max_rate_wait(mut self, max: Duration) -> Self {
        self.max_rate_wait = max;
        self
    }

    /// The URL of the API path made of `segments` (each percent-encoded as one segment).
    pub(crate) fn url<'s>(&self, segments: impl IntoIterator<Item = &'s str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GETs `url`; 2xx and 404 are answers, anything else an error.
    pub(crate) async fn get(&self, url: Url, operation: &str) -> Result<Answer> {
        self.send(Method::GET, url, None, operation).await
    }

    /// POSTs `body` to `url` (commit statuses); 2xx and 404 are answers, anything else an
    /// error.
    pub(crate) async fn post(&self, url: Url, body: &Value, operation: &str) -> Result<Answer> {
        self.send(Method::POST, url, Some(body), operation).await
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Answer> {
        let mut waited = Duration::ZERO;
        let mut failures = 0;
        loop {
            let token = self.bearer(operation).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if failures < RETRIES => {
                    failures += 1;
                    tracing::debug!(error = %e, "github: request failed, trying again");
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
                Err(e) => {
                    return Err(Error::Unavailable {
                        backend: "github".into(),
                        operation: operation.into(),
                        message: e.to_string(),
                        retry_after: None,
                        source: Some(Box::new(e)),
                    });
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            if let Some(wait) = rate_limited(status, &headers, Timestamp::now()) {
                if waited + wait > self.max_rate_wait {
                    return Err(Error::Unavailable {
                        backend: "github".into(),
                        operation: operation.into(),
                        message: format!(
                            "rate limited ({status}); the limit resets in {}s, past the \
                             longest wait of {}s",
                            wait.as_secs(),
                            self.max_rate_wait.as_secs()
                        ),
                        retry_after: Some(wait),
                        source: None,
                    });
                }
                tracing::info!(wait_secs = wait.as_secs_f64(), %status, "github: rate limited, waiting");
                waited += wait;
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && failures < RETRIES {
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            let text = response.text().await.map_err(|e| {
                Error::unavailable("github", operation, format!("reading the answer: {e}"))
            })?;
            let json = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    Error::backend(
                        "github",
                        operation,
                        format!(
                            "{method} {url} answered {status} with a body that is not JSON: {e}"
                        ),
                    )
                })?
            };
            if status.is_success() || status == StatusCode::NOT_FOUND {
                return Ok(Answer {
                    status,
                    json,
                    next: next_link(&headers),
                });
            }
            let message = json
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned();
            let message = format!("{method} {} answered {status}: {message}", url.path());
            return Err(if status.is_server_error() {
                Error::unavailable("github", operation, message)
            } else {
                Error::backend("github", operation, message)
            });
        }
    }

    /// The bearer token to send, minting an App installation token when needed.
    async fn bearer(&self, operation: &str) -> Result<Option<String>> {
        let app = match &self.auth {
            Auth::None => return Ok(None),
            Auth::Token(t) => return Ok(Some(t.clone())),
            Auth::App(app) => app,
        };
        let now = Timestamp::now();
        if let Some(token) = app.cached(now).await {
            return Ok(Some(token));
        }
        let id = app.installation_id().to_string();
        let url = self.url(["app", "installations", id.as_str(), "access_tokens"]);
        let answer = self
            .http
            .post(url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .bearer_auth(app.jwt(now)?)
            .send()
            .await
            .map_err(|e| {
                Error::unavailable(
                    "github",
                    operation,
                    format!("minting an installation token: {e}"),
                )
            })?;
        let status = answer.status();
        let json: Value = answer.json().await.unwrap_or(Value::Null);
        let token = json.get("token").and_then(Value::as_str);
        let expires = json
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok());
        match (status.is_success(), token, expires) {
            (true, Some(token), Some(expires)) => {
                app.store(token.to_owned(), expires).await;
                Ok(Some(token.to_owned()))
            }
            _ => Err(Error::backend(
                "github",
                operation,
                format!(
                    "minting a token for installation {id} of App {} answered {status}: {}",
                    app.app_id(),
                    json.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no token in the answer")
                ),
            )),
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200 << failures.min(5))
}

/// How long to wait when the answer is a rate limit: a 403 or 429 with `Retry-After`
/// (seconds), or with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch seconds). A
/// 429 with neither waits a minute (GitHub's advice for secondary limits); a 403 with neither
/// is a permission error, not a rate limit.
pub(crate) fn rate_limited(
    status: StatusCode,
    headers: &HeaderMap,
    now: Timestamp,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs(secs.max(0) as u64));
    }
    if number("x-ratelimit-remaining") == Some(0)
        && let Some(reset) = number("x-ratelimit-reset")
    {
        // One second more: the reset is a whole second, and clocks differ a little.
        return Some(Duration::from_secs(
            (reset - now.as_second()).max(0) as u64 + 1,
        ));
    }
    (status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(60))
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<Url> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == r#"rel="next""#)
            .then(|| Url::parse(url.trim().trim_start_matches('<').trim_end_matches('>')).ok())
            .flatten()
    })
}

//! The S3 calls the store and the lock make: GET, conditional PUT and LIST, each retried with a
//! bounded backoff on transient failures, with ambiguous conditional writes resolved by reading
//! the key back, and every failure turned into a [`devramps_core::Error`] naming the bucket, the
//! key and the operation.

use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use devramps_core::{Error, Result};

use crate::S3Location;

/// How many times a call is tried before a transient failure becomes [`Error::Unavailable`].
const ATTEMPTS: u32 = 6;
/// The first backoff; it doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The condition of a PUT.
#[derive(Clone, Debug)]
pub(crate) enum Condition {
    /// `If-None-Match: *`: create only.
    Absent,
    /// `If-Match: <etag>`: replace only that version.
    Matches(String),
}

/// What a conditional PUT did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// The body is stored; its ETag.
    Written(String),
    /// The condition did not hold (412): someone else wrote first.
    Lost,
}

/// One classified failure of an SDK call.
enum Failure {
    /// 412 Precondition Failed (or 409 ConditionalRequestConflict: a concurrent conditional
    /// write to the same key).
    Precondition,
    /// 404 NoSuchKey.
    Missing,
    /// Worth trying again; for a PUT the request may or may not have landed.
    Transient(String, Box<dyn std::error::Error + Send + Sync>),
    /// Trying again will not help.
    Fatal(String, Box<dyn std::error::Error + Send + Sync>),
}

fn classify<E>(error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or("");
            match (status, code) {
                (412, _) | (409, "ConditionalRequestConflict") => Failure::Precondition,
                (_, "NoSuchBucket") => Failure::Fatal(
                    "the bucket does not exist (create it, or fix the bucket name)".into(),
                    Box::new(error),
                ),
                (404, _) | (_, "NoSuchKey") => Failure::Missing,
                (403, _) | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch") => Failure::Fatal(
                    format!(
                        "access denied ({code}): check the credentials (AWS_ACCESS_KEY_ID, \
                         AWS_PROFILE, ...) and that they may use this bucket: {message}"
                    ),
                    Box::new(error),
                ),
                (500..=599, _)
                | (
                    _,
                    "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "RequestTimeTooSkewed",
                ) => Failure::Transient(format!("{status} {code}"), Box::new(error)),
                _ => Failure::Fatal(message, Box::new(error)),
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            Failure::Transient(message, Box::new(error))
        }
        // A connection closed before the answer (`other`, transient) is as ambiguous as a
        // timeout: the write may have landed, so it is read back like one.
        SdkError::DispatchFailure(dispatch)
            if dispatch.is_io() || dispatch.is_timeout() || dispatch.is_other() =>
        {
            Failure::Transient(message, Box::new(error))
        }
        _ => Failure::Fatal(message, Box::new(error)),
    }
}

fn backoff(attempt: u32) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1 << attempt.min(10));
    let capped = exp.min(MAX_BACKOFF);
    // Jitter of up to a half, from the clock's nanoseconds: enough to de-synchronize racers.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    capped / 2 + capped.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

impl S3Location {
    pub(crate) fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    fn fatal(
        &self,
        op: &str,
        key: &str,
        message: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Error {
        Error::Backend {
            backend: "s3".into(),
            operation: format!("{op} `{}`", self.url(key)),
            message,
            source: Some(source),
        }
    }

    fn unavailable(
        &self,
        op: &str,
        key: &str,
        message: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Error {
        Error::Unavailable {
            backend: "s3".into(),
            operation: format!("{op} `{}`", self.url(key)),
            message: format!("{message} (after {ATTEMPTS} attempts)"),
            retry_after: None,
            source: Some(source),
        }
    }

    /// GETs `key`: its body and ETag, or `None` when there is no such key.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let mut attempt = 0;
        loop {
            let failure = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(output) => {
                    let etag = output.e_tag().unwrap_or_default().to_owned();
                    match output.body.collect().await {
                        Ok(bytes) => return Ok(Some((bytes.to_vec(), etag))),
                        Err(e) => Failure::Transient(format!("reading the body: {e}"), Box::new(e)),
                    }
                }
                Err(e) => classify(e),
            };
            match failure {
                Failure::Missing => return Ok(None),
                Failure::Precondition => {
                    return Err(Error::backend(
                        "s3",
                        format!("GET `{}`", self.url(key)),
                        "unexpected 412",
                    ));
                }
                Failure::Fatal(m, s) => return Err(self.fatal("GET", key, m, s)),
                Failure::Transient(m, s) => {
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        return Err(self.unavailable("GET", key, m, s));
                    }
                    tracing::debug!(key, attempt, "retrying GET: {m}");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }

    /// PUTs `body` at `key` unconditionally (latest wins).
    pub(crate) async fn put_plain(&self, key: &str, body: Vec<u8>) -> Result<()> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            let failure = match result {
                Ok(_) => return Ok(()),
                Err(e) => classify(e),
            };
            match failure {
                Failure::Transient(m, s) => {
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        return Err(self.unavailable("PUT", key, m, s));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Failure::Fatal(m, s) => return Err(self.fatal("PUT", key, m, s)),
                Failure::Missing | Failure::Precondition => {
                    return Err(Error::backend(
                        "s3",
                        format!("PUT `{}`", self.url(key)),
                        "unexpected 404/412 on an unconditional PUT",
                    ));
                }
            }
        }
    }

    /// PUTs `body` at `key` under `condition`.
    ///
    /// When an attempt fails in a way that leaves its outcome unknown (a timeout, a dropped
    /// connection, a 5xx after the request was sent), the next step reads the key back: the
    /// same bytes there mean the write landed ([`Put::Written`]); other bytes mean someone else
    /// won ([`Put::Lost`], unless the condition still holds, then the PUT is sent again). A 412
    /// after an ambiguous attempt is resolved the same way, so a write that landed on an
    /// earlier attempt is never reported lost, nor written twice.
    pub(crate) async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<Put> {
        let mut attempt = 0;
        let mut ambiguous = false;
        loop {
            if ambiguous {
                match self.get(key).await? {
                    Some((stored, etag)) if stored == body => return Ok(Put::Written(etag)),
                    Some((_, etag)) => match &condition {
                        Condition::Matches(expected) if *expected == etag => {}
                        _ => return Ok(Put::Lost),
                    },
                    None => {
                        if let Condition::Matches(_) = condition {
                            return Ok(Put::Lost);
                        }
                    }
                }
            }
            let request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body.clone()));
            let request = match &condition {
                Condition::Absent => request.if_none_match("*"),
                Condition::Matches(etag) => request.if_match(etag),
            };
            let failure = match request.send().await {
                Ok(output) => {
                    return Ok(Put::Written(output.e_tag().unwrap_or_default().to_owned()));
                }
                Err(e) => classify(e),
            };
            match failure {
                Failure::Precondition if ambiguous => {
                    // Maybe our own earlier attempt: the read-back at the top of the loop decides.
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        return Err(Error::unavailable(
                            "s3",
                            format!("PUT `{}`", self.url(key)),
                            "could not tell whether the write landed",
                        ));
                    }
                }
                Failure::Precondition => return Ok(Put::Lost),
                // A conditional PUT answered 404: the object to replace is gone.
                Failure::Missing => return Ok(Put::Lost),
                Failure::Fatal(m, s) => return Err(self.fatal("PUT", key, m, s)),
                Failure::Transient(m, s) => {
                    ambiguous = true;
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        // Say whether it landed if the key can be read; else the outcome is unknown.
                        return match self.get(key).await {
                            Ok(Some((stored, etag))) if stored == body => Ok(Put::Written(etag)),
                            _ => Err(self.unavailable("PUT", key, m, s)),
                        };
                    }
                    tracing::debug!(key, attempt, "PUT outcome unknown, reading it back: {m}");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }

    /// Lists the keys under `prefix` after `start_after` (all of them when `None`), in order;
    /// with `delimiter`, the common prefixes instead.
    pub(crate) async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        delimiter: bool,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut attempt = 0;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix);
            if let Some(after) = start_after {
                request = request.start_after(after);
            }
            if delimiter {
                request = request.delimiter("/");
            }
            if let Some(t) = &token {
                request = request.continuation_token(t);
            }
            let failure = match request.send().await {
                Ok(page) => {
                    if delimiter {
                        out.extend(
                            page.common_prefixes()
                                .iter()
                                .filter_map(|p| p.prefix().map(str::to_owned)),
                        );
                    } else {
                        out.extend(
                            page.contents()
                                .iter()
                                .filter_map(|o| o.key().map(str::to_owned)),
                        );
                    }
                    match page.next_continuation_token() {
                        Some(next) if page.is_truncated() == Some(true) => {
                            token = Some(next.to_owned());
                            attempt = 0;
                            continue;
                        }
                        _ => return Ok(out),
                    }
                }
                Err(e) => classify(e),
            };
            match failure {
                Failure::Transient(m, s) => {
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        return Err(self.unavailable("LIST", prefix, m, s));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Failure::Fatal(m, s) => return Err(self.fatal("LIST", prefix, m, s)),
                Failure::Missing | Failure::Precondition => {
                    return Err(Error::backend(
                        "s3",
                        format!("LIST `{}`", self.url(prefix)),
                        "unexpected 404/412",
                    ));
                }
            }
        }
    }
}

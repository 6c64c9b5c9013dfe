//! Small pieces of the OCI distribution API shared by the copy: URLs' references, headers,
//! answers turned into errors that name the registry, repository and digest, digests.

use devramps_core::{Error, Result};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::ImageRef;

/// The same repository at another reference.
pub(super) fn at(image: &ImageRef, reference: &str) -> ImageRef {
    ImageRef::new(image.host.clone(), image.repository.clone(), reference)
}

pub(super) fn registry(image: &ImageRef) -> String {
    format!("oci registry {}", image.host)
}

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

pub(super) async fn send(request: RequestBuilder, image: &ImageRef, op: &str) -> Result<Response> {
    request.send().await.map_err(|e| transport(image, op, e))
}

/// The response when it succeeded; otherwise an error with the registry's answer.
pub(super) async fn ok(response: Response, image: &ImageRef, op: &str) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message = format!(
        "{status}: {}",
        body.chars().take(300).collect::<String>().trim()
    );
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(Error::unavailable(registry(image), op, message))
    } else {
        Err(Error::backend(registry(image), op, message))
    }
}

pub(super) fn transport(image: &ImageRef, op: &str, e: reqwest::Error) -> Error {
    Error::Unavailable {
        backend: registry(image),
        operation: op.to_owned(),
        message: format!("{e} (a retried copy skips the blobs already copied)"),
        retry_after: None,
        source: Some(Box::new(e)),
    }
}

pub(super) fn mismatch(image: &ImageRef, what: &str, expected: &str, got: &str) -> Error {
    Error::backend(
        registry(image),
        format!(
            "copy {what} {expected} of {}/{}",
            image.host, image.repository
        ),
        format!("digest mismatch: the {what} should be {expected} but its content is {got}"),
    )
}

pub(super) fn parse_manifest(
    image: &ImageRef,
    digest: &str,
    bytes: &[u8],
) -> Result<serde_json::Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::backend(
            registry(image),
            format!(
                "read manifest {digest} of {}/{}",
                image.host, image.repository
            ),
            format!("not JSON: {e}"),
        )
    })
}

pub(super) fn descriptor_digest(
    image: &ImageRef,
    manifest: &str,
    descriptor: &serde_json::Value,
) -> Result<String> {
    match descriptor.get("digest").and_then(|d| d.as_str()) {
        Some(d)
            if d.strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) =>
        {
            Ok(d.to_owned())
        }
        other => Err(Error::backend(
            registry(image),
            format!(
                "read manifest {manifest} of {}/{}",
                image.host, image.repository
            ),
            format!("a descriptor's digest is {other:?}; only sha256 digests are copied"),
        )),
    }
}

pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

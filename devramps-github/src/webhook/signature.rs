//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body with the webhook's secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{MAX_BODY, WebhookError};

/// The secrets a webhook may be signed with: several at once while a secret is rotated
/// (GitHub signs with one; the new secret is added here first, the old one removed after).
///
/// `Debug` never shows the secrets.
#[derive(Clone)]
pub struct WebhookSecrets {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("count", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

impl WebhookSecrets {
    /// The secrets given; fails when there is none or one is empty.
    pub fn new<I, S>(secrets: I) -> Result<Self, WebhookError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let secrets: Vec<Vec<u8>> = secrets.into_iter().map(|s| s.as_ref().to_vec()).collect();
        if secrets.is_empty() {
            return Err(WebhookError::NoSecret {
                reason: "no webhook secret was given".to_owned(),
            });
        }
        if secrets.iter().any(Vec::is_empty) {
            return Err(WebhookError::NoSecret {
                reason: "a webhook secret is empty".to_owned(),
            });
        }
        Ok(WebhookSecrets { secrets })
    }

    /// The secrets of a file's text, one per line (`--webhook-secret-file`). Whitespace around
    /// a line (a trailing `\r` too) is not part of the secret; blank lines are skipped.
    pub fn from_lines(text: &str) -> Result<Self, WebhookError> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return Err(WebhookError::NoSecret {
                reason: "the webhook secret file holds no secret (one per line)".to_owned(),
            });
        }
        WebhookSecrets::new(lines)
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Always `false`: there is at least one secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Checks the body's size (at most [`MAX_BODY`]) and then its signature, the value of the
    /// `X-Hub-Signature-256` header (`sha256=<64 hex digits>`), against every secret, each
    /// compared in constant time. Nothing of the body is parsed.
    pub fn verify(&self, signature_header: Option<&str>, body: &[u8]) -> Result<(), WebhookError> {
        check_size(body.len())?;
        let header = signature_header.ok_or(WebhookError::MissingSignature)?;
        let expected = decode_signature(header)?;
        for secret in &self.secrets {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                continue;
            };
            mac.update(body);
            if mac.verify_slice(&expected).is_ok() {
                return Ok(());
            }
        }
        Err(WebhookError::SignatureMismatch {
            secrets: self.secrets.len(),
        })
    }

    /// The `X-Hub-Signature-256` value of `body` signed with the first secret (for tests and
    /// for clients that send webhooks).
    pub fn sign(&self, body: &[u8]) -> String {
        sign(&self.secrets[0], body)
    }
}

/// The `X-Hub-Signature-256` value of `body` signed with `secret`: `sha256=<hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in bytes.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Fails with [`WebhookError::TooLarge`] when `len` is over [`MAX_BODY`]: call it with the
/// `Content-Length` before reading a body, and as the body grows.
pub fn check_size(len: usize) -> Result<(), WebhookError> {
    if len > MAX_BODY {
        return Err(WebhookError::TooLarge {
            size: len,
            limit: MAX_BODY,
        });
    }
    Ok(())
}

fn decode_signature(header: &str) -> Result<Vec<u8>, WebhookError> {
    let malformed = |reason: &str| WebhookError::MalformedSignature {
        reason: reason.to_owned(),
    };
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or_else(|| malformed("it does not start with `sha256=`"))?;
    if hex.len() != 64 {
        return Err(malformed("it does not hold 64 hex digits after `sha256=`"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(malformed("it holds a character that is not a hex digit")),
        })
        .collect()
}

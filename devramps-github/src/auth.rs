//! Credentials: a personal (or any bearer) token, or a GitHub App installation whose token is
//! minted with a JWT (RS256, signed with the App's private key) and refreshed before it
//! expires.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use devramps_core::{Error, Result};
use jiff::Timestamp;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use tokio::sync::Mutex;

/// An installation token is replaced when it has less than this left (GitHub's last 1 hour).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// How a client authenticates.
#[derive(Clone)]
pub enum Auth {
    /// No credentials (public repositories only, 60 requests an hour).
    None,
    /// A personal access token (classic or fine-grained) or any other bearer token.
    Token(String),
    /// A GitHub App installation.
    App(Arc<AppAuth>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Token(_) => f.write_str("Auth::Token(..)"),
            Auth::App(app) => write!(
                f,
                "Auth::App {{ app_id: {}, installation_id: {} }}",
                app.app_id, app.installation_id
            ),
        }
    }
}

impl Auth {
    /// A personal access token.
    pub fn token(token: impl Into<String>) -> Self {
        Auth::Token(token.into())
    }

    /// A GitHub App installation: the App's id, the installation's id and the App's private
    /// key as GitHub gives it (PEM, `BEGIN RSA PRIVATE KEY`; PKCS#8 `BEGIN PRIVATE KEY` too).
    pub fn app(app_id: u64, installation_id: u64, private_key_pem: &str) -> Result<Self> {
        Ok(Auth::App(Arc::new(AppAuth::new(
            app_id,
            installation_id,
            private_key_pem,
        )?)))
    }
}

/// A GitHub App installation's credentials and its current token.
pub struct AppAuth {
    app_id: u64,
    installation_id: u64,
    key: RsaKeyPair,
    current: Mutex<Option<(String, Timestamp)>>,
}

impl AppAuth {
    fn new(app_id: u64, installation_id: u64, pem: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::backend(
                "github",
                "read the GitHub App's private key",
                format!("{why}: give the PEM file GitHub generated for the App"),
            )
        };
        let (label, der) = pem_decode(pem).ok_or_else(|| invalid("it is not PEM"))?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            _ => return Err(invalid(&format!("a `{label}` is no RSA private key"))),
        }
        .map_err(|e| invalid(&format!("the RSA key is rejected ({e})")))?;
        Ok(AppAuth {
            app_id,
            installation_id,
            key,
            current: Mutex::new(None),
        })
    }

    /// The App's id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// The installation's id.
    pub fn installation_id(&self) -> u64 {
        self.installation_id
    }

    /// A JWT for the App (RS256), issued 60 s in the past (clock drift, as GitHub advises)
    /// and valid 9 minutes (GitHub's maximum is 10).
    pub fn jwt(&self, now: Timestamp) -> Result<String> {
        let iat = now.as_second() - 60;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = format!(
            r#"{{"iat":{iat},"exp":{},"iss":"{}"}}"#,
            iat + 600 - 60,
            self.app_id
        );
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::backend("github", "sign the App's JWT", "RSA signing failed"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The current token if it has more than [`REFRESH_BEFORE_EXPIRY`] left at `now`.
    pub(crate) async fn cached(&self, now: Timestamp) -> Option<String> {
        let current = self.current.lock().await;
        current.as_ref().and_then(|(token, expires)| {
            let left = expires.duration_since(now);
            (left > jiff::SignedDuration::try_from(REFRESH_BEFORE_EXPIRY).unwrap_or_default())
                .then(|| token.clone())
        })
    }

    pub(crate) async fn store(&self, token: String, expires: Timestamp) {
        *self.current.lock().await = Some((token, expires));
    }
}

/// The label and bytes of the first PEM block of `pem`.
fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: String = body[..end].split_whitespace().collect();
    STANDARD.decode(b64).ok().map(|der| (label, der))
}

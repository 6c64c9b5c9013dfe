//! Who calls: bearer tokens from a tokens file, stored as SHA-256 hashes, each with a role and
//! a name (`cli.md`, `devramps serve --tokens FILE`).
//!
//! A line of the file is `sha256:<hex of the token's SHA-256> <role> <name>`; blank lines and
//! lines starting with `#` are skipped. Roles are ordered: `viewer` < `operator` < `admin`.
//! `GET` needs any role, operations need `operator`. Without a tokens file, the API answers
//! only callers on a loopback address, as `admin` named `local`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::Problem;
use crate::routes::AppState;

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Reads and operates (approve, retry, rollback, ...).
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: its role and its name (the actor of its operations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its role.
    pub role: Role,
    /// Its name.
    pub name: String,
}

/// The tokens a server accepts, by the hex of their SHA-256.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    by_hash: HashMap<String, Caller>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.by_hash.len())
            .finish()
    }
}

/// The hex of the SHA-256 of `token`.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Tokens {
    /// Parses the text of a tokens file; `origin` names it in errors (`FILE:LINE: ...`).
    pub fn parse(text: &str, origin: &str) -> Result<Tokens, String> {
        let mut by_hash = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}:{}", i + 1);
            let mut parts = line.split_whitespace();
            let (Some(hash), Some(role), Some(name), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "{at}: expected `sha256:<hex> <role> <name>`, found `{line}`"
                ));
            };
            let Some(hash) = hash.strip_prefix("sha256:") else {
                return Err(format!("{at}: the hash must start with `sha256:`"));
            };
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{at}: `sha256:{hash}` is not 64 hex digits (store the token's SHA-256, \
                     as `devramps token new` prints it)"
                ));
            }
            let Some(role) = Role::parse(role) else {
                return Err(format!(
                    "{at}: unknown role `{role}` (viewer, operator or admin)"
                ));
            };
            let caller = Caller {
                role,
                name: name.to_owned(),
            };
            if by_hash.insert(hash.to_ascii_lowercase(), caller).is_some() {
                return Err(format!("{at}: the same token appears twice"));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// Reads a tokens file.
    pub fn read(path: &Path) -> Result<Tokens, String> {
        let text =
            devramps_sim::files::read_text(path).map_err(|e| format!("the tokens file: {e}"))?;
        Tokens::parse(&text, &path.display().to_string())
    }

    /// The caller presenting `token`, if it is known.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&token_hash(token))
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A fresh token (32 random bytes from the OS, hex, prefixed `drt_`) and its tokens-file line
/// for `role` and `name`.
pub fn new_token(role: Role, name: &str) -> Result<(String, String), String> {
    use std::io::Read as _;
    let mut bytes = [0_u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read random bytes from /dev/urandom: {e}"))?;
    let token = format!("drt_{}", hex(&bytes));
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(format!("the name `{name}` must be one word without spaces"));
    }
    let line = format!("sha256:{} {role} {name}", token_hash(&token));
    Ok((token, line))
}

/// The middleware of the API: finds the caller and checks its role against the method
/// (`GET`/`HEAD` any role, anything else `operator`); stores the [`Caller`] in the request's
/// extensions.
pub(crate) async fn authenticate(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match &app.config.tokens {
        None => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            // An embedder that serves without connect info decided where it listens.
            if peer.is_some_and(|ip| !ip.is_loopback()) {
                return Problem::forbidden(
                    "without a tokens file the API answers only callers on a loopback address",
                )
                .into_response();
            }
            Caller {
                role: Role::Admin,
                name: "local".to_owned(),
            }
        }
        Some(tokens) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let Some(token) = presented else {
                return unauthorized("a bearer token is needed (Authorization: Bearer TOKEN)");
            };
            match tokens.caller(token) {
                Some(caller) => caller.clone(),
                None => return unauthorized("the bearer token is not known"),
            }
        }
    };
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && caller.role < Role::Operator {
        return Problem::forbidden(format!(
            "`{}` has role {}; operations need operator or admin",
            caller.name, caller.role
        ))
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::unauthorized(detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_found_by_its_line() {
        let (token, line) = new_token(Role::Operator, "alice").expect("token");
        let tokens = Tokens::parse(&format!("# ops\n\n{line}\n"), "tokens").expect("parses");
        assert_eq!(
            tokens.caller(&token),
            Some(&Caller {
                role: Role::Operator,
                name: "alice".into()
            })
        );
        assert_eq!(tokens.caller("drt_other"), None);
        assert!(
            !line.contains(&token),
            "the file holds the hash, not the token"
        );
    }

    #[test]
    fn bad_lines_are_errors_that_say_where() {
        let hash = "a".repeat(64);
        for (text, expected) in [
            (
                "sha256:abc viewer x",
                "tokens:1: `sha256:abc` is not 64 hex",
            ),
            (
                &format!("md5:{hash} viewer x") as &str,
                "tokens:1: the hash must",
            ),
            (
                &format!("\nsha256:{hash} boss x"),
                "tokens:2: unknown role `boss`",
            ),
            (&format!("sha256:{hash} viewer"), "tokens:1: expected"),
            (
                &format!("sha256:{hash} viewer a\nsha256:{hash} admin b"),
                "tokens:2: the same token",
            ),
        ] {
            let e = Tokens::parse(text, "tokens").expect_err(text);
            assert!(e.starts_with(expected), "{text}: {e}");
        }
        assert!(new_token(Role::Admin, "two words").is_err());
    }
}

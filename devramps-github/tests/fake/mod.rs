//! A fake GitHub REST API on loopback, answering GitHub's documented shapes from a real git
//! repository (git2): commits, contents, blobs, trees, compare, statuses, and installation
//! tokens for a GitHub App. Rate-limit and 5xx answers are injected on demand; every request
//! is logged so tests can count them. `devramps-cli/tests/serve_github.rs` uses it too (by path).
//!
//! What it cannot prove: that GitHub's servers answer exactly so. The shapes follow the REST
//! docs and `@octokit/openapi` (the fields read), but undocumented behaviour (how the real
//! compare API pages its file list — the docs say files come on the first page only, here they
//! are paged like any list to exercise `Link` — which entries the real tree API keeps when it
//! truncates, the exact secondary-rate-limit headers) is the fake's choice.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use git2::{Oid, Repository};
use serde_json::{Value, json};

/// An answer to inject before the next real one.
#[derive(Clone, Debug)]
pub enum Inject {
    /// 429 with `Retry-After: secs`.
    RetryAfter(u64),
    /// 403 with `x-ratelimit-remaining: 0` and a reset `secs` from now.
    Reset(i64),
    /// An answer with this status (a 5xx).
    Status(u16),
}

pub struct State {
    pub repo: PathBuf,
    pub full_name: String,
    pub tokens: HashSet<String>,
    /// The App's public key (DER `RSAPublicKey`) and id, when the App is installed.
    pub app: Option<(Vec<u8>, u64)>,
    /// Lifetime of minted installation tokens, in seconds.
    pub token_ttl: i64,
    pub minted: u32,
    /// Files larger than this get no content from the contents API (GitHub: 1 MB).
    pub large_file: usize,
    /// The compare API's file cap (GitHub: 300) and its page size.
    pub compare_cap: usize,
    pub per_page: usize,
    /// Answer recursive trees as truncated.
    pub truncate_trees: bool,
    pub inject: VecDeque<Inject>,
    pub requests: Vec<String>,
    pub statuses: Vec<(String, Value)>,
}

#[derive(Clone)]
pub struct Fake {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    /// Serves `repo` as `owner/name`, accepting the bearer token `token`.
    pub async fn start(repo: &Path, full_name: &str, token: &str) -> Fake {
        let state = Arc::new(Mutex::new(State {
            repo: repo.to_owned(),
            full_name: full_name.to_owned(),
            tokens: HashSet::from([token.to_owned()]),
            app: None,
            token_ttl: 3600,
            minted: 0,
            large_file: 1024 * 1024,
            compare_cap: 300,
            per_page: 100,
            truncate_trees: false,
            inject: VecDeque::new(),
            requests: Vec::new(),
            statuses: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { url, state }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// How many requests so far started with `prefix` (`"GET /repos/o/r/contents"`).
    pub fn count(&self, prefix: &str) -> usize {
        self.with(|s| s.requests.iter().filter(|r| r.starts_with(prefix)).count())
    }
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    answer(
        404,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
    )
}

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    s.requests.push(format!("{method} {uri}"));
    if let Some(inject) = s.inject.pop_front() {
        let mut h = HeaderMap::new();
        let status = match inject {
            Inject::RetryAfter(secs) => {
                h.insert("retry-after", secs.to_string().parse().unwrap());
                429
            }
            Inject::Reset(secs) => {
                let reset = jiff::Timestamp::now().as_second() + secs;
                h.insert("x-ratelimit-remaining", "0".parse().unwrap());
                h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
                403
            }
            Inject::Status(code) => code,
        };
        let message = json!({"message": "API rate limit exceeded (injected)"});
        return (
            StatusCode::from_u16(status).unwrap(),
            h,
            axum::Json(message),
        )
            .into_response();
    }
    let path: Vec<String> = uri
        .path()
        .split('/')
        .filter(|p| !p.is_empty())
        .map(percent_decode)
        .collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    if let (&Method::POST, ["app", "installations", _, "access_tokens"]) = (&method, p.as_slice()) {
        return mint(&mut s, &bearer);
    }
    if !s.tokens.contains(&bearer) {
        return answer(401, json!({"message": "Bad credentials"}));
    }
    let repo = Repository::open(&s.repo).unwrap();
    let Some(rest) = p.strip_prefix(&["repos"][..]) else {
        return not_found();
    };
    let full = format!(
        "{}/{}",
        rest.first().unwrap_or(&""),
        rest.get(1).unwrap_or(&"")
    );
    if full != s.full_name {
        return not_found();
    }
    let base = format!("/repos/{full}");
    match (&method, &rest[2..]) {
        (&Method::GET, ["commits", rev]) => match commit(&repo, rev) {
            Some(c) => answer(
                200,
                json!({
                    "sha": c.id().to_string(),
                    "commit": {"message": c.message().unwrap_or(""), "tree": {"sha": c.tree_id().to_string()}},
                    "parents": c.parent_ids().map(|p| json!({"sha": p.to_string()})).collect::<Vec<_>>(),
                }),
            ),
            None => answer(
                422,
                json!({"message": format!("No commit found for SHA: {rev}")}),
            ),
        },
        (&Method::GET, ["contents", path @ ..]) => {
            let Some(c) = q("ref").and_then(|r| commit(&repo, &r)) else {
                return answer(404, json!({"message": "No commit found for the ref"}));
            };
            contents(&repo, &c, &path.join("/"), s.large_file)
        }
        (&Method::GET, ["git", "blobs", sha]) => {
            match Oid::from_str(sha).ok().and_then(|o| repo.find_blob(o).ok()) {
                Some(b) => answer(
                    200,
                    json!({"sha": sha, "size": b.size(), "encoding": "base64", "content": wrap(&STANDARD.encode(b.content()))}),
                ),
                None => not_found(),
            }
        }
        (&Method::GET, ["git", "trees", sha]) => {
            trees(&repo, sha, q("recursive").is_some(), s.truncate_trees)
        }
        (&Method::GET, ["compare", basehead]) => {
            let page: usize = q("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            let url = format!("http://{host}{base}/compare/{basehead}");
            compare(&repo, basehead, page, s.per_page, s.compare_cap, &url)
        }
        (&Method::POST, ["statuses", sha]) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if commit(&repo, sha).is_none() {
                return answer(422, json!({"message": "No commit found for SHA"}));
            }
            s.statuses.push(((*sha).to_owned(), body.clone()));
            let mut out = body;
            out["id"] = json!(s.statuses.len());
            answer(201, out)
        }
        _ => not_found(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn commit<'r>(repo: &'r Repository, rev: &str) -> Option<git2::Commit<'r>> {
    repo.revparse_single(rev).ok()?.peel_to_commit().ok()
}

/// Base64 in lines of 60, as GitHub sends contents.
fn wrap(b64: &str) -> String {
    b64.as_bytes()
        .chunks(60)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect()
}

fn kind(entry: &git2::TreeEntry<'_>) -> &'static str {
    match (entry.kind(), entry.filemode()) {
        (Some(git2::ObjectType::Tree), _) => "dir",
        (_, 0o120000) => "symlink",
        (Some(git2::ObjectType::Commit), _) => "submodule",
        _ => "file",
    }
}

fn contents(repo: &Repository, c: &git2::Commit<'_>, path: &str, large: usize) -> Response {
    let tree = c.tree().unwrap();
    let listing = |t: &git2::Tree<'_>, prefix: &str| {
        let items: Vec<Value> = t
            .iter()
            .map(|e| json!({"name": e.name().unwrap_or(""), "path": format!("{prefix}{}", e.name().unwrap_or("")), "type": kind(&e), "sha": e.id().to_string()}))
            .collect();
        answer(200, Value::Array(items))
    };
    if path.is_empty() {
        return listing(&tree, "");
    }
    let Ok(entry) = tree.get_path(Path::new(path)) else {
        return not_found();
    };
    match kind(&entry) {
        "dir" => listing(&repo.find_tree(entry.id()).unwrap(), &format!("{path}/")),
        "file" => {
            let blob = repo.find_blob(entry.id()).unwrap();
            let (encoding, content) = if blob.size() > large {
                ("none", String::new())
            } else {
                ("base64", wrap(&STANDARD.encode(blob.content())))
            };
            answer(
                200,
                json!({"type": "file", "encoding": encoding, "size": blob.size(), "name": entry.name(), "path": path, "content": content, "sha": entry.id().to_string()}),
            )
        }
        other => answer(
            200,
            json!({"type": other, "name": entry.name(), "path": path, "sha": entry.id().to_string(), "size": 0}),
        ),
    }
}

fn trees(repo: &Repository, sha: &str, recursive: bool, truncate: bool) -> Response {
    let tree = match Oid::from_str(sha)
        .ok()
        .and_then(|o| repo.find_object(o, None).ok())
        .and_then(|o| o.peel_to_tree().ok())
    {
        Some(t) => t,
        None => return not_found(),
    };
    let entry = |path: String, e: &git2::TreeEntry<'_>| {
        let ty = match e.kind() {
            Some(git2::ObjectType::Tree) => "tree",
            Some(git2::ObjectType::Commit) => "commit",
            _ => "blob",
        };
        json!({"path": path, "mode": format!("{:06o}", e.filemode()), "type": ty, "sha": e.id().to_string()})
    };
    let mut items = Vec::new();
    if recursive {
        tree.walk(git2::TreeWalkMode::PreOrder, |root, e| {
            items.push(entry(format!("{root}{}", e.name().unwrap_or("")), e));
            git2::TreeWalkResult::Ok
        })
        .unwrap();
        if truncate {
            items.truncate(1);
        }
    } else {
        items = tree
            .iter()
            .map(|e| entry(e.name().unwrap_or("").to_owned(), &e))
            .collect();
    }
    answer(
        200,
        json!({"sha": sha, "tree": items, "truncated": recursive && truncate}),
    )
}

fn compare(
    repo: &Repository,
    basehead: &str,
    page: usize,
    per_page: usize,
    cap: usize,
    url: &str,
) -> Response {
    let Some((a, b)) = basehead.split_once("...") else {
        return not_found();
    };
    let (Some(a), Some(b)) = (commit(repo, a), commit(repo, b)) else {
        return not_found();
    };
    let Ok(base) = repo.merge_base(a.id(), b.id()) else {
        return answer(404, json!({"message": "No common ancestor"}));
    };
    let status = if a.id() == b.id() {
        "identical"
    } else if base == a.id() {
        "ahead"
    } else if base == b.id() {
        "behind"
    } else {
        "diverged"
    };
    let old = repo.find_commit(base).unwrap().tree().unwrap();
    let mut diff = repo
        .diff_tree_to_tree(Some(&old), Some(&b.tree().unwrap()), None)
        .unwrap();
    diff.find_similar(None).unwrap();
    let mut files = Vec::new();
    for d in diff.deltas() {
        let new = d.new_file().path().unwrap().to_string_lossy().into_owned();
        let mut f = json!({"filename": new, "sha": d.new_file().id().to_string()});
        f["status"] = json!(match d.status() {
            git2::Delta::Added => "added",
            git2::Delta::Deleted => "removed",
            git2::Delta::Renamed => "renamed",
            _ => "modified",
        });
        if d.status() == git2::Delta::Deleted {
            f["filename"] = json!(d.old_file().path().unwrap().to_string_lossy());
        }
        if d.status() == git2::Delta::Renamed {
            f["previous_filename"] = json!(d.old_file().path().unwrap().to_string_lossy());
        }
        files.push(f);
    }
    files.truncate(cap);
    let pages = files.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = files
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let body = json!({"status": status, "merge_base_commit": {"sha": base.to_string()}, "files": shown, "commits": []});
    let mut h = HeaderMap::new();
    if page < pages {
        let link = format!(
            "<{url}?page={}>; rel=\"next\", <{url}?page={pages}>; rel=\"last\"",
            page + 1
        );
        h.insert("link", link.parse().unwrap());
    }
    (StatusCode::OK, h, axum::Json(body)).into_response()
}

/// `POST /app/installations/{id}/access_tokens`: checks the App's JWT (RS256, `iss`, `exp`).
fn mint(s: &mut State, jwt: &str) -> Response {
    let Some((public, app_id)) = s.app.clone() else {
        return answer(404, json!({"message": "no App"}));
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return answer(
            401,
            json!({"message": "A JSON web token could not be decoded"}),
        );
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public,
    );
    let signed = format!("{header}.{claims}");
    let sig = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    if key.verify(signed.as_bytes(), &sig).is_err() {
        return answer(
            401,
            json!({"message": "'Issuer' claim ('iss') must be an Integer"}),
        );
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap_or_default())
        .unwrap_or(Value::Null);
    let now = jiff::Timestamp::now().as_second();
    let ok = claims["iss"].as_str() == Some(&app_id.to_string())
        && claims["exp"]
            .as_i64()
            .is_some_and(|e| e > now && e - claims["iat"].as_i64().unwrap_or(0) <= 600);
    if !ok {
        return answer(401, json!({"message": "bad JWT claims", "claims": claims}));
    }
    s.minted += 1;
    let token = format!("ghs_fake{}", s.minted);
    s.tokens.insert(token.clone());
    let expires = jiff::Timestamp::from_second(now + s.token_ttl).unwrap();
    answer(
        201,
        json!({"token": token, "expires_at": expires.to_string(), "permissions": {"contents": "read", "statuses": "write"}}),
    )
}

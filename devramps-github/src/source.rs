//! [`GitHubSource`]: a repository on GitHub as the engine's
//! [`SourceRepository`], read through the REST API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use devramps_core::backend::{DirEntry, SourceRepository};
use devramps_core::{Error, Result};
use reqwest::StatusCode;
use serde_json::Value;

use crate::client::GitHubClient;

/// The compare API lists at most this many files; an answer that long is completed by a tree
/// diff.
pub const COMPARE_FILE_CAP: usize = 300;

/// A GitHub repository read over the REST API.
///
/// - `resolve`: `GET /repos/{o}/{r}/commits/{rev}`; `first_parent` from the same answer.
/// - `read_file`: the contents API; a file over 1 MB (the contents API gives no content for
///   it) through the blobs API. Symlinks and submodules are not files (`None`).
/// - `changed_paths(from, to)`: the compare API (`from...to`, every page) when `from` is an
///   ancestor of `to` (its answer is then the two-tree diff); a two-tree diff of the trees API
///   (`recursive=1`, walked level by level when GitHub truncates it) when the histories
///   diverged (a forced push) or when the compare answer reached its cap of
///   [`COMPARE_FILE_CAP`] files.
/// - `list_dir`: the contents API (GitHub lists at most 1,000 entries of a directory).
///
/// Answers for a full commit id are cached (commits are immutable); branch names and
/// abbreviated ids are resolved every time. The cache is bounded
/// ([`with_cache_limits`](GitHubSource::with_cache_limits); by default
/// [`DEFAULT_CACHE_ENTRIES`] answers of each kind and [`DEFAULT_CACHE_BYTES`] of file
/// content): past a bound the oldest answers are dropped, to be asked again when needed.
#[derive(Debug)]
pub struct GitHubSource {
    client: GitHubClient,
    owner: String,
    repo: String,
    cache: Mutex<Cache>,
}

/// The default bound on cached answers of each kind (commits, files, directories,
/// comparisons).
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// The default bound on the bytes of file content cached.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct Cache {
    /// Full commit id -> its first parent.
    commits: Bounded<String, Option<String>>,
    files: Bounded<(String, String), Option<Vec<u8>>>,
    dirs: Bounded<(String, String), Vec<DirEntry>>,
    changed: Bounded<(String, String), Vec<String>>,
}

impl Cache {
    fn new(entries: usize, bytes: usize) -> Self {
        Cache {
            commits: Bounded::new(entries, usize::MAX, |_| 0),
            files: Bounded::new(entries, bytes, |v: &Option<Vec<u8>>| {
                v.as_ref().map_or(0, Vec::len)
            }),
            dirs: Bounded::new(entries, usize::MAX, |_| 0),
            changed: Bounded::new(entries, usize::MAX, |_| 0),
        }
    }
}

/// A map that keeps at most `entries` values weighing at most `bytes` in all, dropping the
/// oldest first.
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: std::collections::VecDeque<K>,
    entries: usize,
    bytes: usize,
    weight: fn(&V) -> usize,
    held: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(entries: usize, bytes: usize, weight: fn(&V) -> usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
            entries: entries.max(1),
            bytes,
            weight,
            held: 0,
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn insert(&mut self, key: K, value: V) {
        let weight = (self.weight)(&value);
        if weight > self.bytes {
            return;
        }
        if let Some(old) = self.map.insert(key.clone(), value) {
            self.held -= (self.weight)(&old);
        } else {
            self.order.push_back(key);
        }
        self.held += weight;
        while self.map.len() > self.entries || self.held > self.bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(dropped) = self.map.remove(&oldest) {
                self.held -= (self.weight)(&dropped);
            }
        }
    }
}

impl GitHubSource {
    /// The repository `owner/name` through `client`.
    pub fn new(client: GitHubClient, repository: &str) -> Result<Self> {
        let (owner, repo) = split_repository(repository)?;
        Ok(GitHubSource {
            client,
            owner,
            repo,
            cache: Mutex::new(Cache::new(DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_BYTES)),
        })
    }

    /// With at most `entries` cached answers of each kind and `bytes` of cached file content
    /// (a file larger than `bytes` is not cached). Starts with an empty cache.
    pub fn with_cache_limits(self, entries: usize, bytes: usize) -> Self {
        GitHubSource {
            cache: Mutex::new(Cache::new(entries, bytes)),
            ..self
        }
    }

    /// How many answers are cached now, of each kind: commits, files, directories,
    /// comparisons.
    pub fn cached(&self) -> [usize; 4] {
        let cache = self.cache();
        [
            cache.commits.len(),
            cache.files.len(),
            cache.dirs.len(),
            cache.changed.len(),
        ]
    }

    /// The client (to post commit statuses with the same credentials).
    pub fn client(&self) -> &GitHubClient {
        &self.client
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn url<'s>(&'s self, rest: impl IntoIterator<Item = &'s str>) -> reqwest::Url {
        self.client.url(
            ["repos", self.owner.as_str(), self.repo.as_str()]
                .into_iter()
                .chain(rest),
        )
    }

    /// The commit `rev` and its first parent.
    async fn commit(&self, rev: &str) -> Result<(String, Option<String>)> {
        if is_full_id(rev)
            && let Some(parent) = self.cache().commits.get(rev)
        {
            return Ok((rev.to_owned(), parent.clone()));
        }
        let operation = format!("resolve `{rev}` in {}/{}", self.owner, self.repo);
        let not_found =
            || Error::not_found(format!("commit `{rev}` in {}/{}", self.owner, self.repo));
        if rev.is_empty() || rev.contains("..") {
            return Err(not_found());
        }
        let answer = self
            .client
            .get(self.url(["commits", rev]), &operation)
            .await;
        let answer = match answer {
            // 422: "No commit found for SHA".
            Err(Error::Backend { message, .. }) if message.contains("422") => {
                return Err(not_found());
            }
            other => other?,
        };
        if answer.status == StatusCode::NOT_FOUND {
            return Err(not_found());
        }
        let sha = str_at(&answer.json, &["sha"], &operation)?.to_owned();
        let parent = answer
            .json
            .get("parents")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(|p| p.get("sha"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.cache().commits.insert(sha.clone(), parent.clone());
        Ok((sha, parent))
    }

    /// The contents API's answer for `path` at `commit`, or `None` when absent (the commit
    /// checked to exist).
    async fn contents(&self, commit: &str, path: &str, operation: &str) -> Result<Option<Value>> {
        let (commit, _) = self.commit(commit).await?;
        let mut url = self.url(["contents"].into_iter().chain(segments(path)));
        url.query_pairs_mut().append_pair("ref", &commit);
        let answer = self.client.get(url, operation).await?;
        Ok((answer.status != StatusCode::NOT_FOUND).then_some(answer.json))
    }

    async fn blob(&self, sha: &str, operation: &str) -> Result<Vec<u8>> {
        let answer = self
            .client
            .get(self.url(["git", "blobs", sha]), operation)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::backend(
                "github",
                operation,
                format!("blob `{sha}` not found"),
            ));
        }
        decode(&answer.json, operation)
    }

    /// Path -> (mode, sha) of every non-tree entry of `commit`'s tree.
    async fn tree(
        &self,
        commit: &str,
        operation: &str,
    ) -> Result<BTreeMap<String, (String, String)>> {
        let mut url = self.url(["git", "trees", commit]);
        url.query_pairs_mut().append_pair("recursive", "1");
        let answer = self.client.get(url, operation).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!(
                "commit `{commit}` in {}/{}",
                self.owner, self.repo
            )));
        }
        if answer.json.get("truncated").and_then(Value::as_bool) != Some(true) {
            return entries(&answer.json, "", operation);
        }
        // Too large for one answer: walk it a level at a time.
        let mut out = BTreeMap::new();
        let mut todo = vec![(String::new(), commit.to_owned())];
        while let Some((prefix, sha)) = todo.pop() {
            let answer = self
                .client
                .get(self.url(["git", "trees", sha.as_str()]), operation)
                .await?;
            for (path, (mode, sha)) in entries(&answer.json, &prefix, operation)? {
                out.insert(path, (mode, sha));
            }
            for entry in answer
                .json
                .get("tree")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if entry.get("type").and_then(Value::as_str) == Some("tree") {
                    let name = str_at(entry, &["path"], operation)?;
                    let sha = str_at(entry, &["sha"], operation)?;
                    todo.push((format!("{prefix}{name}/"), sha.to_owned()));
                }
            }
        }
        Ok(out)
    }

    async fn tree_diff(&self, from: &str, to: &str, operation: &str) -> Result<Vec<String>> {
        let (a, b) = (
            self.tree(from, operation).await?,
            self.tree(to, operation).await?,
        );
        let mut changed = BTreeSet::new();
        for (path, entry) in &a {
            if b.get(path) != Some(entry) {
                changed.insert(format!("/{path}"));
            }
        }
        for path in b.keys() {
            if !a.contains_key(path) {
                changed.insert(format!("/{path}"));
            }
        }
        Ok(changed.into_iter().collect())
    }
}

#[async_trait]
impl SourceRepository for GitHubSource {
    async fn resolve(&self, rev: &str) -> Result<String> {
        Ok(self.commit(rev).await?.0)
    }

    async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let key = (commit.to_owned(), path.to_owned());
        if let Some(hit) = self.cache().files.get(&key) {
            return Ok(hit.clone());
        }
        let operation = format!(
            "read `{path}` at `{commit}` in {}/{}",
            self.owner, self.repo
        );
        let content = match self.contents(commit, path, &operation).await? {
            Some(json) if json.get("type").and_then(Value::as_str) == Some("file") => {
                let encoding = json.get("encoding").and_then(Value::as_str).unwrap_or("");
                if encoding == "base64"
                    && json
                        .get("content")
                        .and_then(Value::as_str)
                        .is_some_and(|c| {
                            !c.is_empty() || json.get("size").and_then(Value::as_u64) == Some(0)
                        })
                {
                    Some(decode(&json, &operation)?)
                } else {
                    // Over 1 MB: the contents API leaves the content out.
                    let sha = str_at(&json, &["sha"], &operation)?;
                    Some(self.blob(sha, &operation).await?)
                }
            }
            _ => None,
        };
        if is_full_id(commit) {
            self.cache().files.insert(key, content.clone());
        }
        Ok(content)
    }

    async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let key = (from.to_owned(), to.to_owned());
        if let Some(hit) = self.cache().changed.get(&key) {
            return Ok(hit.clone());
        }
        let operation = format!(
            "compare `{from}` with `{to}` in {}/{}",
            self.owner, self.repo
        );
        let (from_id, _) = self.commit(from).await?;
        let (to_id, _) = self.commit(to).await?;
        let basehead = format!("{from_id}...{to_id}");
        let mut url = Some(self.url(["compare", basehead.as_str()]));
        let mut files: Vec<Value> = Vec::new();
        let mut status = String::new();
        while let Some(page) = url {
            let answer = self.client.get(page, &operation).await?;
            if answer.status == StatusCode::NOT_FOUND {
                return Err(Error::not_found(format!("comparison `{basehead}`")));
            }
            if status.is_empty() {
                status = str_at(&answer.json, &["status"], &operation)?.to_owned();
            }
            files.extend(
                answer
                    .json
                    .get("files")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            url = answer.next;
        }
        let exact =
            matches!(status.as_str(), "ahead" | "identical") && files.len() < COMPARE_FILE_CAP;
        let changed = if exact {
            let mut set = BTreeSet::new();
            for file in &files {
                set.insert(format!("/{}", str_at(file, &["filename"], &operation)?));
                if let Some(old) = file.get("previous_filename").and_then(Value::as_str) {
                    set.insert(format!("/{old}"));
                }
            }
            set.into_iter().collect()
        } else {
            self.tree_diff(&from_id, &to_id, &operation).await?
        };
        self.cache()
            .changed
            .insert((from_id.clone(), to_id.clone()), changed.clone());
        Ok(changed)
    }

    async fn first_parent(&self, commit: &str) -> Result<Option<String>> {
        Ok(self.commit(commit).await?.1)
    }

    async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>> {
        let key = (commit.to_owned(), path.to_owned());
        if let Some(hit) = self.cache().dirs.get(&key) {
            return Ok(hit.clone());
        }
        let operation = format!(
            "list `{path}` at `{commit}` in {}/{}",
            self.owner, self.repo
        );
        let mut out = Vec::new();
        if let Some(Value::Array(items)) = self.contents(commit, path, &operation).await? {
            for item in &items {
                out.push(DirEntry {
                    name: str_at(item, &["name"], &operation)?.to_owned(),
                    is_dir: item.get("type").and_then(Value::as_str) == Some("dir"),
                });
            }
        }
        out.sort();
        if is_full_id(commit) {
            self.cache().dirs.insert(key, out.clone());
        }
        Ok(out)
    }
}

/// `owner/name` split, or an error naming it.
pub(crate) fn split_repository(repository: &str) -> Result<(String, String)> {
    repository
        .split_once('/')
        .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        .map(|(o, r)| (o.to_owned(), r.to_owned()))
        .ok_or_else(|| {
            Error::backend(
                "github",
                "name the repository",
                format!("`{repository}` is not OWNER/NAME"),
            )
        })
}

/// A full commit id (cacheable: it names an immutable commit).
fn is_full_id(rev: &str) -> bool {
    (rev.len() == 40 || rev.len() == 64) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn str_at<'v>(value: &'v Value, path: &[&str], operation: &str) -> Result<&'v str> {
    let mut here = value;
    for key in path {
        here = here.get(key).unwrap_or(&Value::Null);
    }
    here.as_str().ok_or_else(|| {
        Error::backend(
            "github",
            operation,
            format!("the answer has no string at `{}`", path.join(".")),
        )
    })
}

fn decode(json: &Value, operation: &str) -> Result<Vec<u8>> {
    let content: String = str_at(json, &["content"], operation)?
        .split_whitespace()
        .collect();
    STANDARD.decode(content).map_err(|e| {
        Error::backend(
            "github",
            operation,
            format!("the content is not base64: {e}"),
        )
    })
}

fn entries(
    tree: &Value,
    prefix: &str,
    operation: &str,
) -> Result<BTreeMap<String, (String, String)>> {
    let mut out = BTreeMap::new();
    for entry in tree
        .get("tree")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if entry.get("type").and_then(Value::as_str) == Some("tree") {
            continue;
        }
        out.insert(
            format!("{prefix}{}", str_at(entry, &["path"], operation)?),
            (
                str_at(entry, &["mode"], operation)?.to_owned(),
                str_at(entry, &["sha"], operation)?.to_owned(),
            ),
        );
    }
    Ok(out)
}

//! [`InMemorySource`]: a repository of commits held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use devramps_core::backend::{DirEntry, SourceRepository};
use devramps_core::{Error, Result};

#[derive(Clone, Debug, Default)]
struct Commit {
    parent: Option<String>,
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    commits: BTreeMap<String, Commit>,
    refs: BTreeMap<String, String>,
}

/// A repository of commits, each a full snapshot of its files, held in memory. Clones share
/// the same repository.
#[derive(Clone, Debug, Default)]
pub struct InMemorySource {
    state: Arc<Mutex<State>>,
}

fn normalize(path: &str) -> String {
    format!("/{}", path.trim_matches('/'))
}

impl InMemorySource {
    /// An empty repository.
    pub fn new() -> Self {
        InMemorySource::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds commit `id` with exactly these files (paths with or without a leading `/`).
    pub fn commit<P: AsRef<str>, C: AsRef<[u8]>>(
        &self,
        id: &str,
        parent: Option<&str>,
        files: impl IntoIterator<Item = (P, C)>,
    ) {
        let files = files
            .into_iter()
            .map(|(p, c)| (normalize(p.as_ref()), c.as_ref().to_vec()))
            .collect();
        self.lock().commits.insert(
            id.to_owned(),
            Commit {
                parent: parent.map(str::to_owned),
                files,
            },
        );
    }

    /// Adds commit `id` on top of `parent`: each change writes a file (`Some(content)`) or
    /// deletes it (`None`). An unknown parent counts as empty.
    pub fn commit_changes<P: AsRef<str>, C: AsRef<[u8]>>(
        &self,
        id: &str,
        parent: &str,
        changes: impl IntoIterator<Item = (P, Option<C>)>,
    ) {
        let mut state = self.lock();
        let mut files = state
            .commits
            .get(parent)
            .map(|c| c.files.clone())
            .unwrap_or_default();
        for (path, content) in changes {
            let path = normalize(path.as_ref());
            match content {
                Some(c) => files.insert(path, c.as_ref().to_vec()),
                None => files.remove(&path),
            };
        }
        state.commits.insert(
            id.to_owned(),
            Commit {
                parent: Some(parent.to_owned()),
                files,
            },
        );
    }

    /// Points a ref (a branch or tag name, or `HEAD`) at a commit.
    pub fn set_ref(&self, name: &str, commit: &str) {
        self.lock().refs.insert(name.to_owned(), commit.to_owned());
    }

    fn snapshot(&self, commit: &str) -> Result<Commit> {
        self.lock()
            .commits
            .get(commit)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("commit `{commit}`")))
    }
}

#[async_trait]
impl SourceRepository for InMemorySource {
    async fn resolve(&self, rev: &str) -> Result<String> {
        let state = self.lock();
        if state.commits.contains_key(rev) {
            return Ok(rev.to_owned());
        }
        if let Some(target) = state.refs.get(rev) {
            return Ok(target.clone());
        }
        let matches: Vec<&String> = state
            .commits
            .keys()
            .filter(|id| rev.len() >= 4 && id.starts_with(rev))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::not_found(format!("revision `{rev}`"))),
            _ => Err(Error::backend(
                "memory source",
                format!("resolve `{rev}`"),
                "the abbreviation is ambiguous",
            )),
        }
    }

    async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.snapshot(commit)?.files.get(&normalize(path)).cloned())
    }

    async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let (a, b) = (self.snapshot(from)?.files, self.snapshot(to)?.files);
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        Ok(keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect())
    }

    async fn first_parent(&self, commit: &str) -> Result<Option<String>> {
        Ok(self.snapshot(commit)?.parent)
    }

    async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>> {
        let prefix = match normalize(path).as_str() {
            "/" => "/".to_owned(),
            p => format!("{p}/"),
        };
        let mut entries: BTreeMap<String, bool> = BTreeMap::new();
        for file in self.snapshot(commit)?.files.keys() {
            if let Some(rest) = file.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((dir, _)) => {
                        entries.insert(dir.to_owned(), true);
                    }
                    None => {
                        entries.entry(rest.to_owned()).or_insert(false);
                    }
                }
            }
        }
        Ok(entries
            .into_iter()
            .map(|(name, is_dir)| DirEntry { name, is_dir })
            .collect())
    }
}

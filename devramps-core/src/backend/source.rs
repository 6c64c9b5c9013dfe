//! Reading a repository: files at a commit, and the paths changed between commits.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::pipeline::{PIPELINE_DIR, PIPELINE_FILE};

/// An entry of a directory at a commit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// The entry's name (no slashes).
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// A repository's content by commit.
///
/// Paths are repository paths with a leading `/` (`/services/api/main.rs`).
///
/// # Contract
///
/// - `resolve` turns a revision (full or abbreviated commit id, branch, tag, `HEAD`) into the
///   full commit id, or fails with [`Error::NotFound`].
/// - `read_file` returns `Ok(None)` when the path does not exist at the commit (or is not a
///   file) and fails with [`Error::NotFound`] when the commit does not exist.
/// - `changed_paths(from, to)` lists every file path whose content, mode or existence differs
///   between the two commits, sorted and without duplicates; a renamed file is listed under
///   both its old and its new path; directories are never listed.
/// - `first_parent` returns `Ok(None)` for a root commit.
/// - Every method is a pure read: calling it twice gives the same answer.
#[async_trait]
pub trait SourceRepository: Send + Sync + Debug + 'static {
    /// The full commit id of `rev`.
    async fn resolve(&self, rev: &str) -> Result<String>;
    /// The content of the file at `path` in `commit`.
    async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>>;
    /// The files changed between `from` and `to`.
    async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>>;
    /// The first parent of `commit`.
    async fn first_parent(&self, commit: &str) -> Result<Option<String>>;
    /// The entries of the directory `path` at `commit`, sorted by name (empty when absent).
    async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>>;
}

/// A shared [`SourceRepository`].
pub type DynSourceRepository = Arc<dyn SourceRepository>;

/// Conveniences over any [`SourceRepository`].
#[async_trait]
pub trait SourceRepositoryExt: SourceRepository {
    /// The slugs of the pipelines at `commit`: folders under `/.devramps` with a
    /// `pipeline.yaml`, sorted.
    async fn pipeline_slugs(&self, commit: &str) -> Result<Vec<String>> {
        let mut slugs = Vec::new();
        for entry in self.list_dir(commit, &format!("/{PIPELINE_DIR}")).await? {
            if entry.is_dir {
                let path = format!("/{PIPELINE_DIR}/{}/{PIPELINE_FILE}", entry.name);
                if self.read_file(commit, &path).await?.is_some() {
                    slugs.push(entry.name);
                }
            }
        }
        Ok(slugs)
    }

    /// The text of a pipeline's definition at `commit`.
    async fn pipeline_text(&self, commit: &str, slug: &str) -> Result<String> {
        let path = format!("/{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}");
        let bytes = self
            .read_file(commit, &path)
            .await?
            .ok_or_else(|| Error::not_found(format!("`{path}` at commit `{commit}`")))?;
        String::from_utf8(bytes).map_err(|_| {
            Error::backend("source", format!("read `{path}`"), "the file is not UTF-8")
        })
    }
}

impl<T: SourceRepository + ?Sized> SourceRepositoryExt for T {}

/// Forwards every method, so `Arc<S>` and `Box<S>` (including `Arc<dyn SourceRepository>`)
/// are repositories too.
macro_rules! forward_source_repository {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: SourceRepository + ?Sized> SourceRepository for $pointer<T> {
            async fn resolve(&self, rev: &str) -> Result<String> {
                (**self).resolve(rev).await
            }

            async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
                (**self).read_file(commit, path).await
            }

            async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
                (**self).changed_paths(from, to).await
            }

            async fn first_parent(&self, commit: &str) -> Result<Option<String>> {
                (**self).first_parent(commit).await
            }

            async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>> {
                (**self).list_dir(commit, path).await
            }
        }
    )*};
}

forward_source_repository!(Arc, Box);

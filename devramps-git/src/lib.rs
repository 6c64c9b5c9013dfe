//! [`GitRepository`]: a local git repository read through `libgit2`, as a
//! [`SourceRepository`] of the core (files at a commit, changed paths, parents, directory
//! listings, branches and tags).
//!
//! It is a crate of its own so that any program (`devramps plan`, a server, a runner) can read
//! git without depending on the command line.
//!
//! ```no_run
//! use devramps_git::GitRepository;
//! use devramps_core::backend::{SourceRepository, SourceRepositoryExt};
//!
//! # fn main() -> devramps_core::Result<()> {
//! let repo = GitRepository::discover(".")?;
//! futures::executor::block_on(async {
//!     let head = repo.resolve("HEAD").await?;
//!     let slugs = repo.pipeline_slugs(&head).await?;
//!     let changed = match repo.first_parent(&head).await? {
//!         Some(parent) => repo.changed_paths(&parent, &head).await?,
//!         None => Vec::new(),
//!     };
//!     println!("{head}: pipelines {slugs:?}, changed {changed:?}");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Every method reads the object database only: the work tree, the index and uncommitted
//! changes are never looked at.
#![forbid(unsafe_code)]

#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{DirEntry, SourceRepository};
use devramps_core::{Error, Result};
use git2::{
    BranchType, Commit, DiffFindOptions, DiffOptions, ErrorCode, FileMode, ObjectType, Oid,
    Repository, Tree,
};

/// The backend name in [`Error::Backend`] errors.
const BACKEND: &str = "git";

/// A local git repository (work tree or bare), opened once and read through `libgit2`.
///
/// Paths are repository paths with a leading `/` (`/services/api/main.rs`), as the
/// [`SourceRepository`] contract says. Commits may be given as full ids or as any revision
/// [`SourceRepository::resolve`] accepts (`HEAD`, a branch, a tag, an abbreviated id).
///
/// `git2` objects are not thread-safe, so the repository sits behind a mutex and every method
/// does its work synchronously while holding it; the futures never wait on anything else.
pub struct GitRepository {
    /// The repository's folder: its work tree, or the git directory of a bare repository.
    path: PathBuf,
    /// The open repository.
    repo: Mutex<Repository>,
}

impl fmt::Debug for GitRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitRepository")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl GitRepository {
    /// Opens the repository that holds `path`: `path` itself or the nearest folder above it
    /// with a `.git` (as `git` does).
    ///
    /// Fails with [`Error::NotFound`] when there is none, and with [`Error::Backend`] when the
    /// repository cannot be opened (for example, it belongs to another user).
    pub fn discover(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Repository::discover(path)
            .map(Self::from_repository)
            .map_err(|e| open_error(path, &e))
    }

    /// Opens the repository at exactly `path` (its work tree or git directory), without
    /// searching the folders above.
    ///
    /// Fails like [`GitRepository::discover`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Repository::open(path)
            .map(Self::from_repository)
            .map_err(|e| open_error(path, &e))
    }

    /// Wraps an open repository.
    fn from_repository(repo: Repository) -> Self {
        let path = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
        GitRepository {
            path,
            repo: Mutex::new(repo),
        }
    }

    /// The repository's folder: its work tree, or the git directory of a bare repository.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The local branches whose tip is `commit`, sorted by name.
    pub fn branches_at(&self, commit: &str) -> Result<Vec<String>> {
        self.branch_names_at(commit, BranchType::Local)
    }

    /// The remote-tracking branches whose tip is `commit`, by branch name without the remote
    /// (`refs/remotes/origin/main` → `main`), sorted and without duplicates. `<remote>/HEAD`
    /// is left out.
    pub fn remote_branches_at(&self, commit: &str) -> Result<Vec<String>> {
        self.branch_names_at(commit, BranchType::Remote)
    }

    /// The branch checked out in the work tree (`HEAD` → `refs/heads/<name>`), or `None` when
    /// `HEAD` is detached.
    pub fn head_branch(&self) -> Option<String> {
        let repo = self.lock();
        let head = repo.find_reference("HEAD").ok()?;
        let target = head.symbolic_target()?;
        target.strip_prefix("refs/heads/").map(str::to_owned)
    }

    /// The tags that point at `commit` (annotated tags are followed to their commit), sorted
    /// by name.
    pub fn tags_at(&self, commit: &str) -> Result<Vec<String>> {
        let repo = self.lock();
        let operation = format!("list the tags of commit `{commit}`");
        let id = find_commit(&repo, commit)?.id();
        let names = repo.tag_names(None).map_err(|e| backend(&operation, &e))?;
        let mut tags: Vec<String> = names
            .iter()
            .flatten()
            .filter(|name| {
                repo.revparse_single(&format!("refs/tags/{name}"))
                    .and_then(|object| object.peel_to_commit())
                    .is_ok_and(|c| c.id() == id)
            })
            .map(str::to_owned)
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// The branches of `kind` whose tip is `commit`.
    fn branch_names_at(&self, commit: &str, kind: BranchType) -> Result<Vec<String>> {
        let repo = self.lock();
        let operation = format!("list the branches at commit `{commit}`");
        let id = find_commit(&repo, commit)?.id();
        let mut names = Vec::new();
        for branch in repo
            .branches(Some(kind))
            .map_err(|e| backend(&operation, &e))?
        {
            let (branch, _) = branch.map_err(|e| backend(&operation, &e))?;
            let reference = branch.get();
            if reference.symbolic_target().is_some() {
                // `origin/HEAD` and the like: an alias of another branch.
                continue;
            }
            let at_commit = reference.peel_to_commit().is_ok_and(|tip| tip.id() == id);
            let Some(name) = branch.name().ok().flatten() else {
                continue;
            };
            let name = match kind {
                BranchType::Local => name,
                BranchType::Remote => match name.split_once('/') {
                    Some((_, rest)) => rest,
                    None => name,
                },
            };
            if at_commit && name != "HEAD" {
                names.push(name.to_owned());
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Writes the files of `commit`'s tree into the folder `dir` (created if missing; it must
    /// be empty): a checkout without the repository, its index or its work tree. Executable
    /// files keep their executable bit and symbolic links are written as links; submodules
    /// (another repository's commit) become empty folders.
    ///
    /// Fails with [`Error::NotFound`] for an unknown commit, with
    /// [`Error::Backend`] naming the path for a folder that is not empty, an entry whose
    /// name could escape `dir` (`..`, `.git`, a `/`), or a file that cannot be written.
    pub fn export(&self, commit: &str, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let operation = format!("export commit `{commit}` to `{}`", dir.display());
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Error::backend(
                BACKEND,
                operation.clone(),
                format!("cannot {what} `{}`: {e}", path.display()),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create the folder", dir, e))?;
        let mut listing = std::fs::read_dir(dir).map_err(|e| io("read the folder", dir, e))?;
        if listing.next().is_some() {
            return Err(Error::backend(
                BACKEND,
                operation,
                "the folder is not empty; export into a new folder",
            ));
        }
        let repo = self.lock();
        let tree = commit_tree(&repo, commit)?;
        export_tree(&repo, &tree, dir, &operation)
    }

    /// The repository, locked. A panic in another thread while reading leaves nothing half
    /// written, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Repository> {
        self.repo.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SourceRepository for GitRepository {
    async fn resolve(&self, rev: &str) -> Result<String> {
        let repo = self.lock();
        resolve(&repo, rev).map(|commit| commit.id().to_string())
    }

    async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let repo = self.lock();
        let tree = commit_tree(&repo, commit)?;
        let relative = relative(path);
        if relative.is_empty() {
            return Ok(None);
        }
        let entry = match tree.get_path(Path::new(relative)) {
            Ok(entry) => entry,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(backend(&format!("read `{path}` at `{commit}`"), &e)),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let blob = repo
            .find_blob(entry.id())
            .map_err(|e| backend(&format!("read `{path}` at `{commit}`"), &e))?;
        Ok(Some(blob.content().to_vec()))
    }

    async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let repo = self.lock();
        let old = commit_tree(&repo, from)?;
        let new = commit_tree(&repo, to)?;
        let operation = format!("compare `{from}` with `{to}`");
        let mut options = DiffOptions::new();
        options.include_typechange(true);
        let mut diff = repo
            .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut options))
            .map_err(|e| backend(&operation, &e))?;
        diff.find_similar(Some(DiffFindOptions::new().renames(true)))
            .map_err(|e| backend(&operation, &e))?;
        let mut paths = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if is_file(file.mode())
                    && let Some(path) = file.path()
                {
                    paths.push(format!("/{}", path.to_string_lossy()));
                }
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    async fn first_parent(&self, commit: &str) -> Result<Option<String>> {
        let repo = self.lock();
        // The id is read from the commit itself: the parent object need not be present (a
        // shallow clone).
        Ok(find_commit(&repo, commit)?
            .parent_ids()
            .next()
            .map(|id| id.to_string()))
    }

    async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>> {
        let repo = self.lock();
        let root = commit_tree(&repo, commit)?;
        let relative = relative(path);
        let operation = format!("list `{path}` at `{commit}`");
        let tree = if relative.is_empty() {
            root
        } else {
            match root.get_path(Path::new(relative)) {
                Ok(entry) if entry.kind() == Some(ObjectType::Tree) => {
                    repo.find_tree(entry.id())
                        .map_err(|e| backend(&operation, &e))?
                }
                Ok(_) => return Ok(Vec::new()),
                Err(e) if is_missing(&e) => return Ok(Vec::new()),
                Err(e) => return Err(backend(&operation, &e)),
            }
        };
        let mut entries: Vec<DirEntry> = tree
            .iter()
            .filter_map(|entry| {
                let is_dir = match entry.kind() {
                    Some(ObjectType::Tree) => true,
                    Some(ObjectType::Blob) => false,
                    // Submodules (commit entries) are another repository's content.
                    _ => return None,
                };
                Some(DirEntry {
                    name: String::from_utf8_lossy(entry.name_bytes()).into_owned(),
                    is_dir,
                })
            })
            .collect();
        entries.sort();
        Ok(entries)
    }
}

/// The commit `rev` names: a full or abbreviated id, a branch, a tag, `HEAD`, or any other
/// revision `git rev-parse` understands, peeled to a commit.
fn resolve<'r>(repo: &'r Repository, rev: &str) -> Result<Commit<'r>> {
    let object = repo.revparse_single(rev).map_err(|e| match e.code() {
        ErrorCode::NotFound | ErrorCode::InvalidSpec | ErrorCode::UnbornBranch => {
            Error::not_found(format!("revision `{rev}`"))
        }
        ErrorCode::Ambiguous => Error::backend(
            BACKEND,
            format!("resolve `{rev}`"),
            "the abbreviated id matches several objects; give more of its characters",
        ),
        _ => backend(&format!("resolve `{rev}`"), &e),
    })?;
    object
        .peel_to_commit()
        .map_err(|_| Error::not_found(format!("commit for revision `{rev}`")))
}

/// The commit `commit`: a full id is looked up directly, anything else is resolved.
fn find_commit<'r>(repo: &'r Repository, commit: &str) -> Result<Commit<'r>> {
    let is_full_id = commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if is_full_id && let Ok(id) = Oid::from_str(commit) {
        return repo.find_commit(id).map_err(|e| match e.code() {
            ErrorCode::NotFound => Error::not_found(format!("commit `{commit}`")),
            _ => backend(&format!("read commit `{commit}`"), &e),
        });
    }
    resolve(repo, commit)
}

/// The root tree of `commit`.
fn commit_tree<'r>(repo: &'r Repository, commit: &str) -> Result<Tree<'r>> {
    find_commit(repo, commit)?
        .tree()
        .map_err(|e| backend(&format!("read the tree of commit `{commit}`"), &e))
}

/// Writes the entries of `tree` into `dir` (which exists), folders first, recursively.
fn export_tree(repo: &Repository, tree: &Tree<'_>, dir: &Path, operation: &str) -> Result<()> {
    for entry in tree.iter() {
        let name = entry.name_bytes();
        let name = std::str::from_utf8(name).ok().filter(|n| {
            !n.is_empty() && *n != "." && *n != ".." && *n != ".git" && !n.contains(['/', '\0'])
        });
        let Some(name) = name else {
            return Err(Error::backend(
                BACKEND,
                operation,
                format!(
                    "the tree holds an entry named `{}` under `{}`, which cannot be written \
                     safely",
                    String::from_utf8_lossy(entry.name_bytes()),
                    dir.display()
                ),
            ));
        };
        let path = dir.join(name);
        let failed = |what: &str, e: &dyn fmt::Display| {
            Error::backend(
                BACKEND,
                operation,
                format!("cannot {what} `{}`: {e}", path.display()),
            )
        };
        let mode = entry.filemode();
        match entry.kind() {
            Some(ObjectType::Tree) => {
                std::fs::create_dir(&path).map_err(|e| failed("create the folder", &e))?;
                let subtree = repo
                    .find_tree(entry.id())
                    .map_err(|e| failed("read the tree of", &e.message().to_owned()))?;
                export_tree(repo, &subtree, &path, operation)?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo
                    .find_blob(entry.id())
                    .map_err(|e| failed("read the blob of", &e.message().to_owned()))?;
                if mode == i32::from(FileMode::Link) {
                    let target = std::ffi::OsStr::from_bytes(blob.content());
                    std::os::unix::fs::symlink(target, &path)
                        .map_err(|e| failed("create the symbolic link", &e))?;
                } else {
                    std::fs::write(&path, blob.content())
                        .map_err(|e| failed("write the file", &e))?;
                    if mode == i32::from(FileMode::BlobExecutable) {
                        let permissions = std::fs::Permissions::from_mode(0o755);
                        std::fs::set_permissions(&path, permissions)
                            .map_err(|e| failed("make executable", &e))?;
                    }
                }
            }
            // A submodule: another repository's commit, not content of this one.
            _ => std::fs::create_dir(&path).map_err(|e| failed("create the folder", &e))?,
        }
    }
    Ok(())
}

/// A repository path without its leading and trailing `/`; empty for the root.
fn relative(path: &str) -> &str {
    path.trim_matches('/')
}

/// Whether a tree lookup failed because the path does not exist.
fn is_missing(e: &git2::Error) -> bool {
    matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec)
}

/// Whether a diff side is a file (regular, executable or symbolic link), not a submodule, a
/// tree or the absent side of an addition or deletion.
fn is_file(mode: FileMode) -> bool {
    matches!(
        mode,
        FileMode::Blob | FileMode::BlobExecutable | FileMode::BlobGroupWritable | FileMode::Link
    )
}

/// A `git2` failure as [`Error::Backend`], with a hint of what to do.
fn backend(operation: &str, e: &git2::Error) -> Error {
    let hint = match e.code() {
        ErrorCode::Owner => {
            "; the repository belongs to another user: if you trust it, run \
             `git config --global --add safe.directory <its folder>`"
        }
        ErrorCode::Locked => "; another git process holds a lock: wait for it and try again",
        _ => match e.class() {
            git2::ErrorClass::Odb | git2::ErrorClass::Object | git2::ErrorClass::Zlib => {
                "; the repository may be damaged or shallow: check it with `git fsck`, or fetch \
                 the missing history (`git fetch --unshallow`)"
            }
            _ => "; check that the repository is readable with `git log`",
        },
    };
    Error::backend(BACKEND, operation, format!("{}{hint}", e.message()))
}

/// A failure to open the repository at `path`.
fn open_error(path: &Path, e: &git2::Error) -> Error {
    if e.code() == ErrorCode::NotFound {
        Error::not_found(format!("git repository at or above `{}`", path.display()))
    } else {
        backend(&format!("open the repository at `{}`", path.display()), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_lose_their_slashes() {
        assert_eq!(relative("/services/api/"), "services/api");
        assert_eq!(relative("/"), "");
        assert_eq!(relative(""), "");
        assert_eq!(relative("docs"), "docs");
    }

    #[test]
    fn only_file_modes_count_as_files() {
        assert!(is_file(FileMode::Blob));
        assert!(is_file(FileMode::Link));
        assert!(!is_file(FileMode::Commit));
        assert!(!is_file(FileMode::Tree));
        assert!(!is_file(FileMode::Unreadable));
    }
}

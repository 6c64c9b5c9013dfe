//! Git repositories in temporary folders, for tests (feature `testing`): commits with a fixed
//! author and fixed times, so that commit ids do not depend on when a test runs.
//!
//! Test helpers panic (with a message saying what failed) instead of returning errors: a
//! failure here is a broken test environment, not a result.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use git2::{IndexAddOption, Repository, RepositoryInitOptions, Signature, Time};

use crate::GitRepository;

/// Writes `contents` to `root/relative`, creating folders.
pub fn write(root: &Path, relative: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create folders");
    std::fs::write(path, contents).expect("write file");
}

/// A git repository in a temporary folder (removed when dropped), whose `HEAD` starts as the
/// unborn branch `main`.
pub struct TestRepo {
    /// The work tree.
    dir: tempfile::TempDir,
    /// The repository.
    repo: Repository,
    /// The commits made, oldest first.
    commits: Vec<String>,
}

impl std::fmt::Debug for TestRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRepo")
            .field("path", &self.dir.path())
            .field("commits", &self.commits)
            .finish_non_exhaustive()
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    /// An empty repository whose `HEAD` is the unborn branch `main`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = RepositoryInitOptions::new();
        options.initial_head("main");
        let repo = Repository::init_opts(dir.path(), &options).expect("git init");
        TestRepo {
            dir,
            repo,
            commits: Vec::new(),
        }
    }

    /// The work tree's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The work tree's folder as a command-line argument.
    pub fn arg(&self) -> &str {
        self.path().to_str().expect("temp paths are UTF-8")
    }

    /// Writes a file of the work tree (`path` without a leading `/`).
    pub fn write(&self, path: &str, contents: &str) -> &Self {
        write(self.path(), path, contents);
        self
    }

    /// Writes an executable file of the work tree (mode 755).
    pub fn write_executable(&self, path: &str, contents: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        write(self.path(), path, contents);
        let permissions = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(self.path().join(path), permissions).expect("chmod");
        self
    }

    /// Makes `path` a symbolic link to `target` in the work tree.
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let link = self.path().join(path);
        std::fs::create_dir_all(link.parent().expect("has a parent")).expect("create folders");
        std::os::unix::fs::symlink(target, link).expect("symlink");
        self
    }

    /// Moves a file of the work tree.
    pub fn rename(&self, from: &str, to: &str) -> &Self {
        let target = self.path().join(to);
        std::fs::create_dir_all(target.parent().expect("has a parent")).expect("create folders");
        std::fs::rename(self.path().join(from), target).expect("rename");
        self
    }

    /// Commits the whole work tree (additions, changes and deletions) on the current branch.
    pub fn commit(&mut self, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("stage deletions");
        index.write().expect("write index");
        let tree = self
            .repo
            .find_tree(index.write_tree().expect("write tree"))
            .expect("tree");
        let seconds = 1_700_000_000 + 60 * i64::try_from(self.commits.len()).expect("small");
        let signature = Signature::new("Dev Eloper", "dev@example.invalid", &Time::new(seconds, 0))
            .expect("signature");
        let parent = self.commits.last().map(|id| {
            self.repo
                .find_commit(id.parse().expect("id"))
                .expect("parent")
        });
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let id = self
            .repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .expect("commit")
            .to_string();
        self.commits.push(id.clone());
        id
    }

    /// Commit `n` (1-based, in the order made).
    pub fn c(&self, n: usize) -> &str {
        &self.commits[n - 1]
    }

    /// Creates branch `name` at commit `n`.
    pub fn branch(&self, name: &str, n: usize) {
        let commit = self
            .repo
            .find_commit(self.c(n).parse().expect("id"))
            .expect("commit");
        self.repo.branch(name, &commit, true).expect("branch");
    }

    /// Creates the annotated tag `name` at commit `n`.
    pub fn tag(&self, name: &str, n: usize) {
        let object = self.repo.revparse_single(self.c(n)).expect("commit");
        let signature = Signature::new(
            "Dev Eloper",
            "dev@example.invalid",
            &Time::new(1_700_000_000, 0),
        )
        .expect("signature");
        self.repo
            .tag(name, &object, &signature, "release", false)
            .expect("tag");
    }

    /// The repository, opened from the work tree.
    pub fn source(&self) -> GitRepository {
        GitRepository::discover(self.path()).expect("opens")
    }
}

//! Conformance cases of [`SourceRepository`](crate::backend::SourceRepository) over a small known history ([`HISTORY`]).
//!
//! Run them all with [`source_conformance_tests!`](crate::source_conformance_tests) over a
//! [`SourceFixture`]: setup writes [`HISTORY`] into a fresh repository (a git repository on
//! disk, a repository on a hosting service, ...) and says which commit id each entry got.

use crate::Error;
use crate::backend::{DirEntry, DynSourceRepository, SourceRepositoryExt};

use super::{Capabilities, ok};

/// One commit of [`HISTORY`]: its first parent (an index into the history) and every file it
/// holds (a full snapshot, not a change set).
#[derive(Clone, Copy, Debug)]
pub struct FixtureCommit {
    /// The first parent, by index; `None` for the root.
    pub parent: Option<usize>,
    /// Every file of the commit: (repository path with a leading `/`, content).
    pub files: &'static [(&'static str, &'static str)],
}

/// The history the cases read: a root commit and a child that modifies, deletes and adds
/// files.
pub const HISTORY: &[FixtureCommit] = &[
    FixtureCommit {
        parent: None,
        files: &[
            ("/.devramps/api/pipeline.yaml", "version: \"1.0.0\"\n"),
            ("/.devramps/notes/README.md", "not a pipeline\n"),
            ("/README.md", "hello\n"),
            ("/src/a.rs", "fn a() {}\n"),
            ("/src/b.rs", "fn b() {}\n"),
        ],
    },
    FixtureCommit {
        parent: Some(0),
        files: &[
            ("/.devramps/api/pipeline.yaml", "version: \"1.0.0\"\n"),
            ("/.devramps/notes/README.md", "not a pipeline\n"),
            ("/README.md", "hello\n"),
            ("/src/a.rs", "fn a() { changed() }\n"),
            ("/src/c/d.rs", "fn d() {}\n"),
        ],
    },
];

/// A repository holding [`HISTORY`].
#[derive(Clone, Debug)]
pub struct SourceFixture {
    /// The repository.
    pub repo: DynSourceRepository,
    /// The full commit id of each entry of [`HISTORY`], in order.
    pub commits: Vec<String>,
}

/// The fixture a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject(fixture: &SourceFixture) -> &SourceFixture {
    fixture
}

/// A commit id no repository has.
const UNKNOWN: &str = "0123456789abcdef0123456789abcdef01234567";

fn commits(f: &SourceFixture) -> (&str, &str) {
    match f.commits.as_slice() {
        [root, child] => (root, child),
        other => panic!("the fixture must hold one id per HISTORY entry, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected Error::NotFound, got {other:?}"),
    }
}

/// `resolve` returns a full commit id as is and fails with [`Error::NotFound`] for an
/// unknown one.
pub async fn resolve_known_and_unknown(f: &SourceFixture, _: &Capabilities) {
    for id in &f.commits {
        assert_eq!(
            &ok(f.repo.resolve(id).await, "resolve"),
            id,
            "a full id resolves to itself"
        );
    }
    assert_not_found(f.repo.resolve(UNKNOWN).await, "resolve an unknown commit");
}

/// `read_file` returns a file's bytes, `None` for a missing path or a directory, and
/// [`Error::NotFound`] for an unknown commit.
pub async fn read_file_present_absent_and_unknown_commit(f: &SourceFixture, _: &Capabilities) {
    let (root, child) = commits(f);
    let read = |c, p| f.repo.read_file(c, p);
    assert_eq!(
        ok(read(root, "/README.md").await, "read"),
        Some(b"hello\n".to_vec())
    );
    assert_eq!(
        ok(read(child, "/src/a.rs").await, "read"),
        Some(b"fn a() { changed() }\n".to_vec()),
        "each commit has its own content"
    );
    assert_eq!(
        ok(read(child, "/src/b.rs").await, "read"),
        None,
        "deleted in the child"
    );
    assert_eq!(
        ok(read(root, "/nope.txt").await, "read"),
        None,
        "never existed"
    );
    assert_eq!(
        ok(read(root, "/src").await, "read"),
        None,
        "a directory is not a file"
    );
    assert_not_found(
        read(UNKNOWN, "/README.md").await,
        "read at an unknown commit",
    );
}

/// `changed_paths` lists every changed file (modified, deleted, added), sorted, never a
/// directory; nothing between a commit and itself.
pub async fn changed_paths_sorted_files_only(f: &SourceFixture, _: &Capabilities) {
    let (root, child) = commits(f);
    assert_eq!(
        ok(f.repo.changed_paths(root, child).await, "changed_paths"),
        ["/src/a.rs", "/src/b.rs", "/src/c/d.rs"],
        "modified, deleted and added files, sorted"
    );
    assert!(
        ok(f.repo.changed_paths(child, child).await, "changed_paths").is_empty(),
        "nothing changed between a commit and itself"
    );
    assert_not_found(f.repo.changed_paths(UNKNOWN, child).await, "unknown commit");
}

/// `first_parent` is `None` for the root and the parent otherwise.
pub async fn first_parent_of_root_and_child(f: &SourceFixture, _: &Capabilities) {
    let (root, child) = commits(f);
    assert_eq!(
        ok(f.repo.first_parent(root).await, "first_parent"),
        None,
        "root"
    );
    assert_eq!(
        ok(f.repo.first_parent(child).await, "first_parent"),
        Some(root.to_owned()),
        "child"
    );
}

/// `list_dir` lists a directory's entries sorted by name, with their kinds; an absent
/// directory is empty.
pub async fn list_dir_sorted_with_kinds(f: &SourceFixture, _: &Capabilities) {
    let (root, child) = commits(f);
    let entry = |name: &str, is_dir| DirEntry {
        name: name.to_owned(),
        is_dir,
    };
    assert_eq!(
        ok(f.repo.list_dir(root, "/").await, "list_dir /"),
        [
            entry(".devramps", true),
            entry("README.md", false),
            entry("src", true)
        ]
    );
    assert_eq!(
        ok(f.repo.list_dir(child, "/src").await, "list_dir /src"),
        [entry("a.rs", false), entry("c", true)]
    );
    assert!(ok(f.repo.list_dir(root, "/absent").await, "list_dir").is_empty());
}

/// The pipelines of a commit are the folders of `/.devramps` with a `pipeline.yaml`.
pub async fn pipeline_slugs_and_text(f: &SourceFixture, _: &Capabilities) {
    let (root, _) = commits(f);
    assert_eq!(
        ok(f.repo.pipeline_slugs(root).await, "pipeline_slugs"),
        ["api"]
    );
    assert_eq!(
        ok(f.repo.pipeline_text(root, "api").await, "pipeline_text"),
        "version: \"1.0.0\"\n"
    );
    assert_not_found(
        f.repo.pipeline_text(root, "notes").await,
        "a folder without a pipeline",
    );
}

/// Every method is a pure read: asking twice gives the same answer.
pub async fn reads_are_pure(f: &SourceFixture, _: &Capabilities) {
    let (root, child) = commits(f);
    for _ in 0..2 {
        let changed = ok(f.repo.changed_paths(root, child).await, "changed_paths");
        assert_eq!(changed.len(), 3, "{changed:?}");
        let listed = ok(f.repo.list_dir(child, "/").await, "list_dir");
        assert_eq!(listed.len(), 3, "{listed:?}");
    }
}

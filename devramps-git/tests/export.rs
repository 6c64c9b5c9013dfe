//! [`GitRepository::export`]: a commit's tree written to a folder, on real repositories.

use std::os::unix::fs::PermissionsExt;

use devramps_core::Error;
use devramps_git::testing::TestRepo;

/// A repository with a plain file, an executable script, a symbolic link and a nested folder
/// at commit 1, and the plain file changed and the script removed at commit 2.
fn repo() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write("README.md", "v1\n")
        .write_executable("scripts/test.sh", "#!/bin/sh\necho ok\n")
        .write("app/src/deep/file.txt", "deep\n")
        .symlink("latest", "app/src/deep/file.txt");
    repo.commit("one");
    repo.write("README.md", "v2\n");
    std::fs::remove_file(repo.path().join("scripts/test.sh")).expect("remove");
    repo.commit("two");
    repo
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn export_writes_the_files_of_the_commit_with_their_modes_and_links() {
    let repo = repo();
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("checkout");
    repo.source().export(repo.c(1), &dir).expect("exports");

    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).expect("read"),
        "v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("app/src/deep/file.txt")).expect("read"),
        "deep\n"
    );
    assert_eq!(
        mode(&dir.join("scripts/test.sh")) & 0o111,
        0o111,
        "executable"
    );
    assert_eq!(mode(&dir.join("README.md")) & 0o111, 0, "not executable");
    let link = std::fs::symlink_metadata(dir.join("latest")).expect("link metadata");
    assert!(link.file_type().is_symlink(), "a symbolic link, not a copy");
    assert_eq!(
        std::fs::read_link(dir.join("latest")).expect("target"),
        std::path::Path::new("app/src/deep/file.txt")
    );
    assert!(!dir.join(".git").exists(), "no repository in the export");
}

#[test]
fn export_takes_the_given_commit_not_the_work_tree_or_head() {
    let repo = repo();
    repo.write("README.md", "uncommitted\n");
    let out = tempfile::tempdir().expect("temp dir");
    repo.source()
        .export(repo.c(1), out.path().join("one"))
        .expect("exports");
    repo.source()
        .export(repo.c(2), out.path().join("two"))
        .expect("exports");
    let read = |p: &str| std::fs::read_to_string(out.path().join(p)).expect("read");
    assert_eq!(read("one/README.md"), "v1\n");
    assert_eq!(read("two/README.md"), "v2\n");
    assert!(out.path().join("one/scripts/test.sh").exists());
    assert!(!out.path().join("two/scripts/test.sh").exists());
}

#[test]
fn export_refuses_a_folder_that_is_not_empty_and_an_unknown_commit() {
    let repo = repo();
    let out = tempfile::tempdir().expect("temp dir");
    std::fs::write(out.path().join("stale"), "x").expect("write");
    let err = repo
        .source()
        .export(repo.c(1), out.path())
        .expect_err("not empty");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(!out.path().join("README.md").exists(), "nothing written");

    let err = repo
        .source()
        .export(&"0".repeat(40), out.path().join("new"))
        .expect_err("unknown commit");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

//! [`GitRepository`] against the `SourceRepository` contract, on real git repositories built in
//! temporary folders.

use devramps_core::Error;
use devramps_core::backend::{DirEntry, SourceRepository, SourceRepositoryExt};
use devramps_git::GitRepository;
use devramps_git::testing::TestRepo;
use futures::executor::block_on;

/// The example pipeline of the repository (`examples/repo/.devramps/api/pipeline.yaml`).
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/repo/.devramps/api/pipeline.yaml"
);

/// The four commits of the example repository:
/// 1. the root, with the example pipeline and a few files;
/// 2. a change of `/services/api/main.rs`;
/// 3. a change of `/docs/readme.md` only;
/// 4. `/services/api/x.rs` renamed to `/lib/x.rs`.
fn example_repo() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write(
        ".devramps/api/pipeline.yaml",
        &std::fs::read_to_string(EXAMPLE).expect("the example is readable"),
    )
    .write("services/api/main.rs", "fn main() {}\n")
    .write("services/api/x.rs", "pub fn x() -> u32 {\n    42\n}\n")
    .write("docs/readme.md", "# API\n")
    .write("web/index.html", "<h1>web</h1>\n")
    .write("Dockerfile", "FROM scratch\n");
    repo.commit("root");
    repo.write("services/api/main.rs", "fn main() { println!(\"v2\"); }\n");
    repo.commit("change the api");
    repo.write("docs/readme.md", "# API\n\nDocumented.\n");
    repo.commit("document");
    repo.rename("services/api/x.rs", "lib/x.rs");
    repo.commit("move x to lib");
    repo
}

#[test]
fn git_repository_follows_the_source_contract() {
    let repo = example_repo();
    let source = repo.source();
    block_on(async {
        // resolve: full and short ids, HEAD, branches; unknown → NotFound.
        assert_eq!(source.resolve("HEAD").await.expect("HEAD"), repo.c(4));
        assert_eq!(source.resolve("main").await.expect("main"), repo.c(4));
        assert_eq!(
            source.resolve(&repo.c(2)[..7]).await.expect("short id"),
            repo.c(2)
        );
        assert_eq!(source.resolve(repo.c(1)).await.expect("full id"), repo.c(1));
        assert_eq!(source.resolve("HEAD~3").await.expect("HEAD~3"), repo.c(1));
        for unknown in ["nope", "0123456789012345678901234567890123456789", "a..b"] {
            assert!(
                matches!(source.resolve(unknown).await, Err(Error::NotFound { .. })),
                "{unknown}"
            );
        }

        // read_file: content, a missing path, a directory.
        let main = source
            .read_file(repo.c(2), "/services/api/main.rs")
            .await
            .expect("reads");
        assert_eq!(
            main.as_deref(),
            Some("fn main() { println!(\"v2\"); }\n".as_bytes())
        );
        let old = source
            .read_file(repo.c(1), "/services/api/main.rs")
            .await
            .expect("reads");
        assert_eq!(old.as_deref(), Some("fn main() {}\n".as_bytes()));
        for absent in [
            "/missing.txt",
            "/services/api",
            "/services/api/",
            "/",
            "/lib/x.rs",
        ] {
            assert_eq!(
                source.read_file(repo.c(3), absent).await.expect("reads"),
                None,
                "{absent}"
            );
        }
        assert!(matches!(
            source
                .read_file("0123456789012345678901234567890123456789", "/Dockerfile")
                .await,
            Err(Error::NotFound { .. })
        ));

        // first_parent.
        assert_eq!(source.first_parent(repo.c(1)).await.expect("root"), None);
        assert_eq!(
            source
                .first_parent(repo.c(3))
                .await
                .expect("parent")
                .as_deref(),
            Some(repo.c(2))
        );

        // changed_paths: sorted, both sides of a rename, directories never.
        assert_eq!(
            source
                .changed_paths(repo.c(3), repo.c(4))
                .await
                .expect("diff"),
            ["/lib/x.rs", "/services/api/x.rs"]
        );
        assert_eq!(
            source
                .changed_paths(repo.c(1), repo.c(3))
                .await
                .expect("diff"),
            ["/docs/readme.md", "/services/api/main.rs"]
        );
        assert_eq!(
            source
                .changed_paths(repo.c(4), repo.c(1))
                .await
                .expect("diff"),
            [
                "/docs/readme.md",
                "/lib/x.rs",
                "/services/api/main.rs",
                "/services/api/x.rs"
            ]
        );
        assert!(
            source
                .changed_paths(repo.c(2), repo.c(2))
                .await
                .expect("diff")
                .is_empty()
        );
        // A pure read: the same answer twice.
        assert_eq!(
            source
                .changed_paths(repo.c(3), repo.c(4))
                .await
                .expect("diff"),
            source
                .changed_paths(repo.c(3), repo.c(4))
                .await
                .expect("diff")
        );

        // list_dir: sorted, directories flagged, empty when absent or a file.
        let entry = |name: &str, is_dir| DirEntry {
            name: name.to_owned(),
            is_dir,
        };
        assert_eq!(
            source.list_dir(repo.c(4), "/").await.expect("root"),
            [
                entry(".devramps", true),
                entry("Dockerfile", false),
                entry("docs", true),
                entry("lib", true),
                entry("services", true),
                entry("web", true),
            ]
        );
        assert_eq!(
            source
                .list_dir(repo.c(1), "/services/api")
                .await
                .expect("dir"),
            [entry("main.rs", false), entry("x.rs", false)]
        );
        assert!(
            source
                .list_dir(repo.c(1), "/lib")
                .await
                .expect("absent")
                .is_empty()
        );
        assert!(
            source
                .list_dir(repo.c(1), "/Dockerfile")
                .await
                .expect("file")
                .is_empty()
        );

        // The conveniences of the core work on top.
        assert_eq!(
            source.pipeline_slugs(repo.c(4)).await.expect("slugs"),
            ["api"]
        );
        assert_eq!(
            source.pipeline_text(repo.c(4), "api").await.expect("text"),
            std::fs::read_to_string(EXAMPLE).expect("the example is readable")
        );
    });
}

#[test]
fn git_repository_branches_tags_and_opening() {
    let repo = example_repo();
    repo.branch("release", 2);
    repo.branch("also-main", 4);
    repo.tag("v2", 2);
    let source = repo.source();
    assert_eq!(
        source.branches_at(repo.c(4)).expect("branches"),
        ["also-main", "main"]
    );
    assert_eq!(
        source.branches_at(repo.c(2)).expect("branches"),
        ["release"]
    );
    assert!(source.branches_at(repo.c(3)).expect("branches").is_empty());
    assert!(
        source
            .remote_branches_at(repo.c(4))
            .expect("remotes")
            .is_empty()
    );
    assert_eq!(source.tags_at(repo.c(2)).expect("tags"), ["v2"]);
    assert!(source.tags_at(repo.c(4)).expect("tags").is_empty());
    assert_eq!(source.head_branch().as_deref(), Some("main"));
    assert_eq!(block_on(source.resolve("v2")).expect("tag"), repo.c(2));

    assert!(GitRepository::open(repo.path()).is_ok());
    assert!(matches!(
        GitRepository::open(repo.path().join("services")),
        Err(Error::NotFound { .. })
    ));
    assert!(GitRepository::discover(repo.path().join("services")).is_ok());
    let outside = tempfile::tempdir().expect("temp dir");
    assert!(matches!(
        GitRepository::discover(outside.path()),
        Err(Error::NotFound { .. })
    ));
    assert!(format!("{source:?}").contains("GitRepository"));
}

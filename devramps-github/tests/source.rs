//! `GitHubSource` against a fake GitHub API on loopback serving a real git repository
//! (`fake/`: what it cannot prove is written there). Each answer is compared with
//! devramps-git's reading of the same repository, the reference implementation of the
//! contract.
#![allow(clippy::unwrap_used)]

mod fake;

use std::time::{Duration, Instant};

use devramps_core::backend::SourceRepository;
use devramps_git::testing::TestRepo;
use devramps_github::{Auth, GitHubClient, GitHubSource};
use fake::{Fake, Inject};

const REPO: &str = "acme/shop";

async fn source(fake: &Fake) -> GitHubSource {
    let client = GitHubClient::new(&fake.url, Auth::token("ghp_test")).unwrap();
    GitHubSource::new(client, REPO).unwrap()
}

/// Commits (1-based): 1 root; 2 edits, adds, renames; 3 adds 321 files.
fn repo() -> TestRepo {
    let mut t = TestRepo::new();
    t.write(".devramps/shop/pipeline.yaml", "name: shop\n")
        .write("README.md", "hello\n")
        .write("src/a.rs", "a\n")
        .write("src/old.rs", "old\n");
    t.commit("root");
    t.write("src/a.rs", "a2\n").write("docs/new.md", "new\n");
    t.rename("src/old.rs", "src/renamed.rs");
    t.commit("edit");
    for i in 0..320 {
        t.write(&format!("gen/f{i:03}.txt"), &format!("{i}\n"));
    }
    t.write("big.bin", &"x".repeat(3000));
    t.commit("many");
    t
}

#[tokio::test]
async fn resolves_reads_lists_and_finds_parents_like_git() {
    let t = repo();
    let fake = Fake::start(t.path(), REPO, "ghp_test").await;
    fake.with(|s| s.large_file = 1000); // big.bin (3000 bytes) goes through the blobs API
    let gh = source(&fake).await;
    let git = t.source();
    for rev in ["main", "HEAD", t.c(2), &t.c(1)[..8]] {
        assert_eq!(
            gh.resolve(rev).await.unwrap(),
            git.resolve(rev).await.unwrap(),
            "{rev}"
        );
    }
    assert!(matches!(
        gh.resolve("nope").await,
        Err(devramps_core::Error::NotFound { .. })
    ));
    for (c, path) in [
        (1, "/README.md"),
        (2, "/src/a.rs"),
        (2, "/src/old.rs"),
        (3, "/big.bin"),
        (3, "/src"),
        (3, "/missing"),
    ] {
        let commit = t.c(c);
        assert_eq!(
            gh.read_file(commit, path).await.unwrap(),
            git.read_file(commit, path).await.unwrap(),
            "{path} at {c}"
        );
    }
    assert_eq!(
        fake.count("GET /repos/acme/shop/git/blobs/"),
        1,
        "big.bin through the blobs API"
    );
    assert!(matches!(
        gh.read_file(&"0".repeat(40), "/README.md").await,
        Err(devramps_core::Error::NotFound { .. })
    ));
    for c in 1..=3 {
        assert_eq!(
            gh.first_parent(t.c(c)).await.unwrap(),
            git.first_parent(t.c(c)).await.unwrap()
        );
        for dir in ["/", "/src", "/.devramps", "/missing", "/README.md"] {
            assert_eq!(
                gh.list_dir(t.c(c), dir).await.unwrap(),
                git.list_dir(t.c(c), dir).await.unwrap(),
                "{dir} at {c}"
            );
        }
    }
}

#[tokio::test]
async fn changed_paths_match_git_through_compare_pages_the_file_cap_and_diverged_histories() {
    let t = repo();
    let git = t.source();
    let fake = Fake::start(t.path(), REPO, "ghp_test").await;
    fake.with(|s| s.per_page = 2);
    let gh = source(&fake).await;

    // 0 -> 1: the compare API, paged by `Link` (2 files a page).
    let expected = git.changed_paths(t.c(1), t.c(2)).await.unwrap();
    assert_eq!(gh.changed_paths(t.c(1), t.c(2)).await.unwrap(), expected);
    assert!(
        expected.contains(&"/src/old.rs".to_owned())
            && expected.contains(&"/src/renamed.rs".to_owned())
    );
    // 3 entries (the rename is one, with `previous_filename`), 2 a page: 2 pages.
    assert_eq!(
        fake.count("GET /repos/acme/shop/compare/"),
        2,
        "pages followed"
    );
    assert_eq!(fake.count("GET /repos/acme/shop/git/trees/"), 0);

    // 1 -> 2: 321 files, over the cap of 300: a tree diff.
    fake.with(|s| s.per_page = 100);
    let expected = git.changed_paths(t.c(2), t.c(3)).await.unwrap();
    assert_eq!(expected.len(), 321);
    assert_eq!(gh.changed_paths(t.c(2), t.c(3)).await.unwrap(), expected);
    assert_eq!(fake.count("GET /repos/acme/shop/git/trees/"), 2);

    // 2 -> 0 (behind) and truncated trees walked level by level.
    fake.with(|s| s.truncate_trees = true);
    let expected = git.changed_paths(t.c(3), t.c(1)).await.unwrap();
    assert_eq!(gh.changed_paths(t.c(3), t.c(1)).await.unwrap(), expected);

    // Cached: asking again costs nothing.
    let before = fake.count("GET ");
    gh.changed_paths(t.c(2), t.c(3)).await.unwrap();
    gh.read_file(t.c(1), "/README.md").await.unwrap();
    gh.read_file(t.c(1), "/README.md").await.unwrap();
    let after_first = fake.count("GET ");
    gh.read_file(t.c(1), "/README.md").await.unwrap();
    gh.first_parent(t.c(2)).await.unwrap();
    assert_eq!(fake.count("GET "), after_first);
    assert!(after_first - before <= 1, "only the first README read asks");
}

#[tokio::test]
async fn a_diverged_comparison_is_the_two_tree_diff() {
    let t = repo();
    // A new history after commit 2 (a forced push would leave it so): c3 edits README on 2.
    let repo = git2::Repository::open(t.path()).unwrap();
    let c2 = repo
        .find_commit(git2::Oid::from_str(t.c(2)).unwrap())
        .unwrap();
    let blob = repo.blob(b"rewritten\n").unwrap();
    let mut tree = repo.treebuilder(Some(&c2.tree().unwrap())).unwrap();
    tree.insert("README.md", blob, 0o100644).unwrap();
    let tree = repo.find_tree(tree.write().unwrap()).unwrap();
    let sig = git2::Signature::now("Dev", "dev@example.invalid").unwrap();
    let c3 = repo
        .commit(None, &sig, &sig, "rewrite", &tree, &[&c2])
        .unwrap()
        .to_string();
    let git = t.source();
    let fake = Fake::start(t.path(), REPO, "ghp_test").await;
    let gh = source(&fake).await;
    let expected = git.changed_paths(t.c(3), &c3).await.unwrap();
    // The compare API alone would list README only (merge base 2 -> c3), missing gen/ and big.bin.
    assert!(expected.len() > 300, "{}", expected.len());
    assert_eq!(gh.changed_paths(t.c(3), &c3).await.unwrap(), expected);
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_5xx_retried() {
    let t = repo();
    let fake = Fake::start(t.path(), REPO, "ghp_test").await;
    fake.with(|s| {
        s.inject.push_back(Inject::RetryAfter(1));
        s.inject.push_back(Inject::Reset(1));
        s.inject.push_back(Inject::Status(502));
    });
    let gh = source(&fake).await;
    let started = Instant::now();
    assert_eq!(gh.resolve("main").await.unwrap(), t.c(3));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.count("GET /repos/acme/shop/commits/main"), 4);

    // A reset beyond the longest wait fails as unavailable (transient), at once.
    fake.with(|s| s.inject.push_back(Inject::Reset(3600)));
    let client = GitHubClient::new(&fake.url, Auth::token("ghp_test"))
        .unwrap()
        .with_max_rate_wait(Duration::from_secs(5));
    let gh = GitHubSource::new(client, REPO).unwrap();
    let err = gh.resolve("main").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("rate limited"), "{err}");
}

#[tokio::test]
async fn bad_credentials_and_a_missing_repository_say_so() {
    let t = repo();
    let fake = Fake::start(t.path(), REPO, "ghp_test").await;
    let client = GitHubClient::new(&fake.url, Auth::token("wrong")).unwrap();
    let err = GitHubSource::new(client, REPO)
        .unwrap()
        .resolve("main")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("401") && err.to_string().contains("Bad credentials"),
        "{err}"
    );
    assert!(!err.is_transient());
    let client = GitHubClient::new(&fake.url, Auth::token("ghp_test")).unwrap();
    assert!(GitHubSource::new(client.clone(), "no-slash").is_err());
    let other = GitHubSource::new(client, "acme/other").unwrap();
    assert!(matches!(
        other.resolve("main").await,
        Err(devramps_core::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn app_installation_tokens_are_minted_with_a_jwt_and_refreshed_before_expiry() {
    let t = repo();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl is needed to make a test RSA key: apt-get install openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&key).unwrap();
    let der = std::process::Command::new("openssl")
        .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        der.status.success(),
        "{}",
        String::from_utf8_lossy(&der.stderr)
    );

    let fake = Fake::start(t.path(), REPO, "unused").await;
    fake.with(|s| {
        s.app = Some((der.stdout.clone(), 42));
        s.token_ttl = 3600;
    });
    let auth = Auth::app(42, 7, &pem).unwrap();
    let gh = GitHubSource::new(GitHubClient::new(&fake.url, auth.clone()).unwrap(), REPO).unwrap();
    assert_eq!(gh.resolve("main").await.unwrap(), t.c(3));
    gh.resolve("main").await.unwrap();
    assert_eq!(
        fake.with(|s| s.minted),
        1,
        "a token lasting an hour is reused"
    );

    // Tokens that expire within the refresh margin are replaced before each use.
    fake.with(|s| s.token_ttl = 60);
    let auth = Auth::app(42, 7, &pem).unwrap();
    let gh = GitHubSource::new(GitHubClient::new(&fake.url, auth).unwrap(), REPO).unwrap();
    gh.resolve("main").await.unwrap();
    gh.resolve("main").await.unwrap();
    assert_eq!(fake.with(|s| s.minted), 3);

    // A key of another App is refused by GitHub's check of the JWT.
    let wrong = Auth::app(43, 7, &pem).unwrap();
    let gh = GitHubSource::new(GitHubClient::new(&fake.url, wrong).unwrap(), REPO).unwrap();
    let err = gh.resolve("main").await.unwrap_err();
    assert!(err.to_string().contains("App 43"), "{err}");
    assert!(Auth::app(1, 1, "not a key").is_err());
}

#[tokio::test]
async fn the_cache_keeps_within_its_bounds_and_asks_again_for_what_it_dropped() {
    let t = repo();
    let fake = Fake::start(t.path(), REPO, "ghp_test").await;
    let client = GitHubClient::new(&fake.url, Auth::token("ghp_test")).unwrap();
    // Two answers of each kind, and 10 bytes of file content.
    let gh = GitHubSource::new(client, REPO)
        .unwrap()
        .with_cache_limits(2, 10);
    let c3 = t.c(3);
    for i in 0..5 {
        gh.read_file(c3, &format!("/gen/f{i:03}.txt"))
            .await
            .unwrap();
    }
    assert_eq!(gh.cached()[1], 2, "at most two files cached");
    // The newest two are answered from the cache, the oldest is asked again.
    let before = fake.count("GET /repos/acme/shop/contents/");
    gh.read_file(c3, "/gen/f004.txt").await.unwrap();
    gh.read_file(c3, "/gen/f003.txt").await.unwrap();
    assert_eq!(fake.count("GET /repos/acme/shop/contents/"), before);
    let again = gh.read_file(c3, "/gen/f000.txt").await.unwrap();
    assert_eq!(
        again,
        t.source().read_file(c3, "/gen/f000.txt").await.unwrap()
    );
    assert_eq!(fake.count("GET /repos/acme/shop/contents/"), before + 1);
    // A file over the byte bound (big.bin: 3,000 bytes) is never cached.
    gh.read_file(c3, "/big.bin").await.unwrap();
    let before = fake.count("GET ");
    gh.read_file(c3, "/big.bin").await.unwrap();
    assert!(fake.count("GET ") > before, "big.bin is asked for again");
    for c in 1..=3 {
        gh.first_parent(t.c(c)).await.unwrap();
        gh.list_dir(t.c(c), "/").await.unwrap();
    }
    let [commits, files, dirs, _] = gh.cached();
    assert!(commits <= 2 && files <= 2 && dirs <= 2, "{:?}", gh.cached());
}

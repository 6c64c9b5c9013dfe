//! `devramps plan --base`: the definition changes since the base commit (lifecycle rule L18),
//! on real git repositories built in temporary folders.

mod common;

use std::path::Path;

use common::*;
use devramps_git::testing::TestRepo;
use serde_json::{Value, json};

/// The example pipeline of the repository (`examples/repo/.devramps/api/pipeline.yaml`).
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/repo/.devramps/api/pipeline.yaml"
);

/// Where the pipeline lives in the test repositories.
const PIPELINE: &str = ".devramps/api/pipeline.yaml";

/// The example pipeline with each `(from, to)` replaced; each `from` must occur exactly once.
fn example_with(edits: &[(&str, &str)]) -> String {
    let mut text = fixture(EXAMPLE);
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "`{from}` is not unique");
        text = text.replacen(from, to, 1);
    }
    text
}

/// A repository of two commits: the example pipeline, then the example with `edits`.
fn two_commits(edits: &[(&str, &str)]) -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write(PIPELINE, &fixture(EXAMPLE))
        .write("services/api/main.rs", "fn main() {}\n");
    repo.commit("root");
    repo.write(PIPELINE, &example_with(edits));
    repo.commit("change the pipeline");
    repo
}

/// Runs `devramps plan --repo <repo> --commit <2> --base <1>` in `format`, expecting exit 0.
fn plan(repo: &TestRepo, format: &str) -> std::process::Output {
    let args = [
        "plan",
        "--repo",
        repo.arg(),
        "--commit",
        repo.c(2),
        "--base",
        repo.c(1),
        "--format",
        format,
    ];
    let out = devramps(Path::new("."), &args);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    out
}

/// The `definition_changes` of the JSON plan of commit 2 against commit 1.
fn definition_changes(repo: &TestRepo) -> Value {
    json(&plan(repo, "json"))["definition_changes"].clone()
}

#[test]
fn l18_a_renamed_step_and_a_changed_region_are_destructive() {
    let repo = two_commits(&[
        ("      id: deploy\n", "      id: deploy-api\n"),
        ("[deploy, migrate]", "[deploy-api, migrate]"),
        ("region: us-west-2", "region: eu-west-1"),
    ]);
    assert_eq!(
        definition_changes(&repo),
        json!({
            "base": repo.c(1),
            "classification": "DESTRUCTIVE",
            "changes": [
                {"subject": "stage", "kind": "changed", "name": "prod",
                 "detail": "region us-west-2 -> eu-west-1", "destructive": true},
                {"subject": "step", "kind": "renamed", "name": "deploy-api",
                 "renamed_from": "deploy",
                 "detail": "Deploy API (deploy) -> Deploy API (deploy-api)", "destructive": true},
            ]
        })
    );

    let text = stdout(&plan(&repo, "text"));
    let section = format!(
        "\nDefinition changes since {}: DESTRUCTIVE\n  \
         stage prod changed: region us-west-2 -> eu-west-1  [destructive]\n  \
         step deploy-api renamed: Deploy API (deploy) -> Deploy API (deploy-api)  \
         [destructive]\n\nartifacts\n",
        &repo.c(1)[..12]
    );
    assert!(text.contains(&section), "no `{section}` in:\n{text}");
}

#[test]
fn l18_changed_params_and_skip_lists_are_additive() {
    let repo = two_commits(&[
        ("duration_minutes: 30", "duration_minutes: 45"),
        ("skip: [bake]", "skip: [bake, Migrate]"),
    ]);
    assert_eq!(
        definition_changes(&repo),
        json!({
            "base": repo.c(1),
            "classification": "ADDITIVE",
            "changes": [
                {"subject": "stage", "kind": "changed", "name": "staging",
                 "detail": "skip [bake] -> [bake, migrate]", "destructive": false},
                {"subject": "step", "kind": "changed", "name": "bake",
                 "detail": "params changed: duration_minutes", "destructive": false},
            ]
        })
    );
    let text = stdout(&plan(&repo, "text"));
    assert!(
        text.contains("  step bake changed: params changed: duration_minutes\n"),
        "{text}"
    );
    assert!(!text.contains("[destructive]"), "{text}");
}

#[test]
fn comments_and_formatting_are_no_definition_change_and_without_base_there_is_no_key() {
    let repo = two_commits(&[
        (
            "version: \"1.0.0\"\n",
            "# Deploys the API.\nversion: '1.0.0'\n",
        ),
        ("skip: [bake]", "skip:\n        - bake"),
    ]);
    assert_eq!(
        definition_changes(&repo),
        json!({"base": repo.c(1), "classification": "NONE", "changes": []})
    );
    let text = stdout(&plan(&repo, "text"));
    assert!(
        text.contains(&format!(
            "Definition changes since {}: NONE\n",
            &repo.c(1)[..12]
        )),
        "{text}"
    );

    let out = devramps(
        Path::new("."),
        &["plan", "--repo", repo.arg(), "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(json(&out).get("definition_changes").is_none());
    let out = devramps(Path::new("."), &["plan", "--repo", repo.arg()]);
    assert!(!stdout(&out).contains("Definition changes"));
}

#[test]
fn a_pipeline_new_since_the_base_is_one_additive_change() {
    let mut repo = TestRepo::new();
    repo.write("services/api/main.rs", "fn main() {}\n");
    repo.commit("root, without pipelines");
    repo.write(PIPELINE, &fixture(EXAMPLE));
    repo.commit("add the pipeline");
    assert_eq!(
        definition_changes(&repo),
        json!({
            "base": repo.c(1),
            "classification": "ADDITIVE",
            "changes": [
                {"subject": "pipeline", "kind": "added", "name": "api",
                 "detail": format!("no `{PIPELINE}` at the base commit {}", &repo.c(1)[..12]),
                 "destructive": false},
            ]
        })
    );
}

#[test]
fn an_invalid_definition_at_the_base_is_an_error_instead_of_changes() {
    let mut repo = TestRepo::new();
    repo.write(PIPELINE, INVALID);
    repo.commit("a broken pipeline");
    repo.write(PIPELINE, &fixture(EXAMPLE));
    repo.commit("fixed");
    let changes = definition_changes(&repo);
    let keys: Vec<&String> = changes.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["base", "error"]);
    assert_eq!(changes["base"], repo.c(1));
    let error = changes["error"].as_str().expect("text");
    for needle in [PIPELINE, repo.c(1), "6:13: error[E0104]", "(and 2 more)"] {
        assert!(error.contains(needle), "no `{needle}` in {error}");
    }
    let text = stdout(&plan(&repo, "text"));
    assert!(
        text.contains(&format!(
            "Definition changes since {}: unknown\n  `{PIPELINE}` at the base commit",
            &repo.c(1)[..12]
        )),
        "{text}"
    );
}

//! `devramps validate`, run as a user would: the real binary on real folders.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// `(code, line, column)` of every diagnostic of pipeline `index` of a JSON report.
fn found(report: &Value, index: usize) -> Vec<(String, u64, u64)> {
    report["pipelines"][index]["diagnostics"]
        .as_array()
        .expect("diagnostics is a list")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().expect("code").to_owned(),
                d["line"].as_u64().expect("line"),
                d["column"].as_u64().expect("column"),
            )
        })
        .collect()
}

/// A repository with the API fixture at `.devramps/api/`, `pipeline` at `.devramps/web/`, and
/// a folder without a pipeline.
fn repo_with_web(pipeline: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("temp dir");
    write(
        repo.path(),
        ".devramps/api/pipeline.yaml",
        fixture(API_FIXTURE),
    );
    write(repo.path(), ".devramps/web/pipeline.yaml", pipeline);
    write(repo.path(), ".devramps/tools/README.md", "not a pipeline\n");
    repo
}

#[test]
fn the_api_fixture_is_valid() {
    let out = devramps(Path::new("."), &["validate", API_FIXTURE]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("✓ "), "{text}");
    assert!(text.trim_end().ends_with("(api): valid"), "{text}");
}

#[test]
fn the_minimal_fixture_is_valid() {
    let out = devramps(Path::new("."), &["validate", MINIMAL_FIXTURE]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("(minimal): valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_repository_reports_each_pipeline_and_skips_folders_without_one() {
    let repo = repo_with_web(&fixture(MINIMAL_FIXTURE));
    let out = devramps(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let report = json(&out);
    let pipelines = report["pipelines"].as_array().expect("pipelines is a list");
    let slugs: Vec<&str> = pipelines
        .iter()
        .map(|p| p["slug"].as_str().expect("slug"))
        .collect();
    assert_eq!(slugs, ["api", "web"]);
    let paths: Vec<&str> = pipelines
        .iter()
        .map(|p| p["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [".devramps/api/pipeline.yaml", ".devramps/web/pipeline.yaml"]
    );
    assert!(pipelines.iter().all(|p| p["valid"] == true));
}

#[test]
fn a_repository_given_by_path_shows_paths_under_it_and_a_verdict_per_pipeline() {
    let parent = tempfile::tempdir().expect("temp dir");
    let repo = parent.path().join("repo");
    write(&repo, ".devramps/api/pipeline.yaml", fixture(API_FIXTURE));
    write(&repo, ".devramps/web/pipeline.yaml", INVALID);
    let out = devramps(parent.path(), &["validate", "repo"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.contains("\n✓ repo/.devramps/api/pipeline.yaml (api): valid\n"),
        "{text}"
    );
    assert!(
        text.ends_with("✗ repo/.devramps/web/pipeline.yaml (web): 3 errors\n"),
        "{text}"
    );
}

#[test]
fn an_invalid_pipeline_gets_located_text_blocks_with_caret_and_help() {
    let repo = repo_with_web(INVALID);
    let out = devramps(repo.path(), &["validate"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}'),
        "no colours when stdout is not a terminal:\n{text}"
    );
    for header in [
        ".devramps/web/pipeline.yaml:6:13: error[E0104]: stage name `Prod_1`",
        ".devramps/web/pipeline.yaml:7:19: error[E0105]: ",
        ".devramps/web/pipeline.yaml:9:7: error[E0005]: unknown field `varz`",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(header)),
            "no `{header}` in:\n{text}"
        );
    }
    // The source line, then a caret under `Prod_1` (column 13 of the source line).
    let lines: Vec<&str> = text.lines().collect();
    let source = lines
        .iter()
        .position(|l| l.ends_with("|     - name: Prod_1"))
        .unwrap_or_else(|| panic!("no source line in:\n{text}"));
    let caret = lines[source + 1];
    let value = lines[source].find("Prod_1").expect("value");
    assert_eq!(
        caret.find('^'),
        Some(value),
        "caret under the value:\n{text}"
    );
    assert_eq!(caret.trim_end().get(value..), Some("^^^^^^"), "{text}");
    assert!(text.contains("= help: did you mean `vars`?"), "{text}");
    assert!(
        text.contains("✗ .devramps/web/pipeline.yaml (web): 3 errors"),
        "{text}"
    );
    assert!(
        text.contains("✓ .devramps/api/pipeline.yaml (api): valid"),
        "{text}"
    );
}

#[test]
fn an_invalid_pipeline_gets_exact_codes_lines_and_columns_in_json() {
    let repo = repo_with_web(INVALID);
    let out = devramps(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = json(&out);
    assert_eq!(report["pipelines"][0]["valid"], true);
    assert_eq!(report["pipelines"][1]["valid"], false);
    let expected = [("E0104", 6, 13), ("E0105", 7, 19), ("E0005", 9, 7)];
    let expected: Vec<(String, u64, u64)> = expected
        .iter()
        .map(|(c, l, col)| ((*c).to_owned(), *l, *col))
        .collect();
    assert_eq!(found(&report, 1), expected);
    let web = &report["pipelines"][1]["diagnostics"];
    assert_eq!(web[2]["help"], "did you mean `vars`?");
    assert_eq!(web[0]["severity"], "error");
    assert_eq!(web[0]["path"], ".devramps/web/pipeline.yaml");
}

#[test]
fn json_output_has_exactly_the_contract_keys_in_order() {
    let repo = tempfile::tempdir().expect("temp dir");
    // `a` is an unknown key (E0005, with help); `version` and `pipeline` are missing (E0004,
    // without help).
    write(repo.path(), ".devramps/api/pipeline.yaml", "a: 1\n");
    let out = devramps(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = json(&out);
    let top: Vec<&String> = report.as_object().expect("object").keys().collect();
    assert_eq!(top, ["pipelines"]);
    let pipeline = report["pipelines"][0].as_object().expect("object");
    let keys: Vec<&String> = pipeline.keys().collect();
    assert_eq!(keys, ["path", "slug", "valid", "diagnostics"]);
    let diagnostics = pipeline["diagnostics"].as_array().expect("list");
    let mut with_help = 0;
    for d in diagnostics {
        let keys: Vec<&String> = d.as_object().expect("object").keys().collect();
        let mut expected = vec!["severity", "code", "message", "path", "line", "column"];
        if d.get("help").is_some() {
            expected.push("help");
            with_help += 1;
            assert!(d["help"].is_string(), "{d}");
        }
        assert_eq!(keys, expected);
        assert!(d["line"].as_u64().is_some_and(|l| l >= 1), "{d}");
        assert!(d["column"].as_u64().is_some_and(|c| c >= 1), "{d}");
    }
    assert!(
        with_help > 0 && with_help < diagnostics.len(),
        "both shapes occur: {report}"
    );
}

#[test]
fn warnings_alone_keep_a_pipeline_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "bake.yaml", WARNING_ONLY);
    let out = devramps(dir.path(), &["validate", "bake.yaml"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("bake.yaml:14:9: warning[W0210]: "),
        "{text}"
    );
    assert!(
        text.ends_with("✓ bake.yaml (bake): valid, 1 warning\n"),
        "{text}"
    );
    let out = devramps(dir.path(), &["validate", "bake.yaml", "--format", "json"]);
    let report = json(&out);
    assert_eq!(report["pipelines"][0]["valid"], true);
    assert_eq!(
        report["pipelines"][0]["diagnostics"][0]["severity"],
        "warning"
    );
}

#[test]
fn an_empty_directory_exits_2_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = devramps(dir.path(), &["validate"]);
    assert_eq!(code(&out), 2);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no pipeline found in `.`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_nonexistent_path_exits_2_and_nothing_is_checked() {
    let repo = repo_with_web(&fixture(MINIMAL_FIXTURE));
    let out = devramps(repo.path(), &["validate", ".", "missing.yaml"]);
    assert_eq!(code(&out), 2);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("`missing.yaml` does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_invalid_slug_folder_is_reported_as_e0501() {
    let repo = tempfile::tempdir().expect("temp dir");
    write(
        repo.path(),
        ".devramps/My API/pipeline.yaml",
        fixture(MINIMAL_FIXTURE),
    );
    let out = devramps(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = json(&out);
    assert_eq!(report["pipelines"][0]["slug"], "My API");
    assert_eq!(found(&report, 0), [("E0501".to_owned(), 1, 1)]);

    let out = devramps(repo.path(), &["validate"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.starts_with(".devramps/My API/pipeline.yaml:1:1: error[E0501]: "),
        "{text}"
    );
    assert!(text.contains("\n  = help: slugs are"), "{text}");
}

#[test]
fn a_file_given_directly_keeps_its_path_and_its_folder_slug() {
    let repo = repo_with_web(INVALID);
    let out = devramps(
        repo.path(),
        &[
            "validate",
            ".devramps/web/pipeline.yaml",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 1);
    let report = json(&out);
    assert_eq!(report["pipelines"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        report["pipelines"][0]["path"],
        ".devramps/web/pipeline.yaml"
    );
    assert_eq!(report["pipelines"][0]["slug"], "web");
}

#[test]
fn a_file_that_is_not_utf8_is_reported_as_e0502_without_panicking() {
    let repo = tempfile::tempdir().expect("temp dir");
    write(
        repo.path(),
        ".devramps/api/pipeline.yaml",
        b"version: \"1.0.0\"\n\xff\xfepipeline: {}\n",
    );
    let out = devramps(repo.path(), &["validate", "--format", "json"]);
    assert_eq!(code(&out), 2, "unreadable input: {}", stdout(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(found(&report, 0), [("E0502".to_owned(), 2, 1)]);
    let message = report["pipelines"][0]["diagnostics"][0]["message"].as_str();
    assert!(message.is_some_and(|m| m.contains("not UTF-8")), "{report}");
}

#[test]
fn an_unknown_format_is_a_usage_error() {
    let out = devramps(
        Path::new("."),
        &["validate", "--format", "yaml", API_FIXTURE],
    );
    assert_eq!(code(&out), 2);
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("yaml"), "{}", stderr(&out));
}

#[test]
fn an_expression_error_is_reported_at_the_property() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        service_name: api-${{ stage.nme }}
  artifacts: {}
"#;
    write(dir.path(), ".devramps/api/pipeline.yaml", pipeline);
    let out = devramps(dir.path(), &["validate", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let report = json(&out);
    // Line 13, column 37: the `nme` of `api-${{ stage.nme }}`.
    assert_eq!(found(&report, 0), [("E0604".to_owned(), 13, 37)]);
    assert_eq!(
        report["pipelines"][0]["diagnostics"][0]["help"],
        "did you mean `name`?"
    );

    let out = devramps(dir.path(), &["validate"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.starts_with(".devramps/api/pipeline.yaml:13:37: error[E0604]: "),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let source = lines
        .iter()
        .position(|l| l.ends_with("|         service_name: api-${{ stage.nme }}"))
        .unwrap_or_else(|| panic!("no source line in:\n{text}"));
    let value = lines[source].find("nme").expect("property");
    assert_eq!(lines[source + 1].find('^'), Some(value), "{text}");
    assert_eq!(
        lines[source + 1].trim_end().get(value..),
        Some("^^^"),
        "{text}"
    );
}

#[test]
fn dev_zero_and_a_named_pipe_are_refused_within_a_second_naming_the_limit() {
    let started = std::time::Instant::now();
    let out = devramps(Path::new("."), &["validate", "/dev/zero"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("larger than the limit of 16777216 bytes"),
        "{text}"
    );
    assert!(text.contains("DEVRAMPS_MAX_FILE_MIB"), "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("pipeline.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.expect("mkfifo (coreutils) runs").success());
    let out = devramps(dir.path(), &["validate", "pipeline.yaml"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(code(&out), 2, "{text}");
    assert!(text.contains("named pipe"), "{text}");
}

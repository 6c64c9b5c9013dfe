//! `devramps validate` and `devramps plan` with `--step-registry`: `CUSTOM:*` params checked
//! against the parameter schemas of a real registry (`tests/registry/`, a small Node program
//! started with `npm run start-step-registry`, as DevRamps starts registries).
//!
//! Needs `node` and `npm` on PATH (Node 18 or later: <https://nodejs.org>, or `apt-get install
//! nodejs npm`).

mod common;

use std::path::Path;

use common::*;
use devramps_git::testing::TestRepo;
use serde_json::Value;

/// The test registry: `CUSTOM:SCRIPT:DEPLOY` (script required; replicas an integer; environment
/// in dev/staging/prod; options.dry_run a boolean; nothing else) and `cdn-invalidate`
/// (distribution_id and a non-empty list of paths required).
const REGISTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registry");

/// A pipeline whose custom params all fit the test registry's schemas, with expressions where
/// a literal would not fit (a string for the integer `replicas`).
const GOOD: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      vars:
        replicas: 3
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        script: ./deploy.sh
        replicas: "${{ vars.replicas }}"
        environment: prod
        options: {dry_run: false}
    - name: Invalidate
      type: CUSTOM:CDN-INVALIDATE
      params:
        distribution_id: E123ABC
        paths: ["/*", "${{ trigger.sha }}"]
    - name: Lower
      type: CUSTOM:cdn-invalidate
      params: {distribution_id: "${{ trigger.tag }}", paths: ["/"]}
    - name: Bake
      type: DEVRAMPS:APPROVAL:BAKE
      params:
        duration_minutes: 5
  artifacts: {}
"#;

/// A pipeline with one problem of each kind; `EXPECTED` lists them.
const BAD: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
  steps:
    - name: Wrong type
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        script: ./deploy.sh
        replicas: many
        environment: qa
    - name: Missing
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        replicas: 2
    - name: Extra
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        script: ./deploy.sh
        replica: 2
    - name: Nested
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        script: ./deploy.sh
        options: {dry_run: "yes"}
    - name: No params
      type: CUSTOM:CDN-INVALIDATE
    - name: Unknown
      type: CUSTOM:SCRIPT:DEPLOYY
    - name: Expressions
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        script: "${{ trigger.sha }}"
        replicas: "${{ trigger.revision }}"
  artifacts: {}
"#;

/// `(code, line, column, start of the message)` of each problem of `BAD`, in source order.
const EXPECTED: &[(&str, u64, u64, &str)] = &[
    (
        "E0220",
        14,
        19,
        r#"params.replicas: "many" is not of type "integer""#,
    ),
    ("E0220", 15, 22, r#"params.environment: "qa" is not one of"#),
    (
        "E0220",
        18,
        7,
        "params.script: required parameter is missing",
    ),
    ("E0220", 24, 9, "params.replica: unknown parameter"),
    (
        "E0220",
        29,
        28,
        r#"params.options.dry_run: "yes" is not of type "boolean""#,
    ),
    (
        "E0220",
        30,
        7,
        "params.distribution_id: required parameter is missing",
    ),
    (
        "E0220",
        30,
        7,
        "params.paths: required parameter is missing",
    ),
    (
        "E0221",
        33,
        13,
        "step type `CUSTOM:SCRIPT:DEPLOYY` of step `Unknown` is not offered",
    ),
];

fn tools_are_installed() {
    for tool in ["node", "npm"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "these tests need `{tool}` on PATH: install Node 18+ with npm (https://nodejs.org or \
             `apt-get install nodejs npm`)"
        );
    }
}

/// `(code, line, column, message)` of every diagnostic in a JSON list.
fn found(diagnostics: &Value) -> Vec<(String, u64, u64, String)> {
    diagnostics
        .as_array()
        .expect("diagnostics is a list")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().expect("code").to_owned(),
                d["line"].as_u64().expect("line"),
                d["column"].as_u64().expect("column"),
                d["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect()
}

/// Checks `diagnostics` against `EXPECTED`: same codes and places, messages starting as given.
fn assert_expected(diagnostics: &Value) {
    let got = found(diagnostics);
    let places: Vec<(&str, u64, u64)> = got
        .iter()
        .map(|(c, l, k, _)| (c.as_str(), *l, *k))
        .collect();
    let want: Vec<(&str, u64, u64)> = EXPECTED.iter().map(|(c, l, k, _)| (*c, *l, *k)).collect();
    assert_eq!(places, want, "{got:#?}");
    for ((_, _, _, message), (_, line, _, start)) in got.iter().zip(EXPECTED) {
        assert!(
            message.starts_with(start),
            "line {line}: `{message}` should start with `{start}`"
        );
    }
}

#[test]
fn params_that_fit_the_schemas_pass_and_expressions_are_not_judged() {
    tools_are_installed();
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", GOOD);
    let out = devramps(dir.path(), &["validate", "--step-registry", REGISTRY]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("(api): valid"), "{}", stdout(&out));
}

#[test]
fn each_violation_is_reported_at_its_value_naming_the_parameter() {
    tools_are_installed();
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", BAD);
    let out = devramps(
        dir.path(),
        &["validate", "--step-registry", REGISTRY, "--format", "json"],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["pipelines"][0]["valid"], false);
    let diagnostics = &report["pipelines"][0]["diagnostics"];
    assert_expected(diagnostics);
    let help_of = |line: u64| {
        diagnostics
            .as_array()
            .and_then(|all| all.iter().find(|d| d["line"] == line))
            .and_then(|d| d["help"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(help_of(24), "did you mean `replicas`?");
    assert_eq!(help_of(33), "did you mean `CUSTOM:SCRIPT:DEPLOY`?");
    assert!(
        help_of(14).contains("https://example.invalid/steps/script-deploy"),
        "{}",
        help_of(14)
    );

    // The text report shows the same at the same places, with the source line.
    let out = devramps(dir.path(), &["validate", "--step-registry", REGISTRY]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.contains(
            ".devramps/api/pipeline.yaml:14:19: error[E0220]: params.replicas: \"many\" is not of \
             type \"integer\" (step `Wrong type`, CUSTOM:SCRIPT:DEPLOY)"
        ),
        "{text}"
    );
    assert!(text.contains("14 |         replicas: many"), "{text}");
    assert!(text.contains("8 errors"), "{text}");

    // Without a registry, custom params are not checked.
    let out = devramps(dir.path(), &["validate"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn plan_refuses_a_definition_whose_params_break_the_schemas() {
    tools_are_installed();
    let mut repo = TestRepo::new();
    repo.write(".devramps/api/pipeline.yaml", BAD);
    repo.commit("bad params");
    let out = devramps(
        Path::new("."),
        &[
            "plan",
            "--repo",
            repo.arg(),
            "--step-registry",
            REGISTRY,
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["valid"], false);
    assert_expected(&report["diagnostics"]);

    repo.write(".devramps/api/pipeline.yaml", GOOD);
    repo.commit("good params");
    let out = devramps(
        Path::new("."),
        &[
            "plan",
            "--repo",
            repo.arg(),
            "--step-registry",
            REGISTRY,
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        json(&out)["stages"][0]["steps"][0]["type"],
        "CUSTOM:SCRIPT:DEPLOY"
    );
}

/// Runs `validate --step-registry <registry>` on `GOOD` and expects exit 2 with a message on
/// stderr that names the registry and contains each of `parts`.
fn refused(registry: &Path, parts: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", GOOD);
    let arg = registry.to_str().expect("UTF-8 path");
    let out = devramps(dir.path(), &["validate", "--step-registry", arg]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{}{err}", stdout(&out));
    assert!(
        stdout(&out).is_empty(),
        "nothing is checked: {}",
        stdout(&out)
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(&format!("`{arg}`")),
        "{err} does not name {arg}"
    );
    for part in parts {
        assert!(err.contains(part), "`{err}` does not contain `{part}`");
    }
}

#[test]
fn a_registry_that_cannot_be_read_exits_2_naming_it() {
    tools_are_installed();
    let root = tempfile::tempdir().expect("temp dir");
    let registry = |name: &str, script: Option<&str>, js: &str| {
        let dir = root.path().join(name);
        let scripts = script
            .map(|s| format!(r#", "scripts": {{"start-step-registry": "{s}"}}"#))
            .unwrap_or_default();
        write(
            &dir,
            "package.json",
            format!(r#"{{"name": "{name}"{scripts}}}"#),
        );
        write(&dir, "registry.js", js);
        dir
    };

    refused(&root.path().join("missing"), &["is not a directory"]);
    let no_script = registry("no-script", None, "");
    refused(&no_script, &["no `start-step-registry` script"]);
    let no_command = registry("no-command", Some("devramps-no-such-command"), "");
    refused(
        &no_command,
        &["wrote no result file", "devramps-no-such-command"],
    );
    let malformed = registry(
        "malformed",
        Some("node registry.js"),
        "const out = process.argv[process.argv.indexOf('--output') + 1];\n\
         require('fs').writeFileSync(out, '{\"status\": \"SUCCESS\", \"data\": {\"metadata\": {}}}');",
    );
    refused(
        &malformed,
        &[
            "malformed SYNTHESIZE-METADATA result",
            "`data.metadata`, a list",
        ],
    );
}

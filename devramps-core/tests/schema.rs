//! The JSON Schema of `pipeline.yaml` (`devramps schema`) agrees with the parser
//! (`devramps_core::plan::check`).
//!
//! The split between the two: the schema encodes every check that concerns one value at a time
//! (required and unknown fields, types, enumerations, patterns, the parameters of the known step
//! and artifact types), so whatever the schema rejects the parser rejects too. The checks that
//! relate values to each other are the parser's alone, because JSON Schema cannot express them:
//! unique stage names, step names, step ids and artifact ids, `goes_after` and `skip` entries
//! naming existing steps, an acyclic step graph, an ephemeral environment not colliding with a
//! stage, expressions (`${{ }}`) that resolve, and duplicate YAML keys (which JSON cannot even
//! represent). Unknown parameters of known step and artifact types are warnings for the parser,
//! so the schema accepts them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use devramps_core::pipeline::{
    ApprovalPolicy, Architecture, ArtifactType, BuiltinStep, Checked, CloudProvider,
    EphemeralTriggerKind, HostSize, NotificationEvent, OnRelease, ReleaseKind, SCHEMA, TestType,
    TimeWindow, YamlEnum, json_schema, yaml_to_json,
};
use devramps_core::plan::check;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::draft202012::new(&json_schema()).expect("the schema compiles as draft 2020-12")
});

/// The schema's errors for `instance` (empty when valid).
fn schema_errors(instance: &Value) -> Vec<String> {
    VALIDATOR
        .iter_errors(instance)
        .map(|e| format!("{} at `{}`", e, e.instance_path()))
        .collect()
}

/// The codes of the parser's errors (warnings left out).
fn error_codes(checked: &Checked) -> Vec<&'static str> {
    checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code.as_str())
        .collect()
}

fn describe(checked: &Checked) -> String {
    checked
        .diagnostics
        .iter()
        .map(|d| format!("\n    {d}"))
        .collect()
}

/// YAML text to JSON, as the parser reads it.
fn to_json(text: &str) -> Value {
    yaml_to_json(text).unwrap_or_else(|e| panic!("YAML reads: {e}"))
}

/// A JSON document as text the parser reads (JSON is YAML 1.2).
fn as_yaml(doc: &Value) -> String {
    serde_json::to_string_pretty(doc).expect("serializes")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    files
}

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/pipelines"
);
const VALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/valid");

/// Every valid pipeline: the shared fixtures and `tests/data/valid`, as (file, text).
fn valid_pipelines() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in [FIXTURES, VALID] {
        for path in yaml_files(Path::new(dir)) {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, text));
        }
    }
    out
}

/// The warnings a valid file declares in a `# expect-warnings: W0210 ...` comment.
fn expected_warnings(text: &str) -> Vec<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("# expect-warnings:"))
        .map(|w| w.split_whitespace().collect())
        .unwrap_or_default()
}

/// Codes that only the parser can report, because they relate values to each other.
fn is_cross_value(d: &devramps_core::pipeline::Diagnostic) -> bool {
    match d.code.as_str() {
        // duplicate key, duplicate stage name, unknown skip entry, duplicate step name,
        // duplicate/colliding step id, unknown goes_after target, cycle, duplicate artifact id
        "E0002" | "E0102" | "E0107" | "E0202" | "E0203" | "E0206" | "E0207" | "E0301" => true,
        // an ephemeral environment whose stage `ephemeral-<name>` is already a stage
        "E0401" => d.message.contains("already a stage"),
        // expressions that do not resolve
        code => code.starts_with("E06"),
    }
}

// ---------------------------------------------------------------------------------------------
// The schema itself

#[test]
fn schema_is_valid_draft_2020_12() {
    let schema = json_schema();
    assert!(schema.is_object(), "SCHEMA is not a JSON object");
    assert_eq!(
        serde_json::from_str::<Value>(SCHEMA).expect("SCHEMA is JSON"),
        schema
    );
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["$id"], "https://devramps.dev/schema/pipeline.json");
    for key in ["title", "description"] {
        assert!(
            schema[key].as_str().is_some_and(|s| !s.is_empty()),
            "schema has no {key}"
        );
    }
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!("the schema is not valid against the 2020-12 meta-schema: {e}");
    }
    assert!(jsonschema::meta::is_valid(&schema));
    LazyLock::force(&VALIDATOR);
    // Not everything is accepted.
    assert!(!VALIDATOR.is_valid(&json!({})));
    assert!(!VALIDATOR.is_valid(&json!(null)));
}

/// Editors show descriptions: every property and every definition has one.
#[test]
fn every_property_and_definition_has_a_description() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        let Some(map) = node.as_object() else {
            if let Some(items) = node.as_array() {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}/{i}"), missing);
                }
            }
            return;
        };
        for (key, value) in map {
            let here = format!("{path}/{key}");
            match key.as_str() {
                // Conditional branches refine properties already described.
                "if" | "then" | "else" => continue,
                "properties" | "$defs" => {
                    for (name, property) in value.as_object().into_iter().flatten() {
                        if property["description"]
                            .as_str()
                            .is_none_or(|d| d.trim().len() <= 3)
                        {
                            missing.push(format!("{here}/{name}"));
                        }
                    }
                }
                _ => {}
            }
            walk(value, &here, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&json_schema(), "#", &mut missing);
    assert!(missing.is_empty(), "without a description: {missing:#?}");
}

fn enum_at(schema: &Value, pointer: &str) -> Vec<String> {
    let node = schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the schema"));
    match node {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().expect("enum values are strings").to_owned())
            .collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("{pointer} is not an enum: {other}"),
    }
}

fn spellings<T: YamlEnum>() -> Vec<String> {
    T::spellings().into_iter().map(str::to_owned).collect()
}

/// The schema's enumerations are exactly the parser's.
#[test]
fn schema_enums_match_the_parser() {
    let s = json_schema();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "/$defs/pipeline/properties/cloud_provider/const",
            spellings::<CloudProvider>(),
        ),
        ("/$defs/approvalPolicy/enum", spellings::<ApprovalPolicy>()),
        ("/$defs/timeWindow/enum", spellings::<TimeWindow>()),
        ("/$defs/builtinStepType/enum", spellings::<BuiltinStep>()),
        (
            "/$defs/artifact/properties/type/enum",
            spellings::<ArtifactType>(),
        ),
        (
            "/$defs/artifact/properties/architecture/anyOf/0/enum",
            spellings::<Architecture>(),
        ),
        (
            "/$defs/artifact/properties/host_size/anyOf/0/enum",
            spellings::<HostSize>(),
        ),
        (
            "/$defs/testParams/properties/testType/anyOf/0/enum",
            spellings::<TestType>(),
        ),
        (
            "/$defs/slackNotifications/properties/events/items/enum",
            spellings::<NotificationEvent>(),
        ),
        (
            "/$defs/ephemeralTrigger/properties/on/enum",
            spellings::<EphemeralTriggerKind>(),
        ),
        (
            "/$defs/releaseRule/properties/on/enum",
            spellings::<ReleaseKind>(),
        ),
        (
            "/$defs/ephemeralEnvironment/properties/on_release/enum",
            spellings::<OnRelease>(),
        ),
    ];
    for (pointer, expected) in cases {
        assert_eq!(enum_at(&s, pointer), expected, "{pointer}");
    }
}

// ---------------------------------------------------------------------------------------------
// Valid pipelines

#[test]
fn fixtures_and_valid_examples_pass_parser_and_schema() {
    let pipelines = valid_pipelines();
    assert!(
        pipelines.len() >= 10,
        "expected the 2 fixtures and at least 8 examples, found {}",
        pipelines.len()
    );
    for (name, text) in &pipelines {
        let checked = check(text);
        assert!(
            checked.is_valid(),
            "{name}: the parser rejects it:{}",
            describe(&checked)
        );
        let warnings: Vec<&str> = checked
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect();
        assert_eq!(
            warnings,
            expected_warnings(text),
            "{name}: unexpected diagnostics:{}",
            describe(&checked)
        );
        let doc = to_json(text);
        let errors = schema_errors(&doc);
        assert!(
            errors.is_empty(),
            "{name}: the schema rejects it: {errors:#?}"
        );
        // The JSON form is read the same way by the parser (the mutation tests rely on it).
        let again = check(&as_yaml(&doc));
        assert!(
            again.is_valid(),
            "{name}: its JSON form is rejected:{}",
            describe(&again)
        );
    }
}

/// The examples together exercise every feature the schema describes.
#[test]
fn valid_examples_cover_every_feature() {
    let all: Vec<Value> = valid_pipelines().iter().map(|(_, t)| to_json(t)).collect();
    let text = serde_json::to_string(&all).expect("serializes");
    let mut want: Vec<String> = spellings::<BuiltinStep>();
    want.extend(spellings::<ArtifactType>());
    want.extend(spellings::<TimeWindow>());
    want.extend(spellings::<ApprovalPolicy>());
    want.extend(spellings::<Architecture>());
    want.extend(spellings::<HostSize>());
    want.extend(spellings::<TestType>());
    want.extend(spellings::<NotificationEvent>());
    want.extend(spellings::<ReleaseKind>());
    want.extend(spellings::<EphemeralTriggerKind>());
    for key in [
        "stage_defaults",
        "notifications",
        "ephemeral_environments",
        "target_branches",
        "after_idle_hours",
        "auto_rollback_alarm_name",
        "rebuild_when_changed",
        "per_stage",
        "dependencies",
        "envs",
        "skip",
        "goes_after",
        "tracks",
        "infrastructure",
        "infrastructure_provider",
        "build_root",
        "args",
        "timeout_minutes",
        "source_account",
        "workingDirectory",
        "environmentVariables",
        "CUSTOM:",
        "${{",
    ] {
        want.push(key.to_owned());
    }
    for word in want {
        assert!(
            text.contains(&format!("\"{word}")),
            "no valid example uses {word}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Structural errors: both reject

/// A valid pipeline that the cases below break, one change each.
const BASE: &str = r##"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  tracks: main
  stage_defaults:
    deployment_time_window: NONE
  notifications:
    slack:
      channel: "#deploys"
      events: [stage_failed]
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      skip: [bake]
  steps:
    - name: Infra
      id: infra
      type: DEVRAMPS:TERRAFORM:SYNTHESIZE
      params:
        source: /infra
    - name: Deploy
      type: DEVRAMPS:ECS:DEPLOY
      goes_after: [infra]
      params:
        cluster_name: main
        service_name: api
        reference_task_definition: api
        image_url: ${{ stage.artifacts.api.image_url }}
    - name: Tests
      type: DEVRAMPS:APPROVAL:TEST
      params:
        testCommand: npm test
        testType: jest
    - name: Bake
      id: bake
      type: DEVRAMPS:APPROVAL:BAKE
      params:
        duration_minutes: 30
  artifacts:
    API:
      type: DEVRAMPS:DOCKER:BUILD
      per_stage: false
      rebuild_when_changed: [/api]
      params:
        dockerfile: /Dockerfile
        args: [A=1]
  ephemeral_environments:
    preview:
      triggers:
        - on: pull_request
          target_branches: ["feat-*"]
      release:
        - on: timeout
          after_idle_hours: 24
      on_release: deploy_main
      account_id: "333333333333"
      region: us-west-2
"##;

const STAGES: &str = r#"  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      skip: [bake]
"#;

/// `BASE` with `from` (which must occur exactly once) replaced by `to`.
fn base_with(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "`{from}` is not unique in BASE"
    );
    BASE.replacen(from, to, 1)
}

#[test]
fn base_is_valid_for_both() {
    let checked = check(BASE);
    assert!(checked.diagnostics.is_empty(), "{}", describe(&checked));
    assert_eq!(schema_errors(&to_json(BASE)), Vec::<String>::new());
}

/// (name, text replaced in `BASE`, replacement, the parser's expected error code).
#[rustfmt::skip]
const STRUCTURAL: &[(&str, &str, &str, &str)] = &[
    ("missing version", "version: \"1.0.0\"\n", "", "E0004"),
    ("wrong version", "version: \"1.0.0\"", "version: \"2.0.0\"", "E0007"),
    ("version as a number", "version: \"1.0.0\"", "version: 1.0", "E0007"),
    ("missing pipeline", "pipeline:\n", "other:\n", "E0004"),
    ("cloud_provider GCP", "cloud_provider: AWS", "cloud_provider: GCP", "E0008"),
    ("cloud_provider lowercase", "cloud_provider: AWS", "cloud_provider: aws", "E0008"),
    ("missing cloud_provider", "  cloud_provider: AWS\n", "", "E0004"),
    ("missing stages", STAGES, "", "E0004"),
    ("empty stages", STAGES, "  stages: []\n", "E0101"),
    ("stages as a map", STAGES, "  stages: { staging: {} }\n", "E0003"),
    ("a stage that is a string", STAGES, "  stages: [staging]\n", "E0003"),
    ("stage missing region", "      region: us-east-1\n", "", "E0004"),
    ("stage missing name", "    - name: staging\n      account_id", "    - account_id", "E0004"),
    ("stage name Prod_1", "- name: staging", "- name: Prod_1", "E0104"),
    ("stage name empty", "- name: staging", "- name: \"\"", "E0104"),
    ("account id unquoted", "account_id: \"111111111111\"", "account_id: 111111111111", "E0105"),
    ("account id 11 digits", "account_id: \"111111111111\"", "account_id: \"11111111111\"", "E0105"),
    ("account id with letters", "account_id: \"111111111111\"", "account_id: \"11111111111a\"", "E0105"),
    ("bad region", "region: us-east-1", "region: useast1", "E0106"),
    ("region in capitals", "region: us-east-1", "region: US-EAST-1", "E0106"),
    ("region with 3 digits", "region: us-east-1", "region: us-east-100", "E0106"),
    ("unknown top-level key", "pipeline:\n", "metadata: {}\npipeline:\n", "E0005"),
    ("unknown pipeline key", "  tracks: main\n", "  tracks: main\n  branch: main\n", "E0005"),
    ("unknown stage key variables", "      skip: [bake]\n", "      skip: [bake]\n      variables: { env: x }\n", "E0005"),
    ("unknown step key goes_afer", "goes_after: [infra]", "goes_afer: [infra]", "E0005"),
    ("unknown artifact key", "      per_stage: false\n", "      per_stage: false\n      cache: true\n", "E0005"),
    ("unknown stage_defaults key", "    deployment_time_window: NONE\n", "    deployment_time_window: NONE\n    vars: {}\n", "E0005"),
    ("unknown notifications key", "  notifications:\n", "  notifications:\n    email: {}\n", "E0005"),
    ("unknown slack key", "      events: [stage_failed]\n", "      events: [stage_failed]\n      webhook: x\n", "E0005"),
    ("unknown ephemeral env key", "      on_release: deploy_main\n", "      on_release: deploy_main\n      ttl: 3\n", "E0005"),
    ("unknown trigger key", "        - on: pull_request\n", "        - on: pull_request\n          label: preview\n", "E0005"),
    ("unknown release rule key", "        - on: timeout\n", "        - on: timeout\n          hours: 2\n", "E0005"),
    ("artifacts as a list", "  artifacts:\n    API:\n", "  artifacts:\n    - name: API\n", "E0003"),
    ("missing artifacts", "  artifacts:\n    API:\n", "  other_artifacts:\n    API:\n", "E0004"),
    ("invalid deployment_time_window", "deployment_time_window: NONE", "deployment_time_window: WEEKENDS", "E0006"),
    ("invalid pipeline_updates_require_approval", "pipeline_updates_require_approval: NEVER", "pipeline_updates_require_approval: SOMETIMES", "E0006"),
    ("missing pipeline_updates_require_approval", "  pipeline_updates_require_approval: NEVER\n", "", "E0004"),
    ("invalid host_size", "      per_stage: false\n", "      per_stage: false\n      host_size: huge\n", "E0006"),
    ("invalid architecture", "      per_stage: false\n", "      per_stage: false\n      architecture: arm64\n", "E0006"),
    ("step type foo", "type: DEVRAMPS:APPROVAL:BAKE", "type: foo", "E0204"),
    ("step type in lowercase", "type: DEVRAMPS:APPROVAL:BAKE", "type: devramps:approval:bake", "E0204"),
    ("custom step type without a name", "type: DEVRAMPS:APPROVAL:BAKE", "type: \"CUSTOM:\"", "E0204"),
    ("custom step type with a space", "type: DEVRAMPS:APPROVAL:BAKE", "type: \"CUSTOM:MY STEP\"", "E0204"),
    ("unknown DEVRAMPS step type", "type: DEVRAMPS:APPROVAL:BAKE", "type: DEVRAMPS:APPROVAL:WAIT", "E0205"),
    ("artifact type as a step", "type: DEVRAMPS:APPROVAL:BAKE", "type: DEVRAMPS:DOCKER:BUILD", "E0205"),
    ("step without type", "      type: DEVRAMPS:APPROVAL:TEST\n", "", "E0004"),
    ("step name blank", "- name: Tests", "- name: \" \"", "E0011"),
    ("step id with a space", "id: infra", "id: infra structure", "E0209"),
    ("no steps", "  steps:\n    - name: Infra\n", "  steps: []\n  old_steps:\n    - name: Infra\n", "E0201"),
    ("bake without duration_minutes", "        duration_minutes: 30\n", "        minutes: 30\n", "E0208"),
    ("bake of zero minutes", "duration_minutes: 30", "duration_minutes: 0", "E0010"),
    ("bake of a text duration", "duration_minutes: 30", "duration_minutes: half an hour", "E0003"),
    ("bake of a fractional duration", "duration_minutes: 30", "duration_minutes: 1.5", "E0003"),
    ("bake without params", "      params:\n        duration_minutes: 30\n", "", "E0208"),
    ("ECS deploy missing cluster_name", "        cluster_name: main\n", "", "E0208"),
    ("ECS deploy cluster_name a number", "cluster_name: main", "cluster_name: 42", "E0003"),
    ("ECS deploy with a text timeout", "        cluster_name: main\n", "        cluster_name: main\n        timeout: soon\n", "E0003"),
    ("terraform without source", "        source: /infra\n", "        variables: {}\n", "E0208"),
    ("terraform relative source", "source: /infra", "source: infra", "E0303"),
    ("terraform invalid requires_approval", "        source: /infra\n", "        source: /infra\n        requires_approval: SOMETIMES\n", "E0006"),
    ("test without testCommand", "        testCommand: npm test\n", "", "E0208"),
    ("test with an unknown testType", "testType: jest", "testType: mocha", "E0006"),
    ("docker build without dockerfile", "        dockerfile: /Dockerfile\n", "        build_root: /\n", "E0208"),
    ("docker build relative dockerfile", "dockerfile: /Dockerfile", "dockerfile: Dockerfile", "E0303"),
    ("docker build arg without =", "args: [A=1]", "args: [A]", "E0304"),
    ("docker build args as a map", "args: [A=1]", "args: { A: 1 }", "E0003"),
    ("relative rebuild_when_changed", "rebuild_when_changed: [/api]", "rebuild_when_changed: [api]", "E0303"),
    ("rebuild_when_changed a string", "rebuild_when_changed: [/api]", "rebuild_when_changed: /api", "E0003"),
    ("artifact without type", "      type: DEVRAMPS:DOCKER:BUILD\n", "", "E0004"),
    ("artifact id with a dot", "      per_stage: false\n", "      per_stage: false\n      id: api.image\n", "E0302"),
    ("artifact name giving no id", "    API:\n", "    \"!!!\":\n", "E0302"),
    ("per_stage quoted yes", "per_stage: false", "per_stage: \"yes\"", "E0003"),
    ("per_stage yes (a YAML 1.2 string)", "per_stage: false", "per_stage: yes", "E0003"),
    ("skip as a string", "skip: [bake]", "skip: bake", "E0003"),
    ("skip entry a number", "skip: [bake]", "skip: [7]", "E0003"),
    ("stage vars a list", "      skip: [bake]\n", "      skip: [bake]\n      vars: [a]\n", "E0003"),
    ("tracks empty", "tracks: main", "tracks: \"\"", "E0011"),
    ("slack without channel", "      channel: \"#deploys\"\n", "", "E0004"),
    ("slack without events", "      events: [stage_failed]\n", "", "E0004"),
    ("slack unknown event", "events: [stage_failed]", "events: [stage_exploded]", "E0006"),
    ("ephemeral env missing account_id", "      account_id: \"333333333333\"\n", "", "E0004"),
    ("ephemeral env missing region", "      region: us-west-2\n", "", "E0004"),
    ("ephemeral env missing triggers", "      triggers:\n        - on: pull_request\n          target_branches: [\"feat-*\"]\n", "", "E0004"),
    ("ephemeral env missing on_release", "      on_release: deploy_main\n", "", "E0004"),
    ("ephemeral env unknown on_release", "on_release: deploy_main", "on_release: destroy", "E0006"),
    ("ephemeral env name in capitals", "    preview:\n", "    Preview:\n", "E0401"),
    ("pull_request trigger without target_branches", "          target_branches: [\"feat-*\"]\n", "", "E0402"),
    ("pull_request trigger with no target branch", "target_branches: [\"feat-*\"]", "target_branches: []", "E0402"),
    ("unknown trigger", "on: pull_request", "on: push", "E0006"),
    ("timeout release without after_idle_hours", "          after_idle_hours: 24\n", "", "E0402"),
    ("release after zero hours", "after_idle_hours: 24", "after_idle_hours: 0", "E0010"),
    ("release after text hours", "after_idle_hours: 24", "after_idle_hours: a day", "E0010"),
    ("triggers a map", "      triggers:\n        - on: pull_request\n          target_branches: [\"feat-*\"]\n", "      triggers: { on: api }\n", "E0003"),
];

#[test]
fn structural_errors_are_rejected_by_both() {
    let mut failures = Vec::new();
    for &(name, from, to, code) in STRUCTURAL {
        let text = base_with(from, to);
        let checked = check(&text);
        let codes = error_codes(&checked);
        if checked.is_valid() || !codes.contains(&code) {
            failures.push(format!(
                "{name}: the parser should report {code}, got:{}",
                describe(&checked)
            ));
        }
        match yaml_to_json(&text) {
            Ok(doc) => {
                if VALIDATOR.is_valid(&doc) {
                    failures.push(format!("{name}: the schema accepts it"));
                }
            }
            Err(e) => failures.push(format!("{name}: not YAML: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Cross-value rules: the parser rejects these pipelines, the schema cannot see why (see the
/// module documentation for the split).
#[test]
fn cross_value_errors_are_found_by_the_parser_only() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &str)] = &[
        ("duplicate step names", "- name: Tests", "- name: Deploy", "E0202"),
        ("duplicate step ids", "      id: bake\n", "      id: infra\n", "E0203"),
        ("a step id equal to another step's name", "      id: bake\n", "      id: Deploy\n", "E0203"),
        ("unknown goes_after target", "goes_after: [infra]", "goes_after: [infrastructure]", "E0206"),
        ("goes_after cycle", "goes_after: [infra]", "goes_after: [bake]", "E0207"),
        ("step waiting for itself", "goes_after: [infra]", "goes_after: [Deploy]", "E0207"),
        ("unknown skip entry", "skip: [bake]", "skip: [baking]", "E0107"),
        ("duplicate stage names", "      skip: [bake]\n", "      skip: [bake]\n    - name: staging\n      account_id: \"222222222222\"\n      region: us-east-1\n", "E0102"),
        ("duplicate artifact ids", "  ephemeral_environments:\n", "    api:\n      type: DEVRAMPS:DOCKER:BUILD\n      params: { dockerfile: /Dockerfile }\n  ephemeral_environments:\n", "E0301"),
        ("ephemeral env colliding with a stage", "- name: staging", "- name: ephemeral-preview", "E0401"),
        ("expression naming an unknown artifact", "stage.artifacts.api.image_url", "stage.artifacts.web.image_url", "E0605"),
    ];
    let mut failures = Vec::new();
    for &(name, from, to, code) in cases {
        let text = base_with(from, to);
        let checked = check(&text);
        if checked.is_valid() || !error_codes(&checked).contains(&code) {
            failures.push(format!(
                "{name}: the parser should report {code}, got:{}",
                describe(&checked)
            ));
        }
        if let Some(d) = checked
            .diagnostics
            .iter()
            .find(|d| d.is_error() && !is_cross_value(d))
        {
            failures.push(format!("{name}: not only cross-value errors: {d}"));
        }
        let errors = schema_errors(&to_json(&text));
        if !errors.is_empty() {
            failures.push(format!("{name}: the schema rejects it: {errors:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Duplicate keys: the parser reports them; JSON cannot hold them, so `yaml_to_json` refuses.
    let text = base_with("tracks: main\n", "tracks: main\n  tracks: develop\n");
    assert!(error_codes(&check(&text)).contains(&"E0002"));
    let err = yaml_to_json(&text).expect_err("duplicate keys are refused");
    assert_eq!(err.0[0].code.as_str(), "E0002");
    // Malformed YAML.
    let err = yaml_to_json("a: [1, 2\nb: x\n").expect_err("syntax errors are refused");
    assert_eq!(err.0[0].code.as_str(), "E0001");
}

// ---------------------------------------------------------------------------------------------
// Properties over the valid pipelines

/// One step of a path into a JSON document.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn get_mut<'a>(doc: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(doc, |node, seg| match seg {
        Seg::Key(k) => node.get_mut(k.as_str()).expect("path exists"),
        Seg::Index(i) => node.get_mut(*i).expect("path exists"),
    })
}

fn show(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!("/{k}"),
            Seg::Index(i) => format!("/{i}"),
        })
        .collect()
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.to_owned()));
    p
}

fn index(path: &[Seg], i: usize) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

/// The required keys of a step's params, by step type.
fn step_required_params(step_type: &str) -> &'static [&'static str] {
    match step_type {
        "DEVRAMPS:TERRAFORM:SYNTHESIZE" => &["source"],
        "DEVRAMPS:ECS:DEPLOY" => &[
            "cluster_name",
            "service_name",
            "reference_task_definition",
            "image_url",
        ],
        "DEVRAMPS:APPROVAL:BAKE" => &["duration_minutes"],
        "DEVRAMPS:APPROVAL:TEST" => &["testCommand"],
        _ => &[],
    }
}

/// The required keys of an artifact's params, by artifact type.
fn artifact_required_params(artifact_type: &str) -> &'static [&'static str] {
    match artifact_type {
        "DEVRAMPS:DOCKER:BUILD" => &["dockerfile"],
        "DEVRAMPS:BUNDLE:BUILD" => &["build_commands", "file_path"],
        "DEVRAMPS:DOCKER:IMPORT" => &["source_image_url"],
        "DEVRAMPS:BUNDLE:IMPORT" => &["source_account", "source_region", "source_s3_url"],
        other => panic!("unknown artifact type {other}"),
    }
}

const TOP_REQUIRED: &[&str] = &["version", "pipeline"];
const PIPELINE_REQUIRED: &[&str] = &[
    "cloud_provider",
    "pipeline_updates_require_approval",
    "stages",
    "steps",
    "artifacts",
];
const STAGE_REQUIRED: &[&str] = &["name", "account_id", "region"];
const STEP_REQUIRED: &[&str] = &["name", "type"];
const ARTIFACT_REQUIRED: &[&str] = &["type"];
const SLACK_REQUIRED: &[&str] = &["channel", "events"];
const ENV_REQUIRED: &[&str] = &["triggers", "release", "on_release", "account_id", "region"];
const RULE_REQUIRED: &[&str] = &["on"];

/// Every (object path, required key) of a valid document, including the keys required by a
/// step's or artifact's type and by a trigger's or release rule's kind.
fn required_keys(doc: &Value) -> Vec<(Vec<Seg>, &'static str)> {
    let mut out = Vec::new();
    let mut add = |path: &[Seg], keys: &[&'static str]| {
        for k in keys {
            out.push((path.to_vec(), *k));
        }
    };
    add(&[], TOP_REQUIRED);
    let p = vec![Seg::Key("pipeline".into())];
    add(&p, PIPELINE_REQUIRED);
    let pipeline = &doc["pipeline"];
    for (i, _) in pipeline["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        add(&index(&key(&p, "stages"), i), STAGE_REQUIRED);
    }
    for (i, step) in pipeline["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let sp = index(&key(&p, "steps"), i);
        add(&sp, STEP_REQUIRED);
        let params = step_required_params(step["type"].as_str().unwrap_or_default());
        if !params.is_empty() {
            add(&sp, &["params"]);
            add(&key(&sp, "params"), params);
        }
    }
    for (name, artifact) in pipeline["artifacts"].as_object().into_iter().flatten() {
        let ap = key(&key(&p, "artifacts"), name);
        add(&ap, ARTIFACT_REQUIRED);
        add(&ap, &["params"]);
        let params = artifact_required_params(artifact["type"].as_str().unwrap_or_default());
        add(&key(&ap, "params"), params);
    }
    if pipeline["notifications"]["slack"].is_object() {
        add(&key(&key(&p, "notifications"), "slack"), SLACK_REQUIRED);
    }
    for (name, env) in pipeline["ephemeral_environments"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let ep = key(&key(&p, "ephemeral_environments"), name);
        add(&ep, ENV_REQUIRED);
        for (i, trigger) in env["triggers"].as_array().into_iter().flatten().enumerate() {
            let tp = index(&key(&ep, "triggers"), i);
            add(&tp, RULE_REQUIRED);
            if trigger["on"] == "pull_request" {
                add(&tp, &["target_branches"]);
            }
        }
        for (i, rule) in env["release"].as_array().into_iter().flatten().enumerate() {
            let rp = index(&key(&ep, "release"), i);
            add(&rp, RULE_REQUIRED);
            if rule["on"] == "timeout" {
                add(&rp, &["after_idle_hours"]);
            }
        }
    }
    out
}

/// The key lists above are the schema's `required` lists.
#[test]
fn required_key_lists_are_the_schemas() {
    let s = json_schema();
    let required = |pointer: &str| -> Vec<String> { enum_at(&s, &format!("{pointer}/required")) };
    let owned = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
    assert_eq!(required(""), owned(TOP_REQUIRED));
    assert_eq!(required("/$defs/pipeline"), owned(PIPELINE_REQUIRED));
    assert_eq!(required("/$defs/stage"), owned(STAGE_REQUIRED));
    assert_eq!(required("/$defs/step"), owned(STEP_REQUIRED));
    assert_eq!(required("/$defs/artifact"), owned(ARTIFACT_REQUIRED));
    assert_eq!(required("/$defs/slackNotifications"), owned(SLACK_REQUIRED));
    assert_eq!(required("/$defs/ephemeralEnvironment"), owned(ENV_REQUIRED));
    assert_eq!(required("/$defs/ephemeralTrigger"), owned(RULE_REQUIRED));
    assert_eq!(required("/$defs/releaseRule"), owned(RULE_REQUIRED));
    for (def, step_type) in [
        ("terraformParams", "DEVRAMPS:TERRAFORM:SYNTHESIZE"),
        ("ecsDeployParams", "DEVRAMPS:ECS:DEPLOY"),
        ("bakeParams", "DEVRAMPS:APPROVAL:BAKE"),
        ("testParams", "DEVRAMPS:APPROVAL:TEST"),
    ] {
        assert_eq!(
            required(&format!("/$defs/{def}")),
            owned(step_required_params(step_type))
        );
    }
    for (def, artifact_type) in [
        ("dockerBuildParams", "DEVRAMPS:DOCKER:BUILD"),
        ("bundleBuildParams", "DEVRAMPS:BUNDLE:BUILD"),
        ("dockerImportParams", "DEVRAMPS:DOCKER:IMPORT"),
        ("bundleImportParams", "DEVRAMPS:BUNDLE:IMPORT"),
    ] {
        assert_eq!(
            required(&format!("/$defs/{def}")),
            owned(artifact_required_params(artifact_type))
        );
    }
}

/// Deleting any single required key of a valid pipeline makes both the parser and the schema
/// reject it.
#[test]
fn deleting_a_required_key_is_rejected_by_both() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, text) in valid_pipelines() {
        let doc = to_json(&text);
        for (path, k) in required_keys(&doc) {
            let mut broken = doc.clone();
            let removed = get_mut(&mut broken, &path)
                .as_object_mut()
                .and_then(|m| m.shift_remove(k));
            assert!(removed.is_some(), "{name}: no {k} at {}", show(&path));
            count += 1;
            let checked = check(&as_yaml(&broken));
            let codes = error_codes(&checked);
            if !codes
                .iter()
                .any(|c| matches!(*c, "E0004" | "E0208" | "E0402"))
            {
                failures.push(format!(
                    "{name}: without {}/{k} the parser reports no missing field:{}",
                    show(&path),
                    describe(&checked)
                ));
            }
            if VALIDATOR.is_valid(&broken) {
                failures.push(format!(
                    "{name}: without {}/{k} the schema accepts it",
                    show(&path)
                ));
            }
        }
    }
    assert!(count >= 150, "only {count} required keys were tried");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every map entry and list item of a document, as paths.
fn nodes(doc: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Seg::Key(k.clone()));
                out.push(path.clone());
                nodes(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(path.clone());
                nodes(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The agreement property on one mutated document: what the schema rejects the parser
/// rejects, and what only the parser rejects is a cross-value error.
fn agreement(doc: &Value, what: &str, failures: &mut BTreeMap<String, String>) {
    let checked = check(&as_yaml(doc));
    let schema = schema_errors(doc);
    if checked.is_valid() && !schema.is_empty() {
        failures.insert(
            what.to_owned(),
            format!("the parser accepts it, the schema rejects it: {schema:?}"),
        );
    } else if !checked.is_valid()
        && schema.is_empty()
        && let Some(d) = checked
            .diagnostics
            .iter()
            .find(|d| d.is_error() && !is_cross_value(d))
    {
        failures.insert(
            what.to_owned(),
            format!("the schema accepts it, the parser reports {d}"),
        );
    }
}

/// Every single change to a valid pipeline (delete a map entry, rename a key, replace a value
/// with one of a set of values of every JSON type) is judged alike by the parser and the
/// schema, up to the cross-value rules only the parser checks.
#[test]
fn single_changes_are_judged_alike() {
    let replacements = [
        json!(null),
        json!(""),
        json!("x"),
        json!("/x"),
        json!("${{ trigger.sha }}"),
        json!(0),
        json!(1),
        json!(-1),
        json!(1.5),
        json!(true),
        json!([]),
        json!(["x"]),
        json!({}),
    ];
    let mut failures = BTreeMap::new();
    let mut count = 0;
    for (name, text) in valid_pipelines() {
        let doc = to_json(&text);
        let mut paths = Vec::new();
        nodes(&doc, &mut Vec::new(), &mut paths);
        for path in paths {
            let (parent, last) = path.split_at(path.len() - 1);
            if let Seg::Key(k) = &last[0] {
                let mut deleted = doc.clone();
                if let Some(m) = get_mut(&mut deleted, parent).as_object_mut() {
                    m.shift_remove(k);
                }
                agreement(
                    &deleted,
                    &format!("{name}: delete {}", show(&path)),
                    &mut failures,
                );
                let mut renamed = doc.clone();
                if let Some(m) = get_mut(&mut renamed, parent).as_object_mut()
                    && let Some(v) = m.shift_remove(k)
                {
                    m.insert(format!("{k}_x"), v);
                }
                agreement(
                    &renamed,
                    &format!("{name}: rename {}", show(&path)),
                    &mut failures,
                );
                count += 2;
            }
            for value in &replacements {
                let mut changed = doc.clone();
                *get_mut(&mut changed, &path) = value.clone();
                agreement(
                    &changed,
                    &format!("{name}: {} = {value}", show(&path)),
                    &mut failures,
                );
                count += 1;
            }
        }
    }
    assert!(count > 5000, "only {count} changes were tried");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The body of a bundle artifact, after its name.
macro_rules! bundle_artifact {
    () => {
        "      type: DEVRAMPS:BUNDLE:BUILD\n      params: { build_commands: make, file_path: /out.zip }\n"
    };
}

/// Edge cases of single values, judged alike by both; and the limits of JSON itself.
#[test]
fn edge_cases_of_single_values() {
    // (name, text replaced in `BASE`, replacement, accepted by the parser and by the schema)
    #[rustfmt::skip]
    let alike: &[(&str, &str, &str, bool)] = &[
        // `str::trim` (Unicode White_Space) decides what is blank, not ECMAScript's `\s`.
        ("step name U+FEFF is not blank", "- name: Tests", "- name: \"\\uFEFF\"", true),
        ("step name U+0085 is blank", "- name: Tests", "- name: \"\\x85\"", false),
        ("step name U+3000 is blank", "- name: Tests", "- name: \"\\u3000\"", false),
        ("tracks U+FEFF is not blank", "tracks: main", "tracks: \"\\uFEFF\"", true),
        ("tracks tab is blank", "tracks: main", "tracks: \"\\t\"", false),
        // Artifact ids are derived from names when not written; some names give none.
        ("artifact name without letters", "  ephemeral_environments:\n", concat!("    \"++\":\n", bundle_artifact!(), "  ephemeral_environments:\n"), false),
        ("artifact name without ASCII letters", "  ephemeral_environments:\n", concat!("    \"\\u00E9\":\n", bundle_artifact!(), "  ephemeral_environments:\n"), false),
        ("artifact name Kelvin sign lowercases to k", "  ephemeral_environments:\n", concat!("    \"\\u212A\":\n", bundle_artifact!(), "  ephemeral_environments:\n"), true),
        ("artifact name without letters, with an id", "  ephemeral_environments:\n", concat!("    \"++\":\n      id: plus\n", bundle_artifact!(), "  ephemeral_environments:\n"), true),
        ("artifact name without letters, empty id", "  ephemeral_environments:\n", concat!("    \"++\":\n      id:\n", bundle_artifact!(), "  ephemeral_environments:\n"), false),
        // Expressions stand for values known only at synthesis.
        ("bake minutes from an expression", "duration_minutes: 30", "duration_minutes: ${{ trigger.revision }}", true),
        ("ECS timeout from an expression", "        cluster_name: main\n", "        cluster_name: main\n        timeout: ${{ trigger.revision }}\n", true),
        ("dockerfile from an expression", "dockerfile: /Dockerfile", "dockerfile: ${{ trigger.branch }}/Dockerfile", true),
        ("account id from an expression", "account_id: \"111111111111\"", "account_id: \"${{ trigger.sha }}\"", false),
        // Timeouts: minutes for every step type but the bake (for which it is an unknown param).
        ("custom step timeout 0", "      type: DEVRAMPS:APPROVAL:TEST\n      params:\n        testCommand: npm test\n", "      type: CUSTOM:TEST\n      params:\n        timeout: 0\n", false),
        ("custom step timeout 5", "      type: DEVRAMPS:APPROVAL:TEST\n      params:\n        testCommand: npm test\n", "      type: CUSTOM:TEST\n      params:\n        timeout: 5\n", true),
        ("test timeout empty", "        testType: jest\n", "        testType: jest\n        timeout:\n", false),
        ("bake timeout text (unknown param)", "        duration_minutes: 30\n", "        duration_minutes: 30\n        timeout: soon\n", true),
        // Ephemeral environment rules.
        ("release after fractional hours", "after_idle_hours: 24", "after_idle_hours: 0.5", true),
        ("release after negative hours", "after_idle_hours: 24", "after_idle_hours: -1", false),
        ("api trigger with no target branch", "on: pull_request\n          target_branches: [\"feat-*\"]", "on: api\n          target_branches: []", true),
    ];
    let mut failures = Vec::new();
    for &(name, from, to, accepted) in alike {
        let text = base_with(from, to);
        let checked = check(&text);
        let schema = schema_errors(&to_json(&text));
        if checked.is_valid() != accepted {
            failures.push(format!(
                "{name}: parser valid = {}:{}",
                checked.is_valid(),
                describe(&checked)
            ));
        }
        if schema.is_empty() != accepted {
            failures.push(format!(
                "{name}: schema valid = {}: {schema:?}",
                schema.is_empty()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The limit of JSON: it cannot tell `30` from `30.0` (nor keep integers beyond 64 bits,
    // which the parser reads as floats). The parser rejects these; the schema cannot.
    #[rustfmt::skip]
    let limits: &[(&str, &str, &str, &str)] = &[
        ("whole float minutes", "duration_minutes: 30", "duration_minutes: 30.0", "E0003"),
        ("integer beyond i64", "duration_minutes: 30", "duration_minutes: 99999999999999999999", "E0003"),
    ];
    for &(name, from, to, code) in limits {
        let text = base_with(from, to);
        let checked = check(&text);
        assert!(
            error_codes(&checked).contains(&code),
            "{name}:{}",
            describe(&checked)
        );
        let errors = schema_errors(&to_json(&text));
        assert!(
            errors.is_empty(),
            "{name}: the schema now rejects it; move it to the cases judged alike: {errors:?}"
        );
    }
    // Non-finite floats are refused while reading YAML, by the parser and by `yaml_to_json`.
    for number in [".inf", "-.inf", ".nan", "1e400"] {
        let text = base_with(
            "after_idle_hours: 24",
            &format!("after_idle_hours: {number}"),
        );
        assert_eq!(error_codes(&check(&text)), ["E0001"], "{number}");
        let err = yaml_to_json(&text).expect_err("non-finite floats are refused");
        assert_eq!(err.0[0].code.as_str(), "E0001", "{number}");
    }
}

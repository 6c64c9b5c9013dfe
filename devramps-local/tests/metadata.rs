//! `SYNTHESIZE-METADATA` against real registry processes (small Node programs written into
//! temporary directories, started as `node registry.js`), and the result parser against random
//! input.
//!
//! Needs `node` on PATH (Node 18 or later: <https://nodejs.org>, or `apt-get install nodejs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devramps_local::steps::{
    MetadataError, StepCatalog, StepRegistry, parse_metadata_result, synthesize_metadata,
    synthesize_metadata_within,
};
use proptest::prelude::*;
use serde_json::json;

/// The argument handling every test registry shares: `input` and `output` from the protocol
/// arguments, then the test's own `body`.
const PRELUDE: &str = r#"
const fs = require('fs');
const args = process.argv.slice(2);
const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const input = JSON.parse(arg('--input'));
const output = arg('--output');
if (input.job !== 'SYNTHESIZE-METADATA') { throw new Error('unexpected job ' + input.job); }
if (!fs.statSync(arg('--log-dir')).isDirectory()) { throw new Error('no log dir'); }
"#;

/// A registry in a fresh temporary directory whose `registry.js` runs `body` after the prelude.
fn registry(body: &str) -> (tempfile::TempDir, StepRegistry) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("registry.js"),
        format!("{PRELUDE}\n{body}\n"),
    )
    .expect("write registry.js");
    let registry = StepRegistry::npm(dir.path()).with_command(["node", "registry.js"]);
    (dir, registry)
}

/// A registry that writes `result` (JSON) as its result.
fn answering(result: &serde_json::Value) -> (tempfile::TempDir, StepRegistry) {
    registry(&format!(
        "fs.writeFileSync(output, JSON.stringify({result}, null, 2));"
    ))
}

fn node_is_installed() {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "these tests need `node` on PATH: install Node 18+ (https://nodejs.org or `apt-get install nodejs`)"
    );
}

fn two_types() -> serde_json::Value {
    json!({"status": "SUCCESS", "data": {"metadata": [
        {
            "name": "Deploy script",
            "stepType": "CUSTOM:SCRIPT:DEPLOY",
            "shortDescription": "Runs a deploy script",
            "paramsJsonSchema": {
                "type": "object",
                "properties": {"script": {"type": "string"}, "replicas": {"type": "integer"}},
                "required": ["script"],
                "additionalProperties": false
            },
            "documentationUrl": "https://example.invalid/deploy",
            "somethingNew": true
        },
        {
            "stepType": "cdn-invalidate",
            "paramsJsonSchema": {"type": "object", "properties": {"paths": {"type": "array"}}}
        }
    ]}})
}

#[test]
fn a_registry_lists_its_step_types_and_they_make_a_catalog() {
    node_is_installed();
    let (_dir, registry) = answering(&two_types());
    let steps = synthesize_metadata(&registry).expect("metadata");
    let types: Vec<&str> = steps.iter().map(|s| s.step_type.as_str()).collect();
    assert_eq!(types, ["CUSTOM:SCRIPT:DEPLOY", "cdn-invalidate"]);
    assert_eq!(steps[0].name.as_deref(), Some("Deploy script"));
    assert_eq!(
        steps[0].documentation_url.as_deref(),
        Some("https://example.invalid/deploy")
    );
    assert_eq!(steps[1].short_description, None);

    let catalog = StepCatalog::from_registries(&[registry]).expect("catalog");
    let deploy = catalog.get("CUSTOM:SCRIPT:DEPLOY").expect("deploy offered");
    assert!(deploy.check(&json!({"script": "./go"})).is_empty());
    assert_eq!(
        deploy.check(&json!({"replicas": 2})).len(),
        1,
        "script missing"
    );
    assert!(catalog.get("CUSTOM:CDN-INVALIDATE").is_some());
}

#[test]
fn two_registries_offering_one_type_are_refused() {
    node_is_installed();
    let (_a, first) = answering(&two_types());
    let (_b, second) = answering(&two_types());
    let e = StepCatalog::from_registries(&[first.clone(), second.clone()]).expect_err("dup");
    let text = e.to_string();
    assert!(
        text.contains("`CUSTOM:SCRIPT:DEPLOY`")
            && text.contains(&first.dir().display().to_string())
            && text.contains(&second.dir().display().to_string()),
        "{text}"
    );
}

/// The error of `registry`, checked to name its directory.
fn error_of(registry: &StepRegistry) -> MetadataError {
    let e = synthesize_metadata_within(registry, Duration::from_secs(30)).expect_err("an error");
    let dir = registry.dir().display().to_string();
    assert!(e.to_string().contains(&dir), "`{e}` does not name {dir}");
    e
}

#[test]
fn a_failed_result_is_reported_with_its_error_and_code() {
    node_is_installed();
    let (_dir, registry) = answering(
        &json!({"status": "FAILED", "error": "no steps registered", "errorCode": "REGISTRY_ERROR"}),
    );
    let e = error_of(&registry);
    assert!(matches!(e, MetadataError::Failed { .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("failed SYNTHESIZE-METADATA (REGISTRY_ERROR): no steps registered"),
        "{e}"
    );
}

#[test]
fn malformed_missing_and_empty_results_are_reported_with_what_was_found() {
    node_is_installed();
    let (_d1, not_json) = registry("fs.writeFileSync(output, 'Loading steps... {oops');");
    let e = error_of(&not_json);
    assert!(matches!(e, MetadataError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("Loading steps... {oops"), "{e}");

    let (_d2, no_list) = answering(&json!({"status": "SUCCESS", "data": {"steps": []}}));
    let e = error_of(&no_list);
    assert!(e.to_string().contains("`data.metadata`, a list"), "{e}");

    let (_d3, bad_entry) =
        answering(&json!({"status": "SUCCESS", "data": {"metadata": [{"stepType": "x"}]}}));
    let e = error_of(&bad_entry);
    assert!(
        e.to_string()
            .contains("data.metadata[0] is not step metadata")
            && e.to_string().contains("paramsJsonSchema"),
        "{e}"
    );

    let (_d4, silent) = registry(
        "process.stderr.write('TypeError: cannot read x of undefined\\n'); process.exit(3);",
    );
    let e = error_of(&silent);
    assert!(matches!(e, MetadataError::NoResult { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("wrote no result file for SYNTHESIZE-METADATA (exit status 3)")
            && text.contains("TypeError: cannot read x of undefined"),
        "{text}"
    );

    let (_d5, empty) = registry("fs.writeFileSync(output, '  \\n');");
    let e = error_of(&empty);
    assert!(e.to_string().contains("an empty result file"), "{e}");
}

#[test]
fn a_result_file_past_the_limit_is_refused_without_being_read_whole() {
    node_is_installed();
    // 17 MiB of a valid-looking result: one past the 16 MiB limit is enough to refuse it.
    let (_dir, huge) = registry(
        "fs.writeFileSync(output, '{\"status\":\"SUCCESS\",\"pad\":\"' + 'x'.repeat(17 << 20) + '\"}');",
    );
    let e = error_of(&huge);
    assert!(matches!(e, MetadataError::Malformed { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("the result file is larger than the limit of 16 MiB"),
        "{e}"
    );
}

#[test]
fn a_schema_that_is_not_json_schema_is_refused() {
    node_is_installed();
    let (_dir, registry) = answering(&json!({"status": "SUCCESS", "data": {"metadata": [
        {"stepType": "CUSTOM:A", "paramsJsonSchema": {"type": "object", "required": "name"}}
    ]}}));
    let e = StepCatalog::from_registries(&[registry]).expect_err("invalid schema");
    assert!(matches!(e, MetadataError::InvalidSchema { .. }), "{e:?}");
    assert!(
        e.to_string().contains("paramsJsonSchema of `CUSTOM:A`"),
        "{e}"
    );
}

#[test]
fn a_missing_command_or_directory_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = StepRegistry::npm(dir.path()).with_command(["devramps-no-such-program"]);
    let e = error_of(&registry);
    assert!(
        e.to_string()
            .contains("cannot start `devramps-no-such-program`")
            && e.to_string().contains("is it installed and on PATH?"),
        "{e}"
    );
    let gone: PathBuf = dir.path().join("nope");
    let e = error_of(&StepRegistry::npm(&gone));
    assert!(matches!(e, MetadataError::NotADirectory { .. }), "{e:?}");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_registry_that_hangs_is_killed_with_its_children_at_the_timeout() {
    node_is_installed();
    let (dir, registry) = registry(
        "const child = require('child_process').spawn('sleep', ['60'], {stdio: 'ignore'});\n\
         fs.writeFileSync('child.pid', String(child.pid));\n\
         console.log('warming up');\n\
         setTimeout(() => {}, 60000);",
    );
    let started = Instant::now();
    let e = synthesize_metadata_within(&registry, Duration::from_millis(1500)).expect_err("hangs");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, MetadataError::TimedOut { .. }), "{e:?}");
    assert!(e.to_string().contains("warming up"), "{e}");
    let pid = std::fs::read_to_string(dir.path().join("child.pid")).expect("the child started");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_gone(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_gone(&pid), "the registry's child {pid} still runs");
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("SUCCESS".to_owned()),
            Just("FAILED".to_owned()),
            Just("object".to_owned()),
            Just("integer".to_owned()),
            Just("#/definitions/x".to_owned()),
            "\\PC{0,12}",
        ]
        .prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("status".to_owned()),
        Just("data".to_owned()),
        Just("metadata".to_owned()),
        Just("stepType".to_owned()),
        Just("paramsJsonSchema".to_owned()),
        Just("type".to_owned()),
        Just("properties".to_owned()),
        Just("required".to_owned()),
        Just("$ref".to_owned()),
        Just("pattern".to_owned()),
        Just("error".to_owned()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random results, random metadata entries and random text never panic the parser or the
    /// catalog; whatever is accepted has a non-empty step type.
    #[test]
    fn random_results_never_panic(
        entries in prop::collection::vec(any_json(), 0..4),
        schemas in prop::collection::vec(any_json(), 0..4),
        status in prop_oneof![Just("SUCCESS"), Just("FAILED"), Just("OTHER")],
        junk in any_json(),
        text in "\\PC{0,40}",
    ) {
        let dir = Path::new("/registry");
        let metadata: Vec<serde_json::Value> = entries
            .into_iter()
            .zip(schemas.into_iter().chain(std::iter::repeat(json!({}))))
            .enumerate()
            .map(|(i, (entry, schema))| match entry {
                serde_json::Value::Object(mut m) if i % 2 == 0 => {
                    m.insert("stepType".into(), json!(format!("CUSTOM:T{i}")));
                    m.insert("paramsJsonSchema".into(), schema);
                    serde_json::Value::Object(m)
                }
                other => other,
            })
            .collect();
        let result = json!({"status": status, "data": {"metadata": metadata}, "error": junk});
        for input in [result.to_string(), junk.to_string(), text] {
            if let Ok(steps) = parse_metadata_result(dir, &input) {
                prop_assert!(steps.iter().all(|s| !s.step_type.trim().is_empty()));
                let mut catalog = StepCatalog::new();
                if catalog.add(dir, steps.clone()).is_ok() {
                    for step in &steps {
                        let entry = catalog.entries().iter().find(|e| e.metadata == *step);
                        prop_assert!(entry.is_some());
                        if let Some(entry) = entry {
                            let _ = entry.check(&junk);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn an_npm_registry_needs_a_package_json_with_the_start_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    let e = error_of(&StepRegistry::npm(dir.path()));
    assert!(e.to_string().ends_with("it has no package.json"), "{e}");
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"scripts": {"build": "tsc"}}"#,
    )
    .expect("write");
    let e = error_of(&StepRegistry::npm(dir.path()));
    assert!(
        e.to_string()
            .ends_with("its package.json has no `start-step-registry` script (in `scripts`)"),
        "{e}"
    );
}

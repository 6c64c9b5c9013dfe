//! Helpers of the scenario tests: run a scenario file and look into its JSON report.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use devramps_sim::{render_text, simulate_file, to_json};
use serde_json::{Value, json};

/// The path of a scenario file under `tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Runs a scenario file and returns its JSON report, parsed. Every run must be free of
/// invariant violations.
pub fn run(name: &str) -> Value {
    let report = simulate_file(&scenario(name)).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{name} is invalid:\n{}", errors.join("\n"))
    });
    if std::env::var_os("SIM_DEBUG").is_some() {
        eprintln!("{}", render_text(&report));
    }
    let json: Value = serde_json::from_str(&to_json(&report)).expect("the report is JSON");
    assert_eq!(json["violations"], json!([]), "{name}: violations");
    json
}

/// The report's events.
pub fn events(r: &Value) -> &Vec<Value> {
    r["events"].as_array().expect("events")
}

/// The events matching every `(key, value)` of `fields`.
pub fn matching<'r>(r: &'r Value, fields: &[(&str, Value)]) -> Vec<&'r Value> {
    events(r)
        .iter()
        .filter(|e| fields.iter().all(|(k, v)| e[*k] == *v))
        .collect()
}

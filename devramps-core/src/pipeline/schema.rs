//! The JSON Schema (draft 2020-12) of `pipeline.yaml`, for editors and other tools.
//!
//! The schema agrees with the parser ([`check`](super::check)): every document the schema
//! rejects, the parser rejects too. It encodes each check that concerns one value at a time
//! (required fields, unknown fields, types, enumerations, patterns, the parameters of the known
//! step and artifact types); the checks across values (unique names and ids, `goes_after` and
//! `skip` targets, dependency cycles, `${{ }}` expressions that resolve, duplicate YAML keys)
//! are the parser's alone. Unknown
//! parameters of known types are only warnings for the parser, so the schema accepts them. An
//! optional field left empty (`null`) counts as absent for both.
//!
//! JSON cannot tell `1` from `1.0`, so a whole float where the parser wants an integer (for
//! example `duration_minutes: 30.0`) is accepted by the schema and rejected by the parser.

use super::diagnostic::{Diagnostics, Sink};

/// The JSON Schema of `pipeline.yaml`, as printed by `devramps schema`.
///
/// ```
/// let schema = devramps_core::pipeline::json_schema();
/// assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
/// ```
pub fn json_schema() -> serde_json::Value {
    serde_json::from_str(SCHEMA).unwrap_or(serde_json::Value::Null)
}

/// The schema's text (JSON), embedded from `schema.json`.
pub const SCHEMA: &str = include_str!("schema.json");

/// Reads YAML text as this crate's parser does (YAML 1.2 booleans, so `on` and `yes` are
/// strings; the first of duplicate keys kept) and converts it to JSON, for tools that check a
/// file against the schema.
///
/// Returns every diagnostic when the text is not well-formed YAML (`E0001`, which includes
/// non-finite numbers such as `.inf`) or has a YAML-level error that JSON cannot show: duplicate
/// keys (`E0002`) and non-string keys (`E0009`). Scalar keys such as `1` or `true` become
/// strings, as the parser reads them.
///
/// ```
/// let json = devramps_core::pipeline::yaml_to_json("on: yes\nn: 3\n").unwrap();
/// assert_eq!(json, serde_json::json!({ "on": "yes", "n": 3 }));
/// assert!(devramps_core::pipeline::yaml_to_json("a: 1\na: 2\n").is_err());
/// ```
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, Diagnostics> {
    let mut sink = Sink::default();
    let root = super::yaml::parse(text, &mut sink);
    match root {
        Some(root) if !sink.items.iter().any(|d| d.is_error()) => Ok(root.to_json()),
        _ => Err(Diagnostics(sink.items)),
    }
}

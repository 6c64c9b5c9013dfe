//! The JSON Schema (draft 2020-12) of `pipeline.yaml`, for editors and other tools.

/// The JSON Schema of `pipeline.yaml`, as printed by `devramps schema`.
pub fn json_schema() -> serde_json::Value {
    serde_json::from_str(SCHEMA).unwrap_or(serde_json::Value::Null)
}

/// The schema's text.
pub const SCHEMA: &str = include_str!("schema.json");

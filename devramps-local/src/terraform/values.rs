//! Values crossing to and from Terraform: variables as `TF_VAR_`s, the outputs of
//! `output -json` (sensitive ones redacted), a plan file's hash, text inside HCL strings.

use std::collections::BTreeMap;
use std::path::Path;

use devramps_core::exec::{InfraRequest, Outputs};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What sensitive outputs read as.
pub(super) const SENSITIVE: &str = "(sensitive)";

/// `request.variables` as `TF_VAR_<name>` environment variables: strings as they are, other
/// values as JSON.
pub(super) fn tf_vars(
    request: &InfraRequest,
) -> std::result::Result<Vec<(String, String)>, String> {
    let serde_json::Value::Object(map) = request.variables.expose_json() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "variable name `{name}` is not a Terraform identifier"
            ));
        }
        let text = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        out.push((format!("TF_VAR_{name}"), text));
    }
    Ok(out)
}

/// One output of `terraform output -json`.
#[derive(Deserialize)]
struct RawOutput {
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    value: serde_json::Value,
}

/// The outputs of `terraform output -json`, sensitive ones replaced by `"(sensitive)"`, and
/// the text of the sensitive values (to redact elsewhere).
pub(super) fn read_outputs(json: &[u8]) -> std::result::Result<(Outputs, Vec<String>), String> {
    let raw: BTreeMap<String, RawOutput> = serde_json::from_slice(json)
        .map_err(|e| format!("`terraform output -json` printed what is not its JSON: {e}"))?;
    let mut outputs = Outputs::new();
    let mut sensitive = Vec::new();
    for (name, output) in raw {
        if output.sensitive {
            strings(&output.value, &mut sensitive);
            outputs.insert(name, serde_json::Value::String(SENSITIVE.to_owned()));
        } else {
            outputs.insert(name, output.value);
        }
    }
    Ok((outputs, sensitive))
}

/// The strings inside `value` (its text leaves, and the JSON text of a whole structure).
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
    if matches!(
        value,
        serde_json::Value::Array(_) | serde_json::Value::Object(_)
    ) {
        out.push(value.to_string());
    }
}

/// The SHA-256 of a file, hex.
pub(super) fn file_sha256(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Text as the inside of an HCL string: `\`, `"` escaped, `${` and `%{` doubled.
pub(super) fn hcl_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "$${")
        .replace("%{", "%%{")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sensitive_outputs_are_replaced_and_their_text_learnt() {
        let json = br#"{"a":{"sensitive":false,"type":"string","value":"open"},
            "t":{"sensitive":true,"type":"string","value":"tok-1"},
            "m":{"sensitive":true,"value":{"k":["s-2"]}}}"#;
        let (outputs, sensitive) = read_outputs(json).unwrap();
        assert_eq!(outputs["a"], "open");
        assert_eq!(outputs["t"], SENSITIVE);
        assert_eq!(outputs["m"], SENSITIVE);
        assert!(sensitive.contains(&"tok-1".to_owned()));
        assert!(sensitive.contains(&"s-2".to_owned()));
        assert!(read_outputs(b"[").unwrap_err().contains("line 1 column"));
    }

    #[test]
    fn paths_are_escaped_for_hcl() {
        assert_eq!(
            hcl_escape(r#"/a "b"\c/${x}%{y}"#),
            r#"/a \"b\"\\c/$${x}%%{y}"#
        );
    }
}

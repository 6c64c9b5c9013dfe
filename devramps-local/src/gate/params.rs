//! The parameters of a `DEVRAMPS:APPROVAL:TEST` step (reference §4.3), read from the final
//! values the engine hands the runner.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use devramps_core::expr::FinalValue;

/// The default `timeout`, in minutes (§4.3).
pub(super) const DEFAULT_TIMEOUT_MINUTES: f64 = 30.0;

/// How results are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TestType {
    /// The exit code only.
    Generic,
    /// The exit code, and jest's JSON summary for the counts.
    Jest,
}

/// A test gate's parameters, checked.
#[derive(Clone, Debug)]
pub(super) struct GateParams {
    /// `testCommand`, run with `sh -c`.
    pub(super) command: String,
    /// `timeout`, in minutes as written (a fraction is allowed).
    pub(super) timeout_minutes: f64,
    /// `workingDirectory`, relative to the checkout, without `..`.
    pub(super) working_directory: PathBuf,
    /// `environmentVariables`, stringified.
    pub(super) env: Vec<(String, String)>,
    /// `testType`.
    pub(super) test_type: TestType,
}

impl GateParams {
    /// The timeout as a duration.
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_minutes * 60.0)
    }

    /// Reads the parameters; the error says which one is wrong and why.
    pub(super) fn parse(params: &FinalValue) -> Result<Self, String> {
        let json = params.expose_json();
        let empty = serde_json::Map::new();
        let map = match &json {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => &empty,
            other => return Err(format!("`params` must be a map, not {}", kind(other))),
        };
        let command = match map.get("testCommand") {
            Some(serde_json::Value::String(c)) if !c.trim().is_empty() => c.clone(),
            Some(serde_json::Value::String(_)) => return Err("`testCommand` is empty".into()),
            Some(other) => return Err(format!("`testCommand` must be text, not {}", kind(other))),
            None => return Err("`testCommand` is required".into()),
        };
        let timeout_minutes = match map.get("timeout") {
            None | Some(serde_json::Value::Null) => DEFAULT_TIMEOUT_MINUTES,
            Some(serde_json::Value::Number(n)) => match n.as_f64() {
                Some(m) if m.is_finite() && m > 0.0 && m <= 7.0 * 24.0 * 60.0 => m,
                _ => {
                    return Err(format!(
                        "`timeout` must be a number of minutes above 0 and at most a week, not {n}"
                    ));
                }
            },
            Some(other) => return Err(format!("`timeout` must be a number, not {}", kind(other))),
        };
        let working_directory = match map.get("workingDirectory") {
            None | Some(serde_json::Value::Null) => PathBuf::new(),
            Some(serde_json::Value::String(dir)) => relative_dir(dir)?,
            Some(other) => {
                return Err(format!(
                    "`workingDirectory` must be text, not {}",
                    kind(other)
                ));
            }
        };
        let env = match map.get("environmentVariables") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Object(vars)) => {
                let mut env = Vec::with_capacity(vars.len());
                for (name, value) in vars {
                    if name.is_empty() || name.contains(['=', '\0']) {
                        return Err(format!(
                            "`environmentVariables` has the name `{name}`, which cannot be an \
                             environment variable"
                        ));
                    }
                    let value = stringify(value);
                    if value.contains('\0') {
                        return Err(format!(
                            "`environmentVariables.{name}` holds a NUL character"
                        ));
                    }
                    env.push((name.clone(), value));
                }
                env
            }
            Some(other) => {
                return Err(format!(
                    "`environmentVariables` must be a map, not {}",
                    kind(other)
                ));
            }
        };
        let test_type = match map.get("testType") {
            None | Some(serde_json::Value::Null) => TestType::Generic,
            Some(serde_json::Value::String(t)) if t == "generic" => TestType::Generic,
            Some(serde_json::Value::String(t)) if t == "jest" => TestType::Jest,
            Some(other) => {
                return Err(format!(
                    "`testType` must be `generic` or `jest`, not {other}"
                ));
            }
        };
        Ok(GateParams {
            command,
            timeout_minutes,
            working_directory,
            env,
            test_type,
        })
    }
}

/// Every secret's text in `value`, longest first, for redaction.
pub(super) fn secrets(value: &FinalValue) -> Vec<String> {
    fn collect(value: &FinalValue, out: &mut Vec<String>) {
        match value {
            FinalValue::Plain(_) => {}
            FinalValue::Secret(s) => out.push(s.expose().to_owned()),
            FinalValue::List(items) => items.iter().for_each(|v| collect(v, out)),
            FinalValue::Map(entries) => entries.iter().for_each(|(_, v)| collect(v, out)),
        }
    }
    let mut out = Vec::new();
    collect(value, &mut out);
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `text` with every secret replaced by `[REDACTED]`.
pub(super) fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[REDACTED]");
        }
    }
    text
}

/// A value as an environment variable's text: strings as they are, numbers and booleans in
/// their usual form, null as nothing, lists and maps as compact JSON.
fn stringify(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(_) | serde_json::Value::Number(_) => value.to_string(),
        other => other.to_string(),
    }
}

/// `dir` as a folder inside the checkout: relative (a leading `/` means the repository root,
/// as repository paths are written), without `..`.
fn relative_dir(dir: &str) -> Result<PathBuf, String> {
    let trimmed = dir.trim_start_matches('/');
    let mut out = PathBuf::new();
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`workingDirectory` `{dir}` leaves the checkout; give a folder of the \
                     repository"
                ));
            }
        }
    }
    Ok(out)
}

/// The JSON kind of a value, for messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<GateParams, String> {
        GateParams::parse(&FinalValue::Plain(value))
    }

    #[test]
    fn defaults_and_stringified_environment() {
        let p = parse(json!({
            "testCommand": "make test",
            "environmentVariables": {"N": 3, "B": true, "S": "x", "L": [1]}
        }))
        .expect("valid");
        assert_eq!(p.timeout_minutes, DEFAULT_TIMEOUT_MINUTES);
        assert_eq!(p.test_type, TestType::Generic);
        assert_eq!(p.working_directory, PathBuf::new());
        let env: std::collections::BTreeMap<_, _> = p.env.into_iter().collect();
        assert_eq!(env["N"], "3");
        assert_eq!(env["B"], "true");
        assert_eq!(env["S"], "x");
        assert_eq!(env["L"], "[1]");
    }

    #[test]
    fn bad_parameters_say_which_and_why() {
        let err = parse(json!({})).expect_err("no command");
        assert!(err.contains("`testCommand` is required"), "{err}");
        let err = parse(json!({"testCommand": "x", "timeout": 0})).expect_err("zero");
        assert!(err.contains("`timeout`"), "{err}");
        let err = parse(json!({"testCommand": "x", "workingDirectory": "a/../../etc"}))
            .expect_err("escape");
        assert!(err.contains("leaves the checkout"), "{err}");
        let err = parse(json!({"testCommand": "x", "testType": "mocha"})).expect_err("type");
        assert!(err.contains("`generic` or `jest`"), "{err}");
        let p =
            parse(json!({"testCommand": "x", "workingDirectory": "/web/./app", "timeout": 0.5}))
                .expect("valid");
        assert_eq!(p.working_directory, PathBuf::from("web/app"));
        assert_eq!(p.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn secrets_are_found_and_redacted() {
        let value = FinalValue::Map(vec![
            ("a".into(), FinalValue::Plain(json!("open"))),
            (
                "b".into(),
                FinalValue::Secret(devramps_core::expr::SecretString::new("hunter2")),
            ),
        ]);
        let secrets = secrets(&value);
        assert_eq!(secrets, ["hunter2"]);
        assert_eq!(redact("pw=hunter2 ok", &secrets), "pw=[REDACTED] ok");
    }
}

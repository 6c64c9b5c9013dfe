//! An artifact's resolved parameters as a build receives them: the engine hands
//! `{"params": {...}, "envs": {...}}` (a map of the artifact's `params` and its `envs`, secrets
//! still wrapped); this reads them, builds the environment of the build command and collects
//! the secrets to redact from what the build prints.

use std::path::{Component, Path, PathBuf};

use devramps_core::expr::FinalValue;
use serde_json::Value;

/// The parameters of one build, read.
#[derive(Clone, Debug)]
pub(crate) struct BuildParams {
    /// The artifact's `params`, secrets in clear (never printed: only read by the builder).
    params: serde_json::Map<String, Value>,
    /// `params.env`, then the artifact's `envs` (which win on a name both give), as text.
    pub(crate) env: Vec<(String, String)>,
}

impl BuildParams {
    /// Reads `value` (the `params`/`envs` map the engine builds; a bare map of params is read
    /// as the params). The error says what is wrong.
    pub(crate) fn parse(value: &FinalValue) -> Result<Self, String> {
        let json = value.expose_json();
        let mut top = match json {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => return Err(format!("`params` must be a map, not {}", kind(&other))),
        };
        let (params, envs) = if top.contains_key("params") || top.contains_key("envs") {
            let params = match top.remove("params") {
                Some(Value::Object(map)) => map,
                None | Some(Value::Null) => serde_json::Map::new(),
                Some(other) => return Err(format!("`params` must be a map, not {}", kind(&other))),
            };
            (params, top.remove("envs"))
        } else {
            (top, None)
        };
        let mut env = Vec::new();
        for (what, map) in [("params.env", params.get("env")), ("envs", envs.as_ref())] {
            match map {
                None | Some(Value::Null) => {}
                Some(Value::Object(vars)) => {
                    for (name, value) in vars {
                        if name.is_empty() || name.contains(['=', '\0']) {
                            return Err(format!(
                                "`{what}` has the name `{name}`, which cannot be an environment \
                                 variable"
                            ));
                        }
                        let text = stringify(value);
                        if text.contains('\0') {
                            return Err(format!("`{what}.{name}` holds a NUL character"));
                        }
                        env.retain(|(n, _): &(String, String)| n != name);
                        env.push((name.clone(), text));
                    }
                }
                Some(other) => return Err(format!("`{what}` must be a map, not {}", kind(other))),
            }
        }
        Ok(BuildParams { params, env })
    }

    /// A text parameter, if given.
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>, String> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{name}` must be text, not {}", kind(other))),
        }
    }

    /// A text parameter that must be given and not blank.
    pub(crate) fn required_text(&self, name: &str) -> Result<String, String> {
        match self.text(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(format!("`{name}` is empty")),
            None => Err(format!("`{name}` is required")),
        }
    }

    /// A list of texts (`args`); absent is empty.
    pub(crate) fn texts(&self, name: &str) -> Result<Vec<String>, String> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(_) | Value::Bool(_) => Ok(item.to_string()),
                    other => Err(format!(
                        "`{name}` must be a list of text, not hold {}",
                        kind(other)
                    )),
                })
                .collect(),
            Some(other) => Err(format!("`{name}` must be a list, not {}", kind(other))),
        }
    }

    /// A number of minutes above 0 and at most a week (`timeout_minutes`), if given.
    pub(crate) fn minutes(&self, name: &str) -> Result<Option<f64>, String> {
        let number = match self.params.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(other) => return Err(format!("`{name}` must be a number, not {}", kind(other))),
        };
        match number {
            Some(m) if m.is_finite() && m > 0.0 && m <= 7.0 * 24.0 * 60.0 => Ok(Some(m)),
            _ => Err(format!(
                "`{name}` must be a number of minutes above 0 and at most a week"
            )),
        }
    }
}

/// Every secret's text in `value`, longest first, for redaction.
pub(crate) fn secrets(value: &FinalValue) -> Vec<String> {
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

/// A repository path (`/dist/app.zip` or `dist/app.zip`) as a path inside the checkout:
/// relative, without `..`. `what` names the parameter in the error.
pub(crate) fn repo_path(what: &str, path: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{what}` `{path}` leaves the repository; give a path inside it"
                ));
            }
        }
    }
    Ok(out)
}

/// A value as an environment variable's text: strings as they are, null as nothing, the rest
/// as compact JSON.
fn stringify(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The JSON kind of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use devramps_core::expr::SecretString;
    use serde_json::json;

    #[test]
    fn params_and_envs_make_one_environment_envs_winning() {
        let value = FinalValue::Map(vec![
            (
                "params".into(),
                FinalValue::Plain(json!({"file_path": "/a.zip", "env": {"A": 1, "B": "p"}})),
            ),
            (
                "envs".into(),
                FinalValue::Map(vec![
                    ("B".into(), FinalValue::Plain(json!("e"))),
                    ("S".into(), FinalValue::Secret(SecretString::new("hunter2"))),
                ]),
            ),
        ]);
        let p = BuildParams::parse(&value).unwrap();
        assert_eq!(p.required_text("file_path").unwrap(), "/a.zip");
        assert_eq!(
            p.env,
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "e".to_owned()),
                ("S".to_owned(), "hunter2".to_owned())
            ]
        );
        assert_eq!(secrets(&value), ["hunter2"]);
        let bare = BuildParams::parse(&FinalValue::Plain(json!({"file_path": "x"}))).unwrap();
        assert_eq!(bare.text("file_path").unwrap().as_deref(), Some("x"));
    }

    #[test]
    fn bad_values_say_which_and_why() {
        let p = BuildParams::parse(&FinalValue::Plain(
            json!({"params": {"timeout_minutes": 0, "args": "x"}}),
        ))
        .unwrap();
        assert!(
            p.minutes("timeout_minutes")
                .unwrap_err()
                .contains("above 0")
        );
        assert!(p.texts("args").unwrap_err().contains("must be a list"));
        assert!(
            p.required_text("build_commands")
                .unwrap_err()
                .contains("required")
        );
        let err = BuildParams::parse(&FinalValue::Plain(json!({"params": {"env": {"A=B": 1}}})))
            .unwrap_err();
        assert!(err.contains("cannot be an environment variable"), "{err}");
        assert!(repo_path("file_path", "/../etc/passwd").is_err());
        assert_eq!(
            repo_path("file_path", "/dist/./a.zip").unwrap(),
            PathBuf::from("dist/a.zip")
        );
    }
}

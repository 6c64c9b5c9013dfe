//! Reading typed fields out of the spanned YAML tree while collecting every error.

use std::path::Path;
use std::time::Duration;

use devramps_core::pipeline::{Span, Spanned, Value, ValueKind, ValueMap, suggest};

use crate::duration::parse_duration;
use crate::error::ScenarioError;

/// Collects errors while a scenario is read. Readers return `None` when a value is missing or
/// wrong; the error is recorded here, so the caller can go on and find the next problem.
pub(crate) struct Reader<'f> {
    file: &'f Path,
    pub(crate) errors: Vec<ScenarioError>,
}

impl<'f> Reader<'f> {
    pub(crate) fn new(file: &'f Path) -> Self {
        Reader {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors
            .push(ScenarioError::new(self.file, span, message));
    }

    pub(crate) fn error_help(
        &mut self,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.errors
            .push(ScenarioError::new(self.file, span, message).with_help(help));
    }

    /// Reports every key of `map` not in `allowed`, suggesting the closest allowed one.
    /// `context` names the map in messages (``in `push` ``, ``at the top level``).
    /// Returns whether a key was unknown.
    pub(crate) fn unknown_keys(&mut self, map: &ValueMap, context: &str, allowed: &[&str]) -> bool {
        let mut found = false;
        for (key, _) in map.iter() {
            if allowed.contains(&key.value.as_str()) {
                continue;
            }
            found = true;
            let message = format!("unknown key `{}` {context}", key.value);
            match suggest(&key.value, allowed.iter().copied()) {
                Some(close) => {
                    self.error_help(key.span, message, format!("did you mean `{close}`?"))
                }
                None if allowed.is_empty() => {
                    self.error_help(key.span, message, "this takes no fields")
                }
                None => self.error_help(
                    key.span,
                    message,
                    format!("expected one of {}", list(allowed)),
                ),
            }
        }
        found
    }

    /// A string; `what` names it in messages (```commit` of `push` ``).
    pub(crate) fn string(&mut self, value: &Value, what: &str) -> Option<Spanned<String>> {
        match &value.kind {
            ValueKind::String(s) if s.is_empty() => {
                self.error(value.span, format!("{what} must not be empty"));
                None
            }
            ValueKind::String(s) => Some(Spanned::new(s.clone(), value.span)),
            ValueKind::Int(_) | ValueKind::Float(_) | ValueKind::Bool(_) => {
                self.error_help(
                    value.span,
                    format!("{what} must be a string, found {}", value.describe()),
                    format!("quote it: `\"{value}\"`"),
                );
                None
            }
            _ => {
                self.error(
                    value.span,
                    format!("{what} must be a string, found {}", value.describe()),
                );
                None
            }
        }
    }

    /// A duration written as a string such as `90s` or `1h30m`.
    pub(crate) fn duration(&mut self, value: &Value, what: &str) -> Option<Duration> {
        match &value.kind {
            ValueKind::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(problem) => {
                    self.error(
                        value.span,
                        format!("invalid duration for {what}: {problem}"),
                    );
                    None
                }
            },
            ValueKind::Int(n) => {
                self.error_help(
                    value.span,
                    format!("{what} must be a duration with a unit, found the number {n}"),
                    format!("write for example `{n}s` or `{n}m`"),
                );
                None
            }
            _ => {
                self.error_help(
                    value.span,
                    format!("{what} must be a duration, found {}", value.describe()),
                    "write for example `90s`, `5m` or `1h30m`",
                );
                None
            }
        }
    }

    /// A list of repository paths, each starting with `/`. Null is the empty list.
    pub(crate) fn repo_paths(&mut self, value: &Value, what: &str) -> Vec<String> {
        if value.is_null() {
            return Vec::new();
        }
        let Some(items) = value.as_list() else {
            self.error_help(
                value.span,
                format!("{what} must be a list of paths, found {}", value.describe()),
                "write for example `[/services/api/main.rs]`",
            );
            return Vec::new();
        };
        let mut paths = Vec::new();
        for item in items {
            let Some(path) = self.string(item, &format!("each path of {what}")) else {
                continue;
            };
            if path.starts_with('/') {
                paths.push(path.value);
            } else {
                self.error_help(
                    item.span,
                    format!("path `{}` of {what} must start with `/`", path.value),
                    format!(
                        "paths are relative to the repository root: write `/{}`",
                        path.value
                    ),
                );
            }
        }
        paths
    }
}

/// The fields of one map (an action's or `defaults`), read by name.
pub(crate) struct Fields<'v> {
    /// The map's name in messages, for example `` `push` ``.
    pub(crate) name: String,
    /// Where missing fields are reported: the key that introduces the map.
    pub(crate) span: Span,
    /// The entries; `None` for a null value (no fields written).
    pub(crate) map: Option<&'v ValueMap>,
}

impl<'v> Fields<'v> {
    /// Reads `value` as the fields of `name`, reporting a value that is neither a map nor null
    /// and every key not in `allowed`.
    pub(crate) fn read(
        reader: &mut Reader<'_>,
        name: &str,
        key_span: Span,
        value: &'v Value,
        allowed: &[&str],
    ) -> Option<Self> {
        let name = format!("`{name}`");
        let map = match &value.kind {
            ValueKind::Map(map) => Some(map),
            ValueKind::Null => None,
            _ => {
                reader.error(
                    value.span,
                    format!("{name} must be a map of fields, found {}", value.describe()),
                );
                return None;
            }
        };
        if let Some(map) = map {
            reader.unknown_keys(map, &format!("in {name}"), allowed);
        }
        Some(Fields {
            name,
            span: key_span,
            map,
        })
    }

    /// The entry of `key`, if written (a null value counts as not written).
    pub(crate) fn get(&self, key: &str) -> Option<&'v (Spanned<String>, Value)> {
        self.map
            .and_then(|m| m.entry(key))
            .filter(|(_, v)| !v.is_null())
    }

    pub(crate) fn what(&self, key: &str) -> String {
        format!("`{key}` of {}", self.name)
    }

    /// A required string field.
    pub(crate) fn required_string(
        &self,
        reader: &mut Reader<'_>,
        key: &str,
    ) -> Option<Spanned<String>> {
        match self.map.and_then(|m| m.get(key)) {
            Some(value) => reader.string(value, &self.what(key)),
            None => {
                reader.error(self.span, format!("{} is missing `{key}`", self.name));
                None
            }
        }
    }

    /// An optional string field.
    pub(crate) fn optional_string(
        &self,
        reader: &mut Reader<'_>,
        key: &str,
    ) -> Option<Spanned<String>> {
        let (_, value) = self.get(key)?;
        reader.string(value, &self.what(key))
    }
}

/// `` `a`, `b` or `c` ``.
pub(crate) fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|i| format!("`{i}`")).collect();
            format!("{} or `{last}`", init.join(", "))
        }
    }
}

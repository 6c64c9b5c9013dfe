//! Reading the [`Value`] tree into the typed model, collecting every problem on the way.
//!
//! Each reader checks its mapping's keys (unknown keys get a suggestion), reads the fields it
//! knows with their types, and reports missing required fields at the owner's span. A field
//! that cannot be read is reported once and skipped, so one run reports everything.

mod artifacts;
mod document;
mod ephemeral;
mod steps;

pub(crate) use document::read_document;

use super::diagnostic::{Code, Diagnostic, Sink, suggest};
use super::enums::YamlEnum;
use super::span::{Span, Spanned};
use super::value::{Value, ValueKind, ValueMap};

/// Well-known misspellings and names from other CI systems, with what was meant.
const ALIASES: &[(&str, &str)] = &[
    ("variables", "vars"),
    ("var", "vars"),
    ("env", "vars"),
    ("depends_on", "goes_after"),
    ("needs", "goes_after"),
    ("after", "goes_after"),
    ("vars", "variables"),
    ("parameters", "params"),
    ("with", "params"),
    ("timezone", "deployment_time_window"),
    ("time_window", "deployment_time_window"),
    ("account", "account_id"),
    ("accountId", "account_id"),
    ("branch", "tracks"),
];

/// A mapping being read: its entries, its owner's description for messages, and its span.
pub(super) struct Obj<'a> {
    pub(super) map: &'a ValueMap,
    pub(super) span: Span,
    /// For messages: "stage `prod`", "the `pipeline` object", ...
    pub(super) what: String,
}

impl<'a> Obj<'a> {
    /// Reads `value` as a mapping, or reports a wrong type and returns `None`.
    pub(super) fn new(value: &'a Value, what: impl Into<String>, sink: &mut Sink) -> Option<Self> {
        let what = what.into();
        match &value.kind {
            ValueKind::Map(map) => Some(Obj {
                map,
                span: value.span,
                what,
            }),
            _ => {
                sink.error(
                    Code::WrongType,
                    value.span,
                    format!("{what} must be a map, found {}", value.describe()),
                );
                None
            }
        }
    }

    /// Reports every key not in `known`, suggesting the closest known key.
    pub(super) fn check_keys(&self, known: &[&str], sink: &mut Sink) {
        self.check_keys_as(known, Code::UnknownField, sink);
    }

    /// Like [`Self::check_keys`], with the code to report (an error or a warning).
    pub(super) fn check_keys_as(&self, known: &[&str], code: Code, sink: &mut Sink) {
        for (key, _) in self.map.iter() {
            if known.contains(&key.value.as_str()) {
                continue;
            }
            let alias = ALIASES
                .iter()
                .find(|(from, to)| *from == key.value && known.contains(to))
                .map(|(_, to)| *to);
            let hint = alias.or_else(|| suggest(&key.value, known.iter().copied()));
            let noun = if code == Code::UnknownParam {
                "parameter"
            } else {
                "field"
            };
            let mut d = Diagnostic::new(
                code,
                key.span,
                format!("unknown {noun} `{}` in {}", key.value, self.what),
            );
            d = match hint {
                Some(h) => d.with_help(format!("did you mean `{h}`?")),
                None => d.with_help(format!("known {noun}s: {}", known.join(", "))),
            };
            sink.push(d);
        }
    }

    /// The value under `key`, treating an explicit `null` as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The value under `key`, or a missing-field error at this mapping's span.
    pub(super) fn required(&self, key: &str, sink: &mut Sink) -> Option<&'a Value> {
        let value = self.get(key);
        if value.is_none() {
            let span = self.map.entry(key).map_or(self.span, |(k, _)| k.span);
            sink.error(
                Code::MissingField,
                span,
                format!("{} is missing required field `{key}`", self.what),
            );
        }
        value
    }

    /// A required string field.
    pub(super) fn required_str(&self, key: &str, sink: &mut Sink) -> Option<Spanned<String>> {
        self.required(key, sink)
            .and_then(|v| as_string(v, &self.field(key), sink))
    }

    /// An optional string field.
    pub(super) fn optional_str(&self, key: &str, sink: &mut Sink) -> Option<Spanned<String>> {
        self.get(key)
            .and_then(|v| as_string(v, &self.field(key), sink))
    }

    /// An optional enumeration field.
    pub(super) fn optional_enum<T: YamlEnum>(
        &self,
        key: &str,
        sink: &mut Sink,
    ) -> Option<Spanned<T>> {
        self.get(key)
            .and_then(|v| as_enum(v, &self.field(key), sink))
    }

    /// A required enumeration field.
    pub(super) fn required_enum<T: YamlEnum>(
        &self,
        key: &str,
        sink: &mut Sink,
    ) -> Option<Spanned<T>> {
        self.required(key, sink)
            .and_then(|v| as_enum(v, &self.field(key), sink))
    }

    /// An optional map field (empty when absent).
    pub(super) fn optional_map(&self, key: &str, sink: &mut Sink) -> ValueMap {
        match self.get(key) {
            None => ValueMap::default(),
            Some(v) => match &v.kind {
                ValueKind::Map(m) => m.clone(),
                _ => {
                    sink.error(
                        Code::WrongType,
                        v.span,
                        format!("{} must be a map, found {}", self.field(key), v.describe()),
                    );
                    ValueMap::default()
                }
            },
        }
    }

    /// An optional list of strings (`None` when absent).
    pub(super) fn optional_str_list(
        &self,
        key: &str,
        sink: &mut Sink,
    ) -> Option<Vec<Spanned<String>>> {
        let value = self.get(key)?;
        let what = self.field(key);
        match &value.kind {
            ValueKind::List(items) => Some(
                items
                    .iter()
                    .filter_map(|item| as_string(item, &format!("an entry of {what}"), sink))
                    .collect(),
            ),
            _ => {
                sink.error(
                    Code::WrongType,
                    value.span,
                    format!(
                        "{what} must be a list of strings, found {}",
                        value.describe()
                    ),
                );
                None
            }
        }
    }

    /// An optional boolean field.
    pub(super) fn optional_bool(&self, key: &str, sink: &mut Sink) -> Option<Spanned<bool>> {
        let value = self.get(key)?;
        match value.kind {
            ValueKind::Bool(b) => Some(Spanned::new(b, value.span)),
            _ => {
                sink.error(
                    Code::WrongType,
                    value.span,
                    format!(
                        "{} must be `true` or `false`, found {}",
                        self.field(key),
                        value.describe()
                    ),
                );
                None
            }
        }
    }

    /// "`key` of <what>", for messages.
    pub(super) fn field(&self, key: &str) -> String {
        format!("`{key}` of {}", self.what)
    }
}

/// Reads a string, or reports a wrong type (suggesting quotes for scalars).
pub(super) fn as_string(value: &Value, what: &str, sink: &mut Sink) -> Option<Spanned<String>> {
    match &value.kind {
        ValueKind::String(s) => Some(Spanned::new(s.clone(), value.span)),
        ValueKind::Int(_) | ValueKind::Float(_) | ValueKind::Bool(_) => {
            sink.push(
                Diagnostic::new(
                    Code::WrongType,
                    value.span,
                    format!(
                        "{what} must be a string, found {} `{value}`",
                        value.describe()
                    ),
                )
                .with_help(format!("quote it: \"{value}\"")),
            );
            None
        }
        _ => {
            sink.error(
                Code::WrongType,
                value.span,
                format!("{what} must be a string, found {}", value.describe()),
            );
            None
        }
    }
}

/// Reads an enumeration value, or reports an invalid value with the allowed ones.
pub(super) fn as_enum<T: YamlEnum>(
    value: &Value,
    what: &str,
    sink: &mut Sink,
) -> Option<Spanned<T>> {
    let text = match &value.kind {
        ValueKind::String(s) => s.clone(),
        ValueKind::Int(_) | ValueKind::Float(_) | ValueKind::Bool(_) => value.to_string(),
        _ => {
            sink.error(
                Code::WrongType,
                value.span,
                format!("{what} must be a string, found {}", value.describe()),
            );
            return None;
        }
    };
    if let Some(v) = T::parse(&text) {
        return Some(Spanned::new(v, value.span));
    }
    let spellings = T::spellings();
    let help = match suggest(&text, spellings.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? allowed: {}", spellings.join(", ")),
        None => format!("allowed: {}", spellings.join(", ")),
    };
    sink.push(
        Diagnostic::new(
            Code::InvalidEnumValue,
            value.span,
            format!("invalid {} `{text}` for {what}", T::WHAT),
        )
        .with_help(help),
    );
    None
}

/// Whether a parameter value is (or contains) an expression, so its literal form cannot be
/// checked before synthesis.
pub(super) fn has_expression(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.contains("${{"))
}

/// Checks that a parameter is a positive whole number of minutes or hours (or an expression).
pub(super) fn check_positive_int(value: &Value, what: &str, sink: &mut Sink) {
    match value.kind {
        ValueKind::Int(i) if i > 0 => {}
        ValueKind::Int(_) => sink.error(
            Code::InvalidNumber,
            value.span,
            format!("{what} must be a positive whole number, found {value}"),
        ),
        _ if has_expression(value) => {}
        _ => sink.error(
            Code::WrongType,
            value.span,
            format!(
                "{what} must be a positive whole number, found {}",
                value.describe()
            ),
        ),
    }
}

/// Checks that a repository path starts with `/`.
pub(super) fn check_repo_path(path: &Spanned<String>, what: &str, sink: &mut Sink) {
    if path.value.contains("${{") {
        return;
    }
    if !path.value.starts_with('/') {
        sink.push(
            Diagnostic::new(
                Code::InvalidRepoPath,
                path.span,
                format!(
                    "{what} `{}` must start with `/` (the repository root)",
                    path.value
                ),
            )
            .with_help(format!("write `/{}`", path.value.trim_start_matches("./"))),
        );
    }
}

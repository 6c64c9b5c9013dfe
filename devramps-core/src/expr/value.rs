//! Values after synthesis: resolved where possible, deferred where not (secrets and step
//! outputs), and the secret type that never shows its content.

use std::fmt;
use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A value that synthesis cannot know: resolved just before the step that needs it runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Deferred {
    /// An organization secret: `secret("N")` or `organization.secrets["N"]`.
    Secret(String),
    /// A secret of the current stage: `stage_secret("N")` or `stage.secrets["N"]`.
    StageSecret(String),
    /// An output of an earlier step of the same stage: `steps.<step>.<field>`; `step` is the
    /// producer's id, else its name.
    Output {
        /// The producing step (id, else name).
        step: String,
        /// The output's name.
        field: String,
    },
}

/// Prints the marker shown in plans: `[SECRET:N]`, `[STAGE_SECRET:N]`, `[OUTPUT:step/field]`.
impl fmt::Display for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deferred::Secret(n) => write!(f, "[SECRET:{n}]"),
            Deferred::StageSecret(n) => write!(f, "[STAGE_SECRET:{n}]"),
            Deferred::Output { step, field } => write!(f, "[OUTPUT:{step}/{field}]"),
        }
    }
}

/// A parameter value after synthesis.
///
/// Cheap to clone: text, lists, maps and deferred values are reference-counted, so that the
/// stages of a plan share what they have in common (map keys, literal text, whole values that
/// do not depend on the stage) instead of holding copies. Build values with the `From`
/// conversions, [`ParamValue::list`] and [`ParamValue::map`]; read them with [`ParamValue::get`],
/// [`ParamValue::as_str`], [`ParamValue::as_int`] and friends.
///
/// ```
/// use devramps_core::expr::{Deferred, ParamValue};
/// let params = ParamValue::map([
///     ("source", ParamValue::from("/infra")),
///     ("replicas", ParamValue::from(3)),
///     ("password", ParamValue::from(Deferred::Secret("DB".into()))),
/// ]);
/// assert_eq!(params.get("source").and_then(ParamValue::as_str), Some("/infra"));
/// assert_eq!(params.get("replicas").and_then(ParamValue::as_int), Some(3));
/// assert_eq!(params.to_json()["password"], "[SECRET:DB]");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text, fully resolved.
    String(Arc<str>),
    /// A list.
    List(Arc<[ParamValue]>),
    /// A map, in source order.
    Map(Arc<[(Arc<str>, ParamValue)]>),
    /// A whole value that is deferred (its type is known only when resolved).
    Deferred(Arc<Deferred>),
    /// Text with deferred parts.
    Text(Arc<[TextPart]>),
}

/// A part of text that holds deferred values.
#[derive(Clone, Debug, PartialEq)]
pub enum TextPart {
    /// Resolved text.
    Literal(String),
    /// A deferred value, rendered as text when resolved.
    Deferred(Deferred),
}

impl ParamValue {
    /// A list of `items`.
    pub fn list(items: impl IntoIterator<Item = ParamValue>) -> Self {
        ParamValue::List(items.into_iter().collect())
    }

    /// A map of `entries`, in the given order.
    pub fn map<K: Into<Arc<str>>>(entries: impl IntoIterator<Item = (K, ParamValue)>) -> Self {
        ParamValue::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The value under `key`, when this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.as_map()?
            .iter()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| v)
    }

    /// The text, when this is fully resolved text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, when this is a list.
    pub fn as_list(&self) -> Option<&[ParamValue]> {
        match self {
            ParamValue::List(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, in order, when this is a map.
    pub fn as_map(&self) -> Option<&[(Arc<str>, ParamValue)]> {
        match self {
            ParamValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The deferred value, when the whole value is one.
    pub fn as_deferred(&self) -> Option<&Deferred> {
        match self {
            ParamValue::Deferred(d) => Some(d),
            _ => None,
        }
    }

    /// Every deferred value inside, in order.
    pub fn deferred(&self) -> Vec<&Deferred> {
        let mut out = Vec::new();
        self.collect_deferred(&mut out);
        out
    }

    fn collect_deferred<'a>(&'a self, out: &mut Vec<&'a Deferred>) {
        match self {
            ParamValue::Deferred(d) => out.push(d),
            ParamValue::Text(parts) => out.extend(parts.iter().filter_map(|p| match p {
                TextPart::Deferred(d) => Some(d),
                TextPart::Literal(_) => None,
            })),
            ParamValue::List(items) => items.iter().for_each(|i| i.collect_deferred(out)),
            ParamValue::Map(entries) => entries.iter().for_each(|(_, v)| v.collect_deferred(out)),
            _ => {}
        }
    }

    /// The value as JSON, deferred values shown as their markers.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Renders the value as text (inside a larger string): strings as they are, numbers and
    /// booleans in their usual form, lists and maps as compact JSON, null as empty text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    /// [`ParamValue::render`] at the end of `out`.
    pub(crate) fn render_into(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            ParamValue::Null => {}
            ParamValue::String(s) => out.push_str(s),
            ParamValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            ParamValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            ParamValue::Float(x) => {
                let _ = write!(out, "{x:?}");
            }
            _ => match self.to_json() {
                serde_json::Value::String(s) => out.push_str(&s),
                other => {
                    let _ = write!(out, "{other}");
                }
            },
        }
    }
}

impl From<&str> for ParamValue {
    fn from(text: &str) -> Self {
        ParamValue::String(text.into())
    }
}

impl From<String> for ParamValue {
    fn from(text: String) -> Self {
        ParamValue::String(text.into())
    }
}

impl From<i64> for ParamValue {
    fn from(i: i64) -> Self {
        ParamValue::Int(i)
    }
}

impl From<bool> for ParamValue {
    fn from(b: bool) -> Self {
        ParamValue::Bool(b)
    }
}

impl From<Deferred> for ParamValue {
    fn from(d: Deferred) -> Self {
        ParamValue::Deferred(Arc::new(d))
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Null => serializer.serialize_unit(),
            ParamValue::Bool(b) => serializer.serialize_bool(*b),
            ParamValue::Int(i) => serializer.serialize_i64(*i),
            ParamValue::Float(x) => serializer.serialize_f64(*x),
            ParamValue::String(s) => serializer.serialize_str(s),
            ParamValue::Deferred(d) => serializer.collect_str(d),
            ParamValue::Text(parts) => {
                let mut text = String::new();
                for p in parts.iter() {
                    match p {
                        TextPart::Literal(t) => text.push_str(t),
                        TextPart::Deferred(d) => text.push_str(&d.to_string()),
                    }
                }
                serializer.serialize_str(&text)
            }
            ParamValue::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            ParamValue::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries.iter() {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

/// A secret's value. It never shows its content: `Debug`, `Display` and `Serialize` print
/// `[REDACTED]`; only [`SecretString::expose`] gives the text, for the code that hands it to a
/// step.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret's text. Call only where the value leaves for the step that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[REDACTED]")
    }
}

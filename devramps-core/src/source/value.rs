//! [`Value`]: a YAML/JSON value tree in which every node keeps its [`Span`].
//!
//! Parameters of steps and artifacts are free-form maps whose leaves may hold `${{ }}`
//! expressions; they are kept as values so that later phases can resolve them and still point
//! at the exact place of a problem.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::span::{Span, Spanned};

/// A value with its source location.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// What the value is.
    pub kind: ValueKind,
    /// Where it was written.
    pub span: Span,
}

/// The shape of a [`Value`].
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number (also integers beyond the range of `i64`).
    Float(f64),
    /// A string.
    String(String),
    /// A sequence.
    List(Vec<Value>),
    /// A mapping with string keys, in source order.
    Map(ValueMap),
}

/// A mapping with string keys in source order; each key keeps its own span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueMap {
    /// The entries, in source order. Keys are unique in a map built by the parser.
    pub entries: Vec<(Spanned<String>, Value)>,
}

impl ValueMap {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value under `key`.
    pub fn entry(&self, key: &str) -> Option<&(Spanned<String>, Value)> {
        self.entries.iter().find(|(k, _)| k.value == key)
    }

    /// Iterates over keys and values in source order.
    pub fn iter(&self) -> impl Iterator<Item = (&Spanned<String>, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| k.value == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((Spanned::unspanned(key), value)),
        }
    }
}

impl Value {
    /// A value without a source location.
    pub fn unspanned(kind: ValueKind) -> Self {
        Value {
            kind,
            span: Span::UNKNOWN,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The map, if this is a map.
    pub fn as_map(&self) -> Option<&ValueMap> {
        match &self.kind {
            ValueKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match &self.kind {
            ValueKind::List(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, ValueKind::Null)
    }

    /// What kind of value this is, for messages: `a string`, `a list`, ...
    pub fn describe(&self) -> &'static str {
        self.kind.describe()
    }

    /// Converts to a `serde_json::Value` (spans are dropped; non-finite floats become null).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            ValueKind::Null => serde_json::Value::Null,
            ValueKind::Bool(b) => (*b).into(),
            ValueKind::Int(i) => (*i).into(),
            ValueKind::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            ValueKind::String(s) => s.clone().into(),
            ValueKind::List(items) => items.iter().map(Value::to_json).collect(),
            ValueKind::Map(map) => map
                .iter()
                .map(|(k, v)| (k.value.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

impl ValueKind {
    /// What kind of value this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Int(_) => "an integer",
            ValueKind::Float(_) => "a number",
            ValueKind::String(_) => "a string",
            ValueKind::List(_) => "a list",
            ValueKind::Map(_) => "a map",
        }
    }
}

impl fmt::Display for Value {
    /// Renders scalars as text and collections as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ValueKind::Null => f.write_str("null"),
            ValueKind::Bool(b) => write!(f, "{b}"),
            ValueKind::Int(i) => write!(f, "{i}"),
            ValueKind::Float(x) => write!(f, "{x:?}"),
            ValueKind::String(s) => f.write_str(s),
            ValueKind::List(_) | ValueKind::Map(_) => write!(f, "{}", self.to_json()),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.kind {
            ValueKind::Null => serializer.serialize_unit(),
            ValueKind::Bool(b) => serializer.serialize_bool(*b),
            ValueKind::Int(i) => serializer.serialize_i64(*i),
            ValueKind::Float(x) => serializer.serialize_f64(*x),
            ValueKind::String(s) => serializer.serialize_str(s),
            ValueKind::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            ValueKind::Map(map) => map.serialize(serializer),
        }
    }
}

impl Serialize for ValueMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            out.serialize_entry(&k.value, v)?;
        }
        out.end()
    }
}

/// Deserializes any self-describing format into a value tree with unknown spans. Later keys
/// replace earlier equal keys, as in most serde formats.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(KindVisitor)
            .map(Value::unspanned)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = ValueKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<ValueKind, E> {
        Ok(ValueKind::Null)
    }
    fn visit_none<E>(self) -> Result<ValueKind, E> {
        Ok(ValueKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ValueKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<ValueKind, E> {
        Ok(ValueKind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ValueKind, E> {
        Ok(ValueKind::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ValueKind, E> {
        Ok(i64::try_from(v).map_or(ValueKind::Float(v as f64), ValueKind::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ValueKind, E> {
        Ok(ValueKind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<ValueKind, E> {
        Ok(ValueKind::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<ValueKind, E> {
        Ok(ValueKind::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ValueKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(ValueKind::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ValueKind, A::Error> {
        let mut map = ValueMap::default();
        while let Some((key, value)) = access.next_entry::<Value, Value>()? {
            let key = match key.kind {
                ValueKind::String(s) => s,
                ValueKind::List(_) | ValueKind::Map(_) => {
                    return Err(de::Error::custom("mapping keys must be strings"));
                }
                _ => key.to_string(),
            };
            map.insert(key, value);
        }
        Ok(ValueKind::Map(map))
    }
}

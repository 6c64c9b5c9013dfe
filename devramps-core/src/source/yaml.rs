//! The one place that reads YAML text. Everything else works on the [`Value`] tree it returns.
//!
//! Parsing follows YAML 1.2 (core schema booleans only: `on`, `yes` and `no` are strings),
//! keeps the span of every key and value, and reports duplicate keys and non-string keys as
//! diagnostics rather than failing, so that one run reports every problem of a file. Parser
//! budgets (alias expansion, depth, event counts) bound the work done on hostile input.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options};

/// The deepest nesting accepted. A pipeline needs about ten levels; the limit keeps the
/// recursive reader well inside a 2 MiB thread stack even in unoptimized builds.
const MAX_DEPTH: usize = 32;

/// Mappings up to this many entries look for duplicate keys without a hash map.
const SMALL_MAP: usize = 16;

use super::diagnostic::{Code, Diagnostic, Sink};
use super::span::{Span, Spanned};
use super::value::{Value, ValueKind, ValueMap};

/// Parses YAML text into a [`Value`] tree. Syntax errors end parsing and are returned as one
/// `E0001` diagnostic; duplicate and non-string keys are pushed to `sink` and the first of
/// equal keys is kept.
pub(crate) fn parse(text: &str, sink: &mut Sink) -> Option<Value> {
    let mut options = Options::default();
    options.strict_booleans = true;
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    match serde_saphyr::from_str_with_options::<Node>(text, options) {
        Ok(node) => Some(convert(node, sink)),
        Err(error) => {
            sink.push(syntax_error(text, &error));
            None
        }
    }
}

fn syntax_error(text: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let span = error
        .location()
        .map(|loc| location_span(text, &loc))
        .unwrap_or(Span {
            line: 1,
            column: 1,
            offset: 0,
            len: 0,
        });
    let raw = error.without_snippet().to_string();
    let message = strip_location_prefix(raw.trim());
    let message = strip_location_suffix(&message);
    let span = if message.starts_with("unexpected character") {
        pinpoint_unprintable(text, span)
    } else {
        span
    };
    let (message, help) = explain(message);
    let mut d = Diagnostic::new(Code::YamlSyntax, span, format!("invalid YAML: {message}"));
    if let Some(help) = help {
        d = d.with_help(help);
    }
    d
}

/// The parser reports a character YAML does not allow at the start of the token that holds it
/// (`name: ab\u{1}cd` at the `a`); the diagnostic points at the character itself: the first
/// one on the rest of that line outside YAML's printable set. Left as it is when there is none.
fn pinpoint_unprintable(text: &str, span: Span) -> Span {
    let Some(rest) = text.get(span.offset..) else {
        return span;
    };
    let line = rest.split('\n').next().unwrap_or(rest);
    let Some((at, c)) = line.char_indices().find(|&(_, c)| !yaml_printable(c)) else {
        return span;
    };
    let column = span
        .column
        .saturating_add(u32::try_from(line[..at].chars().count()).unwrap_or(u32::MAX));
    Span {
        line: span.line,
        column,
        offset: span.offset + at,
        len: c.len_utf8(),
    }
}

/// YAML 1.2's `c-printable` set (§5.1): what may appear in a YAML stream.
fn yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        || c >= '\u{10000}'
}

/// Library wording turned into advice for people who write pipeline files.
fn explain(message: &str) -> (String, Option<&'static str>) {
    if message.starts_with("multiple YAML documents") {
        return (
            "a second YAML document starts here, but a pipeline file holds exactly one".to_owned(),
            Some(
                "remove the `---` separator and everything after it, or move it to its own pipeline folder",
            ),
        );
    }
    if message.starts_with("recursive references") {
        return (
            "an alias refers to the anchor that contains it".to_owned(),
            Some(
                "aliases (`*name`) may only refer to anchors (`&name`) defined before them, outside themselves",
            ),
        );
    }
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        return explain_budget(breach);
    }
    if message.contains("tabs disallowed") {
        return (
            message.to_owned(),
            Some("indent with spaces: YAML does not allow tabs for indentation"),
        );
    }
    if message.contains("unclosed quote") {
        return (message.to_owned(), Some("add the closing quote"));
    }
    (message.to_owned(), None)
}

/// A parser budget's breach (`Depth { depth: 33 }`, `Nodes { nodes: 250001 }`, ...) said as
/// which limit it is; the limits are fixed (docs/limits.md lists them).
fn explain_budget(breach: &str) -> (String, Option<&'static str>) {
    let kind = breach.split([' ', '{']).next().unwrap_or(breach);
    let (what, help) = match kind {
        "Depth" => (
            format!("the file is nested deeper than {MAX_DEPTH} levels (the limit on depth)"),
            "pipelines and scenarios need about ten levels: flatten the structure (the limit is fixed)",
        ),
        "Nodes" => (
            "the file has more than 250,000 YAML values (the limit on nodes)".to_owned(),
            "pipelines and scenarios need far fewer: split the file in several (the limit is fixed)",
        ),
        "Events" => (
            "the file has more than 1,000,000 YAML events (the limit on events)".to_owned(),
            "pipelines and scenarios need far fewer: split the file in several (the limit is fixed)",
        ),
        "Aliases" | "Anchors" => (
            format!(
                "the file uses more than 50,000 {} (the limit on {})",
                kind.to_lowercase(),
                kind.to_lowercase()
            ),
            "write the values out, or use fewer anchors and aliases (the limit is fixed)",
        ),
        "Documents" => (
            "the file holds more than 1,024 YAML documents (the limit on documents)".to_owned(),
            "a pipeline file holds exactly one document",
        ),
        _ => (
            format!("the file breaks a limit of the YAML reader ({breach})"),
            "docs/limits.md lists the limits; the file is far larger or deeper than a pipeline",
        ),
    };
    (what, Some(help))
}

/// serde-saphyr messages may end with ` at line L, column C`; the location is reported
/// separately, so the suffix is removed.
fn strip_location_suffix(message: &str) -> &str {
    if let Some(idx) = message.rfind(" at line ")
        && message[idx..].contains(", column ")
        && message[idx..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b" atlinecolumn,".contains(&b))
    {
        return &message[..idx];
    }
    message
}

/// serde-saphyr messages start with `error: line L column C: `; the location is reported
/// separately, so the prefix is removed.
fn strip_location_prefix(message: &str) -> String {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = message.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].to_owned();
    }
    message.to_owned()
}

fn location_span(text: &str, loc: &serde_saphyr::Location) -> Span {
    let line = u32::try_from(loc.line()).unwrap_or(u32::MAX).max(1);
    let column = u32::try_from(loc.column()).unwrap_or(u32::MAX).max(1);
    let span = loc.span();
    let (offset, len) = match (span.byte_offset(), span.byte_len()) {
        (Some(o), Some(l)) if (o as usize) <= text.len() => (o as usize, l as usize),
        _ => (offset_of(text, line, column), 0),
    };
    let len = len.min(text.len().saturating_sub(offset));
    Span {
        line,
        column,
        offset,
        len,
    }
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: u32, column: u32) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            return offset
                + l.char_indices()
                    .nth(column as usize - 1)
                    .map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    text.len()
}

/// A node as serde-saphyr hands it over: a value with its location.
type Node = serde_saphyr::Spanned<RawKind>;

enum RawKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawKind, E> {
        Ok(RawKind::Null)
    }
    fn visit_none<E>(self) -> Result<RawKind, E> {
        Ok(RawKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawKind, E> {
        Ok(RawKind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawKind, E> {
        Ok(RawKind::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawKind, E> {
        Ok(i64::try_from(v).map_or(RawKind::Float(v as f64), RawKind::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawKind, E> {
        Ok(i64::try_from(v).map_or(RawKind::Float(v as f64), RawKind::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawKind, E> {
        Ok(i64::try_from(v).map_or(RawKind::Float(v as f64), RawKind::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawKind, E> {
        Ok(RawKind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawKind, E> {
        Ok(RawKind::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawKind, E> {
        Ok(RawKind::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<RawKind, E> {
        Ok(RawKind::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(RawKind::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(RawKind::Map(entries))
    }
}

fn span_of(node: &Node) -> Span {
    let loc = &node.referenced;
    let span = loc.span();
    Span {
        line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
        column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        offset: span.byte_offset().unwrap_or(0) as usize,
        len: span.byte_len().unwrap_or(0) as usize,
    }
}

fn convert(node: Node, sink: &mut Sink) -> Value {
    let span = span_of(&node);
    let kind = match node.value {
        RawKind::Null => ValueKind::Null,
        RawKind::Bool(b) => ValueKind::Bool(b),
        RawKind::Int(i) => ValueKind::Int(i),
        RawKind::Float(x) => ValueKind::Float(x),
        RawKind::String(s) => ValueKind::String(s),
        RawKind::List(items) => {
            ValueKind::List(items.into_iter().map(|n| convert(n, sink)).collect())
        }
        RawKind::Map(entries) => {
            let mut map = ValueMap::default();
            map.entries.reserve(entries.len());
            // Where each key was first written. Small maps are searched directly; large ones
            // through a hash map, so duplicate detection stays linear in the number of keys.
            let mut seen: Option<std::collections::HashMap<String, u32>> = (entries.len()
                > SMALL_MAP)
                .then(|| std::collections::HashMap::with_capacity(entries.len()));
            for (key, value) in entries {
                let key_span = span_of(&key);
                let key_value = convert(key, sink);
                let key_text = match key_value.kind {
                    ValueKind::String(s) => s,
                    ValueKind::List(_) | ValueKind::Map(_) => {
                        sink.error(
                            Code::NonStringKey,
                            key_span,
                            format!(
                                "a mapping key must be a string, found {}",
                                key_value.describe()
                            ),
                        );
                        continue;
                    }
                    _ => key_value.to_string(),
                };
                let first_line = match &seen {
                    Some(seen) => seen.get(&key_text).copied(),
                    None => map.entry(&key_text).map(|(k, _)| k.span.line),
                };
                if let Some(first_line) = first_line {
                    sink.push(
                        Diagnostic::new(
                            Code::DuplicateKey,
                            key_span,
                            format!(
                                "duplicate key `{key_text}` (first written on line {first_line})"
                            ),
                        )
                        .with_help("remove one of the two entries; YAML keys must be unique"),
                    );
                    continue;
                }
                let value = convert(value, sink);
                if let Some(seen) = &mut seen {
                    seen.insert(key_text.clone(), key_span.line);
                }
                map.entries.push((Spanned::new(key_text, key_span), value));
            }
            ValueKind::Map(map)
        }
    };
    Value { kind, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_breaches_say_which_limit_they_are() {
        let (message, help) = explain("budget breached: Nodes { nodes: 250001 }");
        assert!(
            message.contains("250,000") && message.contains("limit on nodes"),
            "{message}"
        );
        assert!(help.is_some());
        let (message, _) = explain("budget breached: Depth { depth: 33 }");
        assert!(message.contains("deeper than 32 levels"), "{message}");
        let (message, _) = explain("budget breached: Aliases { aliases: 50001 }");
        assert!(message.contains("50,000 aliases"), "{message}");
        let (message, help) = explain("budget breached: Frobs { frobs: 1 }");
        assert!(message.contains("Frobs"), "{message}");
        assert!(help.is_some_and(|h| h.contains("docs/limits.md")));
    }

    #[test]
    fn keeps_spans_and_yaml_1_2_booleans() {
        let mut sink = Sink::default();
        let v = parse("a:\n  on: yes\n  n: 3\n", &mut sink).expect("parses");
        let a = v
            .as_map()
            .and_then(|m| m.get("a"))
            .and_then(Value::as_map)
            .expect("map");
        let (key, value) = a.entry("on").expect("`on` is a string key");
        assert_eq!((key.span.line, key.span.column), (2, 3));
        assert_eq!(value.as_str(), Some("yes"));
        assert!(sink.items.is_empty());
    }

    #[test]
    fn duplicate_keys_are_diagnostics_not_failures() {
        let mut sink = Sink::default();
        let v = parse("a: 1\nb: 2\na: 3\n", &mut sink).expect("parses");
        assert_eq!(v.as_map().map(ValueMap::len), Some(2));
        assert_eq!(sink.items.len(), 1);
        let d = &sink.items[0];
        assert_eq!(d.code, Code::DuplicateKey);
        assert_eq!((d.span.line, d.span.column), (3, 1));
    }

    #[test]
    fn an_unprintable_character_is_pointed_at_itself() {
        for (text, column, offset) in [
            ("version: x\nname: ab\u{1}cd\n", 9, 19),
            ("name: \"ab\u{7f}\"\n", 10, 9),
            ("name: \u{e9}\u{e9}\u{1}\n", 9, 10),
        ] {
            let mut sink = Sink::default();
            assert!(parse(text, &mut sink).is_none(), "{text:?} parsed");
            let d = &sink.items[0];
            assert!(d.message.contains("unexpected character"), "{}", d.message);
            assert_eq!(
                (d.span.column, d.span.offset),
                (column, offset),
                "{text:?}: {d:?}"
            );
            assert!(!yaml_printable(
                text[d.span.offset..].chars().next().expect("a character")
            ));
        }
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let mut sink = Sink::default();
        assert!(parse("a: [1, 2\nb: x\n", &mut sink).is_none());
        let d = &sink.items[0];
        assert_eq!(d.code, Code::YamlSyntax);
        assert!(d.span.line >= 1 && d.span.column >= 1, "{d:?}");
        assert!(!d.message.contains("line 2 column"), "{}", d.message);
    }
}

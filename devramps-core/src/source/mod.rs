//! The lowest floor: source text and what is read from it, for every YAML input of devramps.
//!
//! - [`Span`] and [`Spanned`]: where a value was read (line, column, byte range).
//! - [`Value`]: a YAML/JSON value tree in which every node keeps its span.
//! - [`parse_yaml`]: the one place that reads YAML text (the private `yaml` module).
//! - [`Diagnostic`]: what is wrong, where, and how to fix it, each with a stable [`Code`].
//!
//! This floor knows nothing of expressions or pipelines; `expr`, `pipeline` and the rest of
//! the crate build on it. Its types are also re-exported from
//! `devramps_core::pipeline`, where they used to live.

pub(crate) mod diagnostic;
pub(crate) mod span;
pub(crate) mod suggest;
pub(crate) mod value;
pub(crate) mod yaml;

pub use diagnostic::{Code, Diagnostic, Diagnostics, Severity, suggest};
pub use span::{Span, Spanned};
pub use value::{Value, ValueKind, ValueMap};

use diagnostic::Sink;

/// Reads YAML text into a spanned [`Value`] tree, as the pipeline parser does (YAML 1.2
/// booleans; duplicate and non-string keys are errors). For other YAML inputs of devramps, such
/// as simulation scenarios, so that their errors point at lines and columns too.
///
/// ```
/// let v = devramps_core::source::parse_yaml("a:\n  b: [1, 2]\n").unwrap();
/// let b = v.as_map().unwrap().get("a").unwrap().as_map().unwrap().get("b").unwrap();
/// assert_eq!((b.span.line, b.span.column), (2, 6));
/// assert!(devramps_core::source::parse_yaml("a: [").is_err());
/// ```
pub fn parse_yaml(text: &str) -> Result<Value, Diagnostics> {
    let mut sink = Sink::default();
    match yaml::parse(text, &mut sink) {
        Some(root) if !sink.items.iter().any(Diagnostic::is_error) => Ok(root),
        _ => Err(Diagnostics(sink.items)),
    }
}

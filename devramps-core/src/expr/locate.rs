//! Pointing at an expression inside the YAML file: from a byte range in a string value to a
//! line and column in the source.

use std::ops::Range;

use super::parse::expression_opens;
use crate::source::{Span, Value};

/// The source span of `range` (a byte range in the string `text`, the content of `value`).
/// Falls back to the value's own span when the source is unknown or the string was written
/// with escapes that move the expression.
pub(crate) fn locate(
    source: Option<&str>,
    value: &Value,
    text: &str,
    range: &Range<usize>,
) -> Span {
    let fallback = value.span;
    let Some(source) = source else {
        return fallback;
    };
    if !fallback.is_known() || fallback.offset > source.len() {
        return fallback;
    }
    let end = (fallback.offset + fallback.len.max(text.len())).min(source.len());
    let Some(scalar) = source.get(fallback.offset..end) else {
        return fallback;
    };
    let text_opens = expression_opens(text);
    let Some(k) = text_opens.iter().rposition(|&o| o <= range.start) else {
        return fallback;
    };
    let delta = range.start - text_opens[k];
    let source_opens = expression_opens(scalar);
    let Some(&src_open) = source_opens.get(k) else {
        return fallback;
    };
    // Use the exact position when the source spells the expression as the string does.
    let wanted = text.get(text_opens[k]..range.end).unwrap_or_default();
    let target = if scalar.get(src_open..src_open + wanted.len()) == Some(wanted) {
        src_open + delta
    } else {
        src_open
    };
    let before = &scalar[..target];
    let (line, column) = match before.rfind('\n') {
        Some(nl) => (
            fallback.line + before.matches('\n').count() as u32,
            before[nl + 1..].chars().count() as u32 + 1,
        ),
        None => (
            fallback.line,
            fallback.column + before.chars().count() as u32,
        ),
    };
    Span {
        line,
        column,
        offset: fallback.offset + target,
        len: (range.end - range.start).min(source.len() - (fallback.offset + target)),
    }
}

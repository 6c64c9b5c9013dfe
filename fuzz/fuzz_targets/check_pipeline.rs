//! Fuzz target: `devramps_core::plan::check` (structure and expressions) on arbitrary UTF-8 text.
//!
//! Besides not panicking, every result must hold the invariants of
//! `devramps-core/tests/no_panic.rs`: a rejected file has at least one error, and every
//! diagnostic has a 1-based line and column and a byte range inside the text that starts and
//! ends on character boundaries.
#![no_main]

use devramps_core::pipeline::Diagnostic;
use devramps_core::plan::check;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = check(text);
    let has_error = checked.diagnostics.iter().any(Diagnostic::is_error);
    assert_eq!(
        checked.definition.is_none(),
        has_error,
        "a definition must be returned exactly when there is no error: {:?}",
        checked.diagnostics
    );
    for d in &checked.diagnostics {
        let span = d.span;
        assert!(span.line >= 1 && span.column >= 1, "no position: {d:?}");
        let end = span
            .offset
            .checked_add(span.len)
            .expect("span end overflows");
        assert!(
            end <= text.len(),
            "span past the end ({} bytes): {d:?}",
            text.len()
        );
        assert!(
            text.is_char_boundary(span.offset),
            "span starts inside a character: {d:?}"
        );
        assert!(
            text.is_char_boundary(end),
            "span ends inside a character: {d:?}"
        );
    }
});

//! `devramps schema`, run as a user would.

mod common;

use std::path::Path;

use common::*;

#[test]
fn schema_prints_json_and_exits_0() {
    let out = devramps(Path::new("."), &["schema"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let schema = json(&out);
    assert!(!schema.is_null(), "the schema is empty");
    assert!(stdout(&out).ends_with("}\n"));
}

#[test]
fn help_documents_the_commands() {
    let out = devramps(Path::new("."), &["validate", "--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for needle in ["Exit codes", "--format", "E0501", "Examples:"] {
        assert!(help.contains(needle), "no `{needle}` in:\n{help}");
    }
    let out = devramps(Path::new("."), &[]);
    assert_eq!(code(&out), 2, "a command is required");
}

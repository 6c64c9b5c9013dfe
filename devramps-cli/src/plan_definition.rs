//! `devramps plan --base REV`: what changed in the pipeline's definition since the base commit,
//! classified as lifecycle rule L18 does (`NONE`, `ADDITIVE`, `DESTRUCTIVE`).
//!
//! In JSON it is the top-level key `definition_changes`:
//! `{base, classification, changes: [{subject, kind, name, renamed_from?, stage?, detail,
//! destructive}]}`, or `{base, error}` when the definition at the base is invalid. In text it
//! is a short section after the header:
//!
//! ```text
//! Definition changes since aea9484c9801: DESTRUCTIVE
//!   stage prod changed: region us-west-2 -> eu-west-1  [destructive]
//!   step deploy-api renamed: Deploy API (deploy) -> Deploy API (deploy-api)  [destructive]
//!   step bake changed: params changed: duration_minutes
//! ```

use std::fmt::Write as _;

use devramps_core::backend::SourceRepository;
use devramps_core::pipeline::{
    ChangeClass, DefinitionChange, DefinitionChanges, Diagnostics, PIPELINE_DIR, PIPELINE_FILE,
    PipelineDefinition, check, diff_definitions,
};
use devramps_git::GitRepository;
use serde::Serialize;

use crate::render::clean;

/// The `definition_changes` of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct DefinitionReport {
    /// The base commit (full id).
    pub(crate) base: String,
    /// How the update is classified; absent when the base definition is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) classification: Option<ChangeClass>,
    /// The changes; absent when the base definition is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) changes: Option<Vec<DefinitionChange>>,
    /// Why there is nothing to compare with: the base definition is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl DefinitionReport {
    /// The report of a comparison.
    fn compared(base: &str, changes: DefinitionChanges) -> Self {
        DefinitionReport {
            base: base.to_owned(),
            classification: Some(changes.classification()),
            changes: Some(changes.changes),
            error: None,
        }
    }

    /// The report when the base definition cannot be compared.
    fn failed(base: &str, error: String) -> Self {
        DefinitionReport {
            base: base.to_owned(),
            classification: None,
            changes: None,
            error: Some(error),
        }
    }
}

/// Compares the definition of pipeline `slug` at commit `base` with `new` (the definition at
/// the planned commit). `Err` is a message for exit code 2: the repository cannot be read.
pub(crate) async fn definition_changes(
    repo: &GitRepository,
    base: &str,
    slug: &str,
    new: &PipelineDefinition,
) -> Result<DefinitionReport, String> {
    let path = format!("{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}");
    let bytes = repo
        .read_file(base, &format!("/{path}"))
        .await
        .map_err(|e| format!("cannot read `{path}` at the base commit {base}: {e}"))?;
    let Some(bytes) = bytes else {
        let detail = format!("no `{path}` at the base commit {}", short(base));
        return Ok(DefinitionReport::compared(
            base,
            DefinitionChanges::pipeline_added(slug, detail),
        ));
    };
    let Ok(text) = String::from_utf8(bytes) else {
        let error = format!("`{path}` at the base commit {base} is not UTF-8");
        return Ok(DefinitionReport::failed(base, error));
    };
    let checked = check(&text);
    Ok(match checked.definition {
        Some(old) => DefinitionReport::compared(base, diff_definitions(&old, new)),
        None => {
            let problems = Diagnostics(checked.diagnostics);
            let error = format!("`{path}` at the base commit {base}: {problems}");
            DefinitionReport::failed(base, error)
        }
    })
}

/// The text section of a report, ending with a blank line.
pub(crate) fn render(out: &mut String, report: &DefinitionReport) {
    let base = short(&report.base);
    match (&report.classification, &report.changes, &report.error) {
        (Some(class), Some(changes), _) => {
            let _ = writeln!(out, "Definition changes since {base}: {class}");
            if changes.is_empty() {
                out.push_str("  (none: the same definition, at most formatted differently)\n");
            }
            for change in changes {
                let _ = write!(
                    out,
                    "  {} {} {}: {}",
                    change.subject,
                    clean(&change.name),
                    change.kind,
                    clean(&change.detail)
                );
                if change.destructive {
                    out.push_str("  [destructive]");
                }
                out.push('\n');
            }
        }
        _ => {
            let error = report
                .error
                .as_deref()
                .unwrap_or("no definition to compare");
            let _ = writeln!(out, "Definition changes since {base}: unknown");
            let _ = writeln!(out, "  {}", clean(error));
        }
    }
    out.push('\n');
}

/// The first 12 characters of a commit id.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use devramps_core::pipeline::{ChangeKind, ChangeSubject};

    fn change(kind: ChangeKind, detail: &str, destructive: bool) -> DefinitionChange {
        DefinitionChange {
            subject: ChangeSubject::Stage,
            kind,
            name: "prod".to_owned(),
            renamed_from: None,
            stage: None,
            detail: detail.to_owned(),
            destructive,
        }
    }

    #[test]
    fn the_text_section_marks_destructive_changes() {
        let report = DefinitionReport::compared(
            "0123456789abcdef",
            DefinitionChanges {
                changes: vec![
                    change(ChangeKind::Changed, "region us-west-2 -> eu-west-1", true),
                    change(ChangeKind::Changed, "vars changed: replicas", false),
                ],
            },
        );
        let mut out = String::new();
        render(&mut out, &report);
        assert_eq!(
            out,
            "Definition changes since 0123456789ab: DESTRUCTIVE\n  \
             stage prod changed: region us-west-2 -> eu-west-1  [destructive]\n  \
             stage prod changed: vars changed: replicas\n\n"
        );
    }

    #[test]
    fn an_invalid_base_is_reported_instead_of_changes() {
        let report = DefinitionReport::failed("abc", "bad\u{1b}[31m".to_owned());
        let mut out = String::new();
        render(&mut out, &report);
        assert_eq!(
            out,
            "Definition changes since abc: unknown\n  bad\\u{1b}[31m\n\n"
        );
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"base": "abc", "error": "bad\u{1b}[31m"})
        );
    }
}

//! The outcome of checking pipelines, and its JSON form (a stable interface, `cli.md`).

use devramps_core::pipeline::{Code, Diagnostic, Severity};
use serde::Serialize;

/// Everything found in one pipeline file.
#[derive(Clone, Debug)]
pub(crate) struct PipelineReport {
    /// The path as shown to the user.
    pub(crate) path: String,
    /// The pipeline's slug.
    pub(crate) slug: String,
    /// The file's text, for showing source lines; `None` when it could not be read. Text that is
    /// not UTF-8 is kept with the bad bytes replaced, so the bad spot can still be shown.
    pub(crate) source: Option<String>,
    /// Every problem, file-level ones (slug, reading) first, then in source order.
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl PipelineReport {
    /// Whether the pipeline has no error (warnings allowed).
    pub(crate) fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// How many diagnostics have `severity`.
    pub(crate) fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// Whether the file could not be read (`E0502`): missing permissions, not UTF-8, ...
    pub(crate) fn is_unreadable(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.code == Code::UnreadableFile)
    }
}

/// Where a diagnostic is reported: its 1-based line and column, or `1:1` for problems of the
/// whole file (slug, reading), whose span is unknown.
pub(crate) fn location(diagnostic: &Diagnostic) -> (u32, u32) {
    let span = diagnostic.span;
    if span.is_known() {
        (span.line, span.column.max(1))
    } else {
        (1, 1)
    }
}

/// The JSON report: `{"pipelines": [...]}`.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    /// One entry per pipeline, in the order checked.
    pipelines: Vec<JsonPipeline<'a>>,
}

/// One pipeline in the JSON report (keys in the order of `cli.md`).
#[derive(Debug, Serialize)]
struct JsonPipeline<'a> {
    /// The path as shown to the user.
    path: &'a str,
    /// The slug.
    slug: &'a str,
    /// Whether the pipeline has no error.
    valid: bool,
    /// Every problem.
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

/// One diagnostic in the JSON report (keys in the order of `cli.md`; `help` only when known).
#[derive(Debug, Serialize)]
pub(crate) struct JsonDiagnostic<'a> {
    /// `error` or `warning`.
    severity: Severity,
    /// The stable code, e.g. `E0104`.
    code: Code,
    /// What is wrong.
    message: &'a str,
    /// The file, as in the pipeline entry.
    path: &'a str,
    /// 1-based line.
    line: u32,
    /// 1-based column, in characters.
    column: u32,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
}

/// The diagnostics of `report` as they appear in JSON reports.
pub(crate) fn json_diagnostics(report: &PipelineReport) -> Vec<JsonDiagnostic<'_>> {
    report
        .diagnostics
        .iter()
        .map(|d| {
            let (line, column) = location(d);
            JsonDiagnostic {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                path: &report.path,
                line,
                column,
                help: d.help.as_deref(),
            }
        })
        .collect()
}

/// The JSON report of `reports`, pretty-printed, ending with a newline.
pub(crate) fn to_json(reports: &[PipelineReport]) -> String {
    let report = JsonReport {
        pipelines: reports
            .iter()
            .map(|r| JsonPipeline {
                path: &r.path,
                slug: &r.slug,
                valid: r.is_valid(),
                diagnostics: json_diagnostics(r),
            })
            .collect(),
    };
    // Serializing plain structs of strings, numbers and bools cannot fail; fall back to an
    // empty report rather than panic.
    let mut text = serde_json::to_string_pretty(&report)
        .unwrap_or_else(|_| String::from("{\"pipelines\":[]}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use devramps_core::pipeline::Span;

    use super::*;

    #[test]
    fn json_keys_follow_the_contract_and_help_is_omitted_when_absent() {
        let span = Span {
            line: 12,
            column: 13,
            offset: 200,
            len: 6,
        };
        let report = PipelineReport {
            path: ".devramps/api/pipeline.yaml".into(),
            slug: "api".into(),
            source: None,
            diagnostics: vec![
                Diagnostic::new(Code::InvalidStageName, span, "bad").with_help("fix"),
                Diagnostic::new(Code::InvalidSlug, Span::UNKNOWN, "slug"),
            ],
        };
        let json = to_json(&[report]);
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let pipeline = &value["pipelines"][0];
        let keys: Vec<&str> = pipeline
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["path", "slug", "valid", "diagnostics"]);
        let first = pipeline["diagnostics"][0].as_object().expect("object");
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "severity", "code", "message", "path", "line", "column", "help"
            ]
        );
        assert_eq!(first["code"], "E0104");
        assert_eq!(first["severity"], "error");
        let second = &pipeline["diagnostics"][1];
        assert!(second.get("help").is_none());
        assert_eq!(
            (second["line"].as_u64(), second["column"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(pipeline["valid"], false);
    }
}

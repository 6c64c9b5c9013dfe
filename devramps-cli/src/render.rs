//! The text report: one block per problem, rustc style, then a verdict line per pipeline.
//!
//! ```text
//! .devramps/api/pipeline.yaml:12:13: error[E0104]: stage name `Prod_1` is invalid
//!    |
//! 12 |     - name: Prod_1
//!    |             ^^^^^^
//!    |
//!    = help: stage names use lowercase letters, digits and hyphens
//!
//! ✗ .devramps/api/pipeline.yaml (api): 1 error
//! ```
//!
//! The source line and caret are drawn by `annotate-snippets`. Colours are used only when asked
//! (stdout is a terminal); otherwise the output is plain text.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use annotate_snippets::renderer::{
    AnsiColor, DEFAULT_EMPHASIS_STYLE, DEFAULT_ERROR_STYLE, DEFAULT_HELP_STYLE,
    DEFAULT_WARNING_STYLE, Effects, Style,
};
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use devramps_core::pipeline::{Diagnostic, Severity};

use crate::report::{PipelineReport, location};

/// The style of the ✓ of a valid pipeline.
const VALID_STYLE: Style = AnsiColor::BrightGreen.on_default().effects(Effects::BOLD);

/// The whole text report of `reports`: every diagnostic block, a blank line, then one verdict
/// line per pipeline.
pub(crate) fn text(reports: &[PipelineReport], color: bool) -> String {
    let mut out: String = reports.iter().map(|r| blocks(r, color)).collect();
    for report in reports {
        verdict(&mut out, report, color);
    }
    out
}

/// The diagnostic blocks of one pipeline, without its verdict line.
pub(crate) fn blocks(report: &PipelineReport, color: bool) -> String {
    let mut out = String::new();
    // The file's lines, split once: a diagnostic's source line is then found at once, not by
    // reading the file from its start (n diagnostics would cost n times the file).
    let lines: Vec<&str> = report
        .source
        .as_deref()
        .map(|source| source.lines().collect())
        .unwrap_or_default();
    for diagnostic in &report.diagnostics {
        block(&mut out, report, &lines, diagnostic, color);
        out.push('\n');
    }
    out
}

/// Appends one problem: the `path:line:column: error[CODE]: message` header, the source line
/// (from `lines`, the lines of the report's source) with a caret when the location is known,
/// and the help line when there is one.
fn block(
    out: &mut String,
    report: &PipelineReport,
    lines: &[&str],
    diagnostic: &Diagnostic,
    color: bool,
) {
    let (line, column) = location(diagnostic);
    let (name, level_style, level) = match diagnostic.severity {
        Severity::Error => ("error", DEFAULT_ERROR_STYLE, Level::ERROR),
        Severity::Warning => ("warning", DEFAULT_WARNING_STYLE, Level::WARNING),
    };
    let message = clean(&diagnostic.message);
    let path = clean(&report.path);
    let code = diagnostic.code;
    if color {
        let bold = DEFAULT_EMPHASIS_STYLE;
        let _ = writeln!(
            out,
            "{bold}{path}:{line}:{column}:{bold:#} {level_style}{name}[{code}]{level_style:#}{bold}: {message}{bold:#}"
        );
    } else {
        let _ = writeln!(out, "{path}:{line}:{column}: {name}[{code}]: {message}");
    }

    let help = diagnostic.help.as_deref().map(clean);
    let snippet = diagnostic
        .span
        .is_known()
        .then_some(report.source.as_deref())
        .flatten()
        .and_then(|_| source_line(lines, line, column, diagnostic.span.len));
    match snippet {
        Some((text, range)) => {
            let mut group = Group::with_level(level).element(
                Snippet::source(text)
                    .line_start(usize::try_from(line).unwrap_or(usize::MAX))
                    .annotation(AnnotationKind::Primary.span(range)),
            );
            if let Some(help) = &help {
                group = group.element(Level::HELP.message(help.as_ref()));
            }
            let renderer = if color {
                Renderer::styled()
            } else {
                Renderer::plain()
            };
            let _ = writeln!(out, "{}", renderer.render(&[group]));
        }
        None => {
            if let Some(help) = help {
                if color {
                    let _ = writeln!(
                        out,
                        "  = {DEFAULT_HELP_STYLE}help{DEFAULT_HELP_STYLE:#}: {help}"
                    );
                } else {
                    let _ = writeln!(out, "  = help: {help}");
                }
            }
        }
    }
}

/// Appends the verdict line of one pipeline: `✓ path (slug): valid` or
/// `✗ path (slug): 3 errors, 1 warning`.
fn verdict(out: &mut String, report: &PipelineReport, color: bool) {
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    let (mark, style) = if report.is_valid() {
        ("✓", VALID_STYLE)
    } else {
        ("✗", DEFAULT_ERROR_STYLE)
    };
    let mut counts = Vec::new();
    if report.is_valid() {
        counts.push("valid".to_owned());
    } else {
        counts.push(plural(errors, "error"));
    }
    if warnings > 0 {
        counts.push(plural(warnings, "warning"));
    }
    let (path, slug, counts) = (clean(&report.path), clean(&report.slug), counts.join(", "));
    if color {
        let _ = writeln!(out, "{style}{mark}{style:#} {path} ({slug}): {counts}");
    } else {
        let _ = writeln!(out, "{mark} {path} ({slug}): {counts}");
    }
}

/// `1 error`, `3 errors`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Line `line` (1-based) of a source whose lines (as `str::lines` splits them) are `lines`,
/// and the byte range within it to underline: from `column` (1-based, in characters) for `len`
/// bytes, cut at the end of the line (a value spanning several lines is underlined on its
/// first). `None` when the line does not exist.
fn source_line<'a>(
    lines: &[&'a str],
    line: u32,
    column: u32,
    len: usize,
) -> Option<(&'a str, Range<usize>)> {
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let text = *lines.get(index)?;
    let skip = usize::try_from(column).ok()?.saturating_sub(1);
    let start = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
    let mut end = start.saturating_add(len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    Some((text, start..end))
}

/// `text` with control characters escaped, so that file contents quoted in a message cannot
/// move the cursor or change colours of the terminal.
pub(crate) fn clean(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_line_clamps_to_the_line_and_to_char_boundaries() {
        let source: Vec<&str> = "a: 1\nname: Prödúct\n".lines().collect();
        let source = source.as_slice();
        let (text, range) = source_line(source, 2, 7, 3).expect("line 2");
        assert_eq!(text, "name: Prödúct");
        assert_eq!(&text[range], "Pr\u{f6}");
        let (_, range) = source_line(source, 2, 7, 1000).expect("line 2");
        assert_eq!(range.end, "name: Prödúct".len());
        let (_, range) = source_line(source, 1, 99, 2).expect("line 1");
        assert_eq!(range, 4..4);
        assert!(source_line(source, 3, 1, 1).is_none());
        assert!(source_line(source, 0, 1, 1).is_none());
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert!(matches!(clean("plain"), Cow::Borrowed("plain")));
    }
}

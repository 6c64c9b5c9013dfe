//! `devramps validate`: finds pipeline definitions, checks them and reports every problem.

use std::path::{Path, PathBuf};

use clap::Args;
use devramps_core::pipeline::{Code, Diagnostic, Span, validate_slug};
use devramps_core::plan::check;
use devramps_local::steps::StepCatalog;

use crate::output::{Format, Status, emit, usage_error, use_color};
use crate::report::{PipelineReport, to_json};
use crate::targets::{Target, resolve};

/// The long description of `devramps validate` (`--help`).
pub(crate) const LONG_ABOUT: &str = "Check pipeline definitions without running anything.\n\n\
        Each PATH is a pipeline file or a directory; a directory is searched for \
        `.devramps/*/pipeline.yaml` (folders without a pipeline.yaml are skipped). Every \
        problem of every file is reported, not just the first.\n\n\
        The slug of a pipeline is its folder name under `.devramps/`, which must be 1-63 \
        lowercase letters, digits, `-` or `_`, starting and ending with a letter or digit \
        (E0501). A file given directly elsewhere gets a slug for the report only (not \
        checked): the folder name for a `pipeline.yaml`, else the file name without \
        extension (`api.yaml` -> `api`), else `app`.\n\n\
        Text (the default) shows each problem as `path:line:column: error[CODE]: message`, the \
        source line with a caret and a help line where a fix is known, then one verdict line \
        per pipeline; colours only when stdout is a terminal and NO_COLOR is unset. JSON is \
        `{\"pipelines\": [{path, slug, valid, diagnostics: [{severity, code, message, path, \
        line, column, help?}]}]}`. Problems of a whole file (slug, reading) are reported at \
        line 1, column 1.\n\n\
        With --step-registry DIR (repeatable), each registry's SYNTHESIZE-METADATA gives the \
        parameter JSON Schema of its CUSTOM:* step types: params that break it are E0220 at the \
        offending value (or key), naming the parameter; a CUSTOM:* type that no given registry \
        offers is E0221. Values holding a `${{ }}` expression are not judged (known only when \
        deploying).\n\n\
        Exit codes: 0 every pipeline is valid (warnings allowed); 1 some pipeline has an \
        error; 2 a PATH does not exist or holds no pipeline (nothing is checked then, the \
        reasons go to stderr), a pipeline file cannot be read (E0502), a step registry cannot be \
        read (its problem goes to stderr), or a usage error.";

/// The examples shown after the help of `devramps validate`.
pub(crate) const AFTER_HELP: &str = "Examples:\n  \
        devramps validate                              # ./.devramps/*/pipeline.yaml\n  \
        devramps validate services/api services/web    # two repositories\n  \
        devramps validate .devramps/api/pipeline.yaml  # one file\n  \
        devramps validate --step-registry ../step-registry  # check CUSTOM:* params too\n  \
        devramps validate --format json | jq '.pipelines[] | select(.valid | not) | .slug'";

/// Arguments of `devramps validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Pipeline files, or directories searched for `.devramps/*/pipeline.yaml`.
    #[arg(value_name = "PATH", default_value = ".")]
    pub(crate) paths: Vec<PathBuf>,

    /// Report format: `text` for people (source lines and carets, colours on a terminal),
    /// `json` for tools (a stable interface).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    #[arg(long = "step-registry", value_name = "DIR", help = crate::custom_params::HELP)]
    pub(crate) step_registries: Vec<PathBuf>,
}

/// Runs `devramps validate`.
pub(crate) fn run(args: &ValidateArgs) -> Status {
    let targets = match resolve(&args.paths) {
        Ok(targets) => targets,
        Err(problems) => {
            for problem in &problems {
                usage_error(problem);
            }
            return Status::Usage;
        }
    };
    let catalog = match crate::custom_params::load(&args.step_registries) {
        Ok(catalog) => catalog,
        Err(message) => {
            usage_error(&message);
            return Status::Usage;
        }
    };
    let reports: Vec<PipelineReport> = targets
        .iter()
        .map(|t| check_target(t, catalog.as_ref()))
        .collect();
    let status = status_of(&reports);
    let text = match args.format {
        Format::Text => crate::render::text(&reports, use_color()),
        Format::Json => to_json(&reports),
    };
    emit(&text, status)
}

/// The exit status for `reports`: an unreadable file is unreadable input (2), any other error
/// an invalid pipeline (1).
fn status_of(reports: &[PipelineReport]) -> Status {
    if reports.iter().any(PipelineReport::is_unreadable) {
        Status::Usage
    } else if reports.iter().all(PipelineReport::is_valid) {
        Status::Success
    } else {
        Status::Invalid
    }
}

/// Reads and checks one pipeline file, its `CUSTOM:*` params against `catalog` when given.
/// Never fails: problems become diagnostics.
pub(crate) fn check_target(target: &Target, catalog: Option<&StepCatalog>) -> PipelineReport {
    let mut diagnostics = Vec::new();
    if target.slug_is_real
        && let Err(diagnostic) = validate_slug(&target.slug)
    {
        diagnostics.push(diagnostic);
    }
    let source = match read(&target.path) {
        Ok(text) => {
            diagnostics.extend(check(&text).diagnostics);
            if let Some(catalog) = catalog {
                diagnostics.extend(crate::custom_params::check(&text, catalog));
                diagnostics.sort_by_key(|d| (d.span.offset, d.span.line, d.span.column));
            }
            Some(text)
        }
        Err(Unreadable { diagnostic, lossy }) => {
            diagnostics.push(diagnostic);
            lossy
        }
    };
    PipelineReport {
        path: target.display.clone(),
        slug: target.slug.clone(),
        source,
        diagnostics,
    }
}

/// A file that could not be read as text.
struct Unreadable {
    /// The `E0502` diagnostic.
    diagnostic: Diagnostic,
    /// The text with bad bytes replaced, when the file was read but is not UTF-8.
    lossy: Option<String>,
}

/// Reads a pipeline file as UTF-8 text.
fn read(path: &Path) -> Result<String, Unreadable> {
    let bytes = devramps_sim::files::read_bounded(path).map_err(|e| Unreadable {
        diagnostic: Diagnostic::new(Code::UnreadableFile, Span::UNKNOWN, e.to_string())
            .with_help(e.help()),
        lossy: None,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let lossy = String::from_utf8_lossy(bytes).into_owned();
        let span = position(bytes, valid);
        Unreadable {
            diagnostic: Diagnostic::new(
                Code::UnreadableFile,
                span,
                format!(
                    "the file is not UTF-8 text (invalid byte 0x{:02X} at line {}, column {})",
                    bytes.get(valid).copied().unwrap_or(0),
                    span.line,
                    span.column
                ),
            )
            .with_help("save the file as UTF-8"),
            lossy: Some(lossy),
        }
    })
}

/// The span of the byte at `offset`, where everything before it is valid UTF-8.
fn position(bytes: &[u8], offset: usize) -> Span {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before
        .get(line_start..)
        .and_then(|rest| std::str::from_utf8(rest).ok())
        .map_or(1, |rest| rest.chars().count() + 1);
    Span {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        offset,
        len: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters() {
        let span = position("ab\ncé\u{0}".as_bytes(), 6);
        assert_eq!((span.line, span.column), (2, 3));
        let span = position(b"\xff", 0);
        assert_eq!((span.line, span.column), (1, 1));
    }
}

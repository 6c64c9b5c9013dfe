//! The invalid-pipeline corpus: every file under `tests/data/invalid/` is a broken
//! `pipeline.yaml` that states, in its leading comment lines, exactly what the parser must say.
//!
//! Expectation lines (only in the comment block at the top of a file):
//!
//! - `# expect: E0104 9:13` — one diagnostic with that code at that 1-based line and column.
//!   The file's diagnostics must match the expect lines exactly, as a multiset of
//!   (code, line, column): nothing missing, nothing extra, warnings included.
//! - `# message: text` — some diagnostic's message contains `text`.
//! - `# help: text` — some diagnostic's help contains `text`.
//!
//! On a mismatch the test prints what the parser actually reported, in the same notation, so a
//! new file can be written by running the test once and checking the output by hand.
//!
//! This file also checks the code coverage of the corpus, pipeline slugs (`E0501`, which is not
//! about file contents) and that `docs/diagnostics.md` documents every code.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use devramps_core::pipeline::{Code, Diagnostic, Severity, discover, validate_slug};
use devramps_core::plan::check;

/// The fewest files the corpus may hold; fewer means files were lost.
const MIN_FILES: usize = 45;
/// The fewest files that combine several problems.
const MIN_COMBINATIONS: usize = 8;

/// One `(code, line, column)` triple.
type Site = (String, u32, u32);

/// What a corpus file expects.
#[derive(Debug, Default)]
struct Expectations {
    sites: Vec<Site>,
    messages: Vec<String>,
    helps: Vec<String>,
}

impl Expectations {
    fn has_error(&self) -> bool {
        self.sites.iter().any(|(code, _, _)| code.starts_with('E'))
    }

    /// Several problems in one file: at least three diagnostics with at least two codes.
    fn is_combination(&self) -> bool {
        let codes: BTreeSet<&str> = self.sites.iter().map(|(c, _, _)| c.as_str()).collect();
        self.sites.len() >= 3 && codes.len() >= 2
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/invalid")
}

/// The corpus files, sorted by name.
fn corpus() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Reads the expectation lines of the leading comment block.
fn expectations(text: &str) -> Result<Expectations, String> {
    let mut out = Expectations::default();
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        if let Some(rest) = comment.strip_prefix("expect:") {
            let mut parts = rest.split_whitespace();
            let (Some(code), Some(at), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("malformed expect line `{line}`"));
            };
            let (l, c) = at
                .split_once(':')
                .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
                .ok_or_else(|| format!("malformed location in `{line}`"))?;
            if !Code::ALL.iter().any(|k| k.as_str() == code) {
                return Err(format!("unknown code in `{line}`"));
            }
            out.sites.push((code.to_owned(), l, c));
        } else if let Some(rest) = comment.strip_prefix("message:") {
            out.messages.push(rest.trim().to_owned());
        } else if let Some(rest) = comment.strip_prefix("help:") {
            out.helps.push(rest.trim().to_owned());
        }
    }
    Ok(out)
}

fn site(d: &Diagnostic) -> Site {
    (d.code.as_str().to_owned(), d.span.line, d.span.column)
}

/// The diagnostics in expectation notation, with their messages, for failure output.
fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let _ = writeln!(
            out,
            "    # expect: {} {}:{}\n    #   message: {}",
            d.code, d.span.line, d.span.column, d.message
        );
        if let Some(help) = &d.help {
            let _ = writeln!(out, "    #   help: {help}");
        }
    }
    out
}

/// Checks one file; `Err` describes every way it differs from its expectations.
fn check_file(path: &Path) -> Result<Expectations, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("unreadable: {e}"))?;
    let expected = expectations(&text)?;
    let checked = check(&text);
    let mut problems = Vec::new();
    if expected.sites.is_empty() {
        problems.push("no `# expect:` line".to_owned());
    }
    if !expected.has_error() {
        problems.push("an invalid pipeline must expect at least one error (E code)".to_owned());
    }

    let mut want = expected.sites.clone();
    let mut got: Vec<Site> = checked.diagnostics.iter().map(site).collect();
    want.sort();
    got.sort();
    if want != got {
        let missing: Vec<_> = want.iter().filter(|s| !got.contains(s)).collect();
        let extra: Vec<_> = got.iter().filter(|s| !want.contains(s)).collect();
        problems.push(format!(
            "diagnostics differ (missing {missing:?}, unexpected {extra:?}, or different counts)"
        ));
    }
    if checked.is_valid() == expected.has_error() {
        problems.push(format!(
            "is_valid() is {} but the file expects {}",
            checked.is_valid(),
            if expected.has_error() {
                "errors"
            } else {
                "only warnings"
            }
        ));
    }
    if expected.has_error() && checked.definition.is_some() {
        problems.push("a definition was returned despite errors".to_owned());
    }
    for d in &checked.diagnostics {
        if d.severity != d.code.severity() {
            problems.push(format!("{} has severity {:?}", d.code, d.severity));
        }
        if !d.span.is_known() {
            problems.push(format!("{} has no location", d.code));
        }
    }
    for m in &expected.messages {
        if !checked.diagnostics.iter().any(|d| d.message.contains(m)) {
            problems.push(format!("no message contains `{m}`"));
        }
    }
    for h in &expected.helps {
        let found = checked
            .diagnostics
            .iter()
            .any(|d| d.help.as_deref().is_some_and(|help| help.contains(h)));
        if !found {
            problems.push(format!("no help contains `{h}`"));
        }
    }
    if problems.is_empty() {
        Ok(expected)
    } else {
        Err(format!(
            "{}\n  parser reported:\n{}",
            problems.join("\n  "),
            render(&checked.diagnostics)
        ))
    }
}

#[test]
fn every_corpus_file_gets_exactly_its_expected_diagnostics() {
    let files = corpus();
    assert!(
        files.len() >= MIN_FILES,
        "{} holds {} files, expected at least {MIN_FILES}",
        corpus_dir().display(),
        files.len()
    );
    let mut failures = String::new();
    let mut combinations = 0;
    for path in &files {
        let name = path.file_name().expect("file name").to_string_lossy();
        match check_file(path) {
            Ok(expected) => combinations += usize::from(expected.is_combination()),
            Err(why) => {
                let _ = writeln!(failures, "--- {name}: {why}");
            }
        }
    }
    assert!(failures.is_empty(), "corpus mismatches:\n{failures}");
    assert!(
        combinations >= MIN_COMBINATIONS,
        "only {combinations} files combine several problems, expected at least {MIN_COMBINATIONS}"
    );
}

#[test]
fn corpus_covers_every_code_about_file_contents() {
    let mut seen = BTreeSet::new();
    for path in corpus() {
        let text = std::fs::read_to_string(&path).expect("corpus file is readable");
        let expected = expectations(&text).expect("well-formed expectations");
        seen.extend(expected.sites.into_iter().map(|(code, _, _)| code));
    }
    // E0501 (slug) is about folder names, E0502 (unreadable file) about I/O; the `${{ }}`
    // expression codes (E06xx) belong to the expression language and are tested with it; E0220
    // and E0221 need a step registry and are tested with the CLI's `--step-registry`.
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| {
            !matches!(
                c,
                Code::InvalidSlug
                    | Code::UnreadableFile
                    | Code::CustomParamInvalid
                    | Code::UnknownCustomStepType
            )
        })
        .map(|c| c.as_str())
        .filter(|c| !c.starts_with("E06"))
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "no corpus file expects {missing:?}");
}

#[test]
fn corpus_files_are_numbered_and_named() {
    for path in corpus() {
        let name = path
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let (number, rest) = name.split_once('-').unwrap_or(("", ""));
        assert!(
            number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty(),
            "corpus files are named NN-short-name.yaml, found {name}.yaml"
        );
    }
}

#[test]
fn invalid_slugs_are_e0501() {
    for bad in [
        "",
        "My API",
        "Api",
        "-api",
        "api-",
        "_api",
        "api/web",
        "api.web",
        "ápi",
        &"a".repeat(64),
    ] {
        let d = validate_slug(bad).expect_err(bad);
        assert_eq!(d.code, Code::InvalidSlug, "{bad:?}");
        assert_eq!(d.severity, Severity::Error);
        assert!(d.message.contains(bad), "{bad:?}: {}", d.message);
    }
    for good in ["api", "web-2", "my_service", "a", "0", &"a".repeat(63)] {
        assert!(
            validate_slug(good).is_ok(),
            "{good:?} should be a valid slug"
        );
    }
}

#[test]
fn discovered_folders_with_bad_names_fail_slug_validation() {
    let repo = tempfile::tempdir().expect("temp dir");
    for slug in ["api", "My Service"] {
        let dir = repo.path().join(".devramps").join(slug);
        std::fs::create_dir_all(&dir).expect("create pipeline folder");
        std::fs::write(dir.join("pipeline.yaml"), "version: \"1.0.0\"\n").expect("write");
    }
    let found = discover(repo.path()).expect("discover");
    let verdicts: Vec<(&str, Option<Code>)> = found
        .iter()
        .map(|p| {
            (
                p.slug.as_str(),
                validate_slug(&p.slug).err().map(|d| d.code),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [("My Service", Some(Code::InvalidSlug)), ("api", None)]
    );
}

#[test]
fn diagnostics_doc_has_a_section_per_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    // Each section: its heading line and the text up to the next heading.
    let sections: Vec<(&str, &str)> = doc
        .split("\n## ")
        .skip(1)
        .map(|s| s.split_once('\n').unwrap_or((s, "")))
        .collect();
    let mut problems = Vec::new();
    for code in Code::ALL {
        let Some((heading, body)) = sections.iter().find(|(h, _)| h.starts_with(code.as_str()))
        else {
            problems.push(format!("no `## {code}` heading"));
            continue;
        };
        if !heading
            .to_lowercase()
            .contains(&code.title().to_lowercase())
        {
            problems.push(format!(
                "heading `{heading}` lacks the title `{}`",
                code.title()
            ));
        }
        let severity = match code.severity() {
            Severity::Error => "**Severity:** error",
            Severity::Warning => "**Severity:** warning",
        };
        if !body.contains(severity) {
            problems.push(format!("section {code} does not say `{severity}`"));
        }
        for part in ["**When:**", "**Example:**", "**Message:**", "**Fix:**"] {
            if !body.contains(part) {
                problems.push(format!("section {code} has no {part}"));
            }
        }
    }
    assert!(problems.is_empty(), "docs/diagnostics.md: {problems:#?}");
}

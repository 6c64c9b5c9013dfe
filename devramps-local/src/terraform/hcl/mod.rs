//! A small scanner of Terraform's native syntax (HCL), enough to find what a root declares
//! before Terraform runs: its `variable "x"` blocks (with or without a `default`) and the
//! `backend "..."` blocks of its `terraform` blocks (empty or not).
//!
//! It knows HCL's lexical structure, so that braces, `=` and keywords inside strings (with
//! nested `${...}` interpolations and `%{...}` directives), heredocs and comments (`#`, `//`,
//! `/* */`) are not mistaken for structure; it does not evaluate anything. Bad input never
//! panics: it is scanned as far as it makes sense and Terraform reports the syntax errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The largest `.tf` file read.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// One `variable` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Variable {
    /// Its name (the label).
    pub(crate) name: String,
    /// Whether its body sets `default`.
    pub(crate) has_default: bool,
}

/// One `backend` block of a `terraform` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Backend {
    /// Its type (the label): `s3`, `local`, ...
    pub(crate) kind: String,
    /// Whether its body is empty (comments aside).
    pub(crate) empty: bool,
}

/// What one file declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileScan {
    /// The `variable` blocks, in order.
    pub(crate) variables: Vec<Variable>,
    /// The `backend` blocks, in order.
    pub(crate) backends: Vec<Backend>,
}

/// What a root module (its folder's `.tf` files) declares.
#[derive(Clone, Debug, Default)]
pub(crate) struct RootScan {
    /// Variables by name: whether each has a default.
    pub(crate) variables: BTreeMap<String, bool>,
    /// The backends.
    pub(crate) backends: Vec<Backend>,
}

impl RootScan {
    /// Reads the `.tf` files of the folder `dir` (not its subfolders: those are other modules).
    pub(crate) fn read(dir: &Path) -> std::io::Result<RootScan> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tf") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut root = RootScan::default();
        for path in files {
            let (bytes, more) = crate::steps::process::read_head(&path, MAX_FILE_BYTES)?;
            if more {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "`{}` is larger than {MAX_FILE_BYTES} bytes, the most read",
                        path.display()
                    ),
                ));
            }
            let scan = scan(&String::from_utf8_lossy(&bytes));
            for v in scan.variables {
                *root.variables.entry(v.name).or_default() |= v.has_default;
            }
            root.backends.extend(scan.backends);
        }
        Ok(root)
    }

    /// Whether the root declares an empty `backend "s3" {}`; the error says what is wrong.
    pub(crate) fn check_backend(&self, source: &str) -> Result<(), String> {
        let must = format!(
            "the Terraform root `{source}` must declare an empty `backend \"s3\" {{}}` block \
             (DevRamps configures the state)"
        );
        match self.backends.iter().find(|b| b.kind == "s3") {
            Some(b) if b.empty => Ok(()),
            Some(_) => Err(format!("{must}; its `backend \"s3\"` block has settings")),
            None => match self.backends.first() {
                Some(other) => Err(format!("{must}; it declares `backend \"{}\"`", other.kind)),
                None => Err(must),
            },
        }
    }

    /// Whether `passed` names every variable without a default and only declared variables;
    /// the error names both lists and the root.
    pub(crate) fn check_variables(
        &self,
        source: &str,
        passed: &BTreeSet<String>,
    ) -> Result<(), String> {
        let missing: Vec<&str> = self
            .variables
            .iter()
            .filter(|(name, has_default)| !**has_default && !passed.contains(*name))
            .map(|(name, _)| name.as_str())
            .collect();
        let undeclared: Vec<&str> = passed
            .iter()
            .filter(|name| !self.variables.contains_key(*name))
            .map(String::as_str)
            .collect();
        if missing.is_empty() && undeclared.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the variables passed to the Terraform root `{source}` (`params.variables`) do not \
             match its `variable` blocks: missing: [{}] (declared without a default, not \
             passed), undeclared: [{}] (passed, not declared)",
            missing.join(", "),
            undeclared.join(", ")
        ))
    }
}

/// One token at the top level of a file (strings and heredocs are one token each).
#[derive(Clone, Debug, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    /// A string; its text when it is a plain literal (no interpolation).
    Str(Option<String>),
    Open,
    Close,
    OpenOther,
    CloseOther,
    Eq,
    Newline,
    Other,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b >= 0x80
}

/// Splits `text` into tokens.
fn tokens(text: &str) -> Vec<Tok<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b'\n' => {
                out.push(Tok::Newline);
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => i = line_end(b, i),
            b'/' if next == Some(b'/') => i = line_end(b, i),
            b'/' if next == Some(b'*') => i = comment_end(b, i + 2),
            b'"' => {
                let (end, literal) = string(b, i);
                out.push(Tok::Str(literal));
                i = end;
            }
            b'<' if next == Some(b'<') => match heredoc(b, i) {
                Some(end) => {
                    out.push(Tok::Str(None));
                    out.push(Tok::Newline);
                    i = end;
                }
                None => {
                    out.push(Tok::Other);
                    i += 2;
                }
            },
            b'{' => {
                out.push(Tok::Open);
                i += 1;
            }
            b'}' => {
                out.push(Tok::Close);
                i += 1;
            }
            b'(' | b'[' => {
                out.push(Tok::OpenOther);
                i += 1;
            }
            b')' | b']' => {
                out.push(Tok::CloseOther);
                i += 1;
            }
            b'=' if matches!(next, Some(b'=' | b'>')) => {
                out.push(Tok::Other);
                i += 2;
            }
            b'=' => {
                out.push(Tok::Eq);
                i += 1;
            }
            b'!' | b'<' | b'>' if next == Some(b'=') => {
                out.push(Tok::Other);
                i += 2;
            }
            c if is_ident(c) => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(&text[start..i]));
            }
            _ => {
                out.push(Tok::Other);
                i += 1;
            }
        }
    }
    out
}

/// The index of the line break ending the line at `i` (or the end).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|c| *c == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// The index after the `*/` closing a comment whose body starts at `i` (or the end).
fn comment_end(b: &[u8], i: usize) -> usize {
    let body = b.get(i..).unwrap_or_default();
    body.windows(2)
        .position(|w| w == b"*/")
        .map_or(b.len(), |p| i + p + 2)
}

/// Scans the quoted string starting at `b[start] == '"'`: returns the index after it and its
/// text when it is a plain literal. Interpolations (`${...}`, `%{...}`) nest strings and
/// braces; a string cannot span lines, so an unterminated one ends before the line break.
fn string(b: &[u8], start: usize) -> (usize, Option<String>) {
    enum Frame {
        Str,
        Expr,
    }
    let mut stack = vec![Frame::Str];
    let mut literal = Some(Vec::new());
    let mut i = start + 1;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let in_outer = stack.len() == 1;
        match stack.last() {
            Some(Frame::Str) => match c {
                b'\n' => return (i, None),
                b'\\' => {
                    if in_outer && let (Some(text), Some(n)) = (literal.as_mut(), next) {
                        match n {
                            b'n' => text.push(b'\n'),
                            b't' => text.push(b'\t'),
                            b'r' => text.push(b'\r'),
                            b'"' | b'\\' => text.push(n),
                            _ => literal = None,
                        }
                    }
                    i += if next.is_some_and(|n| n != b'\n') {
                        2
                    } else {
                        1
                    };
                }
                b'"' => {
                    stack.pop();
                    i += 1;
                    if stack.is_empty() {
                        let text = literal.map(|t| String::from_utf8_lossy(&t).into_owned());
                        return (i, text);
                    }
                }
                b'$' | b'%' if next == Some(c) && b.get(i + 2) == Some(&b'{') => {
                    // `$${` and `%%{` are a literal `${` and `%{`.
                    if in_outer && let Some(text) = literal.as_mut() {
                        text.extend_from_slice(&[c, b'{']);
                    }
                    i += 3;
                }
                b'$' | b'%' if next == Some(b'{') => {
                    literal = None;
                    stack.push(Frame::Expr);
                    i += 2;
                }
                _ => {
                    if in_outer && let Some(text) = literal.as_mut() {
                        text.push(c);
                    }
                    i += 1;
                }
            },
            Some(Frame::Expr) => match c {
                b'"' => {
                    stack.push(Frame::Str);
                    i += 1;
                }
                b'{' => {
                    stack.push(Frame::Expr);
                    i += 1;
                }
                b'}' => {
                    stack.pop();
                    i += 1;
                }
                b'#' => i = line_end(b, i),
                b'/' if next == Some(b'/') => i = line_end(b, i),
                b'/' if next == Some(b'*') => i = comment_end(b, i + 2),
                _ => i += 1,
            },
            None => break,
        }
    }
    (b.len(), None)
}

/// Scans a heredoc starting at `b[start..] == "<<"`: `<<EOF` or `<<-EOF`, then lines up to
/// one that is the marker alone (indented or not); returns the index after that line (or the
/// end), or `None` when `<<` does not start a heredoc.
fn heredoc(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 2;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let marker_start = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    let marker = &b[marker_start..i];
    if marker.is_empty() {
        return None;
    }
    let mut line = line_end(b, i);
    while line < b.len() {
        let from = line + 1;
        let to = line_end(b, from);
        if b[from..to].trim_ascii() == marker {
            return Some(to);
        }
        line = to;
    }
    Some(b.len())
}

/// What a block is, for the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Top,
    Terraform,
    Variable(usize),
    Backend(usize),
    Other,
}

/// What one file declares (see the [module docs](self)).
pub(crate) fn scan(text: &str) -> FileScan {
    let toks = tokens(text);
    let mut out = FileScan::default();
    let mut stack = vec![Kind::Top];
    let mut i = 0;
    while i < toks.len() {
        let kind = stack.last().copied().unwrap_or(Kind::Top);
        match &toks[i] {
            Tok::Newline => i += 1,
            Tok::Close => {
                if stack.len() > 1 {
                    stack.pop();
                }
                i += 1;
            }
            Tok::Ident(name) if toks.get(i + 1) == Some(&Tok::Eq) => {
                match kind {
                    Kind::Variable(v) if *name == "default" => out.variables[v].has_default = true,
                    Kind::Backend(b) => out.backends[b].empty = false,
                    _ => {}
                }
                i = skip_expression(&toks, i + 2);
            }
            Tok::Ident(name) => {
                let mut labels = Vec::new();
                let mut j = i + 1;
                while let Some(Tok::Str(_) | Tok::Ident(_)) = toks.get(j) {
                    labels.push(&toks[j]);
                    j += 1;
                }
                if toks.get(j) != Some(&Tok::Open) {
                    i = skip_expression(&toks, i);
                    continue;
                }
                let label = |t: &Tok<'_>| match t {
                    Tok::Str(Some(s)) => Some(s.clone()),
                    Tok::Ident(s) => Some((*s).to_owned()),
                    _ => None,
                };
                let one = (labels.len() == 1).then(|| label(labels[0])).flatten();
                if let Kind::Backend(b) = kind {
                    out.backends[b].empty = false;
                }
                let inner = match (kind, *name, one) {
                    (Kind::Top, "terraform", _) if labels.is_empty() => Kind::Terraform,
                    (Kind::Top, "variable", Some(name)) => {
                        out.variables.push(Variable {
                            name,
                            has_default: false,
                        });
                        Kind::Variable(out.variables.len() - 1)
                    }
                    (Kind::Terraform, "backend", Some(kind)) => {
                        out.backends.push(Backend { kind, empty: true });
                        Kind::Backend(out.backends.len() - 1)
                    }
                    _ => Kind::Other,
                };
                stack.push(inner);
                i = j + 1;
            }
            _ => {
                if let Kind::Backend(b) = kind {
                    out.backends[b].empty = false;
                }
                i = skip_expression(&toks, i);
            }
        }
    }
    out
}

/// The index after the expression starting at `i`: up to the line break outside brackets, or
/// before a `}` that closes the enclosing block.
fn skip_expression(toks: &[Tok<'_>], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i] {
            Tok::Newline if depth == 0 => return i + 1,
            Tok::Open | Tok::OpenOther => depth += 1,
            Tok::Close if depth == 0 => return i,
            Tok::Close | Tok::CloseOther => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;

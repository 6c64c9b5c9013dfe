//! The syntax tree of `${{ }}` templates and expressions, with byte ranges into the string.

use std::fmt;
use std::ops::Range;

/// A string value that may hold expressions: literal text and `${{ }}` parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The parts, in order. Adjacent text parts are merged.
    pub parts: Vec<Part>,
}

/// One part of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Literal text (with `$${{` already turned into `${{`).
    Text(String),
    /// An expression.
    Expr(Expr),
}

impl Template {
    /// Whether the template has no expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The expression, when the template is exactly one expression and nothing else (its value
    /// then keeps its type: a number stays a number).
    pub fn as_single_expr(&self) -> Option<&Expr> {
        match self.parts.as_slice() {
            [Part::Expr(e)] => Some(e),
            _ => None,
        }
    }

    /// The expressions, in order.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Text(_) => None,
        })
    }
}

/// Renders the template in canonical form: `${{ expr }}` with one space inside the braces, and
/// literal `${{` escaped as `$${{` (each `$` directly before `{{` or before an expression is
/// doubled). Parsing the rendering gives an equal template.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Expr(e) => {
                    f.write_str(&escape_text(&text, true))?;
                    text.clear();
                    write!(f, "${{{{ {e} }}}}")?;
                }
            }
        }
        f.write_str(&escape_text(&text, false))
    }
}

/// Escapes literal text: a run of `$` directly before `{{`, or at the end when an expression
/// follows, is doubled (the parser reads each `$$` there as one `$`).
fn escape_text(text: &str, before_expr: bool) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let run = rest[start..].bytes().take_while(|&b| b == b'$').count();
        let after = &rest[start + run..];
        let doubled = after.starts_with("{{") || (after.is_empty() && before_expr);
        let dollars = if doubled { 2 * run } else { run };
        out.extend(std::iter::repeat_n('$', dollars));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// An expression with its byte range in the string that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Byte range of the expression (inside `${{ }}`) in the string.
    pub range: Range<usize>,
}

/// The two forms of expressions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    /// A property path: `stage.artifacts["API Image"].image_url`.
    Path(Path),
    /// A function call with one string argument: `secret("API_KEY")`.
    Call(Call),
}

/// A property path: a root name and accessors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The first name (the namespace): `stage`, `vars`, ...
    pub root: Ident,
    /// `.name` and `["key"]` accessors, in order.
    pub accessors: Vec<Accessor>,
}

/// A name with its byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Byte range in the string.
    pub range: Range<usize>,
}

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accessor {
    /// `.name`
    Field(Ident),
    /// `["key"]`
    Index(Ident),
}

impl Accessor {
    /// The key, whichever the form.
    pub fn key(&self) -> &Ident {
        match self {
            Accessor::Field(i) | Accessor::Index(i) => i,
        }
    }
}

/// A call: `secret("N")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The function name.
    pub function: Ident,
    /// The string argument (its range covers the quotes).
    pub argument: Ident,
}

/// Quotes `s` as an expression string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Path(p) => {
                f.write_str(&p.root.name)?;
                for a in &p.accessors {
                    match a {
                        Accessor::Field(i) => write!(f, ".{}", i.name)?,
                        Accessor::Index(i) => write!(f, "[{}]", quote(&i.name))?,
                    }
                }
                Ok(())
            }
            ExprKind::Call(c) => write!(f, "{}({})", c.function.name, quote(&c.argument.name)),
        }
    }
}

//! Parsing `${{ }}` templates: a small hand-written lexer and recursive-descent parser that
//! never panics and reports byte ranges.
//!
//! Grammar (inside `${{` and `}}`, whitespace allowed between tokens):
//!
//! ```text
//! expr     = call | path
//! call     = name "(" string ")"
//! path     = name { "." name | "[" string "]" }
//! name     = (letter | "_") { letter | digit | "_" | "-" }
//! string   = '"' { char | '\"' | '\\' } '"'
//! ```
//!
//! A literal `${{` is written `$${{` (the first `$` escapes the second). More generally, in a
//! run of `$` directly before `{{`, each `$$` is one literal `$`, and an odd run ends with the
//! `$` that opens an expression: `$$${{ vars.price }}` is a `$` followed by the expression,
//! `$$$${{` is the text `$${{`. Runs of `$` not followed by `{{` are text as written.

use std::ops::Range;

use super::ast::{Accessor, Call, Expr, ExprKind, Ident, Part, Path, Template};

/// A syntax error in a template, with the byte range of the offending text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
    /// Byte range in the string.
    pub range: Range<usize>,
    /// Whether the problem is a `${{` without `}}`.
    pub unterminated: bool,
}

impl SyntaxError {
    fn new(message: impl Into<String>, range: Range<usize>) -> Self {
        SyntaxError {
            message: message.into(),
            help: None,
            range,
            unterminated: false,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Whether `text` holds `${{` outside an escape, i.e. needs parsing as a template.
pub fn has_expressions(text: &str) -> bool {
    !expression_opens(text).is_empty()
}

/// The byte positions of the `$` of every `${{` that opens an expression: the last `$` of each
/// odd run of `$` directly before `{{` (see the module documentation on escapes).
pub(crate) fn expression_opens(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let run = dollar_run(bytes, i);
        if run % 2 == 1 && bytes[i + run..].starts_with(b"{{") {
            out.push(i + run - 1);
        }
        i += run;
    }
    out
}

/// The number of `$` starting at `i`.
fn dollar_run(bytes: &[u8], i: usize) -> usize {
    bytes[i..].iter().take_while(|&&b| b == b'$').count()
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Parses a string into a [`Template`].
///
/// ```
/// use devramps_core::expr::parse_template;
/// let t = parse_template("${{ organization.slug }}-${{ stage.name }}").unwrap();
/// assert_eq!(t.exprs().count(), 2);
/// assert_eq!(t.to_string(), "${{ organization.slug }}-${{ stage.name }}");
/// assert!(parse_template("${{ stage.name").is_err());
/// ```
pub fn parse_template(text: &str) -> Result<Template, SyntaxError> {
    let bytes = text.as_bytes();
    let mut parts: Vec<Part> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let run = dollar_run(bytes, i);
            if !bytes[i + run..].starts_with(b"{{") {
                literal.push_str(&text[i..i + run]);
                i += run;
                continue;
            }
            // Before `{{`, each `$$` is one literal `$`; an odd run ends with `${{`.
            literal.extend(std::iter::repeat_n('$', run / 2));
            if run.is_multiple_of(2) {
                literal.push_str("{{");
                i += run + 2;
                continue;
            }
            let open = i + run - 1;
            let (expr, end) = Parser::new(text, open + 3).expression(open)?;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Expr(expr));
            i = end;
            continue;
        }
        // Copy one UTF-8 character.
        let len = utf8_len(bytes[i]);
        literal.push_str(&text[i..(i + len).min(text.len())]);
        i += len;
    }
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(Template { parts })
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Name(String),
    Str(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Close,
    End,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, pos: usize) -> Self {
        Parser { text, pos }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while self.pos < self.text.len() && self.bytes()[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// The next token and its range.
    fn next(&mut self) -> Result<(Token, Range<usize>), SyntaxError> {
        self.skip_ws();
        let start = self.pos;
        let bytes = self.bytes();
        let Some(&b) = bytes.get(start) else {
            return Ok((Token::End, start..start));
        };
        let single = |t: Token, this: &mut Self| {
            this.pos += 1;
            Ok((t, start..start + 1))
        };
        match b {
            b'.' => single(Token::Dot, self),
            b'[' => single(Token::LBracket, self),
            b']' => single(Token::RBracket, self),
            b'(' => single(Token::LParen, self),
            b')' => single(Token::RParen, self),
            b'}' if bytes.get(start + 1) == Some(&b'}') => {
                self.pos += 2;
                Ok((Token::Close, start..start + 2))
            }
            b'"' => self.string(start),
            b'\'' => Err(SyntaxError::new(
                "strings in expressions use double quotes",
                start..start + 1,
            )
            .help("write [\"key\"] or secret(\"NAME\")")),
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let mut end = start + 1;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric()
                        || bytes[end] == b'_'
                        || bytes[end] == b'-')
                {
                    end += 1;
                }
                self.pos = end;
                Ok((Token::Name(self.text[start..end].to_owned()), start..end))
            }
            _ => {
                let len = utf8_len(b).min(self.text.len() - start);
                let c = &self.text[start..start + len];
                let mut err = SyntaxError::new(
                    format!("unexpected `{c}` in expression"),
                    start..start + len,
                );
                if b.is_ascii_digit() {
                    err = err.help(
                        "names start with a letter; bracket keys are quoted strings: [\"0\"]",
                    );
                } else if matches!(
                    b,
                    b'+' | b'-' | b'*' | b'/' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b'?'
                ) {
                    err = err.help("expressions have no operators: only property paths and secret(\"N\") / stage_secret(\"N\")");
                }
                Err(err)
            }
        }
    }

    fn string(&mut self, start: usize) -> Result<(Token, Range<usize>), SyntaxError> {
        let bytes = self.bytes();
        let mut value = String::new();
        let mut i = start + 1;
        loop {
            match bytes.get(i) {
                None => {
                    return Err(
                        SyntaxError::new("unterminated string in expression", start..i)
                            .help("close the string with `\"`"),
                    );
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok((Token::Str(value), start..i + 1));
                }
                Some(b'\\') => match bytes.get(i + 1) {
                    Some(b'"') => {
                        value.push('"');
                        i += 2;
                    }
                    Some(b'\\') => {
                        value.push('\\');
                        i += 2;
                    }
                    _ => {
                        // The range covers the backslash and the whole character after it.
                        let next = self.text[i + 1..].chars().next().map_or(0, char::len_utf8);
                        return Err(
                            SyntaxError::new("unknown escape in string", i..i + 1 + next)
                                .help("only \\\" and \\\\ are escapes"),
                        );
                    }
                },
                Some(&b) => {
                    let len = utf8_len(b).min(bytes.len() - i);
                    value.push_str(&self.text[i..i + len]);
                    i += len;
                }
            }
        }
    }

    /// Parses one expression after `${{` (which starts at `open`); returns it and the byte
    /// position after `}}`.
    fn expression(mut self, open: usize) -> Result<(Expr, usize), SyntaxError> {
        let unterminated = |text: &str| SyntaxError {
            message: "`${{` is not closed by `}}`".to_owned(),
            help: Some(
                "close the expression with `}}`, or write `$${{` for a literal `${{`".to_owned(),
            ),
            range: open..(open + 3).min(text.len()),
            unterminated: true,
        };
        let (first, first_range) = self.next_or(&unterminated)?;
        let root = match first {
            Token::Name(name) => Ident {
                name,
                range: first_range.clone(),
            },
            Token::Close => {
                return Err(
                    SyntaxError::new("empty expression", open..first_range.end).help(
                        "write a property path such as `stage.name`, or `$${{` for a literal `${{`",
                    ),
                );
            }
            other => {
                return Err(SyntaxError::new(format!("expected a name, found {}", describe(&other)), first_range)
                    .help("expressions start with a namespace (stage, pipeline, organization, trigger, vars, steps) or a function (secret, stage_secret)"));
            }
        };
        let start = first_range.start;
        let (tok, range) = self.next_or(&unterminated)?;
        if tok == Token::LParen {
            let (arg, arg_range) = self.next_or(&unterminated)?;
            let Token::Str(argument) = arg else {
                return Err(SyntaxError::new(
                    format!(
                        "`{}(...)` takes one double-quoted string, found {}",
                        root.name,
                        describe(&arg)
                    ),
                    arg_range,
                )
                .help(format!("write {}(\"NAME\")", root.name)));
            };
            let (found, close_range) = match self.next_or(&unterminated) {
                Ok((Token::RParen, range)) => (None, range),
                Ok((other, range)) => (Some(describe(&other)), range),
                // A character that starts no token (such as `,`): name it in the same message.
                Err(e) if !e.unterminated => {
                    let c = self.text[e.range.start..].chars().next().unwrap_or(' ');
                    (Some(format!("`{c}`")), e.range)
                }
                Err(e) => return Err(e),
            };
            if let Some(found) = found {
                return Err(SyntaxError::new(
                    format!(
                        "`{}(...)` takes exactly one argument; expected `)`, found {found}",
                        root.name
                    ),
                    close_range,
                )
                .help(format!("write {}(\"NAME\")", root.name)));
            }
            let end = close_range.end;
            self.expect_close(&unterminated)?;
            let call = Call {
                function: root,
                argument: Ident {
                    name: argument,
                    range: arg_range,
                },
            };
            return Ok((
                Expr {
                    kind: ExprKind::Call(call),
                    range: start..end,
                },
                self.pos,
            ));
        }
        let mut accessors = Vec::new();
        let mut end = first_range.end;
        let (mut tok, mut range) = (tok, range);
        loop {
            match tok {
                Token::Close => break,
                Token::End => return Err(unterminated(self.text)),
                Token::Dot => {
                    let (name, name_range) = self.next_or(&unterminated)?;
                    let Token::Name(name) = name else {
                        return Err(SyntaxError::new(
                            format!("expected a name after `.`, found {}", describe(&name)),
                            name_range,
                        )
                        .help(
                            "names with spaces or other characters use brackets: [\"API Image\"]",
                        ));
                    };
                    end = name_range.end;
                    accessors.push(Accessor::Field(Ident {
                        name,
                        range: name_range,
                    }));
                }
                Token::LBracket => {
                    let (key, key_range) = self.next_or(&unterminated)?;
                    let Token::Str(key) = key else {
                        return Err(SyntaxError::new(
                            format!(
                                "expected a double-quoted key after `[`, found {}",
                                describe(&key)
                            ),
                            key_range,
                        )
                        .help("write [\"key\"]"));
                    };
                    let (rb, rb_range) = self.next_or(&unterminated)?;
                    if rb != Token::RBracket {
                        return Err(SyntaxError::new(
                            format!("expected `]`, found {}", describe(&rb)),
                            rb_range,
                        )
                        .help("close the key with `]`: [\"key\"]"));
                    }
                    end = rb_range.end;
                    accessors.push(Accessor::Index(Ident {
                        name: key,
                        range: key_range,
                    }));
                }
                Token::LParen => {
                    return Err(SyntaxError::new("only a plain name can be called", range)
                        .help("the functions are secret(\"N\") and stage_secret(\"N\")"));
                }
                other => {
                    return Err(SyntaxError::new(
                        format!("expected `.`, `[` or `}}}}`, found {}", describe(&other)),
                        range,
                    ));
                }
            }
            (tok, range) = self.next_or(&unterminated)?;
        }
        let path = Path { root, accessors };
        Ok((
            Expr {
                kind: ExprKind::Path(path),
                range: start..end,
            },
            self.pos,
        ))
    }

    /// Whether a `}}` follows somewhere (to tell "unterminated" from a bad token).
    fn closed_later(&self) -> bool {
        find(self.bytes(), self.pos, b"}}").is_some()
    }

    fn next_or(
        &mut self,
        unterminated: &dyn Fn(&str) -> SyntaxError,
    ) -> Result<(Token, Range<usize>), SyntaxError> {
        match self.next() {
            Ok((Token::End, _)) => Err(unterminated(self.text)),
            Ok(t) => Ok(t),
            Err(_) if !self.closed_later() => Err(unterminated(self.text)),
            Err(e) => Err(e),
        }
    }

    fn expect_close(
        &mut self,
        unterminated: &dyn Fn(&str) -> SyntaxError,
    ) -> Result<(), SyntaxError> {
        match self.next_or(unterminated)? {
            (Token::Close, _) => Ok(()),
            (other, range) => Err(SyntaxError::new(
                format!("expected `}}}}`, found {}", describe(&other)),
                range,
            )),
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(n) => format!("`{n}`"),
        Token::Str(s) => format!("the string \"{s}\""),
        Token::Dot => "`.`".to_owned(),
        Token::LBracket => "`[`".to_owned(),
        Token::RBracket => "`]`".to_owned(),
        Token::LParen => "`(`".to_owned(),
        Token::RParen => "`)`".to_owned(),
        Token::Close => "`}}`".to_owned(),
        Token::End => "the end of the text".to_owned(),
    }
}

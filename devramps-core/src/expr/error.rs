//! [`ExprError`]: a mistake in an expression, its kind and diagnostic code, and the byte
//! range of the offending name.

use std::ops::Range;

use super::parse::SyntaxError;
use crate::source::{Code, suggest};

/// What kind of mistake an [`ExprError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// `${{` without `}}`.
    Unterminated,
    /// Any other syntax error.
    Syntax,
    /// The first name is not a namespace or function.
    UnknownNamespace,
    /// A property that the object does not have.
    UnknownProperty,
    /// `stage.artifacts[...]` names no artifact.
    UnknownArtifact,
    /// `vars.x` where the stage has no variable `x`.
    UnknownVariable,
    /// An unknown function, or a wrong argument.
    BadFunction,
    /// `steps.x.y` that does not name an earlier step of the same stage.
    BadStepReference,
    /// A namespace that this place cannot use (for example `vars` in an artifact built once).
    NotAvailable,
}

impl ExprErrorKind {
    /// The diagnostic code.
    pub fn code(self) -> Code {
        match self {
            ExprErrorKind::Unterminated => Code::ExprUnterminated,
            ExprErrorKind::Syntax => Code::ExprSyntax,
            ExprErrorKind::UnknownNamespace => Code::ExprUnknownNamespace,
            ExprErrorKind::UnknownProperty => Code::ExprUnknownProperty,
            ExprErrorKind::UnknownArtifact => Code::ExprUnknownArtifact,
            ExprErrorKind::UnknownVariable => Code::ExprUnknownVariable,
            ExprErrorKind::BadFunction => Code::ExprBadFunction,
            ExprErrorKind::BadStepReference => Code::ExprBadStepReference,
            ExprErrorKind::NotAvailable => Code::ExprNotAvailable,
        }
    }
}

/// A mistake in an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    /// What kind.
    pub kind: ExprErrorKind,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Byte range in the string that holds the expression.
    pub range: Range<usize>,
}

impl ExprError {
    pub(super) fn new(
        kind: ExprErrorKind,
        range: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        ExprError {
            kind,
            message: message.into(),
            help: None,
            range,
        }
    }

    pub(super) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(super) fn suggest(self, word: &str, candidates: &[&str]) -> Self {
        match suggest(word, candidates.iter().copied()) {
            Some(s) => self.help(format!("did you mean `{s}`?")),
            None if candidates.is_empty() => self,
            None => {
                let list = candidates.join("`, `");
                self.help(format!("available: `{list}`"))
            }
        }
    }
}

impl From<SyntaxError> for ExprError {
    fn from(e: SyntaxError) -> Self {
        ExprError {
            kind: if e.unterminated {
                ExprErrorKind::Unterminated
            } else {
                ExprErrorKind::Syntax
            },
            message: e.message,
            help: e.help,
            range: e.range,
        }
    }
}

//! Diagnostics: what is wrong, where, and how to fix it, each with a stable [`Code`].

use std::fmt;

use serde::Serialize;

use super::span::Span;

/// How serious a [`Diagnostic`] is. Any error makes a pipeline invalid; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The pipeline is invalid.
    Error,
    /// The pipeline is valid but probably not what was meant.
    Warning,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $severity:ident, $title:literal;)*) => {
        /// A stable diagnostic code. Codes never change meaning; `docs/diagnostics.md`
        /// documents each one with an example and its fix.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as written in output, for example `E0104`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => $code,)* }
            }

            /// The severity diagnostics with this code have.
            pub fn severity(self) -> Severity {
                match self { $(Code::$name => Severity::$severity,)* }
            }

            /// A short title, as used in `docs/diagnostics.md`.
            pub fn title(self) -> &'static str {
                match self { $(Code::$name => $title,)* }
            }
        }
    };
}

codes! {
    /// The file is not well-formed YAML.
    YamlSyntax = "E0001", Error, "YAML syntax error";
    /// A mapping has the same key twice.
    DuplicateKey = "E0002", Error, "duplicate key";
    /// A value has the wrong type (for example a list where a map is required).
    WrongType = "E0003", Error, "wrong type";
    /// A required field is missing.
    MissingField = "E0004", Error, "missing required field";
    /// A key that the schema does not know.
    UnknownField = "E0005", Error, "unknown field";
    /// A value outside the allowed set of an enumeration.
    InvalidEnumValue = "E0006", Error, "invalid value";
    /// `version` is not a supported pipeline format version.
    UnsupportedVersion = "E0007", Error, "unsupported version";
    /// `cloud_provider` is not `AWS`.
    UnsupportedCloudProvider = "E0008", Error, "unsupported cloud provider";
    /// A mapping key is not a plain string.
    NonStringKey = "E0009", Error, "mapping key is not a string";
    /// A number is out of range (for example zero or negative minutes).
    InvalidNumber = "E0010", Error, "invalid number";
    /// A string is empty or malformed where a non-empty value is required.
    InvalidString = "E0011", Error, "invalid string";
    /// The pipeline has no stage.
    NoStages = "E0101", Error, "no stages";
    /// Two stages have the same name.
    DuplicateStageName = "E0102", Error, "duplicate stage name";
    /// A stage name uses characters other than lowercase letters, digits and hyphens.
    InvalidStageName = "E0104", Error, "invalid stage name";
    /// An AWS account id is not a quoted 12-digit string.
    InvalidAccountId = "E0105", Error, "invalid account id";
    /// An AWS region is malformed.
    InvalidRegion = "E0106", Error, "invalid region";
    /// A `skip` entry names no step.
    UnknownSkipEntry = "E0107", Error, "skip names an unknown step";
    /// The pipeline has no step.
    NoSteps = "E0201", Error, "no steps";
    /// Two steps have the same name.
    DuplicateStepName = "E0202", Error, "duplicate step name";
    /// Two steps have the same id, or an id equals another step's name.
    DuplicateStepId = "E0203", Error, "duplicate or colliding step id";
    /// A step type is neither `DEVRAMPS:<SERVICE>:<ACTION>` nor `CUSTOM:<...>`.
    InvalidStepType = "E0204", Error, "invalid step type";
    /// A `DEVRAMPS:` step type that does not exist.
    UnknownStepType = "E0205", Error, "unknown step type";
    /// A `goes_after` entry names no step.
    UnknownDependency = "E0206", Error, "goes_after names an unknown step";
    /// The step graph (list order plus `goes_after`) has a cycle.
    DependencyCycle = "E0207", Error, "step dependency cycle";
    /// A required parameter of a known step or artifact type is missing.
    MissingParam = "E0208", Error, "missing required parameter";
    /// A step id is malformed.
    InvalidStepId = "E0209", Error, "invalid step id";
    /// A parameter of a known step or artifact type that the type does not define.
    UnknownParam = "W0210", Warning, "unknown parameter";
    /// A `goes_after` or `skip` list names the same step twice.
    RepeatedReference = "W0211", Warning, "step named twice";
    /// A parameter of a `CUSTOM:*` step breaks the JSON Schema its step registry gives (checked
    /// only when registries are given, e.g. `devramps validate --step-registry DIR`).
    CustomParamInvalid = "E0220", Error, "custom step parameter breaks its schema";
    /// A `CUSTOM:*` step type that none of the given step registries offers.
    UnknownCustomStepType = "E0221", Error, "unknown custom step type";
    /// Two artifacts have the same id (given or derived from the name).
    DuplicateArtifactId = "E0301", Error, "duplicate artifact id";
    /// An artifact id or name is malformed.
    InvalidArtifactId = "E0302", Error, "invalid artifact id";
    /// A repository path does not start with `/`.
    InvalidRepoPath = "E0303", Error, "invalid repository path";
    /// A Docker build argument is not `KEY=VALUE`.
    InvalidBuildArg = "E0304", Error, "invalid build argument";
    /// An import source is malformed.
    InvalidImportSource = "E0305", Error, "invalid import source";
    /// An ephemeral environment name is malformed or collides with a stage.
    InvalidEnvironmentName = "E0401", Error, "invalid ephemeral environment name";
    /// A trigger or release rule lacks the field its kind requires.
    IncompleteRule = "E0402", Error, "incomplete trigger or release rule";
    /// A pipeline folder name is not a valid slug.
    InvalidSlug = "E0501", Error, "invalid pipeline slug";
    /// The pipeline file could not be read.
    UnreadableFile = "E0502", Error, "unreadable file";
    /// `${{` without a closing `}}`.
    ExprUnterminated = "E0601", Error, "unterminated expression";
    /// An expression that does not follow the grammar.
    ExprSyntax = "E0602", Error, "expression syntax error";
    /// An expression starts with an unknown namespace.
    ExprUnknownNamespace = "E0603", Error, "unknown namespace";
    /// An expression reads a property that does not exist.
    ExprUnknownProperty = "E0604", Error, "unknown property";
    /// `stage.artifacts[...]` names no artifact.
    ExprUnknownArtifact = "E0605", Error, "unknown artifact";
    /// `vars.x` where a stage has no variable `x`.
    ExprUnknownVariable = "E0606", Error, "unknown variable";
    /// An unknown function or a wrong argument.
    ExprBadFunction = "E0607", Error, "bad function call";
    /// `steps.x.y` that does not name a step finishing earlier in the same stage.
    ExprBadStepReference = "E0608", Error, "bad step output reference";
    /// A namespace that cannot be used in this place.
    ExprNotAvailable = "E0609", Error, "not available here";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One problem found in a pipeline definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning (fixed by the code).
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// What is wrong, naming the offending item.
    pub message: String,
    /// Where: the offending value, or the key for unknown keys.
    #[serde(skip)]
    pub span: Span,
    /// How to fix it, when a fix is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with `code`'s severity.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {kind}[{}]: {}", self.span, self.code, self.message)
    }
}

/// All diagnostics of one file, returned when a definition has errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid pipeline definition: {}", summary(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    match errors.as_slice() {
        [] => "no errors".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl Diagnostics {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
}

/// Collects diagnostics while a definition is read and checked.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) items: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub(crate) fn error(&mut self, code: Code, span: Span, message: impl Into<String>) {
        self.push(Diagnostic::new(code, span, message));
    }
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 3).clamp(1, 3))
        // Among equally close candidates, prefer the one closest in case (`infra` for `infar`).
        .min_by_key(|(distance, c)| (*distance, strsim::damerau_levenshtein(word, c)))
        .map(|(_, c)| c)
}

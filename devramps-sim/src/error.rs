//! [`ScenarioError`]: one problem in a scenario file, with its place.

use std::fmt;
use std::path::PathBuf;

use devramps_core::pipeline::Span;

/// One problem found in a scenario file: where it is and what to do about it.
///
/// Displays as `path:line:column: error: message`, followed by an indented `help:` line when a
/// fix is known. Line and column are 1-based; both are 0 when the place is unknown.
///
/// ```
/// use devramps_core::pipeline::Span;
/// use devramps_sim::ScenarioError;
///
/// let span = Span { line: 3, column: 5, offset: 0, len: 0 };
/// let error = ScenarioError::new("sim.yaml", span, "unknown key `evnts`")
///     .with_help("did you mean `events`?");
/// assert_eq!(
///     error.to_string(),
///     "sim.yaml:3:5: error: unknown key `evnts`\n  help: did you mean `events`?"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file.
    pub path: PathBuf,
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column, in characters; 0 when unknown.
    pub column: u32,
    /// What is wrong, naming the offending key or value.
    pub message: String,
    /// How to fix it, when a fix is known.
    pub help: Option<String>,
}

impl ScenarioError {
    /// An error at `span` of `path`. The engine uses this too, for problems it finds when it
    /// checks a scenario against its pipeline (a stage that does not exist, say).
    pub fn new(path: impl Into<PathBuf>, span: Span, message: impl Into<String>) -> Self {
        ScenarioError {
            path: path.into(),
            line: span.line,
            column: span.column,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Why [`simulate_file_with`](crate::simulate_file_with) ran nothing.
#[derive(Debug)]
pub enum SimulateError {
    /// The scenario or its pipeline is invalid or unreadable: every problem found.
    Scenario(Vec<ScenarioError>),
    /// The store cannot take the simulation.
    Store(crate::StoreError),
}

impl fmt::Display for SimulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimulateError::Scenario(errors) => {
                for (i, error) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{error}")?;
                }
                Ok(())
            }
            SimulateError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SimulateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SimulateError::Scenario(_) => None,
            SimulateError::Store(e) => Some(e),
        }
    }
}

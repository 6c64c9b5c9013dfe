//! [`StepRegistry`]: where a registry of custom steps lives and the command that starts it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A step registry on disk: a directory whose program speaks the step protocol, and the
/// command line that starts it.
///
/// DevRamps starts a registry with its `start-step-registry` npm script; that is the default
/// ([`StepRegistry::npm`]): `npm run --silent start-step-registry -- <protocol arguments>`, run
/// in the registry's directory. [`StepRegistry::with_command`] configures another command line
/// (a Python registry, a compiled binary); the protocol arguments (`--input <json> --output
/// <file> --log-dir <dir> --execution-id <id>`) are appended to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRegistry {
    dir: PathBuf,
    command: Vec<OsString>,
}

impl StepRegistry {
    /// The npm registry in `dir` (a directory with a `package.json` whose
    /// `start-step-registry` script speaks the protocol).
    pub fn npm(dir: impl Into<PathBuf>) -> Self {
        StepRegistry {
            dir: dir.into(),
            command: ["npm", "run", "--silent", "start-step-registry", "--"]
                .map(OsString::from)
                .to_vec(),
        }
    }

    /// The registry in `dir` started by `command` (program first) instead of npm.
    pub fn with_command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// The registry's directory (the working directory of its processes).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The command line that starts it, program first, before the protocol arguments.
    pub fn command(&self) -> &[OsString] {
        &self.command
    }

    /// A process of the registry with the protocol `args` appended, in its directory, with
    /// nothing else set: callers choose stdio, environment and process group.
    pub fn process(&self, args: &[OsString]) -> std::process::Command {
        let (program, rest) = match self.command.split_first() {
            Some((program, rest)) => (program.clone(), rest),
            None => (OsString::from("npm"), &[][..]),
        };
        let mut command = std::process::Command::new(program);
        command.args(rest).args(args).current_dir(&self.dir);
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_is_the_default_and_a_command_replaces_it() {
        let npm = StepRegistry::npm("/r");
        let c = npm.process(&["--input".into(), "{}".into()]);
        assert_eq!(c.get_program(), "npm");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [
                "run",
                "--silent",
                "start-step-registry",
                "--",
                "--input",
                "{}"
            ]
        );
        assert_eq!(c.get_current_dir(), Some(Path::new("/r")));
        let py = StepRegistry::npm("/r").with_command(["python3", "registry.py"]);
        let c = py.process(&["--input".into()]);
        assert_eq!(c.get_program(), "python3");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["registry.py", "--input"]);
    }
}

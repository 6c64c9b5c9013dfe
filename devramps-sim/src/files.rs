//! Reading input files (pipelines, scenarios) with a bound: a file is read up to its limit and
//! never past it, so `/dev/zero` or a runaway generator is refused at once instead of filling
//! memory; named pipes and sockets are refused before they are opened (opening a pipe waits
//! for a writer).
//!
//! The limit is [`DEFAULT_MAX_FILE_BYTES`] (16 MiB, far above any real pipeline or scenario),
//! raised or lowered with the environment variable [`MAX_FILE_ENV`] (in MiB).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The default limit on an input file's size: 16 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The environment variable that sets the limit, in MiB (a whole number from 1).
pub const MAX_FILE_ENV: &str = "DEVRAMPS_MAX_FILE_MIB";

/// The limit on an input file's size: [`MAX_FILE_ENV`] when it holds a whole number of MiB
/// from 1, else [`DEFAULT_MAX_FILE_BYTES`].
pub fn max_file_bytes() -> u64 {
    limit_from(std::env::var(MAX_FILE_ENV).ok().as_deref())
}

/// The limit a value of [`MAX_FILE_ENV`] sets.
fn limit_from(mib: Option<&str>) -> u64 {
    mib.and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|mib| *mib >= 1)
        .map_or(DEFAULT_MAX_FILE_BYTES, |mib| {
            mib.saturating_mul(1024 * 1024)
        })
}

/// Why an input file could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileError {
    /// The OS refused: missing, unreadable, a directory, ...
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not a file that can be read to its end: a named pipe or a socket.
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Longer than the limit (only the limit and one byte were read).
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
}

impl FileError {
    /// A line of help: what to do about it.
    pub fn help(&self) -> String {
        match self {
            FileError::Io { .. } => "check that the file exists and is readable".to_owned(),
            FileError::NotAFile { .. } => {
                "give a regular file (save the pipe's output to a file first)".to_owned()
            }
            FileError::TooLarge { limit, .. } => format!(
                "the limit on input files is {} MiB; raise it with {MAX_FILE_ENV}=<MiB> if \
                 the file really is that large",
                limit / (1024 * 1024)
            ),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { path, source } => {
                write!(f, "cannot read `{}`: {source}", path.display())
            }
            FileError::NotAFile { path, kind } => write!(
                f,
                "cannot read `{}`: it is a {kind}, not a regular file",
                path.display()
            ),
            FileError::TooLarge { path, limit } => write!(
                f,
                "cannot read `{}`: it is larger than the limit of {limit} bytes ({} MiB)",
                path.display(),
                limit / (1024 * 1024)
            ),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads the file at `path`, at most [`max_file_bytes`] of it.
///
/// # Errors
///
/// [`FileError`]: the OS refused, it is a pipe or a socket, or it is longer than the limit.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, FileError> {
    read_with_limit(path, max_file_bytes())
}

/// Reads the file at `path`, at most `limit` bytes of it.
///
/// # Errors
///
/// As [`read_bounded`].
pub fn read_with_limit(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    let kind = std::fs::metadata(path).map_err(io)?.file_type();
    if let Some(kind) = not_a_file(&kind) {
        return Err(FileError::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Reads the file at `path` as UTF-8 text, at most [`max_file_bytes`] of it; bytes that are not
/// UTF-8 are an error naming the line and column of the first.
///
/// # Errors
///
/// As [`read_bounded`], and [`std::io::ErrorKind::InvalidData`] for text that is not UTF-8.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    let bytes = read_bounded(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let before = e.as_bytes().get(..valid).unwrap_or_default();
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column =
            std::str::from_utf8(&before[line_start..]).map_or(1, |s| s.chars().count() + 1);
        FileError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text (an invalid byte at line {line}, column {column})"),
            ),
        }
    })
}

#[cfg(unix)]
fn not_a_file(kind: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        Some("named pipe (FIFO)")
    } else if kind.is_socket() {
        Some("socket")
    } else {
        None
    }
}

#[cfg(not(unix))]
fn not_a_file(_: &std::fs::FileType) -> Option<&'static str> {
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_within_the_limit_is_read_whole_and_one_past_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, vec![b'a'; 100]).unwrap();
        assert_eq!(read_with_limit(&path, 100).unwrap().len(), 100);
        let err = read_with_limit(&path, 99).unwrap_err();
        assert!(
            matches!(err, FileError::TooLarge { limit: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("p.yaml"), "{err}");
        assert!(err.help().contains(MAX_FILE_ENV), "{}", err.help());
    }

    #[test]
    fn dev_zero_is_refused_at_the_limit_without_reading_on() {
        let started = std::time::Instant::now();
        let err = read_with_limit(Path::new("/dev/zero"), 1024 * 1024).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { .. }), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_named_pipe_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo (coreutils) runs");
        assert!(made.success());
        // Opening it would wait for a writer forever: it must not be opened.
        let err = read_bounded(&fifo).unwrap_err();
        assert!(matches!(err, FileError::NotAFile { .. }), "{err}");
        assert!(err.to_string().contains("named pipe"), "{err}");
    }

    #[test]
    fn text_that_is_not_utf8_names_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, b"a: 1\nbc: \xff\n").unwrap();
        let err = read_text(&path).unwrap_err().to_string();
        assert!(err.contains("line 2, column 5"), "{err}");
    }

    #[test]
    fn the_environment_sets_the_limit_in_whole_mib() {
        assert_eq!(limit_from(Some("2")), 2 * 1024 * 1024);
        assert_eq!(limit_from(Some(" 64 ")), 64 * 1024 * 1024);
        assert_eq!(limit_from(Some("0")), DEFAULT_MAX_FILE_BYTES);
        assert_eq!(limit_from(Some("1.5")), DEFAULT_MAX_FILE_BYTES);
        assert_eq!(limit_from(None), DEFAULT_MAX_FILE_BYTES);
    }
}

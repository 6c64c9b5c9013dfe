//! What the per-key folders of builds, test gates and Terraform steps share: a key as one safe
//! folder name, JSON records read and written atomically, and the exit code a wrapper shell
//! leaves.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::steps::process::write_atomic;

/// A text (an execution key) as one folder name: letters, digits, `-` and `_` stay, every
/// other byte is `%XX`, so no key can climb out of its parent or collide with another.
pub(crate) fn safe_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a JSON record `writer` wrote (named in the error when it is not what it writes);
/// `None` when there is none.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    writer: &str,
) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is not what {writer} writes: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `value` to `path` atomically (a private temporary file, synced, renamed over it).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// The exit code a wrapper shell wrote at `path`, if it has.
pub(crate) fn read_exit_code(path: &Path) -> io::Result<Option<i32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` holds `{}`: {e}", path.display(), text.trim()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_folder_names_are_one_safe_component() {
        assert_eq!(
            safe_name("api/r3/prod/a1/Run tests"),
            "api%2Fr3%2Fprod%2Fa1%2FRun%20tests"
        );
        assert_eq!(
            safe_name("api/r3//a1/build:web"),
            "api%2Fr3%2F%2Fa1%2Fbuild%3Aweb"
        );
        assert_eq!(safe_name(".."), "%2E%2E");
    }

    #[test]
    fn records_round_trip_and_a_foreign_file_names_its_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("r.json");
        assert_eq!(read_json::<u32>(&path, "x").expect("absent"), None);
        write_json(&path, &7_u32).expect("write");
        assert_eq!(read_json::<u32>(&path, "x").expect("read"), Some(7));
        std::fs::write(&path, "not json").expect("write");
        let e = read_json::<u32>(&path, "a build").expect_err("foreign");
        assert!(e.to_string().contains("not what a build writes"), "{e}");
        let code = dir.path().join("exit_code");
        assert_eq!(read_exit_code(&code).expect("absent"), None);
        std::fs::write(&code, "3\n").expect("write");
        assert_eq!(read_exit_code(&code).expect("read"), Some(3));
    }
}

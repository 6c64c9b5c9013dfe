//! Turning the `PATH` arguments of `devramps validate` into the pipeline files to check.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

use devramps_core::pipeline::{PIPELINE_DIR, PIPELINE_FILE, discover};

/// The slug given to a file whose location says nothing better.
pub(crate) const FALLBACK_SLUG: &str = "app";

/// One pipeline file to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The file to read.
    pub(crate) path: PathBuf,
    /// The path as shown in reports: as the user gave it, or as discovered under the given
    /// directory (without a leading `./`).
    pub(crate) display: String,
    /// The pipeline's slug.
    pub(crate) slug: String,
    /// Whether the slug is the folder name under `.devramps/` and must be a valid slug
    /// (`E0501`); a slug derived from any other location is only a label.
    pub(crate) slug_is_real: bool,
}

/// Resolves every `PATH` argument, in order, dropping files named twice.
///
/// Returns every problem (a missing path, a directory without pipelines, an unreadable
/// directory) as one message each, so the user sees them all at once.
pub(crate) fn resolve(paths: &[PathBuf]) -> Result<Vec<Target>, Vec<String>> {
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        match resolve_one(path) {
            Ok(found) => {
                for target in found {
                    let key = std::fs::canonicalize(&target.path).unwrap_or(target.path.clone());
                    if seen.insert(key) {
                        targets.push(target);
                    }
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

/// Resolves one `PATH`: a directory searched for `.devramps/*/pipeline.yaml`, or a file.
fn resolve_one(path: &Path) -> Result<Vec<Target>, String> {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("`{shown}` does not exist"));
        }
        Err(e) => return Err(format!("cannot read `{shown}`: {e}")),
    };
    if !metadata.is_dir() {
        return Ok(vec![file_target(path)]);
    }
    let found =
        discover(path).map_err(|e| format!("cannot search `{shown}` for pipelines: {e}"))?;
    if found.is_empty() {
        let mut message = format!(
            "no pipeline found in `{shown}` (looked for {})",
            path.join(PIPELINE_DIR)
                .join("*")
                .join(PIPELINE_FILE)
                .display()
        );
        if path.join(PIPELINE_FILE).is_file() {
            message.push_str(&format!(
                "\n  help: to check that file, pass it: devramps validate {}",
                path.join(PIPELINE_FILE).display()
            ));
        }
        return Err(message);
    }
    Ok(found
        .into_iter()
        .map(|pipeline| Target {
            display: display_path(&pipeline.path),
            path: pipeline.path,
            slug: pipeline.slug,
            slug_is_real: true,
        })
        .collect())
}

/// A file given on the command line, with its slug:
///
/// 1. `.devramps/<slug>/pipeline.yaml` → `<slug>` (checked like a discovered one);
/// 2. another `pipeline.yaml` → the name of the folder holding it;
/// 3. any other file → its name without extension (`api.yaml` → `api`);
/// 4. otherwise [`FALLBACK_SLUG`].
///
/// The location is read from the absolute path, so `pipeline.yaml` given from inside
/// `.devramps/api/` still has the slug `api`.
fn file_target(path: &Path) -> Target {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let parent = absolute.parent();
    let parent_name = parent.and_then(Path::file_name).and_then(OsStr::to_str);
    let grandparent_name = parent
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(OsStr::to_str);
    let is_pipeline_file = absolute.file_name() == Some(OsStr::new(PIPELINE_FILE));
    let (slug, slug_is_real) = match (is_pipeline_file, parent_name, grandparent_name) {
        (true, Some(slug), Some(PIPELINE_DIR)) => (slug.to_owned(), true),
        (true, Some(folder), _) => (folder.to_owned(), false),
        (false, ..) => (
            absolute
                .file_stem()
                .and_then(OsStr::to_str)
                .filter(|stem| !stem.is_empty())
                .unwrap_or(FALLBACK_SLUG)
                .to_owned(),
            false,
        ),
        _ => (FALLBACK_SLUG.to_owned(), false),
    };
    Target {
        path: path.to_path_buf(),
        display: path.display().to_string(),
        slug,
        slug_is_real,
    }
}

/// A discovered path as shown: without the `./` that searching `.` puts in front.
fn display_path(path: &Path) -> String {
    let mut components = path.components().peekable();
    if components.peek() == Some(&Component::CurDir) {
        components.next();
    }
    let rest: PathBuf = components.collect();
    if rest.as_os_str().is_empty() {
        path.display().to_string()
    } else {
        rest.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_paths_under_dot_lose_the_leading_dot() {
        assert_eq!(
            display_path(Path::new("./.devramps/api/pipeline.yaml")),
            ".devramps/api/pipeline.yaml"
        );
        assert_eq!(
            display_path(Path::new("../repo/.devramps/api/pipeline.yaml")),
            "../repo/.devramps/api/pipeline.yaml"
        );
    }

    #[test]
    fn slug_of_a_file_follows_its_location() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |relative: &str| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "").expect("write");
            path
        };
        let real = file_target(&write(".devramps/api/pipeline.yaml"));
        assert_eq!((real.slug.as_str(), real.slug_is_real), ("api", true));
        let folder = file_target(&write("svc/pipeline.yaml"));
        assert_eq!((folder.slug.as_str(), folder.slug_is_real), ("svc", false));
        let stem = file_target(&write("fixtures/web.yaml"));
        assert_eq!((stem.slug.as_str(), stem.slug_is_real), ("web", false));
    }

    #[test]
    fn a_file_named_twice_is_checked_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(".devramps/api/pipeline.yaml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "").expect("write");
        let targets = resolve(&[dir.path().to_path_buf(), path]).expect("resolves");
        assert_eq!(targets.len(), 1);
    }

    #[test]
    fn every_bad_path_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let problems =
            resolve(&[dir.path().join("nope"), dir.path().to_path_buf()]).expect_err("fails");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("does not exist"), "{problems:?}");
        assert!(problems[1].contains("no pipeline found"), "{problems:?}");
    }
}

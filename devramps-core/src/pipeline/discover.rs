//! Finding the pipelines of a repository: `.devramps/<slug>/pipeline.yaml`.

use std::path::{Path, PathBuf};

use super::diagnostic::{Code, Diagnostic};
use super::span::Span;

/// The folder that holds a repository's pipelines.
pub const PIPELINE_DIR: &str = ".devramps";
/// The definition file in each pipeline folder.
pub const PIPELINE_FILE: &str = "pipeline.yaml";

/// A pipeline found in a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredPipeline {
    /// The folder name: the pipeline's slug.
    pub slug: String,
    /// Path of the `pipeline.yaml` file.
    pub path: PathBuf,
}

/// Lists the pipelines under `root/.devramps/`, sorted by slug. Only folders directly under
/// `.devramps` count; folders without a `pipeline.yaml` file are skipped. A repository without
/// `.devramps` has no pipelines.
pub fn discover(root: &Path) -> std::io::Result<Vec<DiscoveredPipeline>> {
    let dir = root.join(PIPELINE_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() && !entry.path().is_dir() {
            continue;
        }
        let path = entry.path().join(PIPELINE_FILE);
        if !path.is_file() {
            continue;
        }
        found.push(DiscoveredPipeline {
            slug: entry.file_name().to_string_lossy().into_owned(),
            path,
        });
    }
    found.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(found)
}

/// Checks a pipeline slug: 1 to 63 characters, lowercase letters, digits, `-` and `_`, starting
/// and ending with a letter or digit (the slug appears in URLs and AWS resource names).
///
/// ```
/// use devramps_core::pipeline::validate_slug;
/// assert!(validate_slug("api").is_ok());
/// assert!(validate_slug("my_service-2").is_ok());
/// assert_eq!(validate_slug("My API").unwrap_err().code.as_str(), "E0501");
/// ```
pub fn validate_slug(slug: &str) -> Result<(), Diagnostic> {
    let bytes = slug.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let valid = (1..=63).contains(&slug.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
        && edge_ok(bytes.first())
        && edge_ok(bytes.last());
    if valid {
        return Ok(());
    }
    Err(Diagnostic::new(
        Code::InvalidSlug,
        Span::UNKNOWN,
        format!("pipeline folder `{slug}` is not a valid slug"),
    )
    .with_help("slugs are 1-63 lowercase letters, digits, `-` or `_`, starting and ending with a letter or digit"))
}

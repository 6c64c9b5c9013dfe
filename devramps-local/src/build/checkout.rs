//! Checkouts: the exact commit's tree exported into a fresh folder of the build (never the
//! user's working copy: uncommitted and ignored files are not in it), removed afterwards.

use std::path::PathBuf;
use std::sync::Arc;

use devramps_git::GitRepository;

/// Exports `commit` of `repo` into `dir`, which must not exist or be empty; the error is
/// for a message.
pub(crate) async fn export(
    repo: Arc<GitRepository>,
    commit: &str,
    dir: PathBuf,
) -> Result<(), String> {
    let commit = commit.to_owned();
    tokio::task::spawn_blocking(move || repo.export(&commit, dir))
        .await
        .map_err(|e| format!("the export stopped: {e}"))?
        .map_err(|e| e.to_string())
}

/// Removes a checkout (nothing when it is gone); a failure is logged, not returned: the
/// build's outcome does not depend on it.
pub(crate) async fn remove(dir: PathBuf) {
    let shown = dir.display().to_string();
    let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    if let Ok(Err(e)) = removed
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(checkout = %shown, error = %e, "cannot remove the build's checkout");
    }
}

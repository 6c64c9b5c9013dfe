//! `--store URL`: where the event log and the leases live (`cli.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use devramps_core::backend::{DynDeploymentLock, DynEventStore};

use devramps_aws::runtime::OnRuntime;

/// A parsed `--store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// `memory:`: in this process only; nothing survives it.
    Memory,
    /// `sqlite:PATH`: the embedded durable store.
    Sqlite(PathBuf),
    /// `s3://BUCKET/PREFIX`: the AWS backends.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
}

/// The file of the default store, under the state directory.
pub(crate) const DEFAULT_FILE: &str = "devramps.sqlite";

/// Parses `--store`; `None` is the default: `sqlite:<state_dir>/devramps.sqlite`.
pub(crate) fn parse(url: Option<&str>, state_dir: &Path) -> Result<StoreUrl, String> {
    let Some(url) = url else {
        return Ok(StoreUrl::Sqlite(state_dir.join(DEFAULT_FILE)));
    };
    if url == "memory:" {
        return Ok(StoreUrl::Memory);
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        if path.is_empty() {
            return Err("`--store sqlite:` needs a path: `sqlite:PATH`".to_owned());
        }
        return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "`--store {url}` names no bucket: `s3://BUCKET/PREFIX`"
            ));
        }
        return Ok(StoreUrl::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        });
    }
    Err(format!(
        "unknown store `{url}`\n  help: use `memory:`, `sqlite:PATH` or `s3://BUCKET/PREFIX`"
    ))
}

/// Opens the event store and the lease service at `url`.
pub(crate) fn open(url: &StoreUrl) -> Result<(DynEventStore, DynDeploymentLock), String> {
    match url {
        StoreUrl::Memory => Ok((
            Arc::new(devramps_memory::InMemoryEventStore::new()),
            Arc::new(devramps_memory::InMemoryLock::new()),
        )),
        StoreUrl::Sqlite(path) => {
            let store = devramps_local::store::LocalStore::open(path)
                .map_err(|e| format!("cannot open the store `sqlite:{}`: {e}", path.display()))?;
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
        StoreUrl::S3 { bucket, prefix } => {
            // The AWS SDK needs tokio: the S3 backends run on a runtime of their own, so every
            // command (the simulator's executor too) can use them.
            let (bucket, prefix) = (bucket.clone(), prefix.clone());
            let location = devramps_aws::runtime::block_on(async move {
                devramps_aws::S3Location::from_env(bucket, prefix).await
            })
            .map_err(|e| e.to_string())?;
            Ok((
                Arc::new(OnRuntime::new(devramps_aws::S3EventStore::new(
                    location.clone(),
                ))),
                Arc::new(OnRuntime::new(devramps_aws::S3Lock::new(location))),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_or_say_what_is_expected() {
        let dir = Path::new("/r/.devramps/state");
        assert_eq!(
            parse(None, dir),
            Ok(StoreUrl::Sqlite(dir.join(DEFAULT_FILE)))
        );
        assert_eq!(parse(Some("memory:"), dir), Ok(StoreUrl::Memory));
        assert_eq!(
            parse(Some("sqlite:/tmp/x.db"), dir),
            Ok(StoreUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            parse(Some("s3://b/p/q/"), dir),
            Ok(StoreUrl::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            })
        );
        for bad in ["sqlite:", "s3://", "postgres://x", ""] {
            let e = parse(Some(bad), dir).expect_err(bad);
            assert!(e.contains("sqlite") || e.contains("bucket"), "{bad}: {e}");
        }
    }
}

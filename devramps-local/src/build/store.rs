//! Where bundles go: the [`ArtifactStore`] contract and [`LocalArtifactStore`], a folder that
//! plays the S3 buckets of a deployment on one machine.

use std::fmt::Debug;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use devramps_core::expr::ArtifactLocation;
use devramps_core::{Error, Result};
use sha2::{Digest, Sha256};

/// The backend name in errors.
const BACKEND: &str = "local artifact store";

/// A bundle as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredBundle {
    /// The content's SHA-256, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where it is: `s3://<bucket>/<key>`.
    pub url: String,
    /// The stored file on this machine, when the store is a folder.
    pub path: Option<PathBuf>,
}

/// What [`ArtifactStore::head`] says of an object that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// Its size in bytes.
    pub size: u64,
}

/// Where bundle artifacts are kept (DevRamps' S3 buckets).
///
/// # Contract
///
/// - `put(file, destination)` stores the file's content at the destination's bucket and key
///   (`s3_bucket`/`s3_key`, else read from `s3_url`) and returns its SHA-256 and size; putting
///   the same content again succeeds and changes nothing a reader sees.
/// - `head(url)` tells whether an `s3://bucket/key` object exists (`Ok(None)` when not); `get`
///   copies it into a local file and fails with [`Error::NotFound`] when it does not exist.
#[async_trait]
pub trait ArtifactStore: Send + Sync + Debug + 'static {
    /// Stores the file at `destination`.
    async fn put(&self, file: &Path, destination: &ArtifactLocation) -> Result<StoredBundle>;
    /// Whether the object at `url` exists, and its size.
    async fn head(&self, url: &str) -> Result<Option<ObjectInfo>>;
    /// Copies the object at `url` into `to` (created or replaced).
    async fn get(&self, url: &str, to: &Path) -> Result<()>;
}

/// A folder as the artifact store: content blobs at `<root>/sha256/<hex>`, and each named
/// object `s3://<bucket>/<key>` at `<root>/<bucket>/<key>`, a hard link to its blob (a copy
/// where links do not work). Writes are atomic renames, so a reader sees the old or the new
/// object, never half of one. The bucket name `sha256` is reserved.
#[derive(Clone, Debug)]
pub struct LocalArtifactStore {
    root: PathBuf,
}

impl LocalArtifactStore {
    /// A store in the folder `root` (created when first written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalArtifactStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `s3://bucket/key`; an error for a URL that is not one or would leave the
    /// folder.
    pub fn path_of(&self, url: &str) -> Result<PathBuf> {
        let (bucket, key) = split_s3_url(url)?;
        self.object_path(bucket, key)
    }

    fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        let bad = |why: &str| {
            Error::backend(
                BACKEND,
                format!("locate `s3://{bucket}/{key}`"),
                why.to_owned(),
            )
        };
        if bucket.is_empty() || bucket.contains('/') || bucket == "." || bucket == ".." {
            return Err(bad("the bucket name is empty or not a single name"));
        }
        if bucket == "sha256" {
            return Err(bad(
                "the bucket name `sha256` is reserved for the store's content blobs",
            ));
        }
        let mut path = self.root.join(bucket);
        let mut parts = 0;
        for component in Path::new(key).components() {
            match component {
                Component::Normal(part) => {
                    path.push(part);
                    parts += 1;
                }
                Component::CurDir => {}
                _ => return Err(bad("the key must be a relative path without `..`")),
            }
        }
        if parts == 0 {
            return Err(bad("the key is empty"));
        }
        Ok(path)
    }

    fn put_blocking(&self, file: &Path, bucket: &str, key: &str) -> std::io::Result<StoredBundle> {
        let named = self
            .object_path(bucket, key)
            .map_err(std::io::Error::other)?;
        let blobs = self.root.join("sha256");
        std::fs::create_dir_all(&blobs)?;
        let tmp = tempfile::NamedTempFile::new_in(&blobs)?;
        let mut source = std::fs::File::open(file)?;
        let (sha256, size) = {
            let mut out = std::io::BufWriter::new(tmp.as_file());
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                let n = source.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                size += n as u64;
            }
            out.flush()?;
            (hex(&hasher.finalize()), size)
        };
        tmp.as_file().sync_all()?;
        let blob = blobs.join(&sha256);
        if blob.exists() {
            drop(tmp);
        } else {
            tmp.persist(&blob).map_err(|e| e.error)?;
        }
        let parent = named.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent)?;
        let staged = tempfile::Builder::new()
            .prefix(".put-")
            .make_in(parent, |p| std::fs::hard_link(&blob, p))
            .or_else(|_| {
                tempfile::Builder::new()
                    .prefix(".put-")
                    .make_in(parent, |p| std::fs::copy(&blob, p).map(drop))
            })?;
        staged.persist(&named).map_err(|e| e.error)?;
        Ok(StoredBundle {
            sha256,
            size,
            url: format!("s3://{bucket}/{key}"),
            path: Some(named),
        })
    }
}

/// `s3://bucket/key` as (bucket, key).
pub(crate) fn split_s3_url(url: &str) -> Result<(&str, &str)> {
    url.strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            Error::backend(
                BACKEND,
                format!("read `{url}`"),
                "not an S3 URL of the form `s3://<bucket>/<key>`",
            )
        })
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[async_trait]
impl ArtifactStore for LocalArtifactStore {
    async fn put(&self, file: &Path, destination: &ArtifactLocation) -> Result<StoredBundle> {
        let (bucket, key) = if destination.s3_bucket.is_empty() || destination.s3_key.is_empty() {
            let (b, k) = split_s3_url(&destination.s3_url)?;
            (b.to_owned(), k.to_owned())
        } else {
            (destination.s3_bucket.clone(), destination.s3_key.clone())
        };
        let store = self.clone();
        let file = file.to_owned();
        let operation = format!("store `{}` at `s3://{bucket}/{key}`", file.display());
        let stored = tokio::task::spawn_blocking(move || store.put_blocking(&file, &bucket, &key))
            .await
            .map_err(|e| Error::backend(BACKEND, operation.clone(), e.to_string()))?;
        stored.map_err(|e| Error::backend(BACKEND, operation, e.to_string()))
    }

    async fn head(&self, url: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path_of(url)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectInfo { size: meta.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::backend(
                BACKEND,
                format!("look at `{url}`"),
                e.to_string(),
            )),
        }
    }

    async fn get(&self, url: &str, to: &Path) -> Result<()> {
        let path = self.path_of(url)?;
        match tokio::fs::copy(&path, to).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::not_found(format!("object `{url}`")))
            }
            Err(e) => Err(Error::backend(
                BACKEND,
                format!("copy `{url}` to `{}`", to.display()),
                e.to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(bucket: &str, key: &str) -> ArtifactLocation {
        ArtifactLocation {
            s3_url: format!("s3://{bucket}/{key}"),
            s3_bucket: bucket.into(),
            s3_key: key.into(),
            ..ArtifactLocation::default()
        }
    }

    #[tokio::test]
    async fn put_is_content_addressed_named_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::new(dir.path().join("store"));
        let file = dir.path().join("a.zip");
        std::fs::write(&file, "hello").unwrap();
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let stored = store.put(&file, &at("b", "app/c1/a.zip")).await.unwrap();
        assert_eq!((stored.sha256.as_str(), stored.size), (hello, 5));
        assert_eq!(stored.url, "s3://b/app/c1/a.zip");
        let named = dir.path().join("store/b/app/c1/a.zip");
        assert_eq!(stored.path.as_deref(), Some(named.as_path()));
        assert_eq!(std::fs::read(&named).unwrap(), b"hello");
        assert!(dir.path().join("store/sha256").join(hello).is_file());
        let again = store.put(&file, &at("b", "app/c1/a.zip")).await.unwrap();
        assert_eq!(again, stored);
        assert_eq!(
            store.head("s3://b/app/c1/a.zip").await.unwrap(),
            Some(ObjectInfo { size: 5 })
        );
        assert_eq!(store.head("s3://b/nothing").await.unwrap(), None);
        let copy = dir.path().join("copy");
        store.get("s3://b/app/c1/a.zip", &copy).await.unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), b"hello");
        let missing = store.get("s3://b/nothing", &copy).await.unwrap_err();
        assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
        assert!(store.path_of("s3://b/../../etc/passwd").is_err());
        assert!(store.path_of("s3://sha256/x").is_err());
        assert!(store.path_of("https://b/x").is_err());
    }
}

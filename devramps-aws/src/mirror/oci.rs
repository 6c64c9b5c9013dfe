//! The registry-to-registry copy over the OCI distribution API.
//!
//! [`OciCopier::copy`] reads the source manifest (OCI or Docker, image or index) and checks its
//! sha256; when the destination tag already names that digest it stops there (two requests).
//! Otherwise it copies, children before parents: for an index every child manifest (by digest)
//! and its blobs, then the index; for an image its config and layer blobs, then the manifest.
//! A blob the destination has (`HEAD`) is skipped; one in another repository of the same
//! registry is mounted (`POST ...?mount=&from=`); any other is read from the source, its sha256
//! checked as it arrives, and uploaded (`POST` then `PUT ?digest=`). Manifests are put back
//! byte for byte with their media type, and the destination tag is read back at the end: the
//! copy is reported done only when the destination digest equals the source digest.
//!
//! A blob is streamed from the source's `GET` into the destination's monolithic `PUT` (with
//! its length), hashed on the way and never held whole (see `blob`): a content that does not
//! match its digest fails the upload before its last chunk is sent, and the error names the
//! source registry, repository and both digests. Registries that
//! need a bearer-token exchange (Docker Hub) are not supported; ECR and `docker-registry` take
//! Basic credentials ([`RegistryAuth::Basic`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ImageRef;
use super::blob;
use super::wire::{
    at, descriptor_digest, header, mismatch, ok, parse_manifest, registry, send, sha256, transport,
};
use devramps_core::{Error, Result};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, RequestBuilder, StatusCode};

/// The manifest media types asked for: OCI and Docker, single images and indexes.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The header registries put a content digest in.
const DIGEST_HEADER: &str = "docker-content-digest";

/// How the copier authenticates to one registry. Its `Debug` output never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryAuth {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic credentials (ECR's `GetAuthorizationToken` gives these: user `AWS`).
    Basic {
        /// The user name.
        user: String,
        /// The password or token.
        password: String,
    },
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::None => f.write_str("None"),
            RegistryAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"(redacted)")
                .finish(),
        }
    }
}

/// What a copy may do, beyond the defaults.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OciCopierOptions {
    /// The destination's tags are immutable: a destination tag that already names another
    /// digest fails the copy (with [`Error::Conflict`]) instead of being moved.
    pub immutable: bool,
    /// Speak plain HTTP, not HTTPS, to every registry (loopback test registries).
    pub plain_http: bool,
}

/// What one copy did. Nothing is counted that was not done and verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// The digest of the image copied (the source's, and now the destination's).
    pub digest: String,
    /// Blobs read from the source and uploaded.
    pub blobs_copied: u64,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: u64,
    /// Blobs the destination already had.
    pub blobs_skipped: u64,
    /// Manifests put to the destination (children of an index and the top one).
    pub manifests_put: u64,
    /// Blob bytes read from the source and uploaded.
    pub bytes_copied: u64,
    /// HTTP requests sent, to both registries.
    pub requests: u64,
}

/// Copies images between registries over the OCI distribution API; see the [module](self)
/// docs for how. Cheap to clone; one HTTP client, shared.
#[derive(Clone, Debug)]
pub struct OciCopier {
    client: reqwest::Client,
    auth: HashMap<String, RegistryAuth>,
    plain_http: BTreeSet<String>,
    options: OciCopierOptions,
}

impl OciCopier {
    /// A copier with its own HTTP client.
    pub fn new(options: OciCopierOptions) -> Result<OciCopier> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::backend_from("oci registry", "build an HTTP client", e))?;
        Ok(OciCopier {
            client,
            auth: HashMap::new(),
            plain_http: BTreeSet::new(),
            options,
        })
    }

    /// Uses `auth` for the registry at `host` (`host[:port]` as in an [`ImageRef`]).
    pub fn with_auth(mut self, host: impl Into<String>, auth: RegistryAuth) -> OciCopier {
        self.auth.insert(host.into(), auth);
        self
    }

    /// Speaks plain HTTP, not HTTPS, to the registry at `host` (a loopback test registry).
    pub fn with_plain_http(mut self, host: impl Into<String>) -> OciCopier {
        self.plain_http.insert(host.into());
        self
    }

    /// The same copier (its HTTP client and credentials) with other options.
    pub fn with_options(mut self, options: OciCopierOptions) -> OciCopier {
        self.options = options;
        self
    }

    /// Whether `host` is spoken to over plain HTTP.
    fn plain(&self, host: &str) -> bool {
        self.options.plain_http || self.plain_http.contains(host)
    }

    /// Copies `source` (by tag or digest) to `destination` (under its tag, or by digest when
    /// its reference is one), and verifies the destination digest equals the source's.
    ///
    /// Errors: [`Error::NotFound`] when the source manifest is not there,
    /// [`Error::Conflict`] when the destination is immutable and its tag names another
    /// digest, [`Error::Unavailable`] for transport failures and 5xx answers (a retried copy
    /// skips the blobs already copied), [`Error::Backend`] for anything else (a digest that
    /// does not match, a refused upload); each names the registry, repository and digest.
    pub async fn copy(&self, source: &ImageRef, destination: &ImageRef) -> Result<CopyReport> {
        let mut copy = Copy {
            copier: self,
            requests: AtomicU64::new(0),
            report: CopyReport::default(),
            done_blobs: BTreeSet::new(),
        };
        let (bytes, media_type, digest) = copy.get_manifest(source).await?;
        copy.report.digest.clone_from(&digest);
        if source.is_digest() && source.reference != digest {
            return Err(mismatch(source, "manifest", &source.reference, &digest));
        }
        if destination.is_digest() && destination.reference != digest {
            return Err(Error::backend(
                registry(destination),
                format!("copy {source} to {destination}"),
                format!(
                    "the destination names digest {} but the source manifest is {digest}",
                    destination.reference
                ),
            ));
        }
        if let Some(existing) = copy.head_manifest(destination).await? {
            if existing == digest {
                copy.report.requests = copy.requests.load(Ordering::Relaxed);
                return Ok(copy.report);
            }
            if self.options.immutable && !destination.is_digest() {
                return Err(Error::Conflict {
                    what: format!(
                        "the immutable tag `{}` of {}/{} names {existing}, not the source's {digest} ({source}); \
                         push under a new tag or delete the tag",
                        destination.reference, destination.host, destination.repository
                    ),
                });
            }
        }
        let value = parse_manifest(source, &digest, &bytes)?;
        if let Some(children) = value.get("manifests").and_then(|m| m.as_array()) {
            for child in children {
                let child_digest = descriptor_digest(source, &digest, child)?;
                let from = at(source, &child_digest);
                let (child_bytes, child_type, got) = copy.get_manifest(&from).await?;
                if got != child_digest {
                    return Err(mismatch(&from, "manifest", &child_digest, &got));
                }
                let child_value = parse_manifest(&from, &got, &child_bytes)?;
                copy.copy_blobs(source, destination, &got, &child_value)
                    .await?;
                copy.put_manifest(&at(destination, &got), &child_type, child_bytes, &got)
                    .await?;
            }
        } else {
            copy.copy_blobs(source, destination, &digest, &value)
                .await?;
        }
        copy.put_manifest(destination, &media_type, bytes, &digest)
            .await?;
        match copy.head_manifest(destination).await? {
            Some(got) if got == digest => {}
            got => {
                return Err(Error::backend(
                    registry(destination),
                    format!("verify {destination} after copying {source}"),
                    format!(
                        "the destination names {} after the copy, not the source's {digest}",
                        got.as_deref().unwrap_or("nothing")
                    ),
                ));
            }
        }
        copy.report.requests = copy.requests.load(Ordering::Relaxed);
        Ok(copy.report)
    }

    /// The digest `image`'s tag (or digest) names in its registry (one manifest HEAD), or
    /// `None` when there is none.
    ///
    /// # Errors
    ///
    /// As [`copy`](OciCopier::copy): [`Error::Unavailable`] when the registry cannot be
    /// reached, [`Error::Backend`] when it refuses.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Option<String>> {
        let copy = Copy {
            copier: self,
            requests: AtomicU64::new(0),
            report: CopyReport::default(),
            done_blobs: BTreeSet::new(),
        };
        copy.head_manifest(image).await
    }
}

/// One copy in progress: its counters.
struct Copy<'a> {
    copier: &'a OciCopier,
    requests: AtomicU64,
    report: CopyReport,
    /// Blobs already handled in this copy (indexes share layers between platforms).
    done_blobs: BTreeSet<String>,
}

impl Copy<'_> {
    /// A request to `host`, with its credentials, counted.
    fn request(&self, method: Method, host: &str, url: String) -> RequestBuilder {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let builder = self.copier.client.request(method, url);
        match self.copier.auth.get(host) {
            Some(RegistryAuth::Basic { user, password }) => {
                builder.basic_auth(user, Some(password))
            }
            _ => builder,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        let scheme = if self.copier.plain(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}/v2/{path}")
    }

    /// Gets a manifest: its bytes, media type and verified sha256 digest.
    async fn get_manifest(&self, image: &ImageRef) -> Result<(Vec<u8>, String, String)> {
        let url = self.url(
            &image.host,
            &format!("{}/manifests/{}", image.repository, image.reference),
        );
        let op = format!("get the manifest of {image}");
        let response = send(
            self.request(Method::GET, &image.host, url)
                .header(ACCEPT, MANIFEST_TYPES),
            image,
            &op,
        )
        .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!(
                "manifest {image} (registry {})",
                image.host
            )));
        }
        let response = ok(response, image, &op).await?;
        let media_type = header(response.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        let claimed = header(response.headers(), DIGEST_HEADER);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(image, &op, e))?
            .to_vec();
        let digest = sha256(&bytes);
        if let Some(claimed) = claimed
            && claimed != digest
        {
            return Err(mismatch(image, "manifest", &claimed, &digest));
        }
        let media_type = if media_type.is_empty() || media_type.starts_with("application/json") {
            parse_manifest(image, &digest, &bytes)?
                .get("mediaType")
                .and_then(|m| m.as_str())
                .unwrap_or("application/vnd.oci.image.manifest.v1+json")
                .to_owned()
        } else {
            media_type
        };
        Ok((bytes, media_type, digest))
    }

    /// The digest the destination's tag (or digest) names, or `None` when there is none.
    async fn head_manifest(&self, image: &ImageRef) -> Result<Option<String>> {
        let url = self.url(
            &image.host,
            &format!("{}/manifests/{}", image.repository, image.reference),
        );
        let op = format!("read the manifest of {image}");
        let response = send(
            self.request(Method::HEAD, &image.host, url)
                .header(ACCEPT, MANIFEST_TYPES),
            image,
            &op,
        )
        .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = ok(response, image, &op).await?;
        match header(response.headers(), DIGEST_HEADER) {
            Some(digest) => Ok(Some(digest)),
            None => Err(Error::backend(
                registry(image),
                op,
                "the registry answered without a Docker-Content-Digest header",
            )),
        }
    }

    /// Puts a manifest's bytes, unchanged, and checks the digest the registry answers.
    async fn put_manifest(
        &mut self,
        image: &ImageRef,
        media_type: &str,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<()> {
        let url = self.url(
            &image.host,
            &format!("{}/manifests/{}", image.repository, image.reference),
        );
        let op = format!("put manifest {digest} as {image}");
        let request = self
            .request(Method::PUT, &image.host, url)
            .header(CONTENT_TYPE, media_type)
            .body(bytes);
        let response = ok(send(request, image, &op).await?, image, &op).await?;
        if let Some(got) = header(response.headers(), DIGEST_HEADER)
            && got != digest
        {
            return Err(mismatch(image, "manifest", digest, &got));
        }
        self.report.manifests_put += 1;
        Ok(())
    }

    /// Copies the config and layer blobs of an image manifest.
    async fn copy_blobs(
        &mut self,
        source: &ImageRef,
        destination: &ImageRef,
        manifest_digest: &str,
        manifest: &serde_json::Value,
    ) -> Result<()> {
        let mut blobs = Vec::new();
        if let Some(config) = manifest.get("config") {
            blobs.push(config);
        }
        if let Some(layers) = manifest.get("layers").and_then(|l| l.as_array()) {
            blobs.extend(layers);
        }
        for blob in blobs {
            let digest = descriptor_digest(source, manifest_digest, blob)?;
            let size = blob.get("size").and_then(|s| s.as_u64());
            if self.done_blobs.insert(digest.clone()) {
                self.copy_blob(source, destination, &digest, size).await?;
            }
        }
        Ok(())
    }

    /// Copies one blob: skipped when present, mounted when it can be, else read and uploaded.
    async fn copy_blob(
        &mut self,
        source: &ImageRef,
        destination: &ImageRef,
        digest: &str,
        size: Option<u64>,
    ) -> Result<()> {
        let dst = at(destination, digest);
        let src = at(source, digest);
        let url = self.url(&dst.host, &format!("{}/blobs/{digest}", dst.repository));
        let op = format!("look for blob {digest} in {}/{}", dst.host, dst.repository);
        let response = send(self.request(Method::HEAD, &dst.host, url), &dst, &op).await?;
        if response.status().is_success() {
            self.report.blobs_skipped += 1;
            return Ok(());
        }
        if response.status() != StatusCode::NOT_FOUND {
            ok(response, &dst, &op).await?;
        }
        let mut path = format!("{}/blobs/uploads/", dst.repository);
        if source.host == destination.host && source.repository != destination.repository {
            path.push_str(&format!("?mount={digest}&from={}", source.repository));
        }
        let op = format!(
            "start the upload of blob {digest} to {}/{}",
            dst.host, dst.repository
        );
        let url = self.url(&dst.host, &path);
        let response = ok(
            send(self.request(Method::POST, &dst.host, url), &dst, &op).await?,
            &dst,
            &op,
        )
        .await?;
        if response.status() == StatusCode::CREATED {
            self.report.blobs_mounted += 1;
            return Ok(());
        }
        let location = header(response.headers(), LOCATION.as_str()).ok_or_else(|| {
            Error::backend(
                registry(&dst),
                op.clone(),
                "the registry gave no upload Location",
            )
        })?;
        let response = self.open_blob(&src).await?;
        let length = size.or_else(|| response.content_length());
        let outcome = blob::SharedOutcome::default();
        let body = reqwest::Body::wrap_stream(blob::verified(
            response,
            digest,
            size,
            Arc::clone(&outcome),
        ));
        let mut upload = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            let scheme = if self.copier.plain(&dst.host) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{}{location}", dst.host)
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str("digest=");
        upload.push_str(digest);
        let op = format!("upload blob {digest} to {}/{}", dst.host, dst.repository);
        let mut request = self
            .request(Method::PUT, &dst.host, upload)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(length) = length {
            // A monolithic upload with its length (ECR wants one); the stream fails rather
            // than end short or long.
            request = request.header(CONTENT_LENGTH, length);
        }
        let sent = request.send().await;
        let (failure, length) = blob::read(&outcome);
        let sent = blob::check(failure, sent, &src, &dst, size)?;
        let response = sent.map_err(|e| transport(&dst, &op, e))?;
        let response = ok(response, &dst, &op).await?;
        if let Some(got) = header(response.headers(), DIGEST_HEADER)
            && got != digest
        {
            return Err(mismatch(&dst, "blob", digest, &got));
        }
        self.report.blobs_copied += 1;
        self.report.bytes_copied += length;
        Ok(())
    }

    /// Opens a blob of the source for reading (its body is streamed by the upload).
    async fn open_blob(&self, src: &ImageRef) -> Result<reqwest::Response> {
        let digest = &src.reference;
        let url = self.url(&src.host, &format!("{}/blobs/{digest}", src.repository));
        let op = format!("read blob {digest} from {}/{}", src.host, src.repository);
        let response = send(self.request(Method::GET, &src.host, url), src, &op).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!(
                "blob {digest} in {}/{}",
                src.host, src.repository
            )));
        }
        ok(response, src, &op).await
    }
}

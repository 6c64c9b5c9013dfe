//! A blob streamed from the source registry to the destination's upload: hashed as it passes,
//! never held whole. The last chunk is held back until the sha256 and the size are checked,
//! so a destination never receives the whole of a blob whose content does not match its
//! digest (and a registry refuses a monolithic `PUT ?digest=` whose body does not match
//! anyway). Memory stays at two chunks of the HTTP body.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use devramps_core::{Error, Result};

use super::ImageRef;
use super::wire::{hex, mismatch, registry};

/// What went wrong on the source's side of a streamed blob, read after the upload failed.
#[derive(Debug, Default, Clone)]
pub(super) enum SourceFailure {
    /// The stream ran to its end and was fine (or has not ended).
    #[default]
    None,
    /// The source's connection failed (dropped mid-blob, timed out).
    Transport(String),
    /// The content's sha256 is not the digest asked for.
    Mismatch(String),
    /// The content's length is not the descriptor's size.
    Size(u64),
}

/// The outcome the stream leaves for the uploader, and the bytes that went through.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) failure: SourceFailure,
    pub(super) bytes: u64,
}

/// Shared between the stream (inside the upload body) and the uploader.
pub(super) type SharedOutcome = Arc<Mutex<Outcome>>;

pub(super) fn read(outcome: &SharedOutcome) -> (SourceFailure, u64) {
    let outcome = outcome.lock().unwrap_or_else(PoisonError::into_inner);
    (outcome.failure.clone(), outcome.bytes)
}

type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct State {
    chunks: Chunks,
    hasher: Sha256,
    held: Option<Bytes>,
    seen: u64,
    digest: String,
    size: Option<u64>,
    finished: bool,
    outcome: SharedOutcome,
}

impl State {
    fn fail(&mut self, failure: SourceFailure, message: String) -> io::Error {
        self.finished = true;
        self.held = None;
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        outcome.failure = failure;
        outcome.bytes = self.seen;
        io::Error::other(message)
    }
}

/// The body of `response` (a blob `GET`) as an upload body that fails, instead of ending,
/// when the content is not `digest` (or not `size` bytes) or the source's connection fails.
pub(super) fn verified(
    response: reqwest::Response,
    digest: &str,
    size: Option<u64>,
    outcome: SharedOutcome,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let state = State {
        chunks: Box::pin(response.bytes_stream()),
        hasher: Sha256::new(),
        held: None,
        seen: 0,
        digest: digest.to_owned(),
        size,
        finished: false,
        outcome,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            match st.chunks.next().await {
                Some(Ok(chunk)) => {
                    st.hasher.update(&chunk);
                    st.seen += chunk.len() as u64;
                    if let Some(size) = st.size
                        && st.seen > size
                    {
                        let e = st.fail(
                            SourceFailure::Size(st.seen),
                            format!("blob longer than its size {size}"),
                        );
                        return Some((Err(e), st));
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if let Some(previous) = st.held.replace(chunk) {
                        return Some((Ok(previous), st));
                    }
                }
                Some(Err(e)) => {
                    let message = e.to_string();
                    let e = st.fail(SourceFailure::Transport(message.clone()), message);
                    return Some((Err(e), st));
                }
                None => {
                    st.finished = true;
                    let got = format!("sha256:{}", hex(&std::mem::take(&mut st.hasher).finalize()));
                    if got != st.digest {
                        let e = st.fail(SourceFailure::Mismatch(got), "digest mismatch".into());
                        return Some((Err(e), st));
                    }
                    if let Some(size) = st.size
                        && size != st.seen
                    {
                        let e = st.fail(SourceFailure::Size(st.seen), "size mismatch".into());
                        return Some((Err(e), st));
                    }
                    st.outcome
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .bytes = st.seen;
                    let last = st.held.take()?;
                    return Some((Ok(last), st));
                }
            }
        }
    })
}

/// The upload's result `sent` when the source's side was fine; otherwise the source's
/// failure, naming the source registry, repository and digest (`src` is the blob's
/// reference), and saying that nothing was committed at `dst`.
pub(super) fn check(
    failure: SourceFailure,
    sent: reqwest::Result<reqwest::Response>,
    src: &ImageRef,
    dst: &ImageRef,
    size: Option<u64>,
) -> Result<reqwest::Result<reqwest::Response>> {
    let digest = &src.reference;
    let read_op = format!("read blob {digest} from {}/{}", src.host, src.repository);
    match failure {
        SourceFailure::None => Ok(sent),
        SourceFailure::Transport(message) => Err(Error::Unavailable {
            backend: registry(src),
            operation: read_op,
            message: format!(
                "{message} (nothing was committed under {digest} in {}/{}; a retried copy \
                 skips the blobs already copied)",
                dst.host, dst.repository
            ),
            retry_after: None,
            source: sent.err().map(|e| Box::new(e) as _),
        }),
        SourceFailure::Mismatch(got) => Err(mismatch(src, "blob", digest, &got)),
        SourceFailure::Size(got) => Err(Error::backend(
            registry(src),
            read_op,
            format!(
                "the blob is {got} bytes (or more), its descriptor says {}",
                size.unwrap_or_default()
            ),
        )),
    }
}

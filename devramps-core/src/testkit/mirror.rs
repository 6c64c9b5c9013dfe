//! Conformance cases of [`ArtifactMirror`]: mirroring places the artifact, and mirroring it
//! again succeeds.
//!
//! Run them all with [`mirror_conformance_tests!`](crate::mirror_conformance_tests) over a
//! [`MirrorFixture`].

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::Result;
use crate::backend::{ArtifactMirror, MirrorRequest};

use super::{Capabilities, ok};

/// Whether a request's destination holds its artifact (looked up at the destination).
pub type HoldsArtifact =
    Box<dyn for<'a> Fn(&'a MirrorRequest) -> BoxFuture<'a, Result<bool>> + Send + Sync>;

/// A mirror under test, an artifact it can copy, and a way to look at the destination.
pub struct MirrorFixture {
    /// The mirror.
    pub mirror: Arc<dyn ArtifactMirror>,
    /// A copy of an existing build into a destination that does not hold it yet.
    pub request: MirrorRequest,
    /// Whether the destination holds the artifact.
    pub holds: HoldsArtifact,
}

impl fmt::Debug for MirrorFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorFixture")
            .field("mirror", &self.mirror)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// The fixture a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject(fixture: &MirrorFixture) -> &MirrorFixture {
    fixture
}

/// After `mirror`, the destination holds the artifact (it did not before).
pub async fn mirror_places_the_artifact(f: &MirrorFixture, _: &Capabilities) {
    let holds = ok((f.holds)(&f.request).await, "look at the destination");
    assert!(
        !holds,
        "the fixture's destination must not hold the artifact yet"
    );
    ok(f.mirror.mirror(&f.request).await, "mirror");
    assert!(
        ok((f.holds)(&f.request).await, "look"),
        "mirrored artifact at the destination"
    );
}

/// Mirroring what is already there succeeds, and the artifact stays.
pub async fn mirror_again_succeeds_and_keeps_it(f: &MirrorFixture, _: &Capabilities) {
    ok(f.mirror.mirror(&f.request).await, "mirror");
    ok(f.mirror.mirror(&f.request).await, "mirror again");
    assert!(
        ok((f.holds)(&f.request).await, "look"),
        "still at the destination"
    );
}

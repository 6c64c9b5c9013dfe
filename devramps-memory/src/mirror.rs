//! [`InMemoryMirror`]: artifact mirroring that records its copies.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::{ArtifactMirror, MirrorRequest};

/// Where a copy lands and what it is: (account, region, artifact, build commit, image URL,
/// S3 URL).
type Placed = (String, String, String, String, String, String);

#[derive(Debug, Default)]
struct State {
    present: BTreeSet<Placed>,
    copies: Vec<MirrorRequest>,
    calls: usize,
}

/// An [`ArtifactMirror`] that remembers what each stage holds.
///
/// Mirroring an artifact build (account, region, artifact, build commit and destination) that
/// is not there yet records one copy; mirroring it again succeeds without copying, so the
/// mirror is idempotent and a rollback's re-check copies nothing. Clones share state.
#[derive(Clone, Debug, Default)]
pub struct InMemoryMirror {
    state: Arc<Mutex<State>>,
}

fn placed(request: &MirrorRequest) -> Placed {
    (
        request.target.account_id.clone(),
        request.target.region.clone(),
        request.artifact.clone(),
        request.build_commit.clone(),
        request.destination.image_url.clone(),
        request.destination.s3_url.clone(),
    )
}

impl InMemoryMirror {
    /// An empty mirror.
    pub fn new() -> Self {
        InMemoryMirror::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every copy actually made, in order.
    pub fn copies(&self) -> Vec<MirrorRequest> {
        self.lock().copies.clone()
    }

    /// How many times `mirror` was called (copies or not).
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// Whether the destination of `request` holds its artifact.
    pub fn contains(&self, request: &MirrorRequest) -> bool {
        self.lock().present.contains(&placed(request))
    }
}

#[async_trait]
impl ArtifactMirror for InMemoryMirror {
    async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
        let mut state = self.lock();
        state.calls += 1;
        if state.present.insert(placed(request)) {
            state.copies.push(request.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use devramps_core::backend::StageTarget;
    use devramps_core::expr::ArtifactLocation;
    use devramps_core::pipeline::ArtifactType;

    use super::*;

    #[test]
    fn mirroring_twice_copies_once() {
        let mirror = InMemoryMirror::new();
        let request = MirrorRequest::new(
            StageTarget::new("api", "prod", "1", "us-east-1"),
            "web",
            ArtifactType::DockerBuild,
            "c1",
            ArtifactLocation {
                image_url: "1.dkr.ecr/web:c1".into(),
                ..ArtifactLocation::default()
            },
        );
        assert!(!mirror.contains(&request));
        futures::executor::block_on(async {
            mirror.mirror(&request).await.unwrap();
            mirror.mirror(&request).await.unwrap();
        });
        assert_eq!(mirror.copies(), std::slice::from_ref(&request));
        assert_eq!(mirror.calls(), 2);
        assert!(mirror.contains(&request));
    }
}

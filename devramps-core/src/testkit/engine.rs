//! The engine smoke test over a whole [`Backends`] bundle: one push through a one-stage
//! pipeline ends SUCCEEDED.
//!
//! Run it with [`engine_conformance_tests!`](crate::engine_conformance_tests) over an
//! [`EngineFixture`]. The case replaces the bundle's source with one commit of its own
//! ([`PIPELINE`] as `/.devramps/conformance/pipeline.yaml`), so any bundle runs it; the rest
//! of the bundle is used as given: the store and lease service record and drive the
//! deployment, the resource validator checks the stage, and the step runner must run a step
//! of type `CUSTOM:CONFORMANCE:SMOKE` (no params) to success.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backends, DirEntry, SourceRepository};
use crate::engine::{Engine, EngineConfig, PushRequest};
use crate::error::{Error, Result};
use crate::lifecycle::StageState;
use crate::pipeline::{PIPELINE_DIR, PIPELINE_FILE};

use super::{Capabilities, Time, ok, until};

/// The pipeline the smoke test deploys.
pub const PIPELINE: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: prod, account_id: "111111111111", region: us-east-1 }
  steps:
    - { name: Smoke, id: smoke, type: "CUSTOM:CONFORMANCE:SMOKE" }
  artifacts: {}
"#;

/// The pipeline's slug.
const SLUG: &str = "conformance";
/// The one commit of the case's source.
const COMMIT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
/// How long (on the bundle's clock) the deployment may take.
const PATIENCE: Duration = Duration::from_secs(30 * 60);
/// How often (on the bundle's clock) the case looks at the deployment.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// A bundle under test.
#[derive(Clone, Debug)]
pub struct EngineFixture {
    /// The bundle (its source is replaced by the case's).
    pub backends: Backends,
    /// How time passes on the bundle's clock.
    pub time: Time,
}

/// The fixture a harness made, as the cases take it.
#[doc(hidden)]
pub fn subject(fixture: &EngineFixture) -> &EngineFixture {
    fixture
}

/// A repository of one commit holding [`PIPELINE`].
#[derive(Debug)]
struct OneCommit;

impl OneCommit {
    fn check(commit: &str) -> Result<()> {
        if commit == COMMIT {
            Ok(())
        } else {
            Err(Error::not_found(format!("commit `{commit}`")))
        }
    }
}

#[async_trait]
impl SourceRepository for OneCommit {
    async fn resolve(&self, rev: &str) -> Result<String> {
        Self::check(rev).map(|()| COMMIT.to_owned())
    }

    async fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        Self::check(commit)?;
        let pipeline = format!("/{PIPELINE_DIR}/{SLUG}/{PIPELINE_FILE}");
        Ok((path == pipeline).then(|| PIPELINE.as_bytes().to_vec()))
    }

    async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        Self::check(from)?;
        Self::check(to)?;
        Ok(Vec::new())
    }

    async fn first_parent(&self, commit: &str) -> Result<Option<String>> {
        Self::check(commit).map(|()| None)
    }

    async fn list_dir(&self, commit: &str, path: &str) -> Result<Vec<DirEntry>> {
        Self::check(commit)?;
        let (name, is_dir) = match path.trim_end_matches('/') {
            "" => (PIPELINE_DIR, true),
            p if p == format!("/{PIPELINE_DIR}") => (SLUG, true),
            p if p == format!("/{PIPELINE_DIR}/{SLUG}") => (PIPELINE_FILE, false),
            _ => return Ok(Vec::new()),
        };
        let name = name.to_owned();
        Ok(vec![DirEntry { name, is_dir }])
    }
}

/// One push through a one-stage pipeline ends SUCCEEDED, and the driver stops cleanly.
pub async fn one_push_through_one_stage_succeeds(f: &EngineFixture, _: &Capabilities) {
    let mut backends = f.backends.clone();
    backends.source = Arc::new(OneCommit);
    let clock = backends.clock.clone();
    let config = EngineConfig {
        instance: "conformance".to_owned(),
        ..EngineConfig::default()
    };
    let (engine, driver) = Engine::new(backends, config);
    let flow = async {
        let push = PushRequest {
            delivery: Some("conformance-1".to_owned()),
            branch: "main".to_owned(),
            commit: COMMIT.to_owned(),
            tag: String::new(),
        };
        ok(engine.push(SLUG, push).await, "push");
        let give_up = clock.now() + PATIENCE;
        loop {
            let state = ok(engine.state(SLUG).await, "state");
            let prod = state.deployments.get(&1).and_then(|d| d.stage("prod"));
            match prod.map(|s| s.state) {
                Some(StageState::Succeeded) => break,
                Some(s @ (StageState::Failed | StageState::TimedOut | StageState::Cancelled)) => {
                    panic!(
                        "the deployment ended {} instead of SUCCEEDED: {prod:?}",
                        s.as_str()
                    )
                }
                _ if clock.now() > give_up => {
                    panic!("the deployment did not end within {PATIENCE:?}: {prod:?}")
                }
                _ => clock.sleep_until(clock.now() + LOOK_EVERY).await,
            }
        }
        ok(engine.stop().await, "stop the driver");
    };
    let what = "one push through a one-stage pipeline";
    let (run, ()) = futures::join!(driver.run(), until(&f.time, what, flow));
    ok(run, "the driver's run");
}

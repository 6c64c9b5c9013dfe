//! Commit statuses from a real engine (in-memory backends, scripted work) posted to the fake
//! GitHub API on loopback: one context per stage, approval waits shown, failures with their
//! reason, updates coalesced, nothing posted twice, a full queue never blocks the engine.
#![allow(clippy::unwrap_used)]

mod fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Actor, Decide, Event, PipelineState, StageState};
use devramps_git::testing::TestRepo;
use devramps_github::{Auth, CommitStatuses, GitHubClient, StatusPoster};
use devramps_memory::{Behavior, Match, MemoryHandles};
use fake::{Fake, Inject};
use serde_json::Value;

const REPO: &str = "acme/shop";
const UI: &str = "https://devramps.example.com/ui";

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
    - { name: Tests, id: tests, type: "DEVRAMPS:APPROVAL:TEST", params: { testCommand: npm test, testType: jest } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: { dockerfile: /Dockerfile }
"#;

struct World {
    fake: Fake,
    sha: String,
    engine: Engine,
    handles: MemoryHandles,
    driver: tokio::task::JoinHandle<devramps_core::Result<()>>,
    poster: Option<StatusPoster>,
    repo: TestRepo,
}

/// A git repository served by the fake, its head known to the in-memory source under its
/// real id, an engine whose observer posts statuses (the poster not started yet).
async fn world(queue: usize, script: impl FnOnce(&MemoryHandles)) -> World {
    let mut repo = TestRepo::new();
    repo.write(".devramps/app/pipeline.yaml", PIPELINE);
    let sha = repo.commit("pipeline");
    let fake = Fake::start(repo.path(), REPO, "ghp_test").await;
    let (backends, handles) = devramps_memory::scripted_backends();
    handles.source.commit(
        &sha,
        None,
        [
            ("/.devramps/app/pipeline.yaml", PIPELINE),
            ("/Dockerfile", "FROM scratch"),
        ],
    );
    script(&handles);
    let client = GitHubClient::new(&fake.url, Auth::token("ghp_test")).unwrap();
    let (observer, poster) = CommitStatuses::new(client, REPO)
        .unwrap()
        .with_target_url(UI)
        .unwrap()
        .with_queue(queue)
        .channel();
    let config = EngineConfig::default().with_observer(Arc::new(observer));
    let (engine, driver) = Engine::new(backends, config);
    let driver = tokio::spawn(driver.run());
    World {
        fake,
        sha,
        engine,
        handles,
        driver,
        poster: Some(poster),
        repo,
    }
}

impl World {
    fn start_poster(&mut self) -> tokio::task::JoinHandle<()> {
        let store: devramps_core::backend::DynEventStore = Arc::new(self.handles.store.clone());
        tokio::spawn(self.poster.take().unwrap().run(store))
    }

    /// Runs the engine and its manual clock until `until` holds of the pipeline's state.
    async fn drive(&self, until: impl Fn(&PipelineState) -> bool) {
        let start = Instant::now();
        loop {
            let s = self.engine.state("app").await.unwrap();
            if until(&s) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "stuck: {s:?}");
            tokio::task::yield_now().await;
            if self.handles.clock.next_deadline().is_some() {
                tokio::time::sleep(Duration::from_millis(1)).await;
                self.handles.clock.advance_to_next_deadline();
            }
        }
    }

    /// Stops the engine (which drops the observer, closing the poster's queue); the fake and
    /// the repository it serves live on.
    async fn stop(self) -> (Fake, TestRepo) {
        self.engine.stop().await.unwrap();
        drop(self.engine);
        self.driver.await.unwrap().unwrap();
        (self.fake, self.repo)
    }

    fn push(&self) -> PushRequest {
        PushRequest::new("main", &self.sha).with_delivery("d-1")
    }
}

fn stage(s: &PipelineState, name: &str) -> Option<(StageState, ())> {
    Some((s.deployments.get(&1)?.stage(name)?.state, ()))
}

/// The statuses posted: (sha, context, state, description, target_url).
fn posted(fake: &Fake) -> Vec<(String, String, String, String, Option<String>)> {
    fake.with(|s| {
        s.statuses
            .iter()
            .map(|(sha, b)| {
                let text = |k: &str| b[k].as_str().unwrap_or("").to_owned();
                let url = b
                    .get("target_url")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (
                    sha.clone(),
                    text("context"),
                    text("state"),
                    text("description"),
                    url,
                )
            })
            .collect()
    })
}

async fn wait_for(
    fake: &Fake,
    what: &str,
    holds: impl Fn(&[(String, String, String, String, Option<String>)]) -> bool,
) {
    let start = Instant::now();
    while !holds(&posted(fake)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: {:?}",
            posted(fake)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_gets_its_context_approval_waits_are_pending_and_success_ends_it() {
    let mut w = world(1024, |h| {
        // The test gate fails in prod: it waits for a person (L16).
        h.steps.script(
            Match::step("tests").in_stage("prod"),
            Behavior::fail("2 tests failed", Duration::from_secs(60)),
        );
    })
    .await;
    let poster = w.start_poster();
    w.engine.push("app", w.push()).await.unwrap();
    let start = Instant::now();
    let history = loop {
        let history = w.engine.history("app").await.unwrap();
        if history
            .iter()
            .any(|r| matches!(r.event, Event::ApprovalRequired { .. }))
        {
            break history;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no approval asked"
        );
        w.drive(|_| true).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        w.handles.clock.advance_to_next_deadline();
    };
    let step = history
        .iter()
        .find_map(|r| match &r.event {
            Event::ApprovalRequired { step, .. } => Some(step.clone()),
            _ => None,
        })
        .expect("an approval_required record");
    let waiting = format!("waiting for approval of {step}");
    wait_for(&w.fake, "the approval wait", |p| {
        p.last()
            .is_some_and(|s| s.1 == "devramps/app/prod" && s.2 == "pending" && s.3 == waiting)
    })
    .await;
    let decide = Decide::new(1, "prod", step.as_str(), Actor::User("ana".into()));
    w.engine.approve("app", decide).await.unwrap();
    w.drive(|s| stage(s, "prod").is_some_and(|(st, _)| st == StageState::Succeeded))
        .await;
    let sha = w.sha.clone();
    let (fake, _repo) = w.stop().await;
    tokio::time::timeout(Duration::from_secs(20), poster)
        .await
        .unwrap()
        .unwrap();

    let all = posted(&fake);
    assert!(all.iter().all(|s| s.0 == sha), "{all:?}");
    for context in ["devramps/app/staging", "devramps/app/prod"] {
        let mine: Vec<_> = all.iter().filter(|s| s.1 == context).collect();
        let last = mine
            .last()
            .unwrap_or_else(|| panic!("no status for {context}: {all:?}"));
        assert_eq!(
            (last.2.as_str(), last.3.as_str()),
            ("success", "succeeded"),
            "{context}: {mine:?}"
        );
        assert!(
            mine.iter().any(|s| s.2 == "pending"),
            "{context} was pending first: {mine:?}"
        );
        let stage = context.rsplit('/').next().unwrap();
        assert_eq!(
            last.4.as_deref(),
            Some(format!("{UI}/pipelines/app/revisions/1/stages/{stage}").as_str())
        );
    }
    // Never the same status twice for a commit and context.
    let mut seen = std::collections::HashSet::new();
    for s in &all {
        assert!(
            seen.insert((&s.0, &s.1, &s.2, &s.3)),
            "posted twice: {s:?} in {all:?}"
        );
    }
    // The approval and the stage's success came in one append: coalesced, the wait is
    // followed by the success.
    let prod: Vec<_> = all.iter().filter(|s| s.1 == "devramps/app/prod").collect();
    let wait = prod.iter().position(|s| s.3 == waiting).unwrap();
    assert_eq!(prod[wait + 1..].len(), 1, "{prod:?}");
    assert_eq!(prod[wait + 1].2, "success", "{prod:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piled_up_records_post_only_the_newest_state_and_a_failure_carries_its_reason() {
    let reason = "exit status 3: the database migration 0042 failed";
    let mut w = world(1024, |h| {
        h.steps.script(
            Match::step("deploy").in_stage("staging"),
            Behavior::fail(reason, Duration::from_secs(60)),
        );
    })
    .await;
    // The poster starts only once the deployment ended: every record is queued by then.
    w.engine.push("app", w.push()).await.unwrap();
    w.drive(|s| stage(s, "staging").is_some_and(|(st, _)| st == StageState::Failed))
        .await;
    let history = w.engine.history("app").await.unwrap();
    let staging_records = history
        .iter()
        .filter(|r| matches!(&r.event, Event::StageState { stage, .. } if stage == "staging"))
        .count();
    assert!(
        staging_records >= 2,
        "in progress, then failed: {history:?}"
    );
    // A 502 first: the client tries again.
    w.fake.with(|s| s.inject.push_back(Inject::Status(502)));
    let poster = w.start_poster();
    let (fake, _repo) = w.stop().await;
    tokio::time::timeout(Duration::from_secs(20), poster)
        .await
        .unwrap()
        .unwrap();

    let all = posted(&fake);
    let staging: Vec<_> = all
        .iter()
        .filter(|s| s.1 == "devramps/app/staging")
        .collect();
    assert_eq!(staging.len(), 1, "coalesced to the newest state: {all:?}");
    assert_eq!(staging[0].2, "failure");
    assert!(
        staging[0].3.contains("database migration 0042 failed"),
        "{:?}",
        staging[0]
    );
    assert!(staging[0].3.chars().count() <= 140);
    let contexts: std::collections::HashSet<_> = all.iter().map(|s| &s.1).collect();
    assert_eq!(contexts.len(), all.len(), "one post per context: {all:?}");
    if let Some(prod) = all.iter().find(|s| s.1 == "devramps/app/prod") {
        assert_eq!(prod.2, "error", "prod will not run: {prod:?}");
    }
    assert_eq!(
        fake.count("POST /repos/acme/shop/statuses/"),
        all.len() + 1,
        "the 502 was tried again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_statuses_and_never_blocks_the_engine() {
    let mut w = world(1, |_| {}).await;
    // Nobody reads the queue while the engine runs: it holds one append.
    w.engine.push("app", w.push()).await.unwrap();
    w.drive(|s| stage(s, "prod").is_some_and(|(st, _)| st == StageState::Succeeded))
        .await;
    let poster = w.start_poster();
    let (fake, _repo) = w.stop().await;
    tokio::time::timeout(Duration::from_secs(20), poster)
        .await
        .unwrap()
        .unwrap();
    let all = posted(&fake);
    assert!(!all.is_empty(), "the first append's statuses were kept");
    assert!(
        all.iter().all(|s| s.2 == "pending"),
        "the later appends (the successes) were dropped: {all:?}"
    );
}

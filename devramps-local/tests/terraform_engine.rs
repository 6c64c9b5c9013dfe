//! The real engine ([`Engine`]) deciding the Terraform approval policy (L16, reference §4.2 and
//! scenarios 30–31) on the plans of the real [`TerraformRunner`]: Terraform 1.0.3 and the test
//! provider of `terraform_support`, a real git repository whose commits hold the pipeline and a
//! fixture root, the other backends in memory and real time ([`TokioClock`]).

// Shared with tests/terraform.rs, which uses the rest of it.
#[allow(dead_code)]
mod terraform_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devramps_core::backend::{Backends, TokioClock};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::exec::{ExecutionKey, Unit};
use devramps_core::lifecycle::{Actor, Decide, Event, StageRun, StageState, StepState};
use devramps_git::testing::TestRepo;
use devramps_local::terraform::TerraformRunner;
use devramps_memory::scripted_backends;
use serde_json::json;
use terraform_support::{Setup, root};

/// One stage, one Terraform step `infra` applying `/infra` under `policy`.
fn pipeline(policy: &str) -> String {
    format!(
        r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - {{ name: staging, account_id: "111111111111", region: us-east-1 }}
  steps:
    - name: Infra
      id: infra
      type: DEVRAMPS:TERRAFORM:SYNTHESIZE
      params:
        requires_approval: {policy}
        source: /infra
        variables: {{ prefix: p }}
  artifacts: {{}}
"#
    )
}

/// A running engine over the real runner, with the repository and state folder behind it.
struct Harness {
    setup: Setup,
    runner: TerraformRunner,
    engine: Engine,
}

impl Harness {
    /// One commit per fixture root named, each with the pipeline under `policy`, and an
    /// engine (its other backends in memory) driving it.
    fn start(policy: &str, roots: &[&str]) -> Harness {
        terraform_support::tf(); // Panics with instructions when Terraform is not installed.
        let mut repo = TestRepo::new();
        repo.write(".devramps/app/pipeline.yaml", &pipeline(policy));
        for name in roots {
            repo.write("infra/main.tf", &root(name));
            repo.commit(name);
        }
        let setup = Setup {
            repo,
            state: tempfile::tempdir().expect("temp dir"),
        };
        let runner = setup.runner();
        let (memory, _handles) = scripted_backends();
        let backends = Backends {
            source: Arc::new(setup.repo.source()),
            infra: Arc::new(runner.clone()),
            clock: Arc::new(TokioClock::new()),
            ..memory
        };
        let (engine, driver) = Engine::new(backends, EngineConfig::new("terraform-engine"));
        tokio::spawn(async move {
            let _ = driver.run().await;
        });
        Harness {
            setup,
            runner,
            engine,
        }
    }

    /// Pushes commit `n` (1-based) to `main`.
    async fn push(&self, n: usize) {
        let push = PushRequest::new("main", self.setup.repo.c(n));
        self.engine.push("app", push).await.expect("push accepted");
    }

    /// Waits (real time, Terraform is slow) until `revision`'s staging run satisfies `done`.
    async fn wait(&self, revision: u64, what: &str, done: impl Fn(&StageRun) -> bool) -> StageRun {
        let until = Instant::now() + Duration::from_secs(180);
        loop {
            let state = self.engine.state("app").await.expect("state");
            if let Some(run) = state.run(revision, "staging") {
                if done(run) {
                    return run.clone();
                }
                assert!(
                    Instant::now() < until,
                    "revision {revision} never {what}: {run:#?}"
                );
            }
            assert!(Instant::now() < until, "revision {revision} never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `revision`'s stage succeeded; returns the step's outputs.
    async fn succeeded(&self, revision: u64) -> BTreeMap<String, serde_json::Value> {
        let run = self
            .wait(revision, "ended", |r| r.state.is_terminal(r.waiting_for))
            .await;
        assert_eq!(run.state, StageState::Succeeded, "{run:#?}");
        assert_eq!(run.steps[0].state, StepState::Succeeded, "{run:#?}");
        run.steps[0].outputs.clone()
    }

    /// Waits until `revision`'s Terraform step waits for approval; returns the reason recorded
    /// with the `approval_required` event.
    async fn waiting(&self, revision: u64) -> String {
        let run = self
            .wait(revision, "waited for approval", |r| {
                r.state.is_terminal(r.waiting_for) || r.steps[0].state == StepState::WaitingApproval
            })
            .await;
        assert_eq!(run.steps[0].state, StepState::WaitingApproval, "{run:#?}");
        let history = self.engine.history("app").await.expect("history");
        let reasons: Vec<String> = history
            .into_iter()
            .filter_map(|r| match r.event {
                Event::ApprovalRequired {
                    revision: rev,
                    step,
                    reason,
                    ..
                } if rev == revision && step == "infra" => reason,
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 1, "one approval asked: {reasons:?}");
        reasons[0].clone()
    }

    /// Every log line of the Terraform step of `revision` (first attempt).
    async fn log(&self, revision: u64) -> String {
        let key = ExecutionKey::new("app", revision, "staging", 1, Unit::step("infra"));
        let logs = self.runner.logs(&key).await.expect("logs");
        logs.iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The local Terraform state of the step (empty when there is none).
    fn tfstate(&self) -> String {
        let path = self
            .setup
            .state
            .path()
            .join("terraform/state/app/staging/infra/terraform.tfstate");
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

/// A decision of the operator `ops` on the step `infra` of `revision` in staging.
fn decide(revision: u64) -> Decide {
    Decide::new(revision, "staging", "infra", Actor::User("ops".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_changes_only_applies_creations_and_waits_for_a_replacement_and_a_deletion() {
    let h = Harness::start("DESTRUCTIVE_CHANGES_ONLY", &["things", "things_v3"]);

    // Push 1: two creations apply without a person; the outputs are Terraform's.
    h.push(1).await;
    let first = h.succeeded(1).await;
    assert_eq!(first["names"], json!(["p-a", "p-b"]), "{first:?}");
    let old_id = first["a_id"].as_str().expect("a_id is text").to_owned();
    assert!(old_id.starts_with("thing-"), "{old_id}");
    let log = h.log(1).await;
    assert!(log.contains("Apply complete! Resources: 2 added"), "{log}");
    assert_eq!(log.matches(" plan -input=false").count(), 1, "{log}");
    let history = h.engine.history("app").await.expect("history");
    assert!(
        !history
            .iter()
            .any(|r| matches!(r.event, Event::ApprovalRequired { .. })),
        "nobody was asked: {history:#?}"
    );

    // Push 2: a is renamed (replaced) and b removed: the step waits, saying what changes.
    h.push(2).await;
    let reason = h.waiting(2).await;
    for part in [
        "Terraform plan: 1 to create, 0 to update, 2 to destroy",
        "DESTRUCTIVE_CHANGES_ONLY",
        "replace devramps_thing.a",
        "delete devramps_thing.b",
    ] {
        assert!(reason.contains(part), "{part:?} not in {reason:?}");
    }
    // Nothing was applied: the state still holds the old things, the log has no apply.
    let state = h.tfstate();
    assert!(
        state.contains("\"p-a\"") && state.contains("\"p-b\"") && state.contains(&old_id),
        "{state}"
    );
    assert!(!state.contains("p-a-renamed"), "{state}");
    let log = h.log(2).await;
    assert!(!log.contains(" apply -input=false"), "{log}");

    // Approved: the engine plans again (the runner returns the saved plan) and applies it.
    h.engine.approve("app", decide(2)).await.expect("approve");
    let second = h.succeeded(2).await;
    let new_id = second["a_id"].as_str().expect("a_id is text");
    assert!(
        new_id.starts_with("thing-") && new_id != old_id,
        "{second:?}"
    );
    assert!(!second.contains_key("names"), "{second:?}");
    let state = h.tfstate();
    assert!(
        state.contains("p-a-renamed") && !state.contains("\"p-b\""),
        "{state}"
    );
    let log = h.log(2).await;
    assert_eq!(
        log.matches(" plan -input=false").count(),
        1,
        "terraform planned once for the key: {log}"
    );
    assert_eq!(log.matches(" apply -input=false").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_waits_for_a_purely_additive_plan_and_a_rejection_applies_nothing() {
    let h = Harness::start("ALWAYS", &["things"]);
    h.push(1).await;
    let reason = h.waiting(1).await;
    assert!(
        reason.contains("Terraform plan: 2 to create, 0 to update, 0 to destroy (ALWAYS)")
            && reason.contains("create devramps_thing.a")
            && reason.contains("create devramps_thing.b"),
        "{reason}"
    );
    h.engine.reject("app", decide(1)).await.expect("reject");
    let run = h
        .wait(1, "ended", |r| r.state.is_terminal(r.waiting_for))
        .await;
    assert_eq!(run.state, StageState::Failed, "{run:#?}");
    assert_eq!(run.steps[0].state, StepState::Failed, "{run:#?}");
    assert!(!h.tfstate().contains("p-a"), "nothing was created");
    let log = h.log(1).await;
    assert!(!log.contains(" apply -input=false"), "{log}");
}

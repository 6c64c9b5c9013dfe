//! The `Runner` conformance kit of `devramps_core::testkit`, run against [`TestGateRunner`] on
//! tokio: `quick` gates run `true`, `slow` gates `sleep 3600`, in a real repository.

use std::sync::Arc;

use devramps_core::exec::{StageTarget, StepRequest};
use devramps_core::expr::FinalValue;
use devramps_core::testkit::{Harness, RunnerFixture, Runtime, Time, runner::SLOW};
use devramps_git::testing::TestRepo;
use devramps_local::gate::{TEST_GATE_TYPE, TestGateRunner};

/// A fresh repository and state folder per case, on the kit's tokio runtime.
struct Gates;

impl Harness for Gates {
    type Backend = RunnerFixture<StepRequest>;

    fn runtime(&self) -> Runtime {
        Runtime::Tokio
    }

    async fn setup(&self) -> RunnerFixture<StepRequest> {
        let mut repo = TestRepo::new();
        repo.write("README.md", "hello\n");
        let commit = repo.commit("one");
        let state = Arc::new(tempfile::tempdir().expect("temp dir"));
        let runner = TestGateRunner::new(Arc::new(repo.source()), state.path());
        let repo = Arc::new(std::sync::Mutex::new(repo));
        RunnerFixture {
            runner: Arc::new(runner),
            request: Box::new(move |key| {
                // The folders live as long as the fixture.
                let _keep = (&state, &repo);
                let command = if key.unit == SLOW {
                    "sleep 3600"
                } else {
                    "true"
                };
                StepRequest::new(
                    key,
                    TEST_GATE_TYPE,
                    FinalValue::Plain(serde_json::json!({ "testCommand": command })),
                )
                .with_commit(commit.clone())
                .with_target(StageTarget::new(
                    "conformance",
                    "prod",
                    "111111111111",
                    "us-east-1",
                ))
            }),
            time: Time::Real,
        }
    }
}

devramps_core::runner_conformance_tests!(harness = Gates);

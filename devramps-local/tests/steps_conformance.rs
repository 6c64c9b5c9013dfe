//! The core's runner conformance kit against [`CustomStepRunner`] with the sample registry
//! (real `node` processes, real time): quick executions are `CUSTOM:ECHO`, slow ones
//! `CUSTOM:ECHO` sleeping an hour.

#![allow(clippy::unwrap_used)]

#[path = "steps_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use devramps_core::backend::StepRequest;
use devramps_core::testkit::{Harness, Runtime, Time, runner::RunnerFixture, runner::SLOW};
use devramps_local::steps::CustomStepRunner;
use serde_json::json;

/// A runner on a fresh state directory, removed after the case.
#[derive(Default)]
struct Fresh {
    dir: Mutex<Option<PathBuf>>,
}

impl Harness for Fresh {
    type Backend = RunnerFixture<StepRequest>;

    fn runtime(&self) -> Runtime {
        Runtime::Tokio
    }

    async fn setup(&self) -> RunnerFixture<StepRequest> {
        let dir = tempfile::tempdir().unwrap().keep();
        *self.dir.lock().unwrap() = Some(dir.clone());
        let runner = CustomStepRunner::new(dir, vec![support::sample()]);
        RunnerFixture {
            runner: Arc::new(runner),
            request: Box::new(|key| {
                let sleep = if key.unit == SLOW { 3_600_000 } else { 0 };
                support::request(
                    &key,
                    "CUSTOM:ECHO",
                    json!({"message": "m", "sleepMs": sleep}),
                )
            }),
            time: Time::Real,
        }
    }

    async fn cleanup(&self, fixture: RunnerFixture<StepRequest>) {
        drop(fixture);
        if let Some(dir) = self.dir.lock().unwrap().take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

devramps_core::runner_conformance_tests!(harness = Fresh::default());

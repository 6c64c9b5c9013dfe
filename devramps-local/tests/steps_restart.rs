//! Process groups that outlive the runner: a new runner on the same state directory
//! re-attaches instead of running a step twice; a step killed without a result fails clearly;
//! cancel stops the whole group, from any runner, with SIGKILL after the grace period.

#![allow(clippy::unwrap_used)]

#[path = "steps_support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use devramps_core::backend::{Outcome, Runner};
use devramps_local::steps::{CustomStepOptions, CustomStepRunner};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use support::{alive, invocation_dir, key, pid_of, reason, request, sample, wait};

/// A runtime of its own, dropped afterwards like an engine that was killed (its tasks die, its
/// processes do not).
fn in_a_runtime_that_ends<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_new_runner_re_attaches_to_a_running_step_and_never_runs_it_twice() {
    let state = tempfile::tempdir().unwrap();
    let count = state.path().join("count");
    let k = key("slowish");
    let req = request(
        &k,
        "CUSTOM:ECHO",
        json!({"message": "once", "sleepMs": 1500, "countFile": count}),
    );
    {
        let (req, dir) = (req.clone(), state.path().join("state"));
        in_a_runtime_that_ends(async move {
            let runner = CustomStepRunner::new(dir, vec![sample()]);
            runner.start(req).await.unwrap();
        });
    }
    let pid = pid_of(&invocation_dir(&state.path().join("state"), "run"));
    assert!(alive(pid), "the step outlives the runner that started it");
    in_a_runtime_that_ends(async {
        let runner = CustomStepRunner::new(state.path().join("state"), vec![sample()]);
        runner.start(req.clone()).await.unwrap();
        let outcome = wait(&runner, &k).await;
        assert_eq!(
            outcome,
            Outcome::Succeeded {
                outputs: [("message".to_owned(), json!("once"))]
                    .into_iter()
                    .collect()
            }
        );
        // Once more after the end: the outcome again, nothing run.
        runner.start(req).await.unwrap();
        assert_eq!(wait(&runner, &k).await, outcome);
    });
    assert_eq!(lines(&count), 1, "the step ran exactly once");
}

#[tokio::test]
async fn a_step_killed_without_a_result_fails_with_what_is_known() {
    let state = tempfile::tempdir().unwrap();
    let registry = support::script(state.path(), "dies", "echo 'about to hang' >&2\nsleep 60");
    let runner = CustomStepRunner::new(state.path().join("state"), vec![registry]);
    let k = key("dies");
    runner
        .start(request(&k, "CUSTOM:DIES", json!({})))
        .await
        .unwrap();
    let pid = pid_of(&invocation_dir(&state.path().join("state"), "run"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    killpg(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let why = reason(wait(&runner, &k).await);
    assert!(why.contains("ended without writing a result"), "{why}");
    assert!(why.contains("SIGKILL"), "{why}");
    assert!(
        why.contains("about to hang"),
        "stderr's tail is kept: {why}"
    );
    // A new runner (after a restart) gives the same outcome, without running it again.
    let again = CustomStepRunner::new(state.path().join("state"), vec![]);
    again
        .start(request(&k, "CUSTOM:DIES", json!({})))
        .await
        .unwrap();
    assert_eq!(reason(wait(&again, &k).await), why);
}

#[tokio::test]
async fn cancel_stops_the_whole_process_group() {
    let state = tempfile::tempdir().unwrap();
    let children = state.path().join("child.pid");
    let registry = support::script(
        state.path(),
        "tree",
        &format!("sleep 300 &\necho $! > {}\nwait", children.display()),
    );
    let runner = CustomStepRunner::new(state.path().join("state"), vec![registry]);
    let k = key("tree");
    runner
        .start(request(&k, "CUSTOM:TREE", json!({})))
        .await
        .unwrap();
    let child = wait_for_pid(&children).await;
    let leader = pid_of(&invocation_dir(&state.path().join("state"), "run"));
    assert!(alive(child) && alive(leader));
    runner.cancel(&k).await.unwrap();
    let why = reason(wait(&runner, &k).await);
    assert!(why.starts_with("cancelled"), "{why}");
    assert!(!alive(leader), "the step is stopped");
    gone_soon(child).await;
}

#[tokio::test]
async fn a_step_ignoring_sigterm_is_killed_after_the_grace_period_by_any_runner() {
    let state = tempfile::tempdir().unwrap();
    let children = state.path().join("child.pid");
    let registry = support::script(
        state.path(),
        "stubborn",
        &format!(
            "trap '' TERM\nsleep 300 &\necho $! > {}\nwait",
            children.display()
        ),
    );
    let dir = state.path().join("state");
    let runner = CustomStepRunner::new(&dir, vec![registry]);
    let k = key("stubborn");
    runner
        .start(request(&k, "CUSTOM:STUBBORN", json!({})))
        .await
        .unwrap();
    let child = wait_for_pid(&children).await;
    // Another runner on the same state directory (a CLI in another terminal) cancels it.
    let other = CustomStepRunner::new(&dir, vec![])
        .with_options(CustomStepOptions::default().with_cancel_grace(Duration::from_millis(300)));
    let asked = Instant::now();
    other.cancel(&k).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(alive(child), "SIGTERM is ignored by the group");
    let why = reason(wait(&runner, &k).await);
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "killed only after the grace"
    );
    assert!(why.starts_with("cancelled"), "{why}");
    assert!(why.contains("SIGKILL"), "{why}");
    gone_soon(child).await;
}

async fn wait_for_pid(path: &Path) -> i32 {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the step did not write {path:?}");
}

/// A child reparented to init is reaped by it, soon.
async fn gone_soon(pid: i32) {
    for _ in 0..500 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the step's child {pid} still runs: the whole group must be stopped");
}

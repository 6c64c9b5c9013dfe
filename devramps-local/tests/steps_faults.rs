//! Bad steps fail alone, clearly: result files that are missing, empty, malformed or of an
//! unknown status; a registry command that does not exist; a step printing a gigabyte (bounded
//! on disk and in memory). Secrets in params reach only the input file (mode 0600).

#![allow(clippy::unwrap_used)]

#[path = "steps_support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;

use devramps_core::backend::{Outcome, Runner};
use devramps_core::expr::{FinalValue, SecretString};
use devramps_local::steps::{CustomStepOptions, CustomStepRunner, StepRegistry};
use serde_json::json;
use support::{invocation_dir, key, reason, request, run, sample};

/// The failure reason of a step whose script is `body`.
async fn failure_of(body: &str) -> String {
    let state = tempfile::tempdir().unwrap();
    let registry = support::script(state.path(), "bad", body);
    let runner = CustomStepRunner::new(state.path().join("state"), vec![registry]);
    reason(run(&runner, request(&key("bad"), "CUSTOM:BAD", json!({}))).await)
}

#[tokio::test]
async fn a_step_that_writes_no_result_fails_with_its_exit_and_stderr() {
    let why = failure_of("echo 'something broke' >&2\nexit 0").await;
    assert!(why.contains("ended without writing a result"), "{why}");
    assert!(why.contains("exited with status 0"), "{why}");
    assert!(why.contains("something broke"), "{why}");
}

#[tokio::test]
async fn an_empty_result_file_fails_the_step() {
    let why = failure_of(": > \"$out\"").await;
    assert!(
        why.starts_with("the step wrote an empty result file"),
        "{why}"
    );
}

#[tokio::test]
async fn a_malformed_result_is_quoted_bounded() {
    let why = failure_of(
        "printf 'status: fine' > \"$out\"; head -c 100000 /dev/zero | tr '\\0' x >> \"$out\"",
    )
    .await;
    assert!(why.contains("is not JSON"), "{why}");
    assert!(why.contains("\"status: finexxx"), "{why}");
    assert!(why.len() < 2_000, "bounded: {} bytes", why.len());
}

#[tokio::test]
async fn an_unknown_status_fails_the_step_naming_it() {
    let why = failure_of(r#"echo '{"status":"DONE"}' > "$out""#).await;
    assert!(why.contains("unknown status \"DONE\""), "{why}");
}

#[tokio::test]
async fn a_failed_result_is_the_step_s_reason_whatever_the_exit_status() {
    let why = failure_of(
        r#"echo '{"status":"FAILED","error":"disk full","errorCode":"E_DISK"}' > "$out"; exit 0"#,
    )
    .await;
    assert_eq!(why, "E_DISK: disk full");
    // And a SUCCESS with a non-zero exit status is a success: the file carries the outcome.
    let state = tempfile::tempdir().unwrap();
    let registry = support::script(
        state.path(),
        "ok",
        r#"echo '{"status":"SUCCESS"}' > "$out"; exit 3"#,
    );
    let runner = CustomStepRunner::new(state.path().join("state"), vec![registry]);
    let outcome = run(&runner, request(&key("ok"), "CUSTOM:OK", json!({}))).await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_registry_command_that_does_not_exist_fails_the_step_and_others_run_on() {
    let state = tempfile::tempdir().unwrap();
    let missing =
        StepRegistry::npm(support::sample_dir()).with_command(["devramps-no-such-program"]);
    let runner = CustomStepRunner::new(state.path().join("a"), vec![missing]);
    let why = reason(
        run(
            &runner,
            request(&key("x"), "CUSTOM:ECHO", json!({"message": "m"})),
        )
        .await,
    );
    assert!(
        why.contains("could not start the step registry `devramps-no-such-program`"),
        "{why}"
    );
    assert!(why.contains("No such file"), "{why}");
    // Asked again (a restart), the same failure, and nothing is spawned.
    runner
        .start(request(&key("x"), "CUSTOM:ECHO", json!({})))
        .await
        .unwrap();
    assert_eq!(reason(support::wait(&runner, &key("x")).await), why);
    let fine = CustomStepRunner::new(state.path().join("b"), vec![sample()]);
    let ok = run(
        &fine,
        request(&key("y"), "CUSTOM:ECHO", json!({"message": "m"})),
    )
    .await;
    assert!(matches!(ok, Outcome::Succeeded { .. }), "{ok:?}");
}

/// The peak resident memory of this test process, from /proc.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_step_printing_a_gigabyte_is_captured_bounded() {
    let state = tempfile::tempdir().unwrap();
    let registry = support::script(
        state.path(),
        "loud",
        "yes 'a line of noise from a chatty step' | head -c 1000000000\n\
         echo 'the last words' >&2\n\
         echo '{\"status\":\"SUCCESS\",\"data\":{\"done\":true}}' > \"$out\"",
    );
    let limit = 1 << 20;
    let runner = CustomStepRunner::new(state.path().join("state"), vec![registry])
        .with_options(CustomStepOptions::default().with_capture_limit(limit));
    let before = peak_rss_kib();
    let outcome = run(&runner, request(&key("loud"), "CUSTOM:LOUD", json!({}))).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            outputs: [("done".to_owned(), json!(true))].into_iter().collect()
        }
    );
    let dir = invocation_dir(&state.path().join("state"), "run");
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    assert!(
        stdout.len() as u64 <= limit,
        "stdout kept bounded: {}",
        stdout.len()
    );
    assert!(stdout.starts_with("[devramps: "), "says what was dropped");
    // The tail is kept: whole lines of noise, then the part of a line `head` cut.
    let noise = "a line of noise from a chatty step";
    let (whole, cut) = stdout.rsplit_once('\n').unwrap();
    assert!(noise.starts_with(cut), "the last bytes written: {cut:?}");
    assert!(
        whole.lines().skip(1).all(|l| l == noise),
        "whole lines after the note"
    );
    assert!(whole.lines().count() > 1000);
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 100 * 1024, "memory grew by {grown} KiB");
}

#[tokio::test]
async fn secrets_in_params_reach_only_the_private_input_file() {
    let state = tempfile::tempdir().unwrap();
    let runner = CustomStepRunner::new(state.path().join("state"), vec![sample()]);
    let params = FinalValue::Map(vec![(
        "message".to_owned(),
        FinalValue::Secret(SecretString::new("hunter2-secret")),
    )]);
    let k = key("secret");
    let req = devramps_core::backend::StepRequest::new(k.clone(), "CUSTOM:ECHO", params);
    assert!(matches!(run(&runner, req).await, Outcome::Succeeded { .. }));
    let dir = invocation_dir(&state.path().join("state"), "run");
    let input = dir.join("input.json");
    assert!(
        std::fs::read_to_string(&input)
            .unwrap()
            .contains("hunter2-secret")
    );
    let mode = std::fs::metadata(&input).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "input.json is private");
    for file in ["pid", "stdout", "stderr", "current"] {
        let path = if file == "current" {
            dir.parent().unwrap().join(file)
        } else {
            dir.join(file)
        };
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2"), "{file} holds no secret");
    }
}

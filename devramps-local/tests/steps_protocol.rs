//! The step protocol against the sample registry (real `node` processes): outputs and logs,
//! approvals, polling, invalid params, routing between registries, npm as the default.

#![allow(clippy::unwrap_used)]

#[path = "steps_support/mod.rs"]
mod support;

use devramps_core::backend::{Outcome, Polling, Runner, StageTarget};
use devramps_local::steps::{CustomStepRunner, StepRegistry};
use serde_json::json;
use support::{key, reason, request, run, sample};

#[tokio::test]
async fn a_simple_step_succeeds_with_its_data_as_outputs_and_its_logs_collected() {
    let state = tempfile::tempdir().unwrap();
    let runner = CustomStepRunner::new(state.path(), vec![sample()]);
    let k = key("echo");
    let outcome = run(
        &runner,
        request(&k, "CUSTOM:ECHO", json!({"message": "hello"})),
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            outputs: [("message".to_owned(), json!("hello"))]
                .into_iter()
                .collect()
        }
    );
    let logs = runner.logs(&k).await.unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].level, "info");
    assert_eq!(logs[0].message, "echoing");
    assert_eq!(logs[0].data, Some(json!({"message": "hello"})));
    assert!(logs[0].timestamp.is_some());
    assert!(matches!(
        runner.logs(&key("never")).await,
        Err(devramps_core::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn approval_required_then_the_approved_run_succeeds() {
    let state = tempfile::tempdir().unwrap();
    let runner = CustomStepRunner::new(state.path(), vec![sample()]);
    let k = key("gated");
    let first = request(&k, "CUSTOM:GATED", json!({"change": "v2"}));
    assert_eq!(
        run(&runner, first.clone()).await,
        Outcome::ApprovalRequired {
            context: Some("Apply v2?".to_owned())
        }
    );
    // The engine starts the same key again, approved.
    let outcome = run(&runner, first.approved(true)).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            outputs: [("applied".to_owned(), json!("v2"))].into_iter().collect()
        }
    );
    let messages: Vec<String> = runner
        .logs(&k)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(messages, ["asking for approval", "applying"]);
}

#[tokio::test]
async fn a_polling_step_is_triggered_once_then_polled_with_its_state() {
    let state = tempfile::tempdir().unwrap();
    let runner = CustomStepRunner::new(state.path(), vec![sample()]);
    let k = key("wait");
    let base = request(&k, "CUSTOM:WAIT", json!({"polls": 2, "retryAfterMs": 10}));
    let Outcome::PollLater {
        polling_state,
        retry_after_ms: None,
    } = run(&runner, base.clone()).await
    else {
        panic!("TRIGGERED is PollLater without a delay");
    };
    assert_eq!(polling_state["polled"], json!(0));
    let mut state_now = polling_state;
    for polls in 0..2u32 {
        let poll = base
            .clone()
            .with_polling(Some(Polling::new(state_now, polls, None)));
        match run(&runner, poll).await {
            Outcome::PollLater {
                polling_state,
                retry_after_ms,
            } => {
                assert_eq!(retry_after_ms, Some(10));
                assert_eq!(polling_state["polled"], json!(polls + 1));
                state_now = polling_state;
            }
            other => panic!("poll {polls}: expected POLL_AGAIN, got {other:?}"),
        }
    }
    let last = base.with_polling(Some(Polling::new(state_now, 2, Some(10))));
    assert_eq!(
        run(&runner, last).await,
        Outcome::Succeeded {
            outputs: [("polled".to_owned(), json!(3))].into_iter().collect()
        }
    );
    let messages: Vec<String> = runner
        .logs(&k)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(messages, ["triggered", "polled", "polled", "polled"]);
}

#[tokio::test]
async fn invalid_params_and_unknown_types_fail_the_step_with_the_registry_s_code() {
    let state = tempfile::tempdir().unwrap();
    let runner = CustomStepRunner::new(state.path(), vec![sample()]);
    let bad = reason(
        run(
            &runner,
            request(&key("a"), "CUSTOM:ECHO", json!({"message": 3})),
        )
        .await,
    );
    assert!(bad.starts_with("INVALID_PARAMS: params.message"), "{bad}");
    let unknown = reason(run(&runner, request(&key("b"), "CUSTOM:NOPE", json!({}))).await);
    assert!(unknown.starts_with("STEP_NOT_FOUND: "), "{unknown}");
}

#[tokio::test]
async fn the_step_gets_the_commit_stage_and_target_in_its_environment() {
    let state = tempfile::tempdir().unwrap();
    let registry = support::script(
        state.path(),
        "env",
        r#"printf '{"status":"SUCCESS","data":{"commit":"%s","stage":"%s","account":"%s","region":"%s","id":"%s","idArg":"%s"}}' \
  "$DEVRAMPS_COMMIT" "$DEVRAMPS_STAGE" "$DEVRAMPS_ACCOUNT_ID" "$DEVRAMPS_REGION" "$DEVRAMPS_EXECUTION_ID" "$id" > "$out""#,
    );
    let runner = CustomStepRunner::new(state.path().join("state"), vec![registry]);
    let k = key("env");
    let req = request(&k, "CUSTOM:ENV", json!({}))
        .with_commit("abc123")
        .with_target(StageTarget::new("app", "prod", "123456789012", "eu-west-1"));
    let Outcome::Succeeded { outputs } = run(&runner, req).await else {
        panic!("the script succeeds");
    };
    assert_eq!(outputs["commit"], json!("abc123"));
    assert_eq!(outputs["stage"], json!("prod"));
    assert_eq!(outputs["account"], json!("123456789012"));
    assert_eq!(outputs["region"], json!("eu-west-1"));
    assert_eq!(outputs["id"], outputs["idArg"]);
    assert!(outputs["id"].as_str().unwrap().ends_with(".run"));
}

#[tokio::test]
async fn with_several_registries_each_type_goes_to_the_one_whose_metadata_lists_it() {
    let state = tempfile::tempdir().unwrap();
    let other = support::script(
        state.path(),
        "other",
        r#"case "$input" in
  *SYNTHESIZE-METADATA*) echo '{"status":"SUCCESS","data":{"metadata":[{"stepType":"CUSTOM:OTHER","paramsJsonSchema":{}}]}}' > "$out";;
  *) echo '{"status":"SUCCESS","data":{"from":"other"}}' > "$out";;
esac"#,
    );
    let runner = CustomStepRunner::new(state.path().join("state"), vec![sample(), other]);
    let echo = run(
        &runner,
        request(&key("a"), "CUSTOM:ECHO", json!({"message": "m"})),
    )
    .await;
    assert!(matches!(echo, Outcome::Succeeded { .. }), "{echo:?}");
    let Outcome::Succeeded { outputs } =
        run(&runner, request(&key("b"), "CUSTOM:OTHER", json!({}))).await
    else {
        panic!("CUSTOM:OTHER runs in the other registry");
    };
    assert_eq!(outputs["from"], json!("other"));
    let none = reason(run(&runner, request(&key("c"), "CUSTOM:NONE", json!({}))).await);
    assert!(
        none.contains("no step registry offers `CUSTOM:NONE`"),
        "{none}"
    );
    // A route given by configuration wins over the metadata.
    let routed = CustomStepRunner::new(state.path().join("routed"), vec![sample()]).with_route(
        "CUSTOM:ECHO",
        support::script(
            state.path(),
            "echo2",
            r#"echo '{"status":"SUCCESS","data":{"routed":true}}' > "$out""#,
        ),
    );
    let Outcome::Succeeded { outputs } = run(
        &routed,
        request(&key("d"), "CUSTOM:ECHO", json!({"message": "m"})),
    )
    .await
    else {
        panic!("the routed registry succeeds");
    };
    assert_eq!(outputs["routed"], json!(true));
}

#[tokio::test]
async fn npm_start_step_registry_is_the_default_command() {
    support::require("npm");
    let state = tempfile::tempdir().unwrap();
    let runner =
        CustomStepRunner::new(state.path(), vec![StepRegistry::npm(support::sample_dir())]);
    let outcome = run(
        &runner,
        request(&key("npm"), "CUSTOM:ECHO", json!({"message": "via npm"})),
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            outputs: [("message".to_owned(), json!("via npm"))]
                .into_iter()
                .collect()
        }
    );
}

//! [`TerraformRunner`] with a real Terraform 1.0.3 and a real provider (see
//! `terraform_support`), real git repositories in temporary folders, and local state files
//! (one test uses the S3 backend on moto).

mod terraform_support;

use std::time::{Duration, Instant};

use devramps_core::backend::InfrastructureSynthesizer;
use devramps_core::exec::{ChangeAction, InfraPlan, ResourceChange};
use devramps_core::expr::{FinalValue, SecretString};
use devramps_local::terraform::StateBackend;
use serde_json::json;
use terraform_support::{
    Setup, files_containing, files_containing_all, log_text, processes_in, wait_for_applying,
    wait_for_no_process, walk,
};

fn vars(value: serde_json::Value) -> FinalValue {
    FinalValue::Plain(value)
}

fn change(address: &str, action: ChangeAction) -> ResourceChange {
    ResourceChange::new(address, action)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_plan_creates_both_things_and_apply_returns_the_outputs() {
    let setup = Setup::new(&["things"]);
    let runner = setup.runner();
    let request = setup.request("infra", 1, 1, vars(json!({"prefix": "p1"})));
    let plan = runner.plan(&request).await.expect("plan");
    assert_eq!(
        (plan.create, plan.update, plan.delete),
        (2, 0, 0),
        "{plan:?}"
    );
    assert_eq!(
        plan.changes,
        [
            change("devramps_thing.a", ChangeAction::Create),
            change("devramps_thing.b", ChangeAction::Create)
        ]
    );
    assert!(!plan.is_destructive());
    let outputs = runner.apply(&request, &plan).await.expect("apply");
    assert_eq!(outputs["names"], json!(["p1-a", "p1-b"]));
    let id = outputs["a_id"].as_str().expect("a_id is text");
    assert!(id.starts_with("thing-"), "{id}");
    let dir = setup.state.path().join("terraform");
    let folder = std::fs::read_dir(&dir)
        .expect("folders")
        .flatten()
        .find(|e| e.file_name() != "state")
        .expect("the key's folder")
        .path();
    assert!(
        !folder.join("checkout").exists(),
        "the checkout is removed after a success"
    );
    assert!(
        dir.join("state/app/staging/infra/terraform.tfstate")
            .is_file(),
        "the state is a local file named by the plan's state key"
    );
    let log = log_text(&runner, &request).await;
    assert!(log.contains("Apply complete! Resources: 2 added"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_commit_updates_in_place_then_a_third_replaces_and_deletes() {
    let setup = Setup::new(&["things", "things_v2", "things_v3"]);
    let runner = setup.runner();
    let v = || vars(json!({"prefix": "p"}));
    let first = setup.request("infra", 1, 1, v());
    let plan = runner.plan(&first).await.expect("plan 1");
    runner.apply(&first, &plan).await.expect("apply 1");

    // Revision 2 of the pipeline: b grows in place (a has nothing to do).
    let mut second = setup.request("infra", 1, 2, v());
    second.key.revision = 2;
    let plan = runner.plan(&second).await.expect("plan 2");
    assert_eq!(
        (plan.create, plan.update, plan.delete),
        (0, 1, 0),
        "{plan:?}"
    );
    assert_eq!(
        plan.changes,
        [change("devramps_thing.b", ChangeAction::Update)]
    );
    assert!(
        plan.is_destructive(),
        "an update modifies an existing resource"
    );
    runner.apply(&second, &plan).await.expect("apply 2");

    // Revision 3: a is renamed (name forces a replacement), b is removed.
    let mut third = setup.request("infra", 1, 3, v());
    third.key.revision = 3;
    let plan = runner.plan(&third).await.expect("plan 3");
    assert_eq!(
        plan.changes,
        [
            change("devramps_thing.a", ChangeAction::Replace),
            change("devramps_thing.b", ChangeAction::Delete)
        ]
    );
    assert_eq!(
        (plan.create, plan.update, plan.delete),
        (1, 0, 2),
        "{plan:?}"
    );
    let outputs = runner.apply(&third, &plan).await.expect("apply 3");
    assert!(!outputs.contains_key("names"), "{outputs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_plan_of_a_key_returns_the_saved_plan_without_running_terraform() {
    let setup = Setup::new(&["things"]);
    let runner = setup.runner();
    let request = setup.request("infra", 1, 1, vars(json!({"prefix": "p1"})));
    let plan = runner.plan(&request).await.expect("plan");
    let again = runner.plan(&request).await.expect("plan again");
    assert_eq!(again, plan);
    // A runner created after a restart (same state folder) returns it too.
    let restarted = setup.runner();
    assert_eq!(
        restarted.plan(&request).await.expect("plan after restart"),
        plan
    );
    let log = log_text(&runner, &request).await;
    assert_eq!(
        log.matches(" plan -input=false").count(),
        1,
        "terraform planned once: {log}"
    );
    assert!(plan.id.contains("@"), "{}", plan.id);
    // Apply the plan the engine got from its second call (the engine plans again before it
    // applies an approved plan).
    restarted.apply(&request, &again).await.expect("apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_returns_the_recorded_outputs_and_another_plan_is_refused() {
    let setup = Setup::new(&["things"]);
    let runner = setup.runner();
    let request = setup.request("infra", 1, 1, vars(json!({"prefix": "p1"})));
    let plan = runner.plan(&request).await.expect("plan");
    let other = InfraPlan::of_changes("someone-elses-plan", Vec::new());
    let e = runner
        .apply(&request, &other)
        .await
        .expect_err("not the saved plan");
    assert!(
        e.to_string().contains(&format!(
            "plan someone-elses-plan is not the saved plan {}",
            plan.id
        )),
        "{e}"
    );
    let outputs = runner.apply(&request, &plan).await.expect("apply");
    let started = Instant::now();
    let again = runner.apply(&request, &plan).await.expect("apply again");
    assert_eq!(again, outputs);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "nothing ran again"
    );
    let log = log_text(&runner, &request).await;
    assert_eq!(
        log.matches(" apply -input=false").count(),
        1,
        "applied once: {log}"
    );
    let e = runner
        .apply(&request, &other)
        .await
        .expect_err("still not the saved plan");
    assert!(e.to_string().contains("is not the saved plan"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_apply_quotes_terraforms_error_and_keeps_failing_the_same_way() {
    let setup = Setup::new(&["failing"]);
    let runner = setup.runner().keep_failed(true);
    let request = setup.request("infra", 1, 1, vars(json!({})));
    let plan = runner.plan(&request).await.expect("plan");
    assert_eq!(plan.create, 1);
    let e = runner
        .apply(&request, &plan)
        .await
        .expect_err("the provider refuses");
    let text = e.to_string();
    assert!(
        text.contains("terraform apply failed (exit 1): Error: devramps_thing refused to apply"),
        "{text}"
    );
    assert!(
        text.contains("thing 'broken' has fail = true"),
        "the detail is quoted: {text}"
    );
    let again = runner.apply(&request, &plan).await.expect_err("recorded");
    assert_eq!(again.to_string(), text);
    let folder = setup.state.path().join("terraform");
    let kept = std::fs::read_dir(&folder)
        .expect("folders")
        .flatten()
        .any(|e| e.path().join("checkout/infra/main.tf").is_file());
    assert!(
        kept,
        "keep_failed(true) keeps the checkout of a failed apply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_that_do_not_match_the_root_name_both_lists() {
    let setup = Setup::new(&["variables"]);
    let runner = setup.runner();
    let request = setup.request(
        "infra",
        1,
        1,
        vars(json!({"tags": {}, "colour": "red", "zone": 1})),
    );
    let e = runner.plan(&request).await.expect_err("mismatch");
    let text = e.to_string();
    assert!(text.contains("Terraform root `/infra`"), "{text}");
    assert!(text.contains("missing: [region]"), "{text}");
    assert!(text.contains("undeclared: [colour, zone]"), "{text}");
    let log = log_text(&runner, &request).await;
    assert!(!log.contains("running"), "terraform did not run: {log}");
    // With the variables right, it plans (a root without resources plans nothing).
    let request = setup.request(
        "infra",
        2,
        1,
        vars(json!({"tags": {"a": "b"}, "region": "eu"})),
    );
    let plan = runner.plan(&request).await.expect("plan");
    assert!(!plan.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_without_the_s3_backend_block_is_refused() {
    let setup = Setup::new(&["no_backend"]);
    let runner = setup.runner();
    let request = setup.request("infra", 1, 1, vars(json!({})));
    let e = runner.plan(&request).await.expect_err("no backend");
    assert!(
        e.to_string().contains(
            "the Terraform root `/infra` must declare an empty `backend \"s3\" {}` block \
             (DevRamps configures the state)"
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_outputs_and_secret_variables_appear_nowhere_in_clear() {
    let setup = Setup::new(&["sensitive"]);
    let runner = setup.runner();
    let password = "pw-Xq81-secret";
    let variables = FinalValue::Map(vec![
        ("seed".into(), FinalValue::Plain(json!("s33d"))),
        (
            "password".into(),
            FinalValue::Secret(SecretString::new(password)),
        ),
    ]);
    let request = setup.request("infra", 1, 1, variables);
    let plan = runner.plan(&request).await.expect("plan");
    let outputs = runner.apply(&request, &plan).await.expect("apply");
    assert_eq!(outputs["token"], "(sensitive)");
    assert_eq!(outputs["plain"], "plain-s33d");
    let log = log_text(&runner, &request).await;
    assert!(
        log.contains("[REDACTED]"),
        "the plan printed the password, redacted: {log}"
    );
    for secret in ["tok-s33d-", password] {
        assert!(!log.contains(secret), "{secret} in the logs: {log}");
        assert!(!format!("{outputs:?}").contains(secret));
        let files = files_containing(setup.state.path(), secret);
        assert!(files.is_empty(), "{secret} in {files:?}");
    }
    // Terraform's own state holds them (it is Terraform's to protect).
    let state = setup.state.path().join("terraform/state");
    assert!(!files_containing_all(&state, "tok-s33d-").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_interrupts_a_running_apply_within_the_grace_period() {
    let setup = Setup::new(&["slow"]);
    let runner = setup.runner().grace(Duration::from_secs(10));
    let request = setup.request("infra", 1, 1, vars(json!({})));
    let plan = runner.plan(&request).await.expect("plan");
    let applying = {
        let (runner, request, plan) = (runner.clone(), request.clone(), plan.clone());
        tokio::spawn(async move { runner.apply(&request, &plan).await })
    };
    wait_for_applying(&runner, &request).await;
    assert!(
        !processes_in(setup.state.path()).is_empty(),
        "terraform runs"
    );
    let cancelled = Instant::now();
    runner.cancel(&request.key).await.expect("cancel");
    let result = tokio::time::timeout(Duration::from_secs(10), applying)
        .await
        .expect("apply ends within the grace period")
        .expect("task");
    let e = result.expect_err("cancelled");
    assert!(
        e.to_string()
            .contains("cancelled: terraform was interrupted (SIGINT)"),
        "{e}"
    );
    assert!(
        cancelled.elapsed() < Duration::from_secs(10),
        "{:?}",
        cancelled.elapsed()
    );
    wait_for_no_process(setup.state.path(), Duration::from_secs(5)).await;
    let log = log_text(&runner, &request).await;
    assert!(
        log.contains("cancel requested: SIGINT sent to terraform"),
        "{log}"
    );
    assert!(
        log.contains("Interrupt received"),
        "terraform saw the SIGINT: {log}"
    );
    let again = runner.apply(&request, &plan).await.expect_err("recorded");
    assert!(again.to_string().contains("cancelled"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_apply_stops_terraform_and_its_whole_group() {
    let setup = Setup::new(&["slow"]);
    let runner = setup.runner().grace(Duration::from_secs(10));
    let request = setup.request("infra", 1, 1, vars(json!({})));
    let plan = runner.plan(&request).await.expect("plan");
    let applying = {
        let (runner, request, plan) = (runner.clone(), request.clone(), plan.clone());
        tokio::spawn(async move { runner.apply(&request, &plan).await })
    };
    wait_for_applying(&runner, &request).await;
    applying.abort();
    let _ = applying.await;
    let took = wait_for_no_process(setup.state.path(), Duration::from_secs(10)).await;
    println!("terraform and its provider stopped {took:?} after the drop");
    let log = log_text(&runner, &request).await;
    assert!(
        log.contains("the caller stopped waiting for terraform apply"),
        "{log}"
    );
    // The interrupted apply is known: applying again does not apply a stale plan.
    let e = runner
        .apply(&request, &plan)
        .await
        .expect_err("interrupted before");
    assert!(e.to_string().contains("was interrupted"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_left_running_by_an_earlier_runner_is_waited_for_not_taken_over() {
    let setup = Setup::new(&["slow"]);
    let before = setup.runner();
    let request = setup.request("infra", 1, 1, vars(json!({})));
    let plan = before.plan(&request).await.expect("plan");
    // The runner of an engine that will stop: its terraform applies in its own group.
    let applying = {
        let (runner, request, plan) = (before.clone(), request.clone(), plan.clone());
        tokio::spawn(async move { runner.apply(&request, &plan).await })
    };
    wait_for_applying(&before, &request).await;
    // The runner after a restart (same state folder): it waits for that terraform, and a
    // cancel through it interrupts the group it adopted.
    let after = setup.runner();
    let waiting = {
        let (runner, request, plan) = (after.clone(), request.clone(), plan.clone());
        tokio::spawn(async move { runner.apply(&request, &plan).await })
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !log_text(&after, &request)
        .await
        .contains("still runs (process group")
    {
        assert!(Instant::now() < until, "the new runner did not wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!waiting.is_finished(), "it waits while terraform runs");
    after.cancel(&request.key).await.expect("cancel");
    let e = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("ends once terraform stopped")
        .expect("task")
        .expect_err("the result is unknown");
    assert!(e.to_string().contains("was interrupted"), "{e}");
    assert!(e.to_string().contains("result is unknown"), "{e}");
    assert!(
        processes_in(setup.state.path()).is_empty(),
        "{:?}",
        processes_in(setup.state.path())
    );
    let _ = applying.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_dropped_midway_is_planned_again_from_scratch() {
    let setup = Setup::new(&["things"]);
    let runner = setup.runner();
    let request = setup.request("infra", 1, 1, vars(json!({"prefix": "p1"})));
    let planning = {
        let (runner, request) = (runner.clone(), request.clone());
        tokio::spawn(async move { runner.plan(&request).await })
    };
    // Drop it while `terraform plan` runs (the provider takes a second or two to start).
    let until = Instant::now() + Duration::from_secs(60);
    while !log_text(&runner, &request)
        .await
        .contains(" plan -input=false")
    {
        assert!(Instant::now() < until, "terraform plan did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    planning.abort();
    let _ = planning.await;
    let plan = runner.plan(&request).await.expect("plan again");
    assert_eq!(plan.create, 2, "{plan:?}");
    let log = log_text(&runner, &request).await;
    assert!(
        log.contains("the caller stopped waiting for terraform plan"),
        "{log}"
    );
    assert_eq!(log.matches(" init -input=false").count(), 2, "{log}");
    runner.apply(&request, &plan).await.expect("apply");
    assert!(processes_in(setup.state.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_under_a_new_key_starts_from_a_clean_checkout() {
    let setup = Setup::new(&["failing", "things"]);
    let runner = setup.runner();
    let first = setup.request("infra", 1, 1, vars(json!({})));
    let plan = runner.plan(&first).await.expect("plan");
    runner.apply(&first, &plan).await.expect_err("fails");
    // The failed checkout is gone (keep_failed is off by default).
    let root = setup.state.path().join("terraform");
    let checkouts = walk(&root)
        .into_iter()
        .filter(|p| p.ends_with("checkout/infra/main.tf"))
        .count();
    assert_eq!(checkouts, 0);
    // The retry: attempt 2, the fixed root (the same variables are no longer right: `fail` is
    // not declared there, so they are passed as the new root needs).
    let retry = setup.request("infra", 2, 2, vars(json!({"prefix": "r"})));
    let plan = runner.plan(&retry).await.expect("plan the retry");
    assert_eq!(plan.create, 2, "{plan:?}");
    runner.apply(&retry, &plan).await.expect("apply the retry");
    assert_ne!(first.key, retry.key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_binary_says_how_to_get_terraform() {
    let setup = Setup::new(&["things"]);
    let runner = setup.runner().binary("/nonexistent/terraform-for-devramps");
    let request = setup.request("infra", 1, 1, vars(json!({"prefix": "p"})));
    let e = runner.plan(&request).await.expect_err("no terraform");
    assert!(
        e.to_string().contains(
            "terraform not found: install Terraform (or OpenTofu) and put it on PATH, or set the binary"
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_backend_keeps_the_state_in_the_bucket() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: this test needs a local S3 API (moto); run it \
             through `scripts/test`, which starts one"
        )
    });
    let bucket = format!("devramps-tf-{}", std::process::id());
    let client = reqwest::Client::new();
    let made = client
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("create the state bucket");
    assert!(made.status().is_success(), "{:?}", made.text().await);
    let setup = Setup::new(&["things"]);
    let runner = setup.runner().state_backend(StateBackend::S3 {
        endpoint: Some(endpoint.clone()),
    });
    let mut request = setup.request("infra", 1, 1, vars(json!({"prefix": "s3"})));
    request.state.bucket = bucket.clone();
    let plan = runner.plan(&request).await.expect("plan");
    assert_eq!(plan.create, 2);
    runner.apply(&request, &plan).await.expect("apply");
    // The next revision reads the state back from the bucket: nothing to do.
    let mut next = request.clone();
    next.key.revision = 2;
    let plan = runner.plan(&next).await.expect("plan again");
    assert!(
        !plan.has_changes(),
        "the state was kept in the bucket: {plan:?}"
    );
    assert!(
        !setup.state.path().join("terraform/state").exists(),
        "no local state"
    );
}

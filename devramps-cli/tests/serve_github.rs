//! `devramps serve --github o/app` as a user runs it: a real process on 127.0.0.1 reading the
//! repository through a fake GitHub REST API on loopback (`GITHUB_API_URL`, `GITHUB_TOKEN`), a
//! signed push webhook deploys, a commit status per stage is posted to the fake (pending, then
//! success; a test gate, which needs a local clone, fails with that reason), a webhook of
//! another repository is ignored; without credentials it is a usage error naming them.

mod common;
// The fake GitHub API of devramps-github's own tests, one copy for both crates.
#[path = "../../devramps-github/tests/fake/mod.rs"]
mod fake_github;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{code, need_node, registry, stderr};
use devramps_git::testing::TestRepo;
use fake_github::Fake;
use serde_json::Value;

const SECRET: &str = "gh-secret";
const TOKEN: &str = "ghp_serve_test";
const PUBLIC: &str = "https://devramps.example.com";

/// `app`: staging then prod, each a short CUSTOM:SLEEP.
fn app(marker: &Path) -> String {
    format!(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stage_defaults:\n    \
         deployment_time_window: NONE\n  stages:\n    \
         - {{ name: staging, account_id: \"111111111111\", region: us-east-1 }}\n    \
         - {{ name: prod, account_id: \"222222222222\", region: us-east-1 }}\n  \
         steps:\n    \
         - {{ name: Sleep, id: sleep, type: \"CUSTOM:SLEEP\", params: {{ marker: \"{}\", ms: 50 }} }}\n  \
         artifacts: {{}}\n",
        marker.display()
    )
}

/// `gated`: one stage whose test gate needs a checkout of the commit.
const GATED: &str = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
     pipeline_updates_require_approval: NEVER\n  stage_defaults:\n    \
     deployment_time_window: NONE\n  stages:\n    \
     - { name: qa, account_id: \"111111111111\", region: us-east-1 }\n  \
     steps:\n    \
     - { name: Tests, id: tests, type: \"DEVRAMPS:APPROVAL:TEST\", params: { testCommand: npm test, testType: jest } }\n  \
     artifacts: {}\n";

fn serve(cwd: &Path, secret_file: &Path, api: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devramps"));
    command
        .current_dir(cwd)
        .args(["serve", "--github", "o/app", "--bind", "127.0.0.1:0"])
        .arg("--webhook-secret-file")
        .arg(secret_file)
        .args(["--step-registry", &registry(), "--public-url", PUBLIC])
        .env("GITHUB_API_URL", api)
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_APP_INSTALLATION_ID")
        .env_remove("GITHUB_APP_PRIVATE_KEY_FILE")
        .env_remove("DEVRAMPS_SLACK_WEBHOOK_URL");
    command
}

/// Starts the server; its base URL from the `listening on` line.
fn start(mut command: Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("devramps serve starts");
    let base = common::listening_base(&mut child);
    (child, base)
}

fn push(base: &str, delivery: &str, commit: &str, repository: &str) -> (u16, Value) {
    let body = format!(
        r#"{{"ref": "refs/heads/main", "before": "{zero}", "after": "{commit}", "created": true,
            "deleted": false, "forced": false, "repository": {{"full_name": "{repository}"}}}}"#,
        zero = "0".repeat(40)
    );
    let signature = devramps_github::webhook::sign(SECRET.as_bytes(), body.as_bytes());
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/webhooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("webhook answered");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

/// The statuses posted so far: (sha, context, state, description, target_url).
fn posted(fake: &Fake) -> Vec<(String, String, String, String, String)> {
    fake.with(|s| {
        s.statuses
            .iter()
            .map(|(sha, b)| {
                let text = |k: &str| b[k].as_str().unwrap_or("").to_owned();
                (
                    sha.clone(),
                    text("context"),
                    text("state"),
                    text("description"),
                    text("target_url"),
                )
            })
            .collect()
    })
}

/// The states posted for `context`, in order.
fn states(posted: &[(String, String, String, String, String)], context: &str) -> Vec<String> {
    posted
        .iter()
        .filter(|p| p.1 == context)
        .map(|p| p.2.clone())
        .collect()
}

#[test]
fn a_push_webhook_deploys_from_github_and_posts_a_commit_status_per_stage() {
    need_node();
    let temp = tempfile::tempdir().expect("temp dir");
    let marker = temp.path().join("starts");
    let secret_file = temp.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let cwd = temp.path().join("server");
    std::fs::create_dir_all(&cwd).expect("server dir");
    let mut repo = TestRepo::new();
    repo.write(".devramps/app/pipeline.yaml", &app(&marker));
    repo.write(".devramps/gated/pipeline.yaml", GATED);
    let commit = repo.commit("first");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fake = runtime.block_on(Fake::start(repo.path(), "o/app", TOKEN));
    let mut command = serve(&cwd, &secret_file, &fake.url);
    command.env("GITHUB_TOKEN", TOKEN);
    let (mut child, base) = start(command);

    // Another repository's push starts nothing.
    let (status, answer) = push(&base, "d-other", &commit, "someone/else");
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer["ignored"]
            .as_str()
            .is_some_and(|r| r.contains("someone/else")),
        "{answer}"
    );
    let (status, answer) = push(&base, "d-1", &commit, "o/app");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["pipelines"]["app"]["revision"], 1, "{answer}");
    assert_eq!(answer["pipelines"]["gated"]["revision"], 1, "{answer}");

    // Until prod succeeds and the test gate's failure waits for a person (a failed test gate
    // asks for an approval to go on; 60 s at most).
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = |p: &[(String, String, String, String, String)]| {
        p.iter()
            .rev()
            .find(|s| s.1 == "devramps/gated/qa")
            .is_some_and(|s| s.2 == "pending" && s.3.contains("waiting for approval"))
    };
    let done = |p: &[(String, String, String, String, String)]| {
        states(p, "devramps/app/prod").last().map(String::as_str) == Some("success") && waiting(p)
    };
    let mut seen = posted(&fake);
    while !done(&seen) {
        assert!(
            Instant::now() < deadline,
            "no success on prod and failure on qa within 60 s; posted: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        seen = posted(&fake);
    }

    for stage in ["staging", "prod"] {
        let context = format!("devramps/app/{stage}");
        let states = states(&seen, &context);
        assert_eq!(
            states.first().map(String::as_str),
            Some("pending"),
            "{seen:#?}"
        );
        assert_eq!(
            states.last().map(String::as_str),
            Some("success"),
            "{seen:#?}"
        );
        assert!(
            !states.contains(&"failure".to_owned()),
            "{context}: {states:?}"
        );
    }
    for (sha, context, _, _, url) in &seen {
        assert_eq!(sha, &commit, "{context}: on the pushed commit");
        let stage = context.rsplit('/').next().unwrap_or_default();
        let pipeline = context.split('/').nth(1).unwrap_or_default();
        assert_eq!(
            url,
            &format!("{PUBLIC}/pipelines/{pipeline}/revisions/1/stages/{stage}"),
            "{context}: linked to --public-url"
        );
    }
    // Why the gate failed is in the log, read through the API.
    let events = reqwest::blocking::get(format!("{base}/api/v1/pipelines/gated/events"))
        .expect("the API answers")
        .text()
        .expect("a body");
    assert!(
        events.contains("local clone"),
        "the test gate failed because there is no local clone: {events}"
    );
    // Read through the API with the token, and the step really ran (twice: each stage).
    assert!(fake.count("GET /repos/o/app/contents") > 0);
    let starts = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(starts.lines().count(), 2, "{starts}");
    // The state lives under the current directory.
    assert!(cwd.join(".devramps/state").is_dir());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let exit = child.wait().expect("devramps serve exits");
    assert_eq!(exit.code(), Some(0), "stopped cleanly by SIGTERM");
}

#[test]
fn without_github_credentials_serve_is_a_usage_error_naming_them() {
    let temp = tempfile::tempdir().expect("temp dir");
    let secret_file = temp.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let output = serve(temp.path(), &secret_file, "http://127.0.0.1:9")
        .output()
        .expect("devramps serve runs");
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    let err = stderr(&output);
    for name in [
        "GITHUB_TOKEN",
        "GITHUB_APP_ID",
        "GITHUB_APP_INSTALLATION_ID",
        "GITHUB_APP_PRIVATE_KEY_FILE",
    ] {
        assert!(err.contains(name), "names {name}: {err}");
    }
    assert!(
        !temp.path().join(".devramps").exists(),
        "nothing created before the credentials are known"
    );
}

//! `devramps serve` as a user runs it: a real process on 127.0.0.1 over a git repository in a
//! temporary folder, signed GitHub push webhooks, the event stream followed until prod
//! succeeds, a bake approved through the API, SIGKILL mid-deployment and a restart that
//! finishes the deployment without starting any step twice; `devramps token new`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{code, devramps, need_node, registry, stderr, stdout};
use devramps_git::testing::TestRepo;
use serde_json::Value;

const SECRET: &str = "e2e-secret";

/// staging: a short sleep, then a 30-minute bake a person approves; prod: a 4 s sleep (the
/// bake skipped).
fn pipeline(marker: &Path) -> String {
    format!(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n  stage_defaults:\n    \
         deployment_time_window: NONE\n  stages:\n    \
         - {{ name: staging, account_id: \"111111111111\", region: us-east-1, vars: {{ ms: 100 }} }}\n    \
         - {{ name: prod, account_id: \"222222222222\", region: us-east-1, vars: {{ ms: 4000 }}, skip: [bake] }}\n  \
         steps:\n    \
         - {{ name: Sleep, id: sleep, type: \"CUSTOM:SLEEP\", params: {{ marker: \"{}\", ms: \"${{{{ vars.ms }}}}\" }} }}\n    \
         - {{ name: Bake, id: bake, type: \"DEVRAMPS:APPROVAL:BAKE\", params: {{ duration_minutes: 30 }} }}\n  \
         artifacts: {{}}\n",
        marker.display()
    )
}

/// A `devramps serve` process and its address.
struct Serving {
    child: Child,
    base: String,
}

impl Serving {
    fn start(repo: &TestRepo, secret_file: &Path) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devramps"))
            .args(["serve", "--repo", repo.arg(), "--bind", "127.0.0.1:0"])
            .arg("--webhook-secret-file")
            .arg(secret_file)
            .args(["--step-registry", &registry(), "--lease-ttl", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("devramps serve starts");
        let base = common::listening_base(&mut child);
        Serving { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("client")
}

fn push(serving: &Serving, delivery: &str, commit: &str) -> (u16, Value) {
    let body = format!(
        r#"{{"ref": "refs/heads/main", "before": "{zero}", "after": "{commit}", "created": true,
            "deleted": false, "forced": false, "repository": {{"full_name": "me/app"}}}}"#,
        zero = "0".repeat(40)
    );
    let signature = devramps_github::webhook::sign(SECRET.as_bytes(), body.as_bytes());
    let response = client()
        .post(serving.url("/webhooks/github"))
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

/// Follows the event stream from `after` in a thread: each record, parsed.
fn follow(serving: &Serving, after: u64) -> mpsc::Receiver<Value> {
    let url = serving.url(&format!(
        "/api/v1/pipelines/app/events/stream?after={after}"
    ));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(response) = client().get(url).send() else {
            return;
        };
        for line in BufReader::new(response).lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data: ")
                && let Ok(record) = serde_json::from_str::<Value>(data)
                && tx.send(record).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Waits (at most 60 s) for a record matching `wanted`, keeping every record seen.
fn wait_for(
    stream: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = seen.iter().find(|r| wanted(r)) {
            return found.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match stream.recv_timeout(left) {
            Ok(record) => seen.push(record),
            Err(_) => panic!("no {what} within 60 s; seen: {seen:#?}"),
        }
    }
}

fn is_step(r: &Value, stage: &str, step: &str, state: &str) -> bool {
    r["type"] == "step_state" && r["stage"] == stage && r["step"] == step && r["state"] == state
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_push_webhook_deploys_through_a_kill_and_a_restart_without_starting_a_step_twice() {
    need_node();
    let temp = tempfile::tempdir().expect("temp dir");
    let marker = temp.path().join("starts");
    let secret_file = temp.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let mut repo = TestRepo::new();
    repo.write(".devramps/app/pipeline.yaml", &pipeline(&marker));
    let commit = repo.commit("first");

    let mut first = Serving::start(&repo, &secret_file);
    let health = client().get(first.url("/healthz")).send().expect("healthz");
    assert_eq!(health.status(), 200);
    let (status, answer) = push(&first, "delivery-1", &commit);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["pipelines"]["app"]["revision"], 1, "{answer}");

    let stream = follow(&first, 0);
    let mut seen = Vec::new();
    wait_for(&stream, &mut seen, "a running bake", |r| {
        is_step(r, "staging", "bake", "RUNNING")
    });
    let approve = client()
        .post(first.url("/api/v1/pipelines/app/approve"))
        .json(&serde_json::json!({
            "stage": "staging", "step": "bake", "revision": 1, "reason": "baked enough"
        }))
        .send()
        .expect("approve answered");
    assert_eq!(approve.status(), 200);
    wait_for(&stream, &mut seen, "prod's step running", |r| {
        is_step(r, "prod", "sleep", "RUNNING")
    });
    // Kill the server (SIGKILL) once prod's step process really started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines_of(&marker) < 2 {
        assert!(Instant::now() < deadline, "prod's step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.child.kill().expect("SIGKILL devramps serve");
    let _ = first.child.wait();

    let mut second = Serving::start(&repo, &secret_file);
    let stream = follow(&second, 0);
    let mut after = Vec::new();
    wait_for(&stream, &mut after, "prod SUCCEEDED", |r| {
        r["type"] == "stage_state" && r["stage"] == "prod" && r["state"] == "SUCCEEDED"
    });
    assert_eq!(
        lines_of(&marker),
        2,
        "one step start per stage: nothing started twice"
    );
    let seqs: Vec<u64> = after.iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "the log, whole"
    );
    for record in &seen {
        assert!(after.contains(record), "lost after the kill: {record}");
    }
    let approvals = after.iter().filter(|r| r["type"] == "approved").count();
    assert_eq!(approvals, 1);

    // The same delivery again, after the restart: a duplicate, no new deployment.
    let (status, answer) = push(&second, "delivery-1", &commit);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], true);
    let state: Value = client()
        .get(second.url("/api/v1/pipelines/app"))
        .send()
        .expect("state")
        .json()
        .expect("JSON");
    assert_eq!(
        state["deployments"].as_array().map(Vec::len),
        Some(1),
        "{state}"
    );
    assert_eq!(state["stages"]["prod"]["current_revision"], 1);

    // SIGTERM: a graceful stop, exit 0.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(second.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "devramps serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn token_new_prints_a_token_and_its_line_and_serve_refuses_open_binds_without_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = devramps(
        dir.path(),
        &["token", "new", "--role", "operator", "--name", "alice"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("drt_"));
    assert!(lines[1].starts_with("sha256:") && lines[1].ends_with(" operator alice"));
    let tokens = devramps_serve::Tokens::parse(lines[1], "line").expect("a valid line");
    assert_eq!(
        tokens.caller(lines[0]).map(|c| c.name.as_str()),
        Some("alice")
    );

    let repo = TestRepo::new();
    let out = devramps(
        repo.path(),
        &["serve", "--repo", repo.arg(), "--bind", "0.0.0.0:0"],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--tokens"), "{}", stderr(&out));
    // Serving from GitHub needs credentials (serve_github.rs has the rest).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devramps"))
        .args(["serve", "--github", "o/n"])
        .current_dir(repo.path())
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_APP_INSTALLATION_ID")
        .env_remove("GITHUB_APP_PRIVATE_KEY_FILE")
        .output()
        .expect("devramps runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GITHUB_TOKEN"), "{err}");
}

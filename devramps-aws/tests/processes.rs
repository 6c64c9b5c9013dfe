//! Three engine processes on one bucket (L21 across OS processes): the `s3_worker` example,
//! started three times on one moto bucket and one real git repository, while pushes arrive
//! at different processes. The lease holder is killed with SIGKILL while a step runs.
//!
//! Afterwards:
//! - the merged log keeps L1, L5, L6 and the transition table at every prefix;
//! - replaying the inputs the processes journaled through one machine gives the log record
//!   for record: the log is what one engine produces from the same inputs;
//! - no stage-deployment ran twice: each (revision, stage) went `IN_PROGRESS` at most once,
//!   and each step execution was started fresh once, by the lease holder of the moment; the
//!   step that ran when its holder was killed was attached to by the process that took over,
//!   not started again;
//! - the killed process's pipeline was taken over, with a greater fencing token, after its
//!   lease lapsed and not before;
//! - every push deployed: prod ends on the newest revision, `SUCCEEDED`.
//!
//! What it cannot prove: the steps are a stand-in for a remote service with idempotent starts
//! (files in a shared directory), not the process runner of `devramps-local` (whose restart
//! behaviour has tests of its own).

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use devramps_aws::runtime::block_on;
use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::backend::{DeploymentLock, EventStoreExt, Lease, Unit};
use devramps_core::lifecycle::{Event, Input, PipelineState, Record, StageState};
use devramps_git::testing::TestRepo;
use devramps_memory::ObservedAppend;
use devramps_memory::many_engines::{check_journal, check_log};
use jiff::Timestamp;

const PREFIX: &str = "processes";
const STEP_MS: &str = "1500";
const TTL: Duration = Duration::from_secs(3);

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: Migrate, id: migrate, type: "CUSTOM:MIGRATE" }
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
  artifacts: {}
"#;

/// The `s3_worker` example, built next to this test's binary by `cargo test`.
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join("examples").join("s3_worker");
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p devramps-aws` builds it (or `cargo build -p devramps-aws --examples`)",
        path.display()
    );
    path
}

/// One running worker: its stdin, and its stdout lines as they come.
struct Worker {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Worker {
    fn start(name: &str, bucket: &str, repo: &Path, work: &Path) -> Worker {
        let mut child = Command::new(worker_binary())
            .args([bucket, PREFIX])
            .arg(repo)
            .arg(name)
            .arg(work)
            .arg(STEP_MS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut worker = Worker {
            name: name.to_owned(),
            child,
            stdin,
            lines,
        };
        worker.expect_line("ready");
        worker
    }

    fn expect_line(&mut self, expected: &str) {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line == expected => {}
            Ok(line) => panic!("{} said `{line}`, not `{expected}`", self.name),
            Err(e) => panic!(
                "{} did not say `{expected}` ({e}); exit status {:?}",
                self.name,
                self.child.try_wait()
            ),
        }
    }

    fn push(&mut self, delivery: &str, commit: &str) {
        writeln!(self.stdin, "push {delivery} {commit}").unwrap();
        self.expect_line(&format!("pushed {delivery}"));
    }

    fn stop(mut self) {
        writeln!(self.stdin, "stop").unwrap();
        self.expect_line("stopped");
        assert!(
            self.child.wait().unwrap().success(),
            "{} exits 0",
            self.name
        );
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn read_log(location: &S3Location) -> Vec<Record> {
    let store = S3EventStore::new(location.clone());
    block_on(async move { store.read_all("app").await })
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_value(e.payload).unwrap())
        .collect()
}

fn holder(location: &S3Location) -> Option<Lease> {
    let lock = S3Lock::new(location.clone());
    block_on(async move { lock.current("app", Timestamp::now()).await })
        .unwrap()
        .unwrap()
}

fn journal(work: &Path) -> Vec<ObservedAppend> {
    let mut appends = Vec::new();
    for entry in std::fs::read_dir(work).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("journal-") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                appends.push(serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{name}: a journal line that does not parse ({e}): {line}")
                }));
            }
        }
    }
    appends
}

/// The `starts.log` lines as (fresh or attach, instance, key).
fn starts(work: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(work.join("starts.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(3, ' ').collect();
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].to_owned(),
            )
        })
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn l21_three_processes_on_one_bucket_take_over_a_killed_holder_and_agree_with_one_engine() {
    let bucket = block_on(support::fresh_bucket()).unwrap();
    let location = block_on(S3Location::from_env(bucket.clone(), PREFIX)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut repo = TestRepo::new();
    repo.write(".devramps/app/pipeline.yaml", PIPELINE)
        .write("src/main.rs", "1");
    let c1 = repo.commit("one");

    let mut workers: BTreeMap<&str, Worker> = ["a", "b", "c"]
        .into_iter()
        .map(|name| (name, Worker::start(name, &bucket, repo.path(), work.path())))
        .collect();

    // A push arrives at a: one of the three takes the pipeline's lease and deploys.
    workers.get_mut("a").unwrap().push("d1", &c1);
    wait_until("a step to start", Duration::from_secs(30), || {
        !starts(work.path()).is_empty()
    });
    // The holder is killed mid-step: its start was recorded (no append is due until the step
    // ends, in more than a second), and its lease is still live.
    std::thread::sleep(Duration::from_millis(300));
    let lease = holder(&location).expect("a holder");
    let (first_holder, first_token) = (lease.holder.clone(), lease.token);
    let running = starts(work.path())[0].2.clone();
    let killed_at = Timestamp::now();
    workers.remove(first_holder.as_str()).unwrap().kill();

    // Two more pushes arrive, at the survivors.
    let survivors: Vec<&str> = workers.keys().copied().collect();
    repo.write("src/main.rs", "2");
    let c2 = repo.commit("two");
    workers.get_mut(survivors[0]).unwrap().push("d2", &c2);
    repo.write("src/main.rs", "3");
    let c3 = repo.commit("three");
    workers.get_mut(survivors[1]).unwrap().push("d3", &c3);

    // Another takes over once the lease lapsed, and everything deploys.
    let limit = Duration::from_secs(120);
    wait_until("prod to deploy revision 3", limit, || {
        let state = PipelineState::replay("app", &read_log(&location));
        state
            .deployments
            .get(&3)
            .and_then(|d| d.stage("prod"))
            .is_some_and(|s| s.state == StageState::Succeeded)
    });
    for (_, worker) in std::mem::take(&mut workers) {
        worker.stop();
    }

    let log = read_log(&location);
    check_log(&log);
    let appends = journal(work.path());
    check_journal(&appends, &log);

    // Every push deployed, in push order (L1), and prod ends on the newest.
    let accepted: Vec<(u64, String)> = log
        .iter()
        .filter_map(|r| match &r.event {
            Event::DeploymentAccepted {
                revision, commit, ..
            } => Some((*revision, commit.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, [(1, c1), (2, c2), (3, c3)]);
    let state = PipelineState::replay("app", &log);
    assert_eq!(state.stage("prod").current, Some(3), "{state:#?}");

    // No stage-deployment ran twice.
    let mut in_progress: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for r in &log {
        if let Event::StageState {
            revision,
            stage,
            state: StageState::InProgress,
            ..
        } = &r.event
        {
            *in_progress.entry((*revision, stage.clone())).or_default() += 1;
        }
    }
    assert!(
        in_progress.values().all(|&n| n == 1),
        "a stage-deployment went IN_PROGRESS twice: {in_progress:?}"
    );
    let starts = starts(work.path());
    let mut fresh: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, _, key) in &starts {
        if kind == "fresh" {
            *fresh.entry(key).or_default() += 1;
        }
    }
    assert!(
        fresh.values().all(|&n| n == 1),
        "a step started fresh twice: {starts:?}"
    );
    let completed: BTreeSet<String> = appends
        .iter()
        .flat_map(|a| &a.inputs)
        .filter_map(|i| match i {
            Input::Work { key, .. } if matches!(key.unit, Unit::Step { .. }) => {
                Some(key.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        fresh
            .keys()
            .map(|k| (*k).to_owned())
            .collect::<BTreeSet<_>>(),
        completed,
        "every step started was recorded as ended, and no other step"
    );

    // The step that ran when its holder died was attached to by the one that took over.
    let taken_over: Vec<&(String, String, String)> = starts
        .iter()
        .filter(|(kind, _, key)| kind == "attach" && *key == running)
        .collect();
    assert!(
        taken_over.iter().any(|(_, who, _)| *who != first_holder),
        "another process attached to {running}: {starts:?}"
    );

    // The killed holder's lease lapsed before anyone else wrote under a lease, with a
    // greater token.
    let takeover = appends
        .iter()
        .filter(|a| a.fencing_token.is_some_and(|t| t > first_token))
        .min_by_key(|a| a.first_seq)
        .expect("an append under a newer lease");
    assert_ne!(takeover.instance, first_holder);
    assert!(
        takeover.now >= lease.expires_at,
        "taken over at {} though {first_holder}'s lease ran to {} (killed at {killed_at})",
        takeover.now,
        lease.expires_at
    );
    let prompt = lease.expires_at.checked_add(TTL).unwrap();
    assert!(
        takeover.now <= prompt,
        "taken over promptly after the lease lapsed at {}: at {}",
        lease.expires_at,
        takeover.now
    );
    assert!(
        appends
            .iter()
            .filter(|a| a.instance == first_holder)
            .all(|a| a.now <= killed_at),
        "nothing written by the killed process after its death"
    );
}

//! One engine process on S3, as `tests/processes.rs` runs three of them on one bucket.
//!
//! ```sh
//! s3_worker BUCKET PREFIX REPO NAME WORK_DIR STEP_MS
//! ```
//!
//! The event log and the leases are under `s3://BUCKET/PREFIX` (the AWS SDK's standard
//! environment: `AWS_ENDPOINT_URL` for moto); the source is the git repository at `REPO`; the
//! instance is called `NAME`. Commands come on stdin, one per line:
//!
//! - `push DELIVERY COMMIT`: a push of `COMMIT` to `main`; answers `pushed DELIVERY` (or
//!   `error DELIVERY MESSAGE`);
//! - `stop`: stops the engine cleanly (releasing its leases) and exits.
//!
//! It prints `ready` once its engine runs, and journals every append it makes to
//! `WORK_DIR/journal-NAME.jsonl` (one `ObservedAppend` a line, written after the append is
//! durable). Steps are a stand-in for a remote deployment service with idempotent starts:
//! starting an execution key creates `WORK_DIR/steps/<key>` (once: a second start of the same
//! key, by any process, attaches to it), and it succeeds `STEP_MS` after it was first started.
//! Every start is logged to `WORK_DIR/starts.log` as `fresh|attach NAME KEY`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::backend::{
    Backends, ExecutionKey, Outcome, Runner, StepRequest, StepRunners, TokioClock,
};
use devramps_core::engine::{Appended, Engine, EngineConfig, Observer, PushRequest};
use devramps_core::{Error, Result};
use devramps_memory::ObservedAppend;
use tokio::io::AsyncBufReadExt;

/// The lease TTL: short, so a killed process's pipelines are taken over quickly.
const TTL: Duration = Duration::from_secs(3);
/// How often an instance that does not hold a lease polls the log.
const POLL: Duration = Duration::from_millis(300);

/// Appends `line` to the file at `path` (one `write` of the whole line, `O_APPEND`).
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// Journals every append to a JSON-lines file.
#[derive(Debug)]
struct FileJournal {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Observer for FileJournal {
    fn appended(&self, append: &Appended<'_>) {
        let _one_at_a_time = self.lock.lock();
        let line = serde_json::to_string(&ObservedAppend::of(append))
            .unwrap_or_else(|e| format!("{{\"unserializable\": \"{e}\"}}"));
        if let Err(e) = append_line(&self.path, &line) {
            eprintln!("journal {}: {e}", self.path.display());
        }
    }
}

/// Steps as a remote service with idempotent starts would run them (see the module doc).
#[derive(Debug)]
struct SharedDirSteps {
    dir: PathBuf,
    instance: String,
    step: Duration,
}

impl SharedDirSteps {
    fn file(&self, key: &ExecutionKey) -> PathBuf {
        let name: String = key
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.dir.join("steps").join(name)
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::backend("steps", what.to_owned(), e.to_string())
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[async_trait]
impl Runner<StepRequest> for SharedDirSteps {
    async fn start(&self, request: StepRequest) -> Result<()> {
        let file = self.file(&request.key);
        let fresh = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file);
        let kind = match fresh {
            Ok(mut f) => {
                f.write_all(now_ms().to_string().as_bytes())
                    .map_err(|e| self.io("write a step's start", e))?;
                "fresh"
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => "attach",
            Err(e) => return Err(self.io("start a step", e)),
        };
        let line = format!("{kind} {} {}", self.instance, request.key);
        append_line(&self.dir.join("starts.log"), &line).map_err(|e| self.io("log a start", e))
    }

    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        let file = self.file(key);
        loop {
            // The start time may not be written yet by another process: read until it is.
            let started = std::fs::read_to_string(&file)
                .map_err(|e| self.io("read a step's start", e))?
                .trim()
                .parse::<u128>()
                .ok();
            if let Some(started) = started {
                let end = started + self.step.as_millis();
                let now = now_ms();
                if now >= end {
                    return Ok(Outcome::Succeeded {
                        outputs: Default::default(),
                    });
                }
                let left = u64::try_from(end - now).unwrap_or(u64::MAX);
                tokio::time::sleep(Duration::from_millis(left)).await;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    async fn cancel(&self, _key: &ExecutionKey) -> Result<()> {
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bucket, prefix, repo, name, work, step_ms] = args.as_slice() else {
        return Err("usage: s3_worker BUCKET PREFIX REPO NAME WORK_DIR STEP_MS".into());
    };
    let work = PathBuf::from(work);
    std::fs::create_dir_all(work.join("steps"))?;
    let location = S3Location::from_env(bucket.as_str(), prefix.as_str()).await;
    let steps = SharedDirSteps {
        dir: work.clone(),
        instance: name.clone(),
        step: Duration::from_millis(step_ms.parse()?),
    };
    let backends = Backends::builder(Arc::new(TokioClock::new()))
        .store(Arc::new(S3EventStore::new(location.clone())))
        .lock(Arc::new(S3Lock::new(location)))
        .source(Arc::new(devramps_git::GitRepository::open(repo)?))
        .resources(Arc::new(devramps_memory::InMemoryResources::new()))
        .steps(StepRunners::new().with_fallback(Arc::new(steps)))
        .build();
    let journal = FileJournal {
        path: work.join(format!("journal-{name}.jsonl")),
        lock: Mutex::new(()),
    };
    let config = EngineConfig::new(name.clone())
        .with_lease_ttl(TTL)
        .with_poll_interval(Some(POLL))
        .with_observer(Arc::new(journal));
    let (engine, driver) = Engine::new(backends, config);
    let driving = tokio::spawn(driver.run());
    println!("ready");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["push", delivery, commit] => {
                let push = PushRequest::new("main", *commit).with_delivery(*delivery);
                match engine.push("app", push).await {
                    Ok(_) => println!("pushed {delivery}"),
                    Err(e) => println!("error {delivery} {e}"),
                }
            }
            ["stop"] => break,
            _ => println!("error unknown command: {line}"),
        }
    }
    engine.stop().await?;
    driving.await??;
    println!("stopped");
    Ok(())
}

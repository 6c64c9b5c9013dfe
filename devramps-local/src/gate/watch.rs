//! One gate as the runner holds it: its outcome once known, and the task that watches the
//! running command (exit code, timeout, cancel, output size).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devramps_core::exec::{LogEntry, Outcome, Outputs};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{Notify, watch};

use super::disk::{self, GateDir, GateState, TAIL_BYTES};
use super::params::{TestType, redact};

/// How long a group has to stop after SIGTERM before it gets SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// A gate started or re-attached to.
#[derive(Debug)]
pub(super) struct Gate {
    shared: Arc<Shared>,
    done: watch::Receiver<Option<Outcome>>,
}

/// What the gate and its watcher share.
#[derive(Debug)]
struct Shared {
    dir: GateDir,
    /// The secrets of the request, for redaction (kept in memory only, never on disk).
    secrets: Mutex<Vec<String>>,
    cancelled: AtomicBool,
    wake: Notify,
}

impl Gate {
    /// A gate whose outcome is known.
    pub(super) fn ended(dir: GateDir, outcome: Outcome, secrets: Vec<String>) -> Arc<Gate> {
        let (_, done) = watch::channel(Some(outcome));
        Arc::new(Gate {
            shared: Arc::new(Shared::new(dir, secrets)),
            done,
        })
    }

    /// A running gate: a task watches it until it ends.
    pub(super) fn watch(
        dir: GateDir,
        state: GateState,
        secrets: Vec<String>,
        poll: Duration,
    ) -> Arc<Gate> {
        let (tx, done) = watch::channel(None);
        let shared = Arc::new(Shared::new(dir, secrets));
        let task = shared.clone();
        tokio::spawn(async move {
            let outcome = task.watch(&state, poll).await;
            if let Err(e) = disk::write_json_atomic(&task.dir.result(), &outcome) {
                tracing::warn!(gate = %task.dir.dir.display(), error = %e, "cannot record the test gate's result");
            }
            let checkout = task.dir.checkout();
            let removed =
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(checkout)).await;
            if let Ok(Err(e)) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(gate = %task.dir.dir.display(), error = %e, "cannot remove the checkout");
            }
            let _ = tx.send(Some(outcome));
        });
        Arc::new(Gate { shared, done })
    }

    /// Adds secrets learnt from a later start (a re-attach after a restart).
    pub(super) fn learn_secrets(&self, secrets: &[String]) {
        let mut known = self
            .shared
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for s in secrets {
            if !known.contains(s) {
                known.push(s.clone());
            }
        }
        known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// The outcome, once the gate ends.
    pub(super) async fn outcome(&self) -> Outcome {
        let mut done = self.done.clone();
        match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(unreachable_outcome),
            Err(_) => unreachable_outcome(),
        }
    }

    /// Asks the running command to stop.
    pub(super) fn cancel(&self) {
        if self.done.borrow().is_none() {
            self.shared.cancelled.store(true, Ordering::SeqCst);
            self.shared.wake.notify_one();
        }
    }

    /// The output so far (at most the capped log), secrets redacted, one entry a line.
    pub(super) fn logs(&self) -> std::io::Result<Vec<LogEntry>> {
        let text = disk::tail(&self.shared.dir.output(), disk::MAX_LOG_BYTES)?;
        let text = redact(&text, &self.shared.secrets());
        Ok(text.lines().map(|l| LogEntry::new("info", l)).collect())
    }
}

/// The watcher ended without an outcome: only when its task panicked.
fn unreachable_outcome() -> Outcome {
    Outcome::Failed {
        reason: "the test gate's watcher stopped unexpectedly; retry the stage".to_owned(),
    }
}

impl Shared {
    fn new(dir: GateDir, secrets: Vec<String>) -> Self {
        Shared {
            dir,
            secrets: Mutex::new(secrets),
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn secrets(&self) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Watches the command until it ends, times out or is cancelled.
    async fn watch(&self, state: &GateState, poll: Duration) -> Outcome {
        loop {
            match self.dir.read_exit_code() {
                Ok(Some(code)) => {
                    self.kill_leftovers(state.pgid);
                    return self.finished(code, state.test_type);
                }
                Ok(None) => {}
                Err(e) => {
                    return Outcome::Failed {
                        reason: format!("cannot read the test command's exit code: {e}"),
                    };
                }
            }
            if self.cancelled.load(Ordering::SeqCst) {
                self.kill(state.pgid).await;
                return self.failed("cancelled", state.test_type);
            }
            if now_ms() >= state.deadline_ms {
                self.kill(state.pgid).await;
                let minutes = state.timeout_minutes;
                return self.failed(
                    &format!("timed out after {minutes} minutes"),
                    state.test_type,
                );
            }
            if !self.alive(state.pgid) {
                if let Ok(Some(code)) = self.dir.read_exit_code() {
                    return self.finished(code, state.test_type);
                }
                return self.failed(
                    "the test command's processes ended without recording an exit code \
                     (killed from outside?)",
                    state.test_type,
                );
            }
            if let Err(e) = disk::cap_output(&self.dir.output()) {
                tracing::warn!(gate = %self.dir.dir.display(), error = %e, "cannot cap the test output");
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// The outcome of a command that exited with `code`.
    fn finished(&self, code: i32, test_type: TestType) -> Outcome {
        let jest = (test_type == TestType::Jest).then(|| disk::read_jest(&self.dir.jest()));
        if code == 0 {
            let mut outputs = Outputs::new();
            outputs.insert("exitCode".into(), 0.into());
            match jest {
                Some(Ok(Some(summary))) => {
                    outputs.insert("passed".into(), summary.num_passed_tests.into());
                    outputs.insert("failed".into(), summary.num_failed_tests.into());
                }
                Some(Ok(None)) => tracing::warn!(
                    gate = %self.dir.dir.display(),
                    "jest test gate passed without a summary at $DEVRAMPS_JEST_OUTPUT"
                ),
                Some(Err(e)) => {
                    tracing::warn!(gate = %self.dir.dir.display(), error = %e, "unreadable jest summary")
                }
                None => {}
            }
            return Outcome::Succeeded { outputs };
        }
        self.failed(
            &format!("the test command exited with code {code}"),
            test_type,
        )
    }

    /// A failure with `what`, jest's counts when asked for, and the output's tail.
    fn failed(&self, what: &str, test_type: TestType) -> Outcome {
        let mut reason = what.to_owned();
        if test_type == TestType::Jest {
            match disk::read_jest(&self.dir.jest()) {
                Ok(Some(s)) => reason.push_str(&format!(
                    "; {} passed, {} failed",
                    s.num_passed_tests, s.num_failed_tests
                )),
                Ok(None) => reason.push_str(
                    "; no jest summary (run jest with --json --outputFile=\"$DEVRAMPS_JEST_OUTPUT\")",
                ),
                Err(e) => reason.push_str(&format!("; {e}")),
            }
        }
        let secrets = self.secrets();
        let longest = secrets.first().map_or(0, |s| s.len() as u64);
        match disk::tail(&self.dir.output(), TAIL_BYTES + longest) {
            Ok(text) => {
                let text = redact(&text, &secrets);
                let cut = text
                    .len()
                    .saturating_sub(usize::try_from(TAIL_BYTES).unwrap_or(usize::MAX));
                let start = (cut..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                let text = text[start..].trim_end();
                if !text.is_empty() {
                    reason.push_str("; last output:\n");
                    reason.push_str(text);
                }
            }
            Err(e) => reason.push_str(&format!("; the output cannot be read: {e}")),
        }
        Outcome::Failed { reason }
    }

    /// Whether the command's process group still runs (its leader is our wrapper, or the
    /// group still has members, which keeps its id from being reused).
    fn alive(&self, pgid: i32) -> bool {
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pgid}/cmdline")) {
            let exit_file = self.dir.exit_code();
            let needle = exit_file.as_os_str().as_encoded_bytes();
            if cmdline.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
        }
        killpg(Pid::from_raw(pgid), None::<Signal>) != Err(Errno::ESRCH)
            && !std::path::Path::new(&format!("/proc/{pgid}")).exists()
    }

    /// Stops the group: SIGTERM, then SIGKILL after [`KILL_GRACE`].
    async fn kill(&self, pgid: i32) {
        let group = Pid::from_raw(pgid);
        if !self.alive(pgid) {
            return;
        }
        let _ = killpg(group, Signal::SIGTERM);
        let until = tokio::time::Instant::now() + KILL_GRACE;
        while tokio::time::Instant::now() < until {
            if killpg(group, None::<Signal>) == Err(Errno::ESRCH) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
    }

    /// Kills what the tests left running in their group after the wrapper exited.
    fn kill_leftovers(&self, pgid: i32) {
        let group = Pid::from_raw(pgid);
        if killpg(group, None::<Signal>).is_ok() && self.alive(pgid) {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

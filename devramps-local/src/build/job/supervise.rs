//! A running build watched: its exit code, timeout, cancel and output, until its outcome
//! is recorded; and the build as the runner holds it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use devramps_core::exec::{LogEntry, Outcome};
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::super::checkout;
use super::super::dir::{JobRecord, JobState};
use super::super::output;
use super::{Job, Jobs, Kind, Shared};
use crate::steps::process::{ProcessId, read_tail, text_tail};

/// How long a group has to stop after SIGTERM before it gets SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How much of the output's end a failure reason quotes, in characters.
const REASON_TAIL: usize = 2000;

impl<K: Kind> Jobs<K> {
    /// Watches a running command until it ends, times out or is cancelled.
    pub(super) fn watch(
        &self,
        shared: Arc<Shared>,
        record: JobRecord,
        state: JobState,
        pid: ProcessId,
        pump: Option<tokio::task::JoinHandle<()>>,
    ) -> Arc<Job> {
        let (tx, done) = watch::channel(None);
        let jobs = self.clone();
        let task = shared.clone();
        tokio::spawn(async move {
            let outcome = jobs.supervise(&task, &record, &state, pid, pump).await;
            jobs.ended(&task, &outcome).await;
            let _ = tx.send(Some(outcome));
        });
        Arc::new(Job { shared, done })
    }

    async fn supervise(
        &self,
        shared: &Shared,
        record: &JobRecord,
        state: &JobState,
        pid: ProcessId,
        pump: Option<tokio::task::JoinHandle<()>>,
    ) -> Outcome {
        let poll = self.inner.options.poll;
        let (what, code) = loop {
            match shared.dir.read_exit_code() {
                Ok(Some(code)) => break (None, Some(code)),
                Ok(None) => {}
                Err(e) => break (Some(format!("cannot read the exit code: {e}")), None),
            }
            if shared.cancelled.load(Ordering::SeqCst) {
                kill(pid).await;
                break (Some("cancelled".to_owned()), None);
            }
            if now_ms() >= state.deadline_ms {
                kill(pid).await;
                let minutes = state.timeout_minutes;
                break (
                    Some(format!(
                        "timed out after {minutes} minutes; its processes were killed"
                    )),
                    None,
                );
            }
            if !pid.is_alive() {
                if let Ok(Some(code)) = shared.dir.read_exit_code() {
                    break (None, Some(code));
                }
                break (
                    Some(
                        "its processes ended without recording an exit code (killed from \
                         outside, or the build removed its own folder?)"
                            .to_owned(),
                    ),
                    None,
                );
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = shared.wake.notified() => {}
            }
        };
        kill_leftovers(pid);
        if let Some(pump) = pump {
            let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
        }
        let gone = self.inner.kind.needs_checkout() && !shared.dir.checkout().exists();
        let what = match (what, code) {
            (Some(what), _) => what,
            (None, Some(0)) => match self.inner.kind.finish(&record.finish, &shared.dir).await {
                Ok(outputs) => return Outcome::Succeeded { outputs },
                Err(reason) => reason,
            },
            (None, Some(code)) => format!("the build command exited with code {code}"),
            (None, None) => "the build ended".to_owned(),
        };
        let mut reason = format!("{}: {what}", self.name());
        if gone && !reason.contains("removed its own working directory") {
            reason.push_str("; the build removed its own working directory (the checkout)");
        }
        reason.push_str(&shared.tail());
        Outcome::Failed { reason }
    }

    /// Records the outcome and tidies the folder.
    async fn ended(&self, shared: &Shared, outcome: &Outcome) {
        if let Err(e) = shared.dir.write_result(outcome) {
            tracing::warn!(build = %shared.dir.dir.display(), error = %e, "cannot record the build's result");
        }
        let _ = std::fs::remove_file(shared.dir.fifo());
        let failed = matches!(outcome, Outcome::Failed { .. });
        if !(failed && self.inner.options.keep_failed) {
            checkout::remove(shared.dir.checkout()).await;
        }
    }
}

/// Starts reading the command's output into the log (opening the FIFO when no reader is
/// given: a re-attach); `None` when there is no FIFO any more.
pub(super) fn start_pump(
    shared: &Arc<Shared>,
    limit: u64,
    reader: Option<std::fs::File>,
) -> Option<tokio::task::JoinHandle<()>> {
    let reader = match reader {
        Some(r) => r,
        None => output::open_reader(&shared.dir.fifo()).ok()?,
    };
    let log = shared.dir.output();
    let secrets = shared.secrets.clone();
    let wake = shared.clone();
    Some(tokio::task::spawn_blocking(move || {
        if let Err(e) = output::pump(reader, &log, limit, &secrets) {
            tracing::warn!(log = %log.display(), error = %e, "cannot keep the build's output");
        }
        wake.wake.notify_one();
    }))
}

impl Job {
    pub(super) fn ended(shared: Arc<Shared>, outcome: Outcome) -> Arc<Job> {
        let (_, done) = watch::channel(Some(outcome));
        Arc::new(Job { shared, done })
    }

    /// Work done in this process; cancel ends it.
    pub(super) fn work(shared: Arc<Shared>, work: BoxFuture<'static, Outcome>) -> Arc<Job> {
        let (tx, done) = watch::channel(None);
        let task = shared.clone();
        tokio::spawn(async move {
            let cancelled = async {
                while !task.cancelled.load(Ordering::SeqCst) {
                    task.wake.notified().await;
                }
            };
            let outcome = tokio::select! {
                outcome = work => outcome,
                () = cancelled => Outcome::Failed { reason: "cancelled".to_owned() },
            };
            if let Err(e) = task.dir.write_result(&outcome) {
                tracing::warn!(build = %task.dir.dir.display(), error = %e, "cannot record the build's result");
            }
            let _ = tx.send(Some(outcome));
        });
        Arc::new(Job { shared, done })
    }

    pub(super) async fn outcome(&self) -> Outcome {
        let mut done = self.done.clone();
        match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(lost),
            Err(_) => lost(),
        }
    }

    pub(super) fn cancel(&self) {
        if self.done.borrow().is_none() {
            self.shared.cancelled.store(true, Ordering::SeqCst);
            self.shared.wake.notify_one();
        }
    }
}

/// The watcher ended without an outcome: only when its task panicked.
fn lost() -> Outcome {
    Outcome::Failed {
        reason: "the build's watcher stopped unexpectedly; retry the stage".to_owned(),
    }
}

impl Shared {
    /// `"; last output:\n..."` with the output's end, secrets redacted; empty without output.
    fn tail(&self) -> String {
        let secrets = output::snapshot(&self.secrets);
        let longest = secrets.first().map_or(0, String::len) as u64;
        match read_tail(&self.dir.output(), 8 * 1024 + longest) {
            Ok((bytes, _)) => {
                let text = output::redact(&String::from_utf8_lossy(&bytes), &secrets);
                let text = text_tail(text.as_bytes(), REASON_TAIL);
                if text.is_empty() {
                    String::new()
                } else {
                    format!("; last output:\n{text}")
                }
            }
            Err(e) => format!("; the output cannot be read: {e}"),
        }
    }

    /// The log so far, secrets redacted, one entry a line.
    pub(super) fn logs(&self, limit: u64) -> std::io::Result<Vec<LogEntry>> {
        let (bytes, _) = read_tail(&self.dir.output(), limit)?;
        let text = output::redact(
            &String::from_utf8_lossy(&bytes),
            &output::snapshot(&self.secrets),
        );
        Ok(text.lines().map(|l| LogEntry::new("info", l)).collect())
    }
}

/// Stops the group: SIGTERM, then SIGKILL after [`KILL_GRACE`].
async fn kill(pid: ProcessId) {
    use nix::sys::signal::{Signal, killpg};
    let group = nix::unistd::Pid::from_raw(pid.pid());
    let exists = || killpg(group, None::<Signal>).is_ok();
    if !pid.is_alive() && !exists() {
        return;
    }
    let _ = killpg(group, Signal::SIGTERM);
    let until = tokio::time::Instant::now() + KILL_GRACE;
    while tokio::time::Instant::now() < until {
        if !exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// Kills what the build left running in its group after the wrapper exited.
fn kill_leftovers(pid: ProcessId) {
    use nix::sys::signal::{Signal, killpg};
    let group = nix::unistd::Pid::from_raw(pid.pid());
    if killpg(group, None::<Signal>).is_ok() {
        let _ = killpg(group, Signal::SIGKILL);
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

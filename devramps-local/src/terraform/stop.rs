//! Stopping a Terraform command: SIGINT to its process group, then SIGKILL once the grace
//! period has passed with a process of the group still running; on a cancel, or when the
//! future that runs it is dropped.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::folder::KeyDir;
use super::run::append;
use crate::steps::process::ProcessId;

/// Stops a running command's group when the future running it is dropped.
pub(super) struct Guard {
    pub(super) pgid: i32,
    pub(super) grace: Duration,
    pub(super) armed: bool,
    pub(super) dir: KeyDir,
    pub(super) name: &'static str,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            append(
                &self.dir,
                &format!(
                    "cancelled: the caller stopped waiting for terraform {}; SIGINT sent to its \
                     process group {} (SIGKILL after {:?})",
                    self.name, self.pgid, self.grace
                ),
                "error",
            );
            interrupt(self.pgid, self.grace);
        }
    }
}

/// Sends SIGINT to the group `pgid`, then SIGKILL when some process of it still runs after
/// `grace` (watched from a thread of its own, so it happens even when nobody awaits).
pub(super) fn interrupt(pgid: i32, grace: Duration) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGINT);
    std::thread::spawn(move || {
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if !group_alive(pgid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if group_alive(pgid) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    });
}

/// Stops what an earlier operation of the key left running (a command whose future was
/// dropped and is still stopping, or one started before a restart): SIGINT, SIGKILL after
/// `grace`, and waits until no process of its group runs, so that a new run never shares the
/// folder with it.
pub(super) async fn stop_leftover(dir: &KeyDir, grace: Duration) -> std::io::Result<()> {
    let Some(leader) = ProcessId::read(&dir.pid_file())? else {
        return Ok(());
    };
    let pgid = leader.pid();
    if leader.is_alive() || group_alive(pgid) {
        append(
            dir,
            &format!(
                "a terraform command of an earlier run still runs (process group {pgid}): \
                 interrupting it before this run starts"
            ),
            "info",
        );
        interrupt(pgid, grace);
        let until = Instant::now() + grace + Duration::from_secs(2);
        while group_alive(pgid) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    match std::fs::remove_file(dir.pid_file()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The process group of a command an earlier run of the runner started for the key, if it
/// still runs (after a restart, Terraform goes on in its own group).
pub(super) fn leftover(dir: &KeyDir) -> std::io::Result<Option<i32>> {
    Ok(ProcessId::read(&dir.pid_file())?
        .filter(|leader| leader.is_alive() || group_alive(leader.pid()))
        .map(|leader| leader.pid()))
}

/// Waits, without a bound, until no process of group `pgid` runs.
pub(super) async fn wait_for_group(pgid: i32) {
    while group_alive(pgid) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a process of group `pgid` still runs (zombies, which only wait to be reaped, do
/// not count). Linux: reads `/proc/*/stat`.
pub(super) fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: ask the kernel (zombies count then).
        return killpg(Pid::from_raw(pgid), None::<Signal>).is_ok();
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        let path = entry.path().join("stat");
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let Some(close) = text.rfind(')') else {
            return false;
        };
        let mut fields = text[close + 1..].split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        group == Some(pgid) && !matches!(state, "Z" | "X" | "x")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_group_is_alive() {
        let me = nix::unistd::getpgrp().as_raw();
        assert!(group_alive(me));
        assert!(!group_alive(i32::MAX - 7));
    }
}

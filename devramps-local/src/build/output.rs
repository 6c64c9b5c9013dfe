//! A build command's output: it writes into a FIFO in the build's folder, and the runner reads
//! it, redacts the secrets and appends it to `output.log`, which it keeps under a size limit.
//! So a secret never reaches the disk through the log, and a command that prints without end
//! costs at most the limit on disk and one read buffer in memory.
//!
//! The wrapper shell holds the FIFO open for reading too (without reading): when the engine
//! stops, the command does not die of a broken pipe; it waits once the pipe's buffer is full,
//! until a runner started again re-attaches and reads on.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::steps::process::{keep_bounded, private_file};

/// What a redacted secret becomes.
const REDACTED: &[u8] = b"[REDACTED]";
/// How much is read at a time.
const CHUNK: usize = 64 * 1024;

/// The secrets of a build, shared by its output reader and its log readers (in memory only).
pub(crate) type Secrets = Arc<Mutex<Vec<String>>>;

/// The secrets, longest first.
pub(crate) fn snapshot(secrets: &Secrets) -> Vec<String> {
    secrets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Adds secrets learnt later (a start after a restart), keeping them longest first.
pub(crate) fn learn(secrets: &Secrets, more: &[String]) {
    let mut known = secrets.lock().unwrap_or_else(PoisonError::into_inner);
    for s in more {
        if !s.is_empty() && !known.contains(s) {
            known.push(s.clone());
        }
    }
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Makes the FIFO the command writes to.
pub(crate) fn make_fifo(path: &Path) -> io::Result<()> {
    match nix::unistd::mkfifo(
        path,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Opens the FIFO for reading without waiting for a writer, then makes reads block (a read
/// with no writer left returns the end).
pub(crate) fn open_reader(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())).map_err(io::Error::from)?;
    Ok(file)
}

/// Opens the FIFO's write end, for the command: fails (instead of waiting) when no reader is
/// open; writes block.
pub(crate) fn open_writer(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())).map_err(io::Error::from)?;
    Ok(file)
}

/// Reads `reader` to its end into the log at `log`, secrets redacted, the log kept under
/// `limit` bytes. Blocking: run it on a thread of its own.
pub(crate) fn pump(mut reader: File, log: &Path, limit: u64, secrets: &Secrets) -> io::Result<()> {
    let mut out = private_file(log, true)?;
    let mut size = out.metadata()?.len();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = n == 0;
        pending.extend_from_slice(&buf[..n]);
        let (done, keep) = redact_stream(&pending, &snapshot(secrets), end);
        out.write_all(&done)?;
        size += done.len() as u64;
        pending = keep;
        if size > limit {
            keep_bounded(log, limit)?;
            size = std::fs::metadata(log)?.len();
        }
        if end {
            return Ok(());
        }
    }
}

/// Redacts `bytes` as a stream: returns what can be written now and what must wait for more
/// (the last bytes that could start a secret continued in the next read; nothing at the end).
pub(crate) fn redact_stream(bytes: &[u8], secrets: &[String], end: bool) -> (Vec<u8>, Vec<u8>) {
    if secrets.is_empty() {
        return (bytes.to_vec(), Vec::new());
    }
    let longest = secrets.iter().map(String::len).max().unwrap_or(0);
    let hold = if end { 0 } else { longest.saturating_sub(1) };
    let limit = bytes.len().saturating_sub(hold);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < limit {
        let rest = &bytes[i..];
        if let Some(s) = secrets.iter().find(|s| rest.starts_with(s.as_bytes())) {
            out.extend_from_slice(REDACTED);
            i += s.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    (out, bytes[i.min(bytes.len())..].to_vec())
}

/// `text` with every secret replaced.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), "[REDACTED]");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_split_between_reads_is_still_redacted() {
        let secrets = vec!["hunter2".to_owned()];
        let (a, keep) = redact_stream(b"pw=hunt", &secrets, false);
        assert_eq!(a, b"p");
        let mut next = keep;
        next.extend_from_slice(b"er2 ok");
        let (b, keep) = redact_stream(&next, &secrets, false);
        let (c, keep) = redact_stream(&keep, &secrets, true);
        assert!(keep.is_empty());
        let all = [a, b, c].concat();
        assert_eq!(String::from_utf8(all).unwrap(), "pw=[REDACTED] ok");
        assert_eq!(redact("a hunter2 b", &secrets), "a [REDACTED] b");
    }

    #[test]
    fn the_log_stays_under_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        make_fifo(&fifo).unwrap();
        let reader = open_reader(&fifo).unwrap();
        let mut writer = open_writer(&fifo).unwrap();
        let log = dir.path().join("log");
        let secrets: Secrets = Arc::new(Mutex::new(vec!["s3cr3t".to_owned()]));
        let log2 = log.clone();
        let pumping = std::thread::spawn(move || pump(reader, &log2, 64 * 1024, &secrets));
        for i in 0..100_000 {
            writeln!(writer, "line {i} s3cr3t").unwrap();
        }
        drop(writer);
        pumping.join().unwrap().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.len() <= 64 * 1024, "{}", text.len());
        assert!(
            text.ends_with("line 99999 [REDACTED]\n"),
            "{}",
            &text[text.len() - 40..]
        );
        assert!(!text.contains("s3cr3t"));
    }
}

//! Step processes that outlive the engine: identified by pid and start time (so a reused pid is
//! never mistaken for them), signalled as a whole process group, their output files kept
//! bounded on disk and read back only as bounded tails.
//!
//! Linux only: liveness and start times come from `/proc/<pid>/stat`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A process as the pid file names it: its pid and its start time (clock ticks after boot,
/// field 22 of `/proc/<pid>/stat`), which a later process reusing the pid does not share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessId {
    pid: i32,
    start: u64,
}

/// What `/proc/<pid>/stat` says: the state letter and the start time.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); the start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

impl ProcessId {
    /// The running process `pid` (our child, just spawned).
    pub(crate) fn of(pid: u32) -> io::Result<ProcessId> {
        let pid = i32::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pid out of range"))?;
        let (_, start) = stat(pid).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("/proc/{pid}/stat is unreadable (is this Linux with /proc mounted?)"),
            )
        })?;
        Ok(ProcessId { pid, start })
    }

    /// The pid (for a group leader, also the group's id).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads a pid file written by [`ProcessId::write`]; `None` when there is none.
    pub(crate) fn read(path: &Path) -> io::Result<Option<ProcessId>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut words = text.split_whitespace();
        let parsed = (|| Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?)))();
        match parsed {
            Some((pid, start)) => Ok(Some(ProcessId { pid, start })),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is not `<pid> <start time>`", path.display()),
            )),
        }
    }

    /// Writes the pid file atomically (a reader never sees half of it).
    pub(crate) fn write(&self, path: &Path) -> io::Result<()> {
        write_atomic(path, format!("{} {}\n", self.pid, self.start).as_bytes())
    }

    /// Whether the process still runs: it exists, is not a zombie, and started when it did.
    pub(crate) fn is_alive(&self) -> bool {
        match stat(self.pid) {
            Some((state, start)) => start == self.start && !matches!(state, 'Z' | 'X' | 'x'),
            None => false,
        }
    }

    /// Sends `signal` to the process's whole group, if the process still runs (a dead
    /// leader's group id may belong to someone else by now).
    pub(crate) fn signal_group(&self, signal: Signal) -> io::Result<()> {
        if !self.is_alive() {
            return Ok(());
        }
        match killpg(Pid::from_raw(self.pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = private_file(&tmp, false)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Creates (or truncates) a file only its owner can read (params may hold secrets); with
/// `append`, every write goes to its end even after someone else truncated it.
pub(crate) fn private_file(path: &Path, append: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.create(true).mode(0o600);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.open(path)
}

/// At most `max` bytes of `path`, from its start, and whether there was more (the rest is not
/// read).
pub(crate) fn read_head(path: &Path, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    let more = bytes.len() as u64 > max;
    bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    Ok((bytes, more))
}

/// The last `max` bytes of `path` (the start cut at the first line break when the file is
/// longer, so no line is cut in half), with how many bytes were left out before them.
/// A missing file is empty.
pub(crate) fn read_tail(path: &Path, max: u64) -> io::Result<(Vec<u8>, u64)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let from = len.saturating_sub(max);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    let mut skipped = from;
    if from > 0
        && let Some(newline) = bytes.iter().position(|b| *b == b'\n')
    {
        bytes.drain(..=newline);
        skipped += newline as u64 + 1;
    }
    Ok((bytes, skipped))
}

/// Keeps `path` under `limit` bytes: when it is longer, it is cut down to a note saying how
/// much was dropped and its last `limit / 4` bytes (from a line start). Whoever appends to
/// it goes on appending (its writers must use `O_APPEND`); bytes written during the cut may
/// be lost, which is the price of a bound. Returns whether it cut.
pub(crate) fn keep_bounded(path: &Path, limit: u64) -> io::Result<bool> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= limit {
        return Ok(false);
    }
    let (tail, dropped) = read_tail(path, limit / 4)?;
    let mut kept = format!("[devramps: {dropped} earlier bytes dropped]\n").into_bytes();
    kept.extend_from_slice(&tail);
    // The note and the tail are written over the start of the file, then the file is cut
    // after them: the file starts with the note at every moment. (Cutting first and then
    // appending let a writer's append land before the note.) Bytes appended between the read
    // of the tail and the cut are lost.
    let file = OpenOptions::new().write(true).open(path)?;
    std::os::unix::fs::FileExt::write_all_at(&file, &kept, 0)?;
    file.set_len(kept.len() as u64)?;
    Ok(true)
}

/// Text for people: the bytes as UTF-8 (lossy), at most `max` characters kept from the end,
/// trimmed.
pub(crate) fn text_tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - max).collect();
    format!("...{tail}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcessId::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        let other = ProcessId {
            start: me.start + 1,
            ..me
        };
        assert!(!other.is_alive(), "a reused pid is not the same process");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        me.write(&path).unwrap();
        assert_eq!(ProcessId::read(&path).unwrap(), Some(me));
        assert_eq!(ProcessId::read(&dir.path().join("none")).unwrap(), None);
        fs::write(&path, "garbage").unwrap();
        assert!(ProcessId::read(&path).is_err());
    }

    #[test]
    fn a_head_read_stops_at_its_bound_and_says_there_was_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "0123456789").unwrap();
        assert_eq!(
            read_head(&path, 10).unwrap(),
            (b"0123456789".to_vec(), false)
        );
        assert_eq!(read_head(&path, 4).unwrap(), (b"0123".to_vec(), true));
        // A device without end is read up to the bound, not on.
        let (bytes, more) = read_head(Path::new("/dev/zero"), 1 << 20).unwrap();
        assert_eq!((bytes.len(), more), (1 << 20, true));
        assert!(read_head(&dir.path().join("none"), 4).is_err());
    }

    #[test]
    fn a_long_file_is_cut_to_its_tail_from_a_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, &text).unwrap();
        assert!(!keep_bounded(&path, 100_000).unwrap());
        assert!(keep_bounded(&path, 400).unwrap());
        let kept = fs::read_to_string(&path).unwrap();
        assert!(kept.len() <= 200, "{kept}");
        assert!(kept.starts_with("[devramps: "), "{kept}");
        assert!(kept.ends_with("line 999\n"), "{kept}");
        for line in kept.lines().skip(1) {
            assert!(line.starts_with("line "), "a whole line: {line:?}");
        }
        let (tail, skipped) = read_tail(&path, 12).unwrap();
        assert_eq!(String::from_utf8(tail).unwrap(), "line 999\n");
        assert!(skipped > 0);
        assert_eq!(text_tail("  abcdef \n".as_bytes(), 3), "...def");
    }
}

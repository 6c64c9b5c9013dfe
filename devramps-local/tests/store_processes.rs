//! [`LocalStore`] shared by real processes (the `devramps-store-writer` helper of this crate):
//! concurrent writers on one file lose nothing and duplicate nothing, only one process holds a
//! lease at a time with strictly increasing tokens, and writers killed with SIGKILL at random
//! moments leave a file that opens, with every acknowledged event in it, whole batches only.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use devramps_core::backend::{DeploymentLock, EventStore, EventStoreExt};
use devramps_local::store::LocalStore;
use futures::executor::block_on;
use serde_json::Value;

const WRITER: &str = env!("CARGO_BIN_EXE_devramps-store-writer");
const STREAM: &str = "shared";

/// A running helper and the thread collecting its complete stdout lines.
struct Helper {
    child: Child,
    lines: JoinHandle<Vec<String>>,
}

fn spawn(args: &[&str]) -> Helper {
    let mut child = Command::new(WRITER)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {WRITER}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        let mut line = String::new();
        // A line cut short by a kill has no newline: it was not fully printed, so it is no
        // acknowledgement.
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            lines.push(std::mem::take(&mut line).trim_end().to_owned());
        }
        lines
    });
    Helper { child, lines }
}

impl Helper {
    /// Waits for a normal end; panics with its stderr unless it succeeded.
    fn finish(self) -> Vec<String> {
        let output = self.child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{WRITER} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        self.lines.join().unwrap()
    }

    /// SIGKILLs it and returns what it printed before.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.lines.join().unwrap()
    }
}

/// The `ack SEQ PAYLOAD` lines as (seq, payload).
fn acks(lines: &[String]) -> Vec<(u64, Value)> {
    lines
        .iter()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            assert_eq!(parts.next(), Some("ack"), "{line}");
            let seq = parts.next().unwrap().parse().unwrap();
            (seq, serde_json::from_str(parts.next().unwrap()).unwrap())
        })
        .collect()
}

/// Opens the file and checks the stream: seqs 1..=n, every acknowledged event present with
/// exactly its payload and acknowledged once, every batch whole and contiguous. Returns the
/// number of events.
fn check_stream(path: &Path, acked: &[(u64, Value)]) -> usize {
    let store = LocalStore::open(path).unwrap_or_else(|e| panic!("the file must open: {e}"));
    let events = block_on(store.read_all(STREAM)).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    assert_eq!(
        block_on(store.last_seq(STREAM)).unwrap(),
        events.len() as u64
    );
    let mut seen = BTreeMap::new();
    for (seq, payload) in acked {
        assert!(
            seen.insert(*seq, payload).is_none(),
            "seq {seq} acknowledged twice"
        );
        let stored = events.get(*seq as usize - 1).map(|e| &e.payload);
        assert_eq!(
            stored,
            Some(payload),
            "acknowledged seq {seq} is stored as printed"
        );
    }
    // Batches: runs of events of one (writer, batch), i = 0..of, each batch once.
    let mut batches = BTreeMap::new();
    let mut i = 0;
    while i < events.len() {
        let first = &events[i].payload;
        let of = first["of"].as_u64().unwrap() as usize;
        let id = (
            first["writer"].clone().to_string(),
            first["batch"].as_u64().unwrap(),
        );
        assert!(
            i + of <= events.len(),
            "batch {id:?} is cut short at the end: {first}"
        );
        for (k, event) in events[i..i + of].iter().enumerate() {
            let p = &event.payload;
            assert_eq!(
                (
                    p["writer"].to_string(),
                    p["batch"].as_u64().unwrap(),
                    p["i"].as_u64()
                ),
                (id.0.clone(), id.1, Some(k as u64)),
                "seq {}: batch {id:?} is not whole and contiguous",
                event.seq
            );
        }
        assert!(
            batches.insert(id.clone(), i).is_none(),
            "batch {id:?} stored twice"
        );
        i += of;
    }
    events.len()
}

#[test]
fn concurrent_processes_append_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/state.db");
    let db = path.to_str().unwrap();
    let writers: Vec<Helper> = (0..4)
        .map(|w| spawn(&["append", db, STREAM, &format!("w{w}"), "40", "4"]))
        .collect();
    let lines: Vec<String> = writers.into_iter().flat_map(Helper::finish).collect();
    let acked = acks(&lines);
    let stored = check_stream(&path, &acked);
    assert_eq!(
        stored,
        acked.len(),
        "every stored event was acknowledged to its writer"
    );
    for w in 0..4 {
        let batches: std::collections::BTreeSet<u64> = acked
            .iter()
            .filter(|(_, p)| p["writer"] == format!("w{w}"))
            .map(|(_, p)| p["batch"].as_u64().unwrap())
            .collect();
        assert_eq!(batches.len(), 40, "writer w{w} wrote its 40 batches");
    }
}

#[test]
fn processes_contending_for_a_lease_hold_it_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let db = path.to_str().unwrap();
    let holders: Vec<Helper> = ["a", "b"]
        .iter()
        .map(|h| spawn(&["lease", db, "prod", h, "25"]))
        .collect();
    let printed: Vec<Vec<String>> = holders.into_iter().map(Helper::finish).collect();
    let store = LocalStore::open(&path).unwrap();
    let log = block_on(store.read_all("lease-log/prod")).unwrap();
    assert_eq!(log.len(), 2 * 50, "50 holds, each entered and exited");
    let mut last_token = 0;
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in log.chunks(2) {
        let (enter, exit) = (&pair[0].payload, &pair[1].payload);
        assert_eq!(enter["at"], "enter", "seq {}", pair[0].seq);
        assert_eq!(
            (&exit["at"], &exit["holder"], &exit["token"]),
            (&Value::from("exit"), &enter["holder"], &enter["token"]),
            "seq {}: another holder got in between {enter} and its exit",
            pair[1].seq
        );
        let token = enter["token"].as_u64().unwrap();
        assert!(token > last_token, "token {token} after {last_token}");
        last_token = token;
        let holder = enter["holder"].as_str().unwrap().to_owned();
        held.entry(holder)
            .or_default()
            .push(format!("held {token}"));
    }
    assert_eq!(held.get("a"), Some(&printed[0]), "a's holds are in the log");
    assert_eq!(held.get("b"), Some(&printed[1]), "b's holds are in the log");
    let now = jiff::Timestamp::now();
    assert_eq!(
        block_on(store.current("prod", now)).unwrap(),
        None,
        "released"
    );
}

/// splitmix64: a small, seeded generator, so a failing run can be repeated.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// After a lease holder was killed: the lease reads, and its log holds every hold it printed
/// as enter/exit pairs with increasing tokens, then at most one enter without its exit.
fn check_lease_log(path: &Path, key: &str, printed: &[String]) {
    let store = LocalStore::open(path).unwrap();
    let current = block_on(store.current(key, jiff::Timestamp::now())).unwrap();
    let log = block_on(store.read_all(&format!("lease-log/{key}"))).unwrap();
    let mut tokens = Vec::new();
    for pair in log.chunks(2) {
        let enter = &pair[0].payload;
        assert_eq!(enter["at"], "enter", "{key} seq {}", pair[0].seq);
        let token = enter["token"].as_u64().unwrap();
        match pair.get(1) {
            Some(exit) => {
                assert_eq!(exit.payload["at"], "exit", "{key} seq {}", exit.seq);
                assert_eq!(exit.payload["token"], token, "{key} seq {}", exit.seq);
            }
            None => assert_eq!(
                current.as_ref().map(|l| l.token),
                Some(token),
                "{key}: the holder killed inside its hold still holds the lease"
            ),
        }
        assert!(
            tokens.last() < Some(&token),
            "{key}: token {token} after {tokens:?}"
        );
        tokens.push(token);
    }
    let held: Vec<String> = tokens.iter().map(|t| format!("held {t}")).collect();
    assert!(
        held.starts_with(printed),
        "{key}: every printed hold is in the log: {printed:?} / {held:?}"
    );
}

/// Rounds of the kill test: 3 writers started, then killed with SIGKILL each.
const ROUNDS: u64 = 40;

#[test]
fn writers_killed_at_random_moments_lose_nothing_acknowledged() {
    let seed = match std::env::var("DEVRAMPS_KILL_SEED") {
        Ok(seed) => seed.parse().expect("DEVRAMPS_KILL_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("kill test seed: {seed} (repeat with DEVRAMPS_KILL_SEED={seed})");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    let mut path = dir.path().join("state-0.db");
    let (mut killed_with_acks, mut stored) = (0, 0);
    for round in 0..ROUNDS {
        if round % 8 == 0 {
            // A new file now and then, so that kills also land while the file is created.
            path = dir.path().join(format!("state-{round}.db"));
            acked.clear();
        }
        let db = path.to_str().unwrap();
        let writers: Vec<Helper> = (0..3)
            .map(|w| spawn(&["append", db, STREAM, &format!("r{round}w{w}"), "0", "5"]))
            .collect();
        let key = format!("prod-{round}");
        let holder = spawn(&["lease", db, &key, "h", "1000000"]);
        std::thread::sleep(Duration::from_millis(random.below(150)));
        let holds = holder.kill();
        check_lease_log(&path, &key, &holds);
        for writer in writers {
            // Stagger the kills a little, so that they land at different points of each
            // writer's transaction.
            std::thread::sleep(Duration::from_micros(random.below(3000)));
            let printed = acks(&writer.kill());
            killed_with_acks += usize::from(!printed.is_empty());
            acked.extend(printed);
        }
        stored = check_stream(&path, &acked);
        assert!(
            stored >= acked.len(),
            "round {round}: {stored} events, {} acked",
            acked.len()
        );
    }
    assert!(
        killed_with_acks >= ROUNDS as usize,
        "most writers got to write before they were killed ({killed_with_acks} of {})",
        3 * ROUNDS
    );
    eprintln!("last file: {stored} events after 8 rounds of kills");
}

//! A helper of the local store's multi-process and `kill -9` tests (not a user command): it
//! opens a [`LocalStore`] file and writes to it from its own process, printing on stdout each
//! write the store acknowledged, so that a test can kill it at any moment and check that every
//! acknowledged write is in the file.
//!
//! ```text
//! devramps-store-writer append DB STREAM WRITER BATCHES MAX_BATCH
//!     Appends BATCHES batches (0: until killed) of 1..=MAX_BATCH events to STREAM with
//!     compare-and-swap, re-reading the last seq after a conflict. Event i of batch b of a
//!     batch of n is {"writer": WRITER, "batch": b, "i": i, "of": n}. After each acknowledged
//!     append it prints one line per event: `ack SEQ PAYLOAD-JSON`.
//! devramps-store-writer lease DB KEY HOLDER ROUNDS
//!     ROUNDS times: acquires KEY for HOLDER (60 s, trying again every millisecond while another
//!     holds it), appends {"holder", "token", "at": "enter"} to the stream `lease-log/KEY`
//!     fenced by the lease's token, waits 2 ms, appends the same with "at": "exit", releases,
//!     and prints `held TOKEN`.
//! ```
//!
//! Exits 0 when done, 1 on a store error (printed on stderr), 2 on bad arguments.

use std::process::ExitCode;
use std::time::Duration;

use devramps_core::backend::{AppendOptions, DeploymentLock, EventStore};
use devramps_core::{Error, Result};
use devramps_local::store::LocalStore;
use futures::executor::block_on;
use serde_json::{Value, json};

const USAGE: &str = "usage: devramps-store-writer append DB STREAM WRITER BATCHES MAX_BATCH\n       \
                     devramps-store-writer lease DB KEY HOLDER ROUNDS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["append", db, stream, writer, batches, max] => match (batches.parse(), max.parse()) {
            (Ok(batches), Ok(max)) if max > 0 => {
                open(db).and_then(|s| block_on(append(&s, stream, writer, batches, max)))
            }
            _ => return usage("BATCHES and MAX_BATCH must be numbers, MAX_BATCH at least 1"),
        },
        ["lease", db, key, holder, rounds] => match rounds.parse() {
            Ok(rounds) => open(db).and_then(|s| block_on(lease(&s, key, holder, rounds))),
            Err(_) => return usage("ROUNDS must be a number"),
        },
        _ => return usage("unknown command"),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devramps-store-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("devramps-store-writer: {problem}\n{USAGE}");
    ExitCode::from(2)
}

/// Opens the store, trying again while it is unavailable (other writers hold its write lock
/// longer than its busy timeout, as on a loaded machine): a transient error, which a caller
/// retries, as the engine does, for up to a minute.
fn open(db: &str) -> Result<LocalStore> {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match LocalStore::open(db) {
            Err(e) if e.is_transient() && std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(100));
            }
            opened => return opened,
        }
    }
}

/// A batch size in 1..=max that differs between writers and batches.
fn batch_size(writer: &str, batch: u64, max: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in writer.bytes().chain(batch.to_le_bytes()) {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    1 + h % max
}

/// Appends `events` after the stream's current end, re-reading it after each conflict and
/// waiting a moment when the store is busy; returns the new last seq.
async fn append_anew(
    store: &LocalStore,
    stream: &str,
    events: &[Value],
    options: &AppendOptions,
) -> Result<u64> {
    loop {
        let last = store.last_seq(stream).await?;
        match store
            .append(stream, last, events.to_vec(), options.clone())
            .await
        {
            Err(Error::Conflict { .. }) if options.fencing_token.is_none() => continue,
            Err(Error::Unavailable { .. }) => std::thread::sleep(Duration::from_millis(1)),
            other => return other,
        }
    }
}

async fn append(
    store: &LocalStore,
    stream: &str,
    writer: &str,
    batches: u64,
    max: u64,
) -> Result<()> {
    let mut batch = 0;
    while batches == 0 || batch < batches {
        let size = batch_size(writer, batch, max);
        let events: Vec<Value> = (0..size)
            .map(|i| json!({"writer": writer, "batch": batch, "i": i, "of": size}))
            .collect();
        let last = append_anew(store, stream, &events, &AppendOptions::default()).await?;
        for (seq, event) in (last + 1 - size..).zip(&events) {
            println!("ack {seq} {event}");
        }
        batch += 1;
    }
    Ok(())
}

async fn lease(store: &LocalStore, key: &str, holder: &str, rounds: u64) -> Result<()> {
    let log = format!("lease-log/{key}");
    for _ in 0..rounds {
        let lease = loop {
            let now = jiff::Timestamp::now();
            match store
                .acquire(key, holder, Duration::from_secs(60), now)
                .await
            {
                Ok(Some(lease)) => break lease,
                Ok(None) | Err(Error::Unavailable { .. }) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(e),
            }
        };
        let fenced = AppendOptions {
            fencing_token: Some(lease.token),
        };
        for at in ["enter", "exit"] {
            let event = json!({"holder": holder, "token": lease.token, "at": at});
            append_anew(store, &log, &[event], &fenced).await?;
            if at == "enter" {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        store.release(&lease).await?;
        println!("held {}", lease.token);
    }
    Ok(())
}

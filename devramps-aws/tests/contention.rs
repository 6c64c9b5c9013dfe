//! Lock contention on S3 (moto): 8 tokio tasks, each with its own [`S3Lock`] and
//! [`S3EventStore`] on its own client (as 8 processes would be), race for one lease key for 200
//! rounds, all with the same virtual `now` per round.
//!
//! Every round: at most one task gets the lease (exactly one, since the lease is free at the
//! start of each round); its token is higher than every earlier round's; it appends one event
//! fenced by that token; the previous round's holder, appending with its older token after
//! that, is refused with [`Error::Conflict`] and writes nothing. Then the holder releases
//! (even rounds) or the lease is left to expire by moving the shared virtual `now` past the TTL
//! (odd rounds), and the losers, trying again at the same `now` before that, still get nothing.
//! At the end the stream holds exactly one event per round, in order, with the round's token.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use devramps_aws::{S3EventStore, S3Location, S3Lock};
use devramps_core::Error;
use devramps_core::backend::{AppendOptions, DeploymentLock, EventStore, Lease};
use jiff::Timestamp;
use serde_json::json;

const TASKS: usize = 8;
const ROUNDS: u64 = 200;
const TTL: Duration = Duration::from_secs(30);
const KEY: &str = "pipeline/api";
const STREAM: &str = "api";

/// One contender: a lease service and an event store on a client of its own.
struct Contender {
    name: String,
    lock: S3Lock,
    store: S3EventStore,
}

/// Every contender tries to acquire [`KEY`] at `now`, each from a tokio task of its own,
/// released together; returns who got what.
async fn race(contenders: &[Arc<Contender>], now: Timestamp) -> Vec<(usize, Option<Lease>)> {
    let start = Arc::new(tokio::sync::Barrier::new(contenders.len()));
    let tasks: Vec<_> = contenders
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = Arc::clone(c);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let got = c.lock.acquire(KEY, &c.name, TTL, now).await;
                (i, got.unwrap_or_else(|e| panic!("{} acquire: {e}", c.name)))
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn fenced(token: u64) -> AppendOptions {
    AppendOptions {
        fencing_token: Some(token),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_race_for_one_lease_for_200_rounds() {
    let bucket = support::fresh_bucket().await;
    let mut contenders = Vec::new();
    for i in 0..TASKS {
        let location = S3Location::new(support::client(None).await, bucket.clone(), "contention");
        contenders.push(Arc::new(Contender {
            name: format!("engine-{i}"),
            lock: S3Lock::new(location.clone()),
            store: S3EventStore::new(location),
        }));
    }

    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut previous: Option<(usize, Lease)> = None;
    let mut tokens = Vec::new();
    for round in 1..=ROUNDS {
        let results = race(&contenders, now).await;
        let holders: Vec<_> = results
            .into_iter()
            .filter_map(|(i, got)| got.map(|lease| (i, lease)))
            .collect();
        assert!(
            holders.len() <= 1,
            "round {round}: {} live holders at once: {holders:?}",
            holders.len()
        );
        let Some((winner, lease)) = holders.into_iter().next() else {
            panic!("round {round}: the lease was free (released or expired) but nobody got it");
        };
        let c = &contenders[winner];
        assert_eq!(lease.holder, c.name, "round {round}");
        if let Some((_, old)) = &previous {
            assert!(
                lease.token > old.token,
                "round {round}: token {} is not above the previous round's {}",
                lease.token,
                old.token
            );
        }
        tokens.push(lease.token);

        // The holder appends, fenced by its token.
        let last = c.store.last_seq(STREAM).await.unwrap();
        assert_eq!(last, round - 1, "round {round}: the log has {last} events");
        let event = json!({"round": round, "holder": c.name, "token": lease.token});
        let appended = c
            .store
            .append(STREAM, last, vec![event], fenced(lease.token))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the holder's append failed: {e}"));
        assert_eq!(appended, round);

        // The previous holder, through its own store, with its older token: always refused,
        // even with the right expected sequence number.
        if let Some((old_holder, old)) = &previous {
            let stale = contenders[*old_holder]
                .store
                .append(
                    STREAM,
                    round,
                    vec![json!({"stale": old.token})],
                    fenced(old.token),
                )
                .await;
            assert!(
                matches!(stale, Err(Error::Conflict { .. })),
                "round {round}: an append fenced by the older token {} (newer: {}) gave {stale:?}",
                old.token,
                lease.token
            );
        }

        if round % 2 == 0 {
            c.lock.release(&lease).await.unwrap();
            now = now.checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
        } else {
            // The lease is live at `now`: everyone else still gets nothing.
            for (i, got) in race(&contenders, now).await {
                if i != winner {
                    assert!(
                        got.is_none(),
                        "round {round}: engine-{i} took a lease engine-{winner} holds: {got:?}"
                    );
                }
            }
            now = now
                .checked_add(
                    jiff::SignedDuration::try_from(TTL).unwrap()
                        + jiff::SignedDuration::from_secs(1),
                )
                .unwrap();
        }
        previous = Some((winner, lease));
    }

    // Exactly one event per round, in order, each with its round's token; no stale write.
    let log = contenders[0].store.read(STREAM, 0, None).await.unwrap();
    assert_eq!(log.len() as u64, ROUNDS);
    for (i, (event, token)) in log.iter().zip(&tokens).enumerate() {
        assert_eq!(event.seq, i as u64 + 1);
        assert_eq!(event.payload["round"], json!(i as u64 + 1));
        assert_eq!(event.payload["token"], json!(token));
    }
}

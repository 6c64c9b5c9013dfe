//! Group commit: the inputs of people and webhooks that queue up while an append is in flight
//! are recorded in one append, each caller answered with its own records once they are
//! durable, deduplication by delivery id (L2) holding inside the batch.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Event, Input, Record};
use devramps_memory::{RecordingObserver, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

#[allow(dead_code)] // each test uses a part of it
#[path = "support/gated.rs"]
mod gated;
use gated::GatedStore;

const PIPELINE: &str = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
    pipeline_updates_require_approval: NEVER\n  stages:\n    \
    - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n    \
    - { name: prod, account_id: \"222222222222\", region: us-east-1 }\n  steps:\n    \
    - { name: Bake, id: bake, type: \"DEVRAMPS:APPROVAL:BAKE\", params: { duration_minutes: 30 } }\n  \
    artifacts: {}\n";

type Answers = Rc<RefCell<Vec<(String, devramps_core::Result<Vec<Record>>)>>>;

/// Submits a push of `commit` with the delivery id `delivery`; its answer goes to `answers`
/// under `name`.
fn push(
    pool: &LocalPool,
    engine: &Engine,
    answers: &Answers,
    name: &str,
    commit: &str,
    delivery: &str,
) {
    let (engine, answers, name) = (engine.clone(), answers.clone(), name.to_owned());
    let request = PushRequest::new("main", commit).with_delivery(delivery);
    pool.spawner()
        .spawn_local(async move {
            let answer = engine.push("app", request).await;
            answers.borrow_mut().push((name, answer));
        })
        .expect("spawn a push");
}

fn answer<'a>(
    answers: &'a [(String, devramps_core::Result<Vec<Record>>)],
    name: &str,
) -> &'a devramps_core::Result<Vec<Record>> {
    &answers
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no answer for {name}: {answers:?}"))
        .1
}

/// The revision a push's records accepted, or the reason it was ignored.
fn outcome(answer: &devramps_core::Result<Vec<Record>>) -> Result<u64, String> {
    let records = answer.as_ref().map_err(|e| format!("error: {e}"))?;
    for record in records {
        match &record.event {
            Event::DeploymentAccepted { revision, .. } => return Ok(*revision),
            Event::PushIgnored { reason, .. } => return Err(format!("ignored: {reason}")),
            _ => {}
        }
    }
    Err(format!("neither accepted nor ignored: {records:?}"))
}

#[test]
fn pushes_queued_behind_an_append_are_recorded_in_one_append_each_answered_on_its_own() {
    let (mut backends, handles) = scripted_backends();
    for c in ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"] {
        handles
            .source
            .commit(c, None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    }
    let store = GatedStore::default();
    backends.store = Arc::new(store.clone());
    let journal = RecordingObserver::new();
    let config = EngineConfig::default().with_observer(Arc::new(journal.clone()));
    let (engine, driver) = Engine::new(backends, config);
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn the driver");
    let answers: Answers = Rc::default();

    push(&pool, &engine, &answers, "first", "c1", "d-1");
    pool.run_until_stalled();
    assert_eq!(outcome(answer(&answers.borrow(), "first")), Ok(1));

    // An append held in flight; the pushes behind it queue up.
    store.set_closed(true);
    push(&pool, &engine, &answers, "held", "c2", "d-2");
    pool.run_until_stalled();
    assert_eq!(
        store.gate().waiting,
        1,
        "the push's append waits at the gate"
    );
    let queued = [
        ("a", "c3", "d-3"),
        ("b", "c4", "d-4"),
        ("same id in the batch", "c5", "d-4"),
        ("c", "c6", "d-6"),
        ("redelivered", "c1", "d-1"),
        ("d", "c7", "d-7"),
        ("e", "c8", "d-8"),
    ];
    for (name, commit, delivery) in queued {
        push(&pool, &engine, &answers, name, commit, delivery);
    }
    pool.run_until_stalled();
    assert_eq!(
        answers.borrow().len(),
        1,
        "nobody is answered before the append holding its records is durable"
    );
    let before = store.written().len();

    store.set_closed(false);
    pool.run_until_stalled();
    let answers = answers.borrow();
    assert_eq!(answers.len(), 2 + queued.len(), "every push answered");

    // Each caller has its own answer: revisions in arrival order, the duplicates told so.
    let seen_before = |a| matches!(outcome(a), Err(r) if r.contains("seen before"));
    assert_eq!(outcome(answer(&answers, "held")), Ok(2));
    assert_eq!(outcome(answer(&answers, "a")), Ok(3));
    assert_eq!(outcome(answer(&answers, "b")), Ok(4));
    assert!(
        seen_before(answer(&answers, "same id in the batch")),
        "L2 inside one batch: {:?}",
        answer(&answers, "same id in the batch")
    );
    assert!(seen_before(answer(&answers, "redelivered")));
    assert_eq!(outcome(answer(&answers, "c")), Ok(5));
    assert_eq!(outcome(answer(&answers, "d")), Ok(6));
    assert_eq!(outcome(answer(&answers, "e")), Ok(7));

    // Group commit: the held push's append, then ONE append for the seven queued behind it.
    let push_appends: Vec<usize> = journal
        .appends()
        .iter()
        .map(|a| {
            a.inputs
                .iter()
                .filter(|i| matches!(i, Input::Push(_)))
                .count()
        })
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(push_appends, [1, 1, queued.len()], "pushes per append");
    assert!(
        store.written().len() - before < 1 + queued.len(),
        "fewer appends than pushes: {:?}",
        store.written()
    );

    // The batch is what its inputs, fed one after the other, make: the log replays.
    let log = pool.run_until(engine.history("app")).expect("the log");
    devramps_memory::many_engines::check_journal(&journal.appends(), &log);
    let deliveries = log
        .iter()
        .filter(|r| matches!(r.event, Event::DeploymentAccepted { .. }))
        .count();
    assert_eq!(
        deliveries, 7,
        "one deployment per new delivery id, none for a duplicate"
    );
}

#[test]
fn a_push_that_cannot_be_read_is_answered_with_its_error_and_the_others_still_recorded() {
    let (mut backends, handles) = scripted_backends();
    for c in ["c1", "c2", "c3", "c4"] {
        handles
            .source
            .commit(c, None, [("/.devramps/app/pipeline.yaml", PIPELINE)]);
    }
    let store = GatedStore::default();
    backends.store = Arc::new(store.clone());
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let mut pool = LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("spawn the driver");
    let answers: Answers = Rc::default();
    push(&pool, &engine, &answers, "first", "c1", "d-1");
    pool.run_until_stalled();
    store.set_closed(true);
    push(&pool, &engine, &answers, "held", "c2", "d-2");
    pool.run_until_stalled();
    push(&pool, &engine, &answers, "a", "c3", "d-3");
    push(&pool, &engine, &answers, "unknown", "no-such-commit", "d-x");
    push(&pool, &engine, &answers, "b", "c4", "d-4");
    pool.run_until_stalled();
    store.set_closed(false);
    pool.run_until_stalled();
    let answers = answers.borrow();
    assert_eq!(outcome(answer(&answers, "held")), Ok(2));
    assert_eq!(outcome(answer(&answers, "a")), Ok(3));
    let unknown = answer(&answers, "unknown");
    assert!(
        matches!(unknown, Err(e) if e.to_string().contains("no-such-commit")),
        "{unknown:?}"
    );
    assert_eq!(outcome(answer(&answers, "b")), Ok(4));
}

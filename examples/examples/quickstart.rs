//! A full push-to-production of the sample `api` pipeline on the in-memory backends, with a
//! virtual clock: three pushes, of which the second is superseded by the third before it is
//! ever built (L6), deployed through staging and, after a 30-minute bake, prod.
//!
//! ```text
//! cargo run -p devramps-examples --example quickstart
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use devramps_core::backend::Clock;
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::lifecycle::{Record, describe};
use devramps_memory::{Match, MemoryHandles, scripted_backends};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

const PIPELINE: &str = include_str!("../repo/.devramps/api/pipeline.yaml");

/// One line per record, for people: the core's [`describe`] after the virtual time.
pub fn describe_at(record: &Record) -> Option<String> {
    let time = record
        .at
        .in_tz(devramps_core::lifecycle::PACIFIC_ZONE)
        .map_or_else(
            |_| record.at.to_string(),
            |z| z.strftime("%a %H:%M").to_string(),
        );
    describe(record).map(|line| format!("{time}  {line}"))
}

/// Runs the quickstart and returns the pipeline's log.
pub fn run(verbose: bool) -> Vec<Record> {
    let (backends, handles) = scripted_backends();
    script(&handles);
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    spawner
        .spawn_local(async move {
            let _ = driver.run().await;
        })
        .expect("the driver starts");
    let printed = Rc::new(RefCell::new(0_usize));
    let show = |pool: &mut LocalPool| {
        let log = pool.run_until(engine.history("api")).unwrap_or_default();
        let mut seen = printed.borrow_mut();
        if verbose {
            for r in &log[*seen..] {
                if let Some(line) = describe_at(r) {
                    println!("{line}");
                }
            }
        }
        *seen = log.len();
        log
    };
    // Three pushes a minute apart: c2 is superseded by c3 while c1 holds staging.
    for (i, commit) in ["c1", "c2", "c3"].into_iter().enumerate() {
        if i > 0 {
            handles.clock.advance(std::time::Duration::from_secs(60));
        }
        let push = PushRequest::new("main", commit).with_delivery(format!("delivery-{commit}"));
        pool.run_until(engine.push("api", push))
            .expect("the push is recorded");
        pool.run_until_stalled();
        show(&mut pool);
    }
    // Let virtual time run until nothing is left to do.
    loop {
        pool.run_until_stalled();
        show(&mut pool);
        if handles.clock.advance_to_next_deadline().is_none() {
            break;
        }
    }
    let log = show(&mut pool);
    if verbose {
        let state = pool.run_until(engine.state("api")).expect("state");
        let now = handles.clock.now();
        let local = now
            .in_tz(devramps_core::lifecycle::PACIFIC_ZONE)
            .map_or_else(
                |_| now.to_string(),
                |z| z.strftime("%a %H:%M %Z").to_string(),
            );
        println!("\nat {local} (virtual time):");
        for (name, stage) in &state.stages {
            let current = stage
                .current
                .and_then(|r| state.deployments.get(&r))
                .map(|d| format!("r{} ({})", d.revision, d.commit));
            println!(
                "  {name:<8} runs {}",
                current.unwrap_or_else(|| "nothing".into())
            );
        }
    }
    log
}

/// The repository and the scripted backends: three commits of the sample pipeline.
fn script(handles: &MemoryHandles) {
    let source = &handles.source;
    source.commit(
        "c1",
        None,
        [
            ("/.devramps/api/pipeline.yaml", PIPELINE),
            ("/services/api/main.rs", "v1"),
            ("/web/index.html", "v1"),
        ],
    );
    source.commit_changes("c2", "c1", [("/services/api/main.rs", Some("v2"))]);
    source.commit_changes("c3", "c2", [("/services/api/main.rs", Some("v3"))]);
    for stage in ["staging", "prod"] {
        handles
            .secrets
            .set_stage("api", stage, "DATABASE_URL", format!("postgres://{stage}"));
    }
    let outputs = [
        ("cluster_name".to_owned(), serde_json::json!("api-cluster")),
        (
            "task_definition".to_owned(),
            serde_json::json!("api-task:1"),
        ),
    ];
    handles
        .infra
        .script_outputs(Match::step("infra"), outputs.into());
}

#[allow(dead_code)]
fn main() {
    println!(
        "devramps quickstart: the `api` pipeline on in-memory backends (virtual clock, Monday 09:00 Los Angeles)\n"
    );
    run(true);
}

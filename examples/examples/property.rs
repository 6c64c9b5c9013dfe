//! A property of your own over your own pipeline, checked with proptest over random histories
//! (as it would run in your test suite), beside the lifecycle rules.
//!
//! The property: "a push on Friday after 17:00 (Los Angeles) never reaches prod before
//! Monday". The sample `api` pipeline gates prod with `PACIFIC_WORKING_HOURS`, so it holds
//! for first starts as long as nobody bypasses the window (the histories here leave bypasses
//! out; retries, which ignore windows by L11, are not first starts).
//! On a failure, the shrunk history is written as a scenario file: keep it as a regression
//! scenario and run it with `devramps simulate FILE`.
//!
//! `cargo run -p devramps-examples --example property`

use std::path::Path;

use devramps_sim::random::{
    Histories, HistoryConfig, RandomOutcome, Weights, property, run_random, write_scenario,
};
use jiff::civil::Weekday;

fn main() {
    let pipeline = include_str!("../repo/.devramps/api/pipeline.yaml");
    let friday_freeze = property("friday-freeze", |_, before, event| {
        if event.kind != "stage_state"
            || event.stage.as_deref() != Some("prod")
            || event.state.as_deref() != Some("IN_PROGRESS")
        {
            return None;
        }
        let accepted = before
            .iter()
            .find(|e| e.kind == "deployment_accepted" && e.revision == event.revision)?;
        let la = |t: jiff::Timestamp| t.in_tz("America/Los_Angeles").ok();
        let (pushed, started) = (la(accepted.at)?, la(event.at)?);
        let friday_late = pushed.weekday() == Weekday::Friday && pushed.hour() >= 17;
        let retry = before.iter().any(|e| {
            e.kind == "stage_state"
                && e.revision == event.revision
                && e.stage == event.stage
                && e.state.as_deref() == Some("IN_PROGRESS")
        });
        let days = started.date().since(pushed.date()).ok()?.get_days();
        (friday_late && !retry && days < 3).then(|| {
            format!(
                "revision {:?} pushed {} reached prod {}",
                event.revision, pushed, started
            )
        })
    });
    let config = HistoryConfig {
        // No stop/resume/unblock/bypass: a bypass lets a revision start outside the window.
        weights: Weights {
            control: 0,
            ..Weights::default()
        },
        ..HistoryConfig::default()
    };
    let histories = Histories::new(pipeline, config).expect("the sample pipeline is valid");
    match run_random(
        &histories,
        pipeline,
        200,
        42,
        &[&friday_freeze],
        &mut |_| {},
    ) {
        RandomOutcome::Passed(coverage) => print!("{}", coverage.summary()),
        RandomOutcome::Failed(failure) => {
            let file = Path::new("friday-freeze-failure.yaml");
            let text = write_scenario(&failure.scenario, file);
            std::fs::write(file, &text).expect("the failure is written");
            eprintln!("{:?}\n{text}", failure.violations);
            std::process::exit(1);
        }
    }
}

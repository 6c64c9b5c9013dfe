//! `devramps simulate` end to end: the acceptance scenarios and the lifecycle rules, each a
//! scenario file under `tests/scenarios/` run through the real engine on in-memory backends;
//! every test asserts on the JSON report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devramps_sim::{PipelineRef, parse_scenario, render_text, simulate, simulate_file, to_json};
use serde_json::{Value, json};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Runs a scenario file and returns its JSON report, parsed. Every run must be free of
/// invariant violations.
fn run(name: &str) -> Value {
    let report = simulate_file(&scenario(name)).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{name} is invalid:\n{}", errors.join("\n"))
    });
    if std::env::var_os("SIM_DEBUG").is_some() {
        eprintln!("{}", render_text(&report));
    }
    let json: Value = serde_json::from_str(&to_json(&report)).expect("the report is JSON");
    assert_eq!(json["violations"], json!([]), "{name}: violations");
    json
}

fn events(r: &Value) -> &Vec<Value> {
    r["events"].as_array().expect("events")
}

/// The events matching every `(key, value)` of `fields`.
fn matching<'r>(r: &'r Value, fields: &[(&str, Value)]) -> Vec<&'r Value> {
    events(r)
        .iter()
        .filter(|e| fields.iter().all(|(k, v)| e[*k] == *v))
        .collect()
}

/// The time of the only event matching `fields`.
fn time(r: &Value, fields: &[(&str, Value)]) -> String {
    let found = matching(r, fields);
    assert_eq!(found.len(), 1, "exactly one event {fields:?}: {found:#?}");
    found[0]["at"].as_str().expect("at").to_owned()
}

/// When `revision` started in `stage` (its `IN_PROGRESS` events), in order.
fn starts(r: &Value, revision: u64, stage: &str) -> Vec<String> {
    matching(
        r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(revision)),
            ("stage", json!(stage)),
            ("state", json!("IN_PROGRESS")),
        ],
    )
    .iter()
    .map(|e| e["at"].as_str().expect("at").to_owned())
    .collect()
}

fn step_time(r: &Value, revision: u64, stage: &str, step: &str, state: &str) -> String {
    time(
        r,
        &[
            ("type", json!("step_state")),
            ("revision", json!(revision)),
            ("stage", json!(stage)),
            ("step", json!(step)),
            ("state", json!(state)),
        ],
    )
}

fn deployment(r: &Value, revision: u64) -> &Value {
    let found = r["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .find(|d| d["revision"] == json!(revision));
    found.unwrap_or_else(|| panic!("no revision {revision}"))
}

fn stage<'r>(r: &'r Value, revision: u64, name: &str) -> &'r Value {
    &deployment(r, revision)["stages"][name]
}

/// Whether `revision` waited for `waiting_for` in `stage` at some point.
fn waited(r: &Value, revision: u64, stage: &str, waiting_for: &str) -> bool {
    !matching(
        r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(revision)),
            ("stage", json!(stage)),
            ("state", json!("NOT_STARTED")),
            ("reason", json!(format!("waiting for {waiting_for}"))),
        ],
    )
    .is_empty()
}

// ----- acceptance scenarios (devramps-reference.md §13) -----

#[test]
fn acceptance_09_pacific_working_hours_boundaries() {
    let r = run("09-pwh-boundaries.yaml");
    // Tue 08:59 waits for 09:00.
    assert!(waited(&r, 1, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 1, "prod"), ["2026-01-06T17:00:00Z"]);
    // Tue 16:59 is open.
    assert!(!waited(&r, 2, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 2, "prod"), ["2026-01-07T00:59:00Z"]);
    // Tue 17:00 is closed (half-open interval): Wed 09:00.
    assert!(waited(&r, 3, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 3, "prod"), ["2026-01-07T17:00:00Z"]);
    // Sat 12:00 is closed: Mon 09:00.
    assert!(waited(&r, 4, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 4, "prod"), ["2026-01-12T17:00:00Z"]);
    // Staging (NONE) never waits.
    for revision in 1..=4 {
        assert!(!waited(&r, revision, "staging", "TIME_WINDOW"));
        assert_eq!(stage(&r, revision, "prod")["state"], "SUCCEEDED");
    }
}

#[test]
fn acceptance_10_reduced_window_boundaries() {
    let r = run("10-reduced-window.yaml");
    assert!(waited(&r, 1, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 1, "prod"), ["2026-01-07T18:00:00Z"]); // Wed 10:00
    assert!(!waited(&r, 2, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 2, "prod"), ["2026-01-07T23:59:00Z"]); // Wed 15:59
    assert!(waited(&r, 3, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 3, "prod"), ["2026-01-08T18:00:00Z"]); // Thu 10:00
}

#[test]
fn acceptance_11_no_holidays() {
    let r = run("11-no-holidays.yaml");
    assert_eq!(starts(&r, 1, "prod"), ["2026-12-24T19:00:00Z"]);
    assert_eq!(starts(&r, 2, "prod"), ["2026-12-25T19:00:00Z"]);
    assert!(!waited(&r, 1, "prod", "TIME_WINDOW"));
    assert!(!waited(&r, 2, "prod", "TIME_WINDOW"));
}

#[test]
fn acceptance_12_windows_follow_daylight_saving_time() {
    let r = run("12-dst.yaml");
    // 09:00 PST is 17:00Z ...
    assert!(waited(&r, 1, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 1, "prod"), ["2026-03-02T17:00:00Z"]);
    // ... and 09:00 PDT is 16:00Z.
    assert!(!waited(&r, 2, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 2, "prod"), ["2026-03-09T16:00:00Z"]);
    assert!(!waited(&r, 3, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 3, "prod"), ["2026-03-09T23:00:00Z"]);
    assert!(waited(&r, 4, "prod", "TIME_WINDOW"));
    assert_eq!(starts(&r, 4, "prod"), ["2026-03-10T16:00:00Z"]);
}

#[test]
fn acceptance_13_window_queue_then_resume_without_action() {
    let path = scenario("13-window-queue.yaml");
    let text = std::fs::read_to_string(&path).expect("readable");
    let mut parsed = parse_scenario(&text, &path).expect("valid");
    let PipelineRef::Path(pipeline) = &parsed.pipeline else {
        panic!("a pipeline file")
    };
    let pipeline = std::fs::read_to_string(pipeline).expect("pipeline");

    // Stopped on Sunday: staging deployed, prod waits for the window.
    parsed.run_until = Duration::from_secs(86_400);
    let sunday: Value =
        serde_json::from_str(&to_json(&simulate(&parsed, &pipeline))).expect("json");
    assert_eq!(sunday["end"], "2026-01-11T18:00:00Z");
    assert_eq!(stage(&sunday, 1, "staging")["state"], "SUCCEEDED");
    assert_eq!(
        stage(&sunday, 1, "prod"),
        &json!({"state": "NOT_STARTED", "waiting_for": "TIME_WINDOW"})
    );
    assert_eq!(sunday["stages"]["staging"]["current_commit"], "A");
    assert_eq!(sunday["stages"]["prod"]["current_revision"], Value::Null);

    // Run on: prod starts at Monday 09:00 by itself (no event after the push).
    let r = run("13-window-queue.yaml");
    assert_eq!(starts(&r, 1, "prod"), ["2026-01-12T17:00:00Z"]);
    let start = matching(
        &r,
        &[
            ("type", json!("stage_state")),
            ("stage", json!("prod")),
            ("state", json!("IN_PROGRESS")),
        ],
    );
    assert_eq!(start[0]["actor"], "system");
    assert_eq!(
        stage(&r, 1, "prod"),
        &json!({"state": "SUCCEEDED", "attempts": 1})
    );
    assert_eq!(r["stages"]["prod"]["current_commit"], "A");
}

#[test]
fn acceptance_14_superseding_in_a_window_queue() {
    let r = run("14-window-supersede.yaml");
    assert_eq!(
        stage(&r, 1, "prod"),
        &json!({"state": "SKIPPED", "superseded_by": 2})
    );
    assert!(starts(&r, 1, "prod").is_empty(), "A never runs in prod");
    assert_eq!(starts(&r, 2, "prod"), ["2026-01-12T17:00:00Z"]);
    assert_eq!(stage(&r, 2, "prod")["state"], "SUCCEEDED");
    // Both were built, in staging (NONE) at once.
    assert_eq!(
        r["builds"],
        json!([
            {"revision": 1, "commit": "A", "artifact": "image", "stage": null, "result": "SUCCEEDED"},
            {"revision": 2, "commit": "B", "artifact": "image", "stage": null, "result": "SUCCEEDED"}
        ])
    );
}

#[test]
fn acceptance_15_busy_prod_deploys_only_the_newest() {
    let r = run("15-busy-prod.yaml");
    assert_eq!(stage(&r, 1, "prod")["state"], "SUCCEEDED");
    assert_eq!(stage(&r, 2, "staging")["state"], "SUCCEEDED");
    assert_eq!(
        stage(&r, 2, "prod"),
        &json!({"state": "SKIPPED", "superseded_by": 3})
    );
    assert!(starts(&r, 2, "prod").is_empty());
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
    // B waited for the lock before C superseded it.
    assert!(waited(&r, 2, "prod", "LOCK"));
    assert_eq!(r["stages"]["prod"]["current_commit"], "C");
}

#[test]
fn acceptance_15_busy_first_stage_skips_and_never_builds() {
    let r = run("15-busy-first-stage.yaml");
    assert_eq!(
        stage(&r, 2, "staging"),
        &json!({"state": "SKIPPED", "superseded_by": 3})
    );
    assert_eq!(
        stage(&r, 2, "prod"),
        &json!({"state": "NOT_STARTED", "waiting_for": "NEVER"})
    );
    let built: Vec<&Value> = r["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| &b["commit"])
        .collect();
    assert_eq!(built, [&json!("A"), &json!("C")], "B is never built");
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
}

#[test]
fn acceptance_18_parallel_builds_then_the_first_stage() {
    let r = run("18-parallel-builds.yaml");
    let at = |e: &Value| e["at"].as_str().expect("at").to_owned();
    let started: Vec<String> = matching(&r, &[("type", json!("build_started"))])
        .into_iter()
        .map(at)
        .collect();
    let finished: Vec<String> = matching(&r, &[("type", json!("build_finished"))])
        .into_iter()
        .map(at)
        .collect();
    assert_eq!(started.len(), 2);
    assert_eq!(finished.len(), 2);
    let last_start = started.iter().max().expect("two");
    let first_finish = finished.iter().min().expect("two");
    let last_finish = finished.iter().max().expect("two");
    assert!(
        last_start < first_finish,
        "both start before either finishes"
    );
    assert_eq!(
        last_finish, "2026-01-05T17:05:00Z",
        "the web bundle took 5 minutes"
    );
    let first_step = step_time(&r, 1, "staging", "Deploy", "RUNNING");
    assert!(first_step >= *last_finish, "steps start after both builds");
    let artifacts: Vec<&Value> = r["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| &b["artifact"])
        .collect();
    assert_eq!(artifacts, [&json!("api-image"), &json!("web")]);
}

#[test]
fn acceptance_21_steps_without_goes_after_run_in_list_order() {
    let r = run("21-sequential-steps.yaml");
    for stage_name in ["staging", "prod"] {
        let s1_done = step_time(&r, 1, stage_name, "s1", "SUCCEEDED");
        let s2_start = step_time(&r, 1, stage_name, "s2", "RUNNING");
        let s2_done = step_time(&r, 1, stage_name, "s2", "SUCCEEDED");
        let s3_start = step_time(&r, 1, stage_name, "s3", "RUNNING");
        let s1_start = step_time(&r, 1, stage_name, "s1", "RUNNING");
        assert!(s1_start < s1_done);
        assert_eq!(s2_start, s1_done);
        assert!(s2_start < s2_done);
        assert_eq!(s3_start, s2_done);
    }
    // And in log order too.
    let order: Vec<&Value> = matching(
        &r,
        &[("type", json!("step_state")), ("stage", json!("staging"))],
    )
    .into_iter()
    .map(|e| &e["step"])
    .collect();
    assert_eq!(
        order,
        [
            &json!("s1"),
            &json!("s1"),
            &json!("s2"),
            &json!("s2"),
            &json!("s3"),
            &json!("s3")
        ]
    );
}

#[test]
fn acceptance_23_skip_list_steps_do_not_run_and_emit_step_skipped() {
    let r = run("23-skip-list.yaml");
    assert_eq!(stage(&r, 1, "prod")["state"], "SUCCEEDED");
    for (stage_name, skipped, ran) in [("staging", "Bake", "smoke"), ("qa", "smoke", "Bake")] {
        let events = matching(
            &r,
            &[
                ("type", json!("step_state")),
                ("stage", json!(stage_name)),
                ("step", json!(skipped)),
            ],
        );
        assert_eq!(events.len(), 1, "{stage_name}: {events:#?}");
        assert_eq!(events[0]["state"], "SKIPPED");
        let reason = events[0]["reason"].as_str().expect("a reason");
        assert!(
            reason.contains("skip") && reason.contains(stage_name),
            "{reason}"
        );
        // Recorded as the deployment steps begin: when Deploy starts.
        assert_eq!(
            events[0]["at"].as_str(),
            Some(step_time(&r, 1, stage_name, "Deploy", "RUNNING").as_str())
        );
        step_time(&r, 1, stage_name, ran, "SUCCEEDED");
    }
    for step in ["Deploy", "smoke", "Bake"] {
        step_time(&r, 1, "prod", step, "SUCCEEDED");
    }
}

#[test]
fn acceptance_32_bake_elapses_is_approved_or_is_rejected() {
    let r = run("32-bake.yaml");
    // Untouched: 5 minutes after it started.
    assert_eq!(
        step_time(&r, 1, "staging", "Bake", "RUNNING"),
        "2026-01-05T17:01:00Z"
    );
    assert_eq!(
        step_time(&r, 1, "staging", "Bake", "SUCCEEDED"),
        "2026-01-05T17:06:00Z"
    );
    assert_eq!(stage(&r, 1, "prod")["state"], "SUCCEEDED");
    // Approved after 2 minutes: succeeds then.
    assert_eq!(
        step_time(&r, 2, "staging", "Bake", "RUNNING"),
        "2026-01-05T18:01:00Z"
    );
    assert_eq!(
        step_time(&r, 2, "staging", "Bake", "SUCCEEDED"),
        "2026-01-05T18:03:00Z"
    );
    assert_eq!(stage(&r, 2, "prod")["state"], "SUCCEEDED");
    // Rejected: the stage fails and the deployment stops.
    assert_eq!(
        step_time(&r, 3, "staging", "Bake", "FAILED"),
        "2026-01-05T19:02:00Z"
    );
    assert_eq!(
        stage(&r, 3, "staging"),
        &json!({"state": "FAILED", "attempts": 1})
    );
    assert_eq!(
        stage(&r, 3, "prod"),
        &json!({"state": "NOT_STARTED", "waiting_for": "NEVER"})
    );
}

#[test]
fn acceptance_34_cancel_during_the_second_of_four_steps() {
    let r = run("34-cancel.yaml");
    let states: Vec<&Value> = matching(
        &r,
        &[("type", json!("stage_state")), ("stage", json!("prod"))],
    )
    .into_iter()
    .map(|e| &e["state"])
    .collect();
    assert_eq!(
        states.last().copied(),
        Some(&json!("CANCELLED")),
        "prod ends CANCELLED: {states:?}"
    );
    let cancelling = matching(
        &r,
        &[
            ("type", json!("stage_state")),
            ("stage", json!("prod")),
            ("state", json!("CANCELLING")),
        ],
    );
    assert_eq!(cancelling.len(), 1);
    assert_eq!(cancelling[0]["at"], "2026-01-05T17:05:30Z");
    assert_eq!(cancelling[0]["actor"], "user:sim");
    assert_eq!(
        step_time(&r, 1, "prod", "s2", "CANCELLED"),
        "2026-01-05T17:05:30Z"
    );
    for step in ["s3", "s4"] {
        step_time(&r, 1, "prod", step, "SKIPPED");
        assert!(
            matching(
                &r,
                &[
                    ("type", json!("step_state")),
                    ("stage", json!("prod")),
                    ("step", json!(step)),
                    ("state", json!("RUNNING")),
                ]
            )
            .is_empty(),
            "{step} never runs"
        );
    }
    assert_eq!(
        stage(&r, 1, "prod"),
        &json!({"state": "CANCELLED", "attempts": 1})
    );
    assert_eq!(
        stage(&r, 1, "dr"),
        &json!({"state": "NOT_STARTED", "waiting_for": "NEVER"})
    );
    assert!(starts(&r, 1, "dr").is_empty());
}

#[test]
fn acceptance_35_retry_reruns_every_step_of_the_same_revision() {
    let r = run("35-retry.yaml");
    assert_eq!(
        step_time(&r, 1, "staging", "s3", "FAILED"),
        "2026-01-05T17:03:00Z"
    );
    let retried = matching(
        &r,
        &[
            ("type", json!("stage_state")),
            ("stage", json!("staging")),
            ("state", json!("IN_PROGRESS")),
        ],
    );
    assert_eq!(retried.len(), 2);
    assert_eq!(retried[1]["at"], "2026-01-05T17:10:00Z");
    assert_eq!(retried[1]["actor"], "user:sim");
    assert_eq!(retried[1]["revision"], 1);
    for step in ["s1", "s2", "s3"] {
        let runs: Vec<&Value> = matching(
            &r,
            &[
                ("type", json!("step_state")),
                ("stage", json!("staging")),
                ("step", json!(step)),
                ("state", json!("RUNNING")),
            ],
        );
        assert_eq!(runs.len(), 2, "{step} ran twice");
        assert!(runs[1]["at"].as_str() >= Some("2026-01-05T17:10:00Z"));
    }
    assert_eq!(
        stage(&r, 1, "staging"),
        &json!({"state": "SUCCEEDED", "attempts": 2})
    );
    assert_eq!(
        stage(&r, 1, "prod"),
        &json!({"state": "SUCCEEDED", "attempts": 1})
    );
    assert_eq!(
        r["deployments"].as_array().map(Vec::len),
        Some(1),
        "no new revision"
    );
}

// ----- one test per lifecycle rule (lifecycle.md) -----

#[test]
fn l1_revisions_are_sequential_and_kept_by_skipped_and_failed_deployments() {
    let r = run("l3-synthesis-failed.yaml");
    let revisions: Vec<&Value> = r["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| &d["revision"])
        .collect();
    assert_eq!(revisions, [&json!(1), &json!(2), &json!(3)]);
    let busy = run("15-busy-prod.yaml");
    assert_eq!(stage(&busy, 2, "prod")["state"], "SKIPPED");
    assert_eq!(deployment(&busy, 3)["commit"], "C");
    // Each stage reports the revision and commit it runs.
    assert_eq!(
        busy["stages"]["prod"],
        json!({"current_revision": 3, "current_commit": "C", "blockers": []})
    );
}

#[test]
fn l2_pushes_to_other_branches_and_repeated_deliveries_are_ignored() {
    let r = run("l2-triggers.yaml");
    let commits: Vec<&Value> = r["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| &d["commit"])
        .collect();
    assert_eq!(commits, [&json!("c1"), &json!("c4")]);
    let ignored: Vec<(&Value, &Value, &Value)> = matching(&r, &[("type", json!("push_ignored"))])
        .into_iter()
        .map(|e| (&e["commit"], &e["actor"], &e["reason"]))
        .collect();
    assert_eq!(
        ignored,
        [
            (
                &json!("c2"),
                &json!("webhook:sim-2"),
                &json!("branch `feature` is not the tracked branch `main`")
            ),
            (
                &json!("c3"),
                &json!("webhook:d-1"),
                &json!("this delivery was seen before")
            ),
            (
                &json!("c1"),
                &json!("webhook:sim-4"),
                &json!("the commit is already the newest accepted commit")
            ),
        ]
    );
}

#[test]
fn l3_an_invalid_definition_fails_synthesis_and_builds_nothing() {
    let r = run("l3-synthesis-failed.yaml");
    let failed = deployment(&r, 2);
    assert_eq!(failed["commit"], "c2");
    assert_eq!(failed["synthesis"], "FAILED");
    let stages = failed["stages"].as_object().expect("stages");
    assert_eq!(stages.len(), 2);
    for (_, s) in stages {
        assert_eq!(s, &json!({"state": "NOT_STARTED", "waiting_for": "NEVER"}));
    }
    let synthesis = matching(&r, &[("type", json!("synthesis_failed"))]);
    assert_eq!(synthesis.len(), 1);
    assert_eq!(synthesis[0]["revision"], 2);
    assert!(
        !synthesis[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "diagnostics are recorded"
    );
    assert!(
        r["builds"]
            .as_array()
            .expect("builds")
            .iter()
            .all(|b| b["revision"] != 2),
        "nothing is built for revision 2"
    );
    assert!(
        matching(
            &r,
            &[("revision", json!(2)), ("type", json!("phase_started"))]
        )
        .is_empty()
    );
    // The next push deploys normally.
    assert_eq!(deployment(&r, 3)["synthesis"], "SUCCEEDED");
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
}

#[test]
fn l4_phases_run_in_order_and_empty_ones_are_recorded_skipped() {
    let r = run("18-parallel-builds.yaml");
    for (stage_name, expected) in [
        (
            "staging",
            [
                "BUILD",
                "RESOURCE_VALIDATION",
                "MIRRORING",
                "INFRASTRUCTURE (nothing to do)",
                "STEPS",
            ],
        ),
        (
            "prod",
            [
                "BUILD (nothing to do)",
                "RESOURCE_VALIDATION",
                "MIRRORING",
                "INFRASTRUCTURE (nothing to do)",
                "STEPS",
            ],
        ),
    ] {
        let phases: Vec<&Value> = matching(
            &r,
            &[
                ("type", json!("phase_started")),
                ("stage", json!(stage_name)),
            ],
        )
        .into_iter()
        .map(|e| &e["reason"])
        .collect();
        let expected: Vec<Value> = expected.iter().map(|p| json!(p)).collect();
        assert_eq!(phases, expected.iter().collect::<Vec<_>>(), "{stage_name}");
    }
    // Validation and mirroring take `mirror_duration` (10s by default).
    let validation = time(
        &r,
        &[
            ("type", json!("phase_started")),
            ("stage", json!("staging")),
            ("reason", json!("RESOURCE_VALIDATION")),
        ],
    );
    assert_eq!(validation, "2026-01-05T17:05:00Z");
    assert_eq!(
        step_time(&r, 1, "staging", "Deploy", "RUNNING"),
        "2026-01-05T17:05:10Z"
    );
}

/// Replays the `stage_state` events: at no time do two revisions hold one stage.
fn max_holders(r: &Value, stage_name: &str) -> usize {
    let mut holding = std::collections::BTreeSet::new();
    let mut max = 0;
    for e in matching(
        r,
        &[("type", json!("stage_state")), ("stage", json!(stage_name))],
    ) {
        let revision = e["revision"].as_u64().expect("revision");
        match e["state"].as_str() {
            Some("IN_PROGRESS" | "CANCELLING" | "ROLLING_BACK" | "ROLLING_FORWARD") => {
                holding.insert(revision);
            }
            _ => {
                holding.remove(&revision);
            }
        }
        max = max.max(holding.len());
    }
    max
}

#[test]
fn l5_one_stage_deployment_holds_a_stage_at_a_time() {
    for name in [
        "15-busy-prod.yaml",
        "15-busy-first-stage.yaml",
        "14-window-supersede.yaml",
    ] {
        let r = run(name);
        for stage_name in ["staging", "prod"] {
            assert_eq!(max_holders(&r, stage_name), 1, "{name} {stage_name}");
        }
    }
    // Different stages run different revisions at the same time.
    let r = run("15-busy-prod.yaml");
    let a_prod = starts(&r, 1, "prod")[0].clone();
    let b_staging = starts(&r, 2, "staging")[0].clone();
    let a_done = time(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(1)),
            ("stage", json!("prod")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert!(a_prod < b_staging && b_staging < a_done);
}

#[test]
fn l6_joining_a_queue_supersedes_the_older_queued_deployment() {
    let r = run("15-busy-prod.yaml");
    let skipped = matching(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(2)),
            ("stage", json!("prod")),
            ("state", json!("SKIPPED")),
        ],
    );
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["reason"], "superseded by revision 3");
    // The moment C joined prod's queue.
    let c_staging_done = time(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(3)),
            ("stage", json!("staging")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert_eq!(skipped[0]["at"], json!(c_staging_done));
    // Skipped in the first stage: never built, never run anywhere.
    let first = run("15-busy-first-stage.yaml");
    assert!(starts(&first, 2, "staging").is_empty());
    assert!(
        matching(
            &first,
            &[("revision", json!(2)), ("type", json!("build_started"))]
        )
        .is_empty()
    );
}

#[test]
fn l7_a_queued_deployment_starts_when_the_lock_is_released_or_the_window_opens() {
    let r = run("15-busy-prod.yaml");
    let a_done = time(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(1)),
            ("stage", json!("prod")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert_eq!(a_done, "2026-01-05T17:33:20Z");
    assert_eq!(starts(&r, 3, "prod"), [a_done]);
    // Window opening: no event, the engine starts it on its own.
    let w = run("13-window-queue.yaml");
    assert_eq!(starts(&w, 1, "prod"), ["2026-01-12T17:00:00Z"]);
}

#[test]
fn l8_a_window_gates_only_the_start() {
    let r = run("l8-window-closes.yaml");
    assert_eq!(starts(&r, 1, "prod"), ["2026-01-06T00:51:00Z"]); // Mon 16:51 PST
    let done = time(
        &r,
        &[
            ("type", json!("stage_state")),
            ("stage", json!("prod")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert_eq!(done, "2026-01-06T01:06:00Z", "runs on past 17:00 PST");
}

#[test]
fn l10_a_failure_or_timeout_stops_the_deployment_and_the_next_push_deploys() {
    let r = run("l10-failure-timeout.yaml");
    // c1: s2 fails, s3 is skipped, staging FAILED, prod never.
    step_time(&r, 1, "staging", "s2", "FAILED");
    step_time(&r, 1, "staging", "s3", "SKIPPED");
    assert_eq!(stage(&r, 1, "staging")["state"], "FAILED");
    assert_eq!(
        stage(&r, 1, "prod"),
        &json!({"state": "NOT_STARTED", "waiting_for": "NEVER"})
    );
    // c2: s1 hangs and times out after 60 minutes.
    let started = step_time(&r, 2, "staging", "s1", "RUNNING");
    let timed_out = step_time(&r, 2, "staging", "s1", "TIMED_OUT");
    let started: jiff::Timestamp = started.parse().expect("time");
    let timed_out: jiff::Timestamp = timed_out.parse().expect("time");
    assert_eq!(
        timed_out.duration_since(started),
        jiff::SignedDuration::from_mins(60)
    );
    assert_eq!(stage(&r, 2, "staging")["state"], "TIMED_OUT");
    assert_eq!(stage(&r, 2, "prod")["waiting_for"], "NEVER");
    // c3 deploys normally.
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
}

#[test]
fn l11_retry_is_refused_when_a_newer_revision_started_or_nothing_failed() {
    let retry = run("35-retry.yaml");
    assert_eq!(stage(&retry, 1, "staging")["attempts"], 2);
    let r = run("l11-retry-refused.yaml");
    let refused = matching(&r, &[("type", json!("refused"))]);
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert_eq!(refused[0]["revision"], 1);
    assert_eq!(refused[0]["commit"], "c1");
    assert_eq!(refused[0]["stage"], "staging");
    assert_eq!(refused[0]["actor"], "user:sim");
    let reason = refused[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("L11") && reason.contains("revision 2"),
        "{reason}"
    );
    assert_eq!(refused[1]["revision"], 2);
    let reason = refused[1]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("IN_PROGRESS"), "{reason}");
    assert_eq!(
        stage(&r, 1, "staging"),
        &json!({"state": "FAILED", "attempts": 1})
    );
}

#[test]
fn l12_cancel_records_who_and_stops_the_deployment() {
    let r = run("34-cancel.yaml");
    let cancelling = matching(
        &r,
        &[
            ("type", json!("stage_state")),
            ("state", json!("CANCELLING")),
        ],
    );
    assert_eq!(cancelling.len(), 1);
    assert_eq!(cancelling[0]["actor"], "user:sim");
    assert_eq!(cancelling[0]["reason"], "cancelled by user:sim");
    assert_eq!(stage(&r, 1, "prod")["state"], "CANCELLED");
    assert_eq!(stage(&r, 1, "dr")["waiting_for"], "NEVER");
    assert_eq!(r["stages"]["prod"]["current_revision"], Value::Null);
}

#[test]
fn l16_approvals_of_bakes_and_failed_test_gates() {
    let bake = run("32-bake.yaml");
    let approved = matching(&bake, &[("type", json!("approved"))]);
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["actor"], "user:ana");
    assert_eq!(approved[0]["reason"], "looks good");
    let rejected = matching(&bake, &[("type", json!("rejected"))]);
    assert_eq!(rejected[0]["actor"], "user:bo");
    assert_eq!(rejected[0]["reason"], "error rate up");

    let r = run("l16-test-gate.yaml");
    // c1: the failed gate waits (not failed) until approved, then the stage goes on.
    let waiting = step_time(&r, 1, "staging", "tests", "WAITING_APPROVAL");
    assert_eq!(waiting, "2026-01-05T17:02:00Z");
    let required = matching(
        &r,
        &[("type", json!("approval_required")), ("revision", json!(1))],
    );
    assert_eq!(required.len(), 1);
    assert_eq!(required[0]["step"], "tests");
    assert!(
        required[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("tests failed"))
    );
    assert_eq!(
        step_time(&r, 1, "staging", "tests", "SUCCEEDED"),
        "2026-01-05T17:10:00Z"
    );
    let approved = matching(&r, &[("type", json!("approved"))]);
    assert_eq!(approved[0]["actor"], "user:ana");
    assert_eq!(approved[0]["reason"], "known flaky test");
    assert_eq!(stage(&r, 1, "prod")["state"], "SUCCEEDED");
    // c2: rejected, the step and the stage fail and the deployment stops.
    step_time(&r, 2, "staging", "tests", "FAILED");
    assert_eq!(stage(&r, 2, "staging")["state"], "FAILED");
    assert_eq!(stage(&r, 2, "prod")["waiting_for"], "NEVER");
}

#[test]
fn the_same_scenario_gives_a_byte_identical_report() {
    for name in [
        "15-busy-prod.yaml",
        "32-bake.yaml",
        "36-auto-rollback.yaml",
        "40-patch.yaml",
    ] {
        let once = simulate_file(&scenario(name)).expect("valid");
        let twice = simulate_file(&scenario(name)).expect("valid");
        assert_eq!(to_json(&once), to_json(&twice), "{name}");
        assert_eq!(render_text(&once), render_text(&twice), "{name}");
    }
}

#[test]
fn scenario_names_unknown_to_the_pipeline_are_located_errors() {
    let dir = std::env::temp_dir().join(format!("devramps-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad-names.yaml");
    let pipeline = scenario("pipelines/basic.yaml");
    std::fs::write(
        &path,
        format!(
            "pipeline: {}\nevents:\n  - push: {{ commit: c1 }}\n  - retry: {{ commit: c1, stage: prd }}\n",
            pipeline.display()
        ),
    )
    .expect("write");
    let errors = simulate_file(&path).expect_err("prd is no stage");
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column), (4, 33));
    assert_eq!(errors[0].message, "the pipeline has no stage `prd`");
    assert_eq!(errors[0].help.as_deref(), Some("did you mean `prod`?"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pipeline_errors_point_into_the_inline_pipeline() {
    let dir = std::env::temp_dir().join(format!("devramps-sim-inline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("inline.yaml");
    let text = "pipeline_yaml: |\n  version: \"1.0.0\"\n  pipeline:\n    cloud_provider: AWS\n    pipeline_updates_require_approval: NEVER\n    stages:\n      - name: Prod_1\n        account_id: \"111111111111\"\n        region: us-east-1\n    steps: []\n    artifacts: {}\nevents: []\n";
    std::fs::write(&path, text).expect("write");
    let errors = simulate_file(&path).expect_err("invalid stage name");
    let error = errors
        .iter()
        .find(|e| e.message.contains("Prod_1"))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(error.path, path);
    assert_eq!((error.line, error.column), (7, 15), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn l12_cancelling_a_queued_deployment_and_retrying_a_failed_build() {
    let r = run("l12-cancel-queued.yaml");
    let cancelled = time(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(2)),
            ("stage", json!("staging")),
            ("state", json!("CANCELLED")),
        ],
    );
    assert_eq!(cancelled, "2026-01-05T17:02:00Z", "at once");
    assert_eq!(stage(&r, 2, "staging")["state"], "CANCELLED");
    assert_eq!(stage(&r, 2, "prod")["waiting_for"], "NEVER");
    assert!(starts(&r, 2, "staging").is_empty());
    // C's build fails: staging FAILED; the retry rebuilds and C deploys.
    let c_builds: Vec<&Value> = r["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .filter(|b| b["commit"] == "C")
        .map(|b| &b["result"])
        .collect();
    assert_eq!(c_builds, [&json!("FAILED"), &json!("SUCCEEDED")]);
    assert_eq!(
        stage(&r, 3, "staging"),
        &json!({"state": "SUCCEEDED", "attempts": 2})
    );
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
}

#[test]
fn scenario_38_and_l9_stop_promotions_queue_at_prod_and_resume_deploys_only_the_newest() {
    let r = run("38-stop-resume.yaml");
    // Revision 1 was running in prod when promotions stopped: it completes.
    assert_eq!(stage(&r, 1, "prod")["state"], "SUCCEEDED");
    let added = matching(
        &r,
        &[("type", json!("blocker_added")), ("stage", json!("prod"))],
    );
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["actor"], "user:sim");
    // 2 and 3 still deploy to staging but wait for the blocker at prod; 3 supersedes 2 there.
    assert_eq!(stage(&r, 2, "staging")["state"], "SUCCEEDED");
    assert_eq!(stage(&r, 3, "staging")["state"], "SUCCEEDED");
    assert_eq!(stage(&r, 2, "prod")["state"], "SKIPPED");
    assert_eq!(stage(&r, 2, "prod")["superseded_by"], 3);
    let waited = matching(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(3)),
            ("stage", json!("prod")),
            ("state", json!("NOT_STARTED")),
        ],
    );
    assert!(
        waited.iter().any(|e| e["reason"] == "waiting for BLOCKER"),
        "{waited:#?}"
    );
    // Resume at +60m: only revision 3 deploys to prod, at once.
    assert_eq!(starts(&r, 3, "prod"), ["2026-01-05T18:00:00Z"]);
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
    assert!(starts(&r, 2, "prod").is_empty());
    // Resuming again is refused with the rule.
    let refused = matching(&r, &[("type", json!("refused"))]);
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("L9"),
        "{}",
        refused[0]["reason"]
    );
    assert_eq!(r["stages"]["prod"]["blockers"], json!([]));
}

#[test]
fn l9_a_bypass_lets_one_named_revision_through_once() {
    let r = run("l9-bypass.yaml");
    // Blocked from the start: revision 1 waits at prod until the bypass at +20m.
    assert_eq!(starts(&r, 1, "prod"), ["2026-01-05T17:20:00Z"]);
    assert_eq!(stage(&r, 1, "prod")["state"], "SUCCEEDED");
    let bypass = matching(&r, &[("type", json!("bypassed"))]);
    assert_eq!(bypass.len(), 1);
    assert_eq!(bypass[0]["revision"], 1);
    assert_eq!(bypass[0]["actor"], "user:sim");
    // The bypass was for revision 1 only: revision 2 waits for the blocker again.
    assert_eq!(stage(&r, 2, "prod")["state"], "NOT_STARTED");
    assert_eq!(stage(&r, 2, "prod")["waiting_for"], "BLOCKER");
    // "unblock" removes only a ROLLBACK blocker: refused, and STOP_PROMOTIONS stays.
    let refused = matching(&r, &[("type", json!("refused"))]);
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("no ROLLBACK blocker")
    );
    assert_eq!(r["stages"]["prod"]["blockers"], json!(["STOP_PROMOTIONS"]));
}

/// The `refused` events, as (operation-and-rule prefix of the reason, revision, stage).
fn refusals(r: &Value) -> Vec<(String, Value, Value)> {
    matching(r, &[("type", json!("refused"))])
        .into_iter()
        .map(|e| {
            (
                e["reason"].as_str().expect("reason").to_owned(),
                e["revision"].clone(),
                e["stage"].clone(),
            )
        })
        .collect()
}

fn stage_states(r: &Value, revision: u64, stage: &str) -> Vec<String> {
    matching(
        r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(revision)),
            ("stage", json!(stage)),
        ],
    )
    .iter()
    .map(|e| e["state"].as_str().expect("state").to_owned())
    .collect()
}

#[test]
fn scenario_36_an_alarm_during_a_deployment_rolls_the_stage_back_and_blocks_it() {
    let r = run("36-auto-rollback.yaml");
    // c2 was deploying in prod at +40m: cancelled there, never reaches prod-eu.
    assert_eq!(
        stage_states(&r, 2, "prod"),
        ["IN_PROGRESS", "CANCELLING", "CANCELLED"]
    );
    assert_eq!(stage(&r, 2, "prod-eu")["waiting_for"], "NEVER");
    // c1, the last revision that succeeded in prod, is rolled back there as a new attempt.
    assert_eq!(
        stage_states(&r, 1, "prod"),
        ["IN_PROGRESS", "SUCCEEDED", "ROLLING_BACK", "ROLLED_BACK"]
    );
    assert_eq!(stage(&r, 1, "prod")["attempts"], 2);
    let rolling = time(
        &r,
        &[
            ("type", json!("stage_state")),
            ("revision", json!(1)),
            ("stage", json!("prod")),
            ("state", json!("ROLLING_BACK")),
        ],
    );
    assert_eq!(rolling, "2026-01-05T17:40:00Z");
    let requested = matching(&r, &[("type", json!("emergency_requested"))]);
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["actor"], "system");
    assert_eq!(requested[0]["revision"], 1);
    // Without Terraform: the infra step of the rollback attempt is skipped, the deploy runs.
    let rollback_steps: Vec<(&Value, &Value)> = matching(
        &r,
        &[
            ("type", json!("step_state")),
            ("revision", json!(1)),
            ("stage", json!("prod")),
        ],
    )
    .into_iter()
    .filter(|e| e["at"].as_str() >= Some("2026-01-05T17:40:00Z"))
    .map(|e| (&e["step"], &e["state"]))
    .collect();
    assert_eq!(
        rollback_steps,
        [
            (&json!("infra"), &json!("SKIPPED")),
            (&json!("deploy"), &json!("RUNNING")),
            (&json!("deploy"), &json!("SUCCEEDED")),
        ]
    );
    // Nothing is built for the rollback.
    assert_eq!(r["builds"].as_array().map(Vec::len), Some(3));
    // prod and the stage after it are blocked: c3 waits at prod until the unblock at +90m...
    let added: Vec<&Value> = matching(&r, &[("type", json!("blocker_added"))])
        .into_iter()
        .map(|e| &e["stage"])
        .collect();
    assert_eq!(added, [&json!("prod"), &json!("prod-eu")]);
    assert!(waited(&r, 3, "prod", "BLOCKER"));
    assert_eq!(starts(&r, 3, "prod"), ["2026-01-05T18:30:00Z"]);
    // ... and at prod-eu until the bypass at +120m; its ROLLBACK blocker stays.
    assert!(waited(&r, 3, "prod-eu", "BLOCKER"));
    assert_eq!(starts(&r, 3, "prod-eu"), ["2026-01-05T19:00:00Z"]);
    assert_eq!(r["stages"]["prod"]["current_revision"], 3);
    assert_eq!(r["stages"]["prod"]["blockers"], json!([]));
    assert_eq!(r["stages"]["prod-eu"]["blockers"], json!(["ROLLBACK"]));
}

#[test]
fn scenario_37_an_alarm_on_an_idle_stage_blocks_it_until_it_clears() {
    let r = run("37-alarm-after-success.yaml");
    // No rollback: c1 stays SUCCEEDED with one attempt.
    assert!(matching(&r, &[("type", json!("emergency_requested"))]).is_empty());
    assert_eq!(stage(&r, 1, "prod")["attempts"], 1);
    let added = matching(&r, &[("type", json!("blocker_added"))]);
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["stage"], "prod");
    assert!(
        added[0]["reason"]
            .as_str()
            .is_some_and(|s| s.starts_with("ALARM"))
    );
    // c2 queues at prod behind the blocker; the alarm clears at +60m and c2 deploys then.
    assert!(waited(&r, 2, "prod", "BLOCKER"));
    let removed = time(&r, &[("type", json!("blocker_removed"))]);
    assert_eq!(removed, "2026-01-05T18:00:00Z");
    assert_eq!(starts(&r, 2, "prod"), ["2026-01-05T18:00:00Z"]);
    assert_eq!(stage(&r, 2, "prod-eu")["state"], "SUCCEEDED");
    assert_eq!(r["stages"]["prod"]["blockers"], json!([]));
}

#[test]
fn scenario_39_a_bypass_deploys_one_revision_despite_an_alarm_blocker() {
    let r = run("39-bypass.yaml");
    assert_eq!(r["stages"]["prod"]["blockers"], json!(["ALARM"]));
    assert!(waited(&r, 2, "prod", "BLOCKER"));
    assert_eq!(starts(&r, 2, "prod"), ["2026-01-05T17:50:00Z"]);
    assert_eq!(stage(&r, 2, "prod-eu")["state"], "SUCCEEDED");
    let bypass = matching(&r, &[("type", json!("bypassed"))]);
    assert_eq!(bypass.len(), 1);
    assert_eq!(bypass[0]["revision"], 2);
    assert_eq!(bypass[0]["actor"], "user:sim");
    // Once only: c3 waits for the blocker again.
    assert_eq!(stage(&r, 3, "prod")["waiting_for"], "BLOCKER");
}

#[test]
fn scenario_40_patch_mode_ignores_pushes_until_released() {
    let r = run("40-patch.yaml");
    // The patch is revision 3 and deploys through every stage.
    let patch = deployment(&r, 3);
    assert_eq!(patch["commit"], "1a2b3c4");
    assert_eq!(stage(&r, 3, "staging")["state"], "SUCCEEDED");
    assert_eq!(stage(&r, 3, "prod")["state"], "SUCCEEDED");
    let accepted = matching(
        &r,
        &[
            ("type", json!("deployment_accepted")),
            ("revision", json!(3)),
        ],
    );
    assert_eq!(accepted[0]["actor"], "user:sim");
    // p1 and p2 create nothing: recorded and ignored, naming the rule.
    let ignored: Vec<&Value> = matching(&r, &[("type", json!("push_ignored"))])
        .into_iter()
        .map(|e| &e["commit"])
        .collect();
    assert_eq!(ignored, [&json!("p1"), &json!("p2")]);
    assert!(
        matching(&r, &[("type", json!("push_ignored"))])
            .iter()
            .all(|e| e["reason"]
                .as_str()
                .is_some_and(|s| s.contains("patch mode (L17)")))
    );
    // The release deploys nothing; p3 is the next deployment, revision 4.
    let released = time(&r, &[("type", json!("patch_released"))]);
    assert_eq!(released, "2026-01-05T18:10:00Z");
    assert_eq!(r["deployments"].as_array().map(Vec::len), Some(4));
    assert_eq!(deployment(&r, 4)["commit"], "p3");
    assert_eq!(starts(&r, 4, "staging"), ["2026-01-05T18:30:00Z"]);
    assert_eq!(r["stages"]["prod"]["current_commit"], "p3");
}

#[test]
fn l13_a_rollback_redeploys_an_earlier_revision_and_blocks_the_stage_and_the_next() {
    let r = run("l13-rollback.yaml");
    assert_eq!(
        stage_states(&r, 1, "prod"),
        ["IN_PROGRESS", "SUCCEEDED", "ROLLING_BACK", "ROLLED_BACK"]
    );
    assert_eq!(stage(&r, 1, "prod")["attempts"], 2);
    assert_eq!(r["stages"]["prod"]["current_revision"], 1);
    assert_eq!(r["stages"]["prod"]["current_commit"], "c1");
    // Other stages keep their revision; the rollback promotes nothing.
    assert_eq!(r["stages"]["prod-eu"]["current_revision"], 2);
    assert_eq!(stage_states(&r, 1, "prod-eu"), ["IN_PROGRESS", "SUCCEEDED"]);
    // The person's request is the audit record.
    let requested = matching(&r, &[("type", json!("emergency_requested"))]);
    assert_eq!(requested[0]["actor"], "user:sim");
    // Blocked: prod until the unblock at +90m, prod-eu still.
    assert_eq!(r["stages"]["prod"]["blockers"], json!([]));
    assert_eq!(r["stages"]["prod-eu"]["blockers"], json!(["ROLLBACK"]));
    let refused = refusals(&r);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0]
            .0
            .starts_with("`rollback` refused (L13): revision 3 never succeeded in `prod`"),
        "{refused:?}"
    );
    assert_eq!(refused[0].1, 3);
    assert_eq!(refused[0].2, "prod");
    assert!(refused[1].0.contains("commit `nope` has no deployment"));
}

#[test]
fn l14_a_roll_forward_runs_every_phase_and_then_promotes() {
    let r = run("l14-roll-forward.yaml");
    assert_eq!(
        stage_states(&r, 2, "prod"),
        ["IN_PROGRESS", "FAILED", "ROLLING_FORWARD", "ROLLED_FORWARD"]
    );
    // Infrastructure included: the infra step ran again in the roll-forward.
    let infra: Vec<&Value> = matching(
        &r,
        &[
            ("type", json!("step_state")),
            ("revision", json!(2)),
            ("stage", json!("prod")),
            ("step", json!("infra")),
        ],
    )
    .into_iter()
    .map(|e| &e["state"])
    .collect();
    assert_eq!(
        infra,
        [
            &json!("RUNNING"),
            &json!("SUCCEEDED"),
            &json!("RUNNING"),
            &json!("SUCCEEDED")
        ]
    );
    // It promoted: prod-eu ran revision 2 after the roll-forward.
    assert_eq!(stage(&r, 2, "prod-eu")["state"], "SUCCEEDED");
    assert_eq!(r["stages"]["prod"]["current_revision"], 2);
    assert_eq!(r["stages"]["prod-eu"]["current_revision"], 2);
    // No blockers from a roll-forward.
    assert!(matching(&r, &[("type", json!("blocker_added"))]).is_empty());
    let refused = refusals(&r);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].0.starts_with(
        "`roll_forward` refused (L14): revision 1 is already the current revision of `prod`"
    ));
    assert!(
        refused[1]
            .0
            .starts_with("`roll_forward` refused (L14): revision 3 has not succeeded in `staging`")
    );
}

#[test]
fn l15_an_alarm_with_nothing_to_roll_back_to_cancels_and_blocks() {
    let r = run("l15-alarm-first-deploy.yaml");
    assert_eq!(
        stage_states(&r, 1, "prod"),
        ["IN_PROGRESS", "CANCELLING", "CANCELLED"]
    );
    assert!(matching(&r, &[("type", json!("emergency_requested"))]).is_empty());
    assert_eq!(r["stages"]["prod"]["current_revision"], Value::Null);
    // The alarm returning to OK does not lift the ROLLBACK blockers: a person does.
    assert_eq!(r["stages"]["prod"]["blockers"], json!(["ROLLBACK"]));
    assert_eq!(r["stages"]["prod-eu"]["blockers"], json!(["ROLLBACK"]));
    let alarms: Vec<&Value> = matching(&r, &[("type", json!("alarm_state"))])
        .into_iter()
        .map(|e| &e["state"])
        .collect();
    assert_eq!(alarms, [&json!("ALARM"), &json!("OK")]);
    let refused = refusals(&r);
    assert_eq!(
        refused,
        [(
            "`alarm` refused (L15): stage `staging` has no auto_rollback_alarm_name".to_owned(),
            Value::Null,
            json!("staging")
        )]
    );
}

#[test]
fn l17_releasing_without_a_patch_is_refused_and_a_failed_patch_still_holds_pushes() {
    let r = run("l17-patch-refused.yaml");
    let refused = refusals(&r);
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].0,
        "`release_patch` refused (L17): the pipeline is not in patch mode"
    );
    assert_eq!(deployment(&r, 2)["synthesis"], "FAILED");
    assert_eq!(stage(&r, 2, "staging")["waiting_for"], "NEVER");
    let ignored = matching(&r, &[("type", json!("push_ignored"))]);
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0]["commit"], "c2");
    assert_eq!(r["deployments"].as_array().map(Vec::len), Some(2));
}

#[test]
fn l18_destructive_definition_changes_wait_for_a_person() {
    let r = run("l18-pipeline-approval.yaml");
    // Additive (a step added): no approval.
    assert_eq!(deployment(&r, 2)["synthesis"], "SUCCEEDED");
    assert_eq!(stage(&r, 2, "prod")["state"], "SUCCEEDED");
    let required: Vec<(&Value, &Value)> =
        matching(&r, &[("type", json!("pipeline_approval_required"))])
            .into_iter()
            .map(|e| (&e["revision"], &e["reason"]))
            .collect();
    assert_eq!(required.len(), 4, "{required:?}");
    assert_eq!(
        required.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        [3, 4, 5, 6]
    );
    assert!(
        required[0]
            .1
            .as_str()
            .is_some_and(|s| s.starts_with("DESTRUCTIVE: removed step `smoke` (destructive)")),
        "{required:?}"
    );
    assert!(
        required[2]
            .1
            .as_str()
            .is_some_and(|s| s.contains("region us-east-1 -> eu-west-1"))
    );
    // c3 waited, and c4 superseded it (L6); approving c3 afterwards is refused.
    assert!(waited(&r, 3, "staging", "PIPELINE_APPROVAL"));
    assert_eq!(stage(&r, 3, "staging")["state"], "SKIPPED");
    assert_eq!(stage(&r, 3, "staging")["superseded_by"], 4);
    let refused = refusals(&r);
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].0.starts_with(
            "`approve_pipeline` refused (L18): revision 3 is not waiting for approval"
        )
    );
    // c4 deploys once approved, with its new definition (no smoke step).
    assert_eq!(starts(&r, 4, "staging"), ["2026-01-05T18:00:00Z"]);
    assert_eq!(stage(&r, 4, "prod")["state"], "SUCCEEDED");
    assert!(
        matching(
            &r,
            &[
                ("type", json!("step_state")),
                ("revision", json!(4)),
                ("step", json!("smoke"))
            ]
        )
        .is_empty()
    );
    // c5 rejected: it fails at synthesis and goes nowhere.
    assert_eq!(deployment(&r, 5)["synthesis"], "FAILED");
    assert_eq!(stage(&r, 5, "staging")["waiting_for"], "NEVER");
    let rejected = matching(&r, &[("type", json!("pipeline_rejected"))]);
    assert_eq!(rejected[0]["actor"], "user:sim");
    // c6 is compared with c4's definition, the one in force (c5's never was): still waiting.
    assert_eq!(deployment(&r, 6)["synthesis"], "WAITING_APPROVAL");
    assert_eq!(stage(&r, 6, "staging")["waiting_for"], "PIPELINE_APPROVAL");
    assert!(
        required[3]
            .1
            .as_str()
            .is_some_and(|s| s.contains("removed step `notify`"))
    );
}

/// The refusals of `refusals.yaml` whose reason starts with `` `operation` refused (rule) ``,
/// as (revision, stage, reason without that prefix).
fn refused_for(r: &Value, operation: &str, rule: &str) -> Vec<(Value, Value, String)> {
    let prefix = format!("`{operation}` refused ({rule}): ");
    refusals(r)
        .into_iter()
        .filter_map(|(reason, revision, stage)| {
            reason
                .strip_prefix(&prefix)
                .map(|rest| (revision, stage, rest.to_owned()))
        })
        .collect()
}

#[test]
fn refused_l9_blocker_operations_that_do_not_apply() {
    let r = run("refusals.yaml");
    let prod = || json!("prod");
    assert_eq!(
        refused_for(&r, "resume_promotions", "L9"),
        [(
            Value::Null,
            prod(),
            "stage `prod` has no STOP_PROMOTIONS blocker".into()
        )]
    );
    assert_eq!(
        refused_for(&r, "stop_promotions", "L9"),
        [(
            Value::Null,
            prod(),
            "promotions to `prod` are already stopped".into()
        )]
    );
    assert_eq!(
        refused_for(&r, "bypass", "L9"),
        [(
            json!(1),
            prod(),
            "revision 1 is not waiting in the queue of `prod`".into()
        )]
    );
    assert_eq!(
        refused_for(&r, "unblock", "L9"),
        [(
            Value::Null,
            prod(),
            "stage `prod` has no ROLLBACK blocker".into()
        )]
    );
    // The refusals changed nothing: one STOP_PROMOTIONS added and removed, then the rollback's.
    let added = matching(&r, &[("type", json!("blocker_added"))]);
    assert_eq!(added.len(), 3);
}

#[test]
fn refused_l11_l12_l16_operations_on_a_finished_stage_deployment() {
    let r = run("refusals.yaml");
    let staging = || json!("staging");
    assert_eq!(
        refused_for(&r, "retry", "L11"),
        [(
            json!(1),
            staging(),
            "revision 1 is SUCCEEDED in `staging`; only FAILED, TIMED_OUT or CANCELLED \
             stage-deployments can be retried"
                .into()
        )]
    );
    assert_eq!(
        refused_for(&r, "cancel", "L12"),
        [(
            json!(1),
            staging(),
            "revision 1 is SUCCEEDED in `staging`; only running or queued stage-deployments \
             can be cancelled"
                .into()
        )]
    );
    assert_eq!(
        refused_for(&r, "approve", "L16"),
        [(
            json!(1),
            staging(),
            "step `deploy` of revision 1 in `staging` is not waiting for a person".into()
        )]
    );
    assert_eq!(stage(&r, 1, "staging")["attempts"], 1);
}

#[test]
fn refused_l13_a_second_rollback_while_one_is_under_way() {
    let r = run("refusals.yaml");
    assert_eq!(
        refused_for(&r, "rollback", "L13"),
        [(
            json!(1),
            json!("prod"),
            "a rollback of `prod` to revision 1 is already under way".into()
        )]
    );
    // Only the first one ran: one more attempt.
    assert_eq!(stage(&r, 1, "prod")["attempts"], 2);
    assert_eq!(stage(&r, 1, "prod")["state"], "ROLLED_BACK");
}

#[test]
fn refused_l14_a_roll_forward_to_the_current_revision() {
    let r = run("refusals.yaml");
    assert_eq!(
        refused_for(&r, "roll_forward", "L14"),
        [(
            json!(1),
            json!("staging"),
            "revision 1 is already the current revision of `staging`".into()
        )]
    );
}

#[test]
fn refused_l15_l17_l18_operations_with_nothing_to_act_on() {
    let r = run("refusals.yaml");
    assert_eq!(
        refused_for(&r, "alarm", "L15"),
        [(
            Value::Null,
            json!("staging"),
            "stage `staging` has no auto_rollback_alarm_name".into()
        )]
    );
    assert_eq!(
        refused_for(&r, "release_patch", "L17"),
        [(
            Value::Null,
            Value::Null,
            "the pipeline is not in patch mode".into()
        )]
    );
    let not_waiting = "revision 1 is not waiting for approval of its pipeline definition";
    assert_eq!(
        refused_for(&r, "approve_pipeline", "L18"),
        [(json!(1), Value::Null, not_waiting.into())]
    );
    assert_eq!(
        refused_for(&r, "reject_pipeline", "L18"),
        [(json!(1), Value::Null, not_waiting.into())]
    );
    assert_eq!(deployment(&r, 1)["synthesis"], "SUCCEEDED");
}

#[test]
fn l15_an_alarm_that_fired_before_the_first_deployment_is_acted_on() {
    let r = run("l15-alarm-before-first-deploy.yaml");
    let added = matching(&r, &[("type", json!("blocker_added"))]);
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["stage"], "prod");
    assert_eq!(added[0]["at"], "2026-01-05T17:01:00Z");
    assert!(waited(&r, 1, "prod", "BLOCKER"));
    assert_eq!(starts(&r, 1, "prod"), ["2026-01-05T18:00:00Z"]);
    assert_eq!(stage(&r, 1, "prod-eu")["state"], "SUCCEEDED");
    assert!(refusals(&r).is_empty());
}

#[test]
fn l14_l6_a_roll_forward_promoting_behind_a_newer_queued_revision_is_superseded() {
    let r = run("l14-late-promotion.yaml");
    assert_eq!(stage(&r, 2, "staging")["state"], "ROLLED_FORWARD");
    assert_eq!(stage(&r, 2, "prod")["state"], "SKIPPED");
    assert_eq!(stage(&r, 2, "prod")["superseded_by"], 3);
    assert_eq!(stage(&r, 3, "prod")["state"], "NOT_STARTED");
    assert_eq!(stage(&r, 3, "prod")["waiting_for"], "BLOCKER");
    assert_eq!(r["stages"]["staging"]["current_revision"], 2);
}

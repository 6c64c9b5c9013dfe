//! The scenario format's newer parts, each a scenario file under `tests/scenarios/` run
//! through the real engine: pushes relative to their own branch, branch deletions,
//! `ask_approval` steps, Terraform plan counts, the `executions` report, store faults and
//! restarts. Every test asserts on the JSON report.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn a_push_to_another_branch_is_not_the_parent_of_the_next_push_to_the_tracked_branch() {
    let r = run("branches.yaml");
    let builds: Vec<_> = r["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| b["commit"].clone())
        .collect();
    // Only c1 builds: c2 and c3 change docs only, relative to their parents on `main`.
    assert_eq!(builds, [json!("c1")]);
    assert_eq!(
        matching(&r, &[("type", json!("build_reused"))]).len(),
        2,
        "{:#}",
        r["events"]
    );
    // The feature push is ignored; the deletion is not delivered at all.
    let commits: Vec<_> = r["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| d["commit"].clone())
        .collect();
    assert_eq!(commits, [json!("c1"), json!("c2"), json!("c3")]);
    // `feature/x`'s pipeline (with a `prod` stage) stays on `feature/x`.
    for d in r["deployments"].as_array().expect("deployments") {
        let stages: Vec<_> = d["stages"].as_object().expect("stages").keys().collect();
        assert_eq!(stages, ["staging"], "{d:#}");
    }
    assert_eq!(matching(&r, &[("type", json!("push_ignored"))]).len(), 2);
    assert!(matching(&r, &[("commit", json!("f-gone"))]).is_empty());
    assert!(matching(&r, &[("commit", json!("c4"))]).is_empty());
}

/// The report's `executions` as `(key, starts, result)`.
fn executions(r: &Value) -> Vec<(String, u64, String)> {
    r["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .map(|e| {
            (
                e["key"].as_str().expect("key").to_owned(),
                e["starts"].as_u64().expect("starts"),
                e["result"].as_str().expect("result").to_owned(),
            )
        })
        .collect()
}

#[test]
fn ask_approval_waits_for_a_person_and_plans_are_judged_by_the_approval_policy() {
    let r = run("approvals.yaml");
    // staging: the plan only creates (no approval); the migration asks, is approved at
    // 17:15 and succeeds 3 minutes later.
    let asked = matching(&r, &[("type", json!("approval_required"))]);
    let asked: Vec<_> = asked
        .iter()
        .map(|e| (e["stage"].clone(), e["step"].clone(), e["at"].clone()))
        .collect();
    assert_eq!(
        asked,
        [
            (
                json!("staging"),
                json!("migrate"),
                json!("2026-01-05T17:01:00Z")
            ),
            (json!("prod"), json!("infra"), json!("2026-01-05T17:23:00Z")),
        ]
    );
    let migrated = matching(
        &r,
        &[
            ("type", json!("step_state")),
            ("stage", json!("staging")),
            ("step", json!("migrate")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert_eq!(migrated.len(), 1);
    assert_eq!(migrated[0]["at"], "2026-01-05T17:18:00Z");
    assert_eq!(
        r["deployments"][0]["stages"]["staging"]["state"],
        "SUCCEEDED"
    );
    assert_eq!(
        r["deployments"][0]["stages"]["prod"]["state"],
        "IN_PROGRESS"
    );
    let runs = executions(&r);
    let of = |key: &str| runs.iter().find(|(k, _, _)| k == key).cloned();
    assert_eq!(
        of("app/r1/staging/a1/migrate"),
        Some(("app/r1/staging/a1/migrate".into(), 1, "SUCCEEDED".into()))
    );
    assert_eq!(
        of("app/r1/prod/a1/infra"),
        Some(("app/r1/prod/a1/infra".into(), 1, "PLANNED".into()))
    );
}

/// The report without event times: what a store fault may change.
fn timeless(r: &Value) -> Value {
    let mut r = r.clone();
    r["end"] = Value::Null;
    for event in r["events"].as_array_mut().expect("events") {
        event["at"] = Value::Null;
    }
    r
}

#[test]
fn transient_store_errors_change_nothing_but_event_times() {
    let faulty = run("store-fault.yaml");
    let clean = run("store-fault-free.yaml");
    assert_eq!(timeless(&faulty), timeless(&clean));
    assert!(
        executions(&faulty)
            .iter()
            .all(|(_, starts, _)| *starts == 1),
        "{:#}",
        faulty["executions"]
    );
    assert_eq!(
        faulty["deployments"][1]["stages"]["prod"]["state"],
        "SUCCEEDED"
    );
}

#[test]
fn an_engine_restarting_behind_read_faults_resumes_after_its_backoff() {
    let faulty = run("store-fault-restart.yaml");
    let clean = run("store-fault-free.yaml");
    for (revision, commit) in [(0, "c1"), (1, "c2")] {
        assert_eq!(faulty["deployments"][revision]["commit"], commit);
        assert_eq!(
            faulty["deployments"][revision]["stages"], clean["deployments"][revision]["stages"],
            "{commit}"
        );
    }
    assert_eq!(
        faulty["deployments"][1]["stages"]["prod"]["state"],
        "SUCCEEDED"
    );
    assert!(
        executions(&faulty)
            .iter()
            .all(|(_, starts, _)| *starts == 1),
        "{:#}",
        faulty["executions"]
    );
}

#[test]
fn a_restart_mid_step_starts_nothing_twice_and_timers_resume() {
    let r = run("restart.yaml");
    let runs = executions(&r);
    assert!(!runs.is_empty());
    for (key, starts, _) in &runs {
        assert_eq!(*starts, 1, "{key} started {starts} times");
    }
    // The migration running at the restart ends once, successfully, and the bake after it
    // ends by its timer.
    let migrated = matching(
        &r,
        &[
            ("type", json!("step_state")),
            ("revision", json!(1)),
            ("stage", json!("staging")),
            ("step", json!("migrate")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert_eq!(migrated.len(), 1, "{:#}", r["events"]);
    let baked = matching(
        &r,
        &[
            ("type", json!("step_state")),
            ("revision", json!(1)),
            ("stage", json!("staging")),
            ("step", json!("Bake")),
            ("state", json!("SUCCEEDED")),
        ],
    );
    assert_eq!(baked.len(), 1, "{:#}", r["events"]);
    // The push sent while the engine was down is accepted when it is back.
    let accepted = matching(
        &r,
        &[
            ("type", json!("deployment_accepted")),
            ("commit", json!("c2")),
        ],
    );
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["at"], "2026-01-05T17:09:00Z");
    for d in r["deployments"].as_array().expect("deployments") {
        assert_eq!(d["stages"]["prod"]["state"], "SUCCEEDED", "{d:#}");
    }
}

#[test]
fn a_push_the_store_fails_to_record_is_accepted_after_the_engines_backoff() {
    let faulty = run("store-fault-push.yaml");
    let clean = run("store-fault-free.yaml");
    assert_eq!(timeless(&faulty), timeless(&clean));
    let accepted = |r: &Value, commit: &str| {
        let found = matching(
            r,
            &[
                ("type", json!("deployment_accepted")),
                ("commit", json!(commit)),
            ],
        );
        assert_eq!(found.len(), 1, "{commit}: {:#}", r["events"]);
        found[0]["at"].as_str().expect("at").to_owned()
    };
    // Later than without the faults by the engine's backoff (0.5s, then 1s, 2s: times are
    // shown to the second), seconds, not minutes.
    for commit in ["c1", "c2"] {
        let (late, on_time) = (accepted(&faulty, commit), accepted(&clean, commit));
        assert!(late > on_time, "{commit}: {late} after {on_time}");
        let late: jiff::Timestamp = late.parse().expect("a time");
        let on_time: jiff::Timestamp = on_time.parse().expect("a time");
        let delay = late.duration_since(on_time);
        assert!(delay.as_secs() < 60, "{commit}: waited {delay:?}");
    }
}

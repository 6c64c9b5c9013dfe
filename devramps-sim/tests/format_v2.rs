//! The scenario format's newer parts, each a scenario file under `tests/scenarios/` run
//! through the real engine: pushes relative to their own branch, branch deletions,
//! `ask_approval` steps, Terraform plan counts, the `executions` report, store faults and
//! restarts. Every test asserts on the JSON report.

mod common;

use common::*;
use serde_json::json;

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

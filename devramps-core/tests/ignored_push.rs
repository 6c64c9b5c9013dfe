//! Pushes that are no deployment whatever the pipeline (a tag, a branch deletion): recorded as
//! `push_ignored` with their reason and ref, their delivery remembered (L2).

use devramps_core::lifecycle::{
    Actor, Event, IgnoredPush, Input, Machine, PipelineState, Push, describe,
};
use jiff::Timestamp;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1 }
  steps:
    - { name: A, type: "CUSTOM:A" }
"#;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn t0() -> Timestamp {
    "2026-01-05T17:00:00Z".parse().expect("ts")
}

fn tag(delivery: &str) -> Input {
    Input::IgnoredPush(
        IgnoredPush::new(
            "refs/tags/v1.0",
            "tag `v1.0` was pushed: tags deploy nothing",
        )
        .with_delivery(delivery)
        .with_commit(COMMIT),
    )
}

#[test]
fn a_tag_is_recorded_with_its_ref_commit_reason_and_delivery_and_starts_nothing() {
    let mut m = Machine::new("app");
    let out = m.handle(tag("d-tag"), t0());
    assert!(out.commands.is_empty(), "{:?}", out.commands);
    let [record] = out.records.as_slice() else {
        panic!("one record expected: {:?}", out.records);
    };
    assert_eq!(record.actor, Actor::Webhook("d-tag".into()));
    let Event::PushIgnored {
        commit,
        branch,
        delivery,
        reason,
        git_ref,
    } = &record.event
    else {
        panic!("push_ignored expected: {record:?}");
    };
    assert_eq!(commit, COMMIT);
    assert_eq!(branch, "");
    assert_eq!(delivery.as_deref(), Some("d-tag"));
    assert!(reason.contains("tags deploy nothing"), "{reason}");
    assert_eq!(git_ref.as_deref(), Some("refs/tags/v1.0"));
    assert_eq!(m.state().last_revision, 0);
    assert!(m.state().deliveries.contains("d-tag"));
    let line = describe(record).expect("people see it");
    assert!(
        line.contains("refs/tags/v1.0") && line.contains("0123456789ab"),
        "{line}"
    );
}

#[test]
fn a_branch_deletion_names_the_branch_and_no_commit() {
    let mut m = Machine::new("app");
    let input = Input::IgnoredPush(
        IgnoredPush::new("refs/heads/feature", "branch `feature` was deleted")
            .with_delivery("d-del"),
    );
    let out = m.handle(input, t0());
    assert!(matches!(
        &out.records[0].event,
        Event::PushIgnored { commit, branch, git_ref: Some(r), .. }
            if commit.is_empty() && branch == "feature" && r == "refs/heads/feature"
    ));
    let line = describe(&out.records[0]).expect("people see it");
    assert_eq!(
        line,
        "push of refs/heads/feature ignored: branch `feature` was deleted"
    );
}

#[test]
fn a_redelivery_is_a_duplicate_and_so_is_a_branch_push_with_the_same_delivery() {
    let mut m = Machine::new("app");
    m.handle(tag("d-1"), t0());
    let again = m.handle(tag("d-1"), t0());
    assert!(matches!(
        &again.records[0].event,
        Event::PushIgnored { reason, .. } if reason.contains("delivery was seen before")
    ));
    // The same delivery id on a push to the tracked branch creates nothing either (L2).
    let push = Input::Push(
        Push::new("main", COMMIT)
            .with_delivery("d-1")
            .with_definition(Some(PIPELINE.into())),
    );
    let out = m.handle(push, t0());
    assert!(matches!(
        &out.records[0].event,
        Event::PushIgnored { reason, git_ref: None, .. } if reason.contains("delivery was seen before")
    ));
    assert_eq!(m.state().last_revision, 0);
    // Another delivery of that push deploys.
    let push = Input::Push(
        Push::new("main", COMMIT)
            .with_delivery("d-2")
            .with_definition(Some(PIPELINE.into())),
    );
    let out = m.handle(push, t0());
    assert!(matches!(
        out.records[0].event,
        Event::DeploymentAccepted { revision: 1, .. }
    ));
}

#[test]
fn the_replayed_state_remembers_the_delivery() {
    let mut m = Machine::new("app");
    let out = m.handle(tag("d-1"), t0());
    let replayed = PipelineState::replay("app", &out.records);
    assert!(replayed.deliveries.contains("d-1"));
    assert_eq!(&replayed, m.state());
    let mut again = Machine::replay("app", &out.records);
    let dup = again.handle(tag("d-1"), t0());
    assert!(matches!(
        &dup.records[0].event,
        Event::PushIgnored { reason, .. } if reason.contains("seen before")
    ));
}

//! Tag pushes and branch deletions from GitHub's payloads reach a real engine (in-memory
//! backends) as `push_ignored` records with their reason, and a re-delivery is a duplicate
//! (L2).
#![allow(clippy::unwrap_used)]

use devramps_core::engine::{Engine, EngineConfig};
use devramps_core::lifecycle::Event;
use devramps_github::webhook::{self, Webhook};

fn push(name: &str, delivery: &str) -> webhook::Push {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    match webhook::parse("push", delivery, &body).unwrap() {
        Webhook::Push(p) => p,
        other => panic!("{name}: not a push: {other:?}"),
    }
}

#[tokio::test]
async fn tags_and_deletions_are_logged_with_their_reason_and_a_redelivery_is_a_duplicate() {
    // The source knows no commit at all: nothing may be resolved.
    let (backends, _handles) = devramps_memory::scripted_backends();
    let (engine, driver) = Engine::new(backends, EngineConfig::default());
    let task = tokio::spawn(driver.run());

    let tag = push("push-tag.json", "d-tag").request().unwrap_err();
    let record = tag.push_record().expect("a tag push is logged");
    let out = engine.record_ignored_push("app", record).await.unwrap();
    assert!(
        matches!(&out[..], [r] if matches!(&r.event,
            Event::PushIgnored { commit, git_ref: Some(g), reason, delivery, .. }
                if commit == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
                    && g == "refs/tags/simple-tag"
                    && reason.contains("tag `simple-tag` was pushed")
                    && delivery.as_deref() == Some("d-tag"))),
        "{out:?}"
    );

    let deleted = push("push-branch-deleted.json", "d-del")
        .request()
        .unwrap_err();
    let out = engine
        .record_ignored_push("app", deleted.push_record().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(&out[0].event,
            Event::PushIgnored { commit, branch, reason, .. }
                if commit.is_empty() && branch == "feature-x"
                    && reason.contains("was deleted")),
        "{out:?}"
    );

    // GitHub delivers the tag again (same delivery id): a duplicate, recorded as such.
    let again = push("push-tag.json", "d-tag").request().unwrap_err();
    let out = engine
        .record_ignored_push("app", again.push_record().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(&out[0].event, Event::PushIgnored { reason, .. }
            if reason.contains("delivery was seen before")),
        "{out:?}"
    );
    let history = engine.history("app").await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(engine.state("app").await.unwrap().last_revision, 0);
    engine.stop().await.unwrap();
    task.await.unwrap().unwrap();
}

#[test]
fn only_pushes_give_a_record() {
    let body = br#"{"action": "created", "issue": {"number": 1}}"#;
    let Webhook::Ignored(ignored) = webhook::parse("issues", "d-1", body).unwrap() else {
        panic!("issues are ignored");
    };
    assert_eq!(ignored.push_record(), None);
    let tag = push("push-tag-deleted.json", "d-2").request().unwrap_err();
    let record = tag.push_record().unwrap();
    assert_eq!(record.git_ref, "refs/tags/simple-tag");
    assert_eq!(record.commit, None);
    assert_eq!(record.delivery.as_deref(), Some("d-2"));
}

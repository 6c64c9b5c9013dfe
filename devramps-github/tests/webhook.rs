//! Webhooks: signatures, and each fixture (GitHub's shapes) parsed into what the engine needs.
#![allow(clippy::unwrap_used)]

use devramps_core::engine::PushRequest;
use devramps_github::webhook::{
    self, MAX_BODY, PullRequestAction, Webhook, WebhookError, WebhookSecrets,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn parsed(event: &str, name: &str) -> Webhook {
    webhook::parse(event, "delivery-1", &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn push(name: &str) -> webhook::Push {
    match parsed("push", name) {
        Webhook::Push(p) => p,
        other => panic!("{name}: not a push: {other:?}"),
    }
}

#[test]
fn a_signature_of_any_configured_secret_is_accepted() {
    let body = fixture("push.json");
    let secrets = WebhookSecrets::from_lines("  new-secret \r\n\nold-secret\n").unwrap();
    assert_eq!(secrets.len(), 2);
    for secret in ["new-secret", "old-secret"] {
        let signature = webhook::sign(secret.as_bytes(), &body);
        assert_eq!(secrets.verify(Some(&signature), &body), Ok(()), "{secret}");
        let upper = signature.replace("sha256=", "").to_uppercase();
        assert_eq!(
            secrets.verify(Some(&format!("sha256={upper}")), &body),
            Ok(())
        );
    }
    assert_eq!(secrets.sign(&body), webhook::sign(b"new-secret", &body));
}

/// The value GitHub documents for its example ("Hello, World!" signed with "It's a Secret to
/// Everybody").
#[test]
fn the_signature_matches_githubs_documented_example() {
    let secrets = WebhookSecrets::new(["It's a Secret to Everybody"]).unwrap();
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(secrets.verify(Some(signature), b"Hello, World!"), Ok(()));
}

#[test]
fn wrong_missing_or_malformed_signatures_are_401() {
    let body = fixture("push.json");
    let secrets = WebhookSecrets::new(["right"]).unwrap();
    let wrong = webhook::sign(b"wrong", &body);
    let mut altered = body.clone();
    altered[10] ^= 1;
    let right = webhook::sign(b"right", &body);
    let cases: Vec<(Option<&str>, &[u8])> = vec![
        (None, &body),
        (Some(&wrong), &body),
        (Some(&right), &altered),
        (Some("sha1=abc"), &body),
        (Some("sha256=zz"), &body),
        (Some(&right[..right.len() - 1]), &body),
        (Some(""), &body),
    ];
    for (header, body) in cases {
        let err = secrets.verify(header, body).unwrap_err();
        assert_eq!(err.status(), 401, "{header:?}: {err}");
    }
    assert!(matches!(
        secrets.verify(Some(&wrong), &body),
        Err(WebhookError::SignatureMismatch { secrets: 1 })
    ));
}

#[test]
fn a_body_over_the_limit_is_413_before_the_signature_is_looked_at() {
    let secrets = WebhookSecrets::new(["s"]).unwrap();
    let body = vec![b' '; MAX_BODY + 1];
    let err = secrets.verify(None, &body).unwrap_err();
    assert_eq!(err.status(), 413, "{err}");
    assert_eq!(webhook::check_size(MAX_BODY), Ok(()));
    assert_eq!(webhook::check_size(MAX_BODY + 1).unwrap_err().status(), 413);
    let at_limit = vec![b' '; MAX_BODY];
    assert_eq!(secrets.verify(None, &at_limit).unwrap_err().status(), 401);
}

#[test]
fn no_secret_is_a_configuration_error() {
    for text in ["", "\n  \n"] {
        let err = WebhookSecrets::from_lines(text).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err.to_string().contains("no secret"), "{err}");
    }
    assert!(WebhookSecrets::new([""]).is_err());
    let secrets = WebhookSecrets::new(["hidden-value"]).unwrap();
    assert!(!format!("{secrets:?}").contains("hidden-value"));
}

#[test]
fn a_push_to_a_branch_is_the_engines_request_with_its_delivery() {
    let p = push("push.json");
    assert_eq!(p.branch(), Some("main"));
    assert!(!p.forced && !p.deleted && !p.created);
    assert_eq!(p.repository, "Codertocat/Hello-World");
    let expected = PushRequest::new("main", "1481a2de7b2a7d02428ad93446ab166be7793fbb")
        .with_delivery("delivery-1");
    assert_eq!(p.request(), Ok(expected));
}

#[test]
fn a_forced_push_is_a_push_of_its_new_head() {
    let p = push("push-forced.json");
    assert!(p.forced);
    let request = p.request().unwrap();
    assert_eq!(request.commit, "1481a2de7b2a7d02428ad93446ab166be7793fbb");
    assert_eq!(request.branch, "main");
}

#[test]
fn a_created_branch_is_a_push_of_its_head() {
    let p = push("push-branch-created.json");
    assert!(p.created);
    let request = p.request().unwrap();
    assert_eq!(request.branch, "master");
    assert_eq!(request.commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
}

#[test]
fn tags_and_deletions_are_ignored_with_the_reason() {
    for (name, reason, commit) in [
        (
            "push-tag.json",
            "tag `simple-tag` was pushed",
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
        ),
        (
            "push-tag-deleted.json",
            "tag `simple-tag` was deleted",
            None,
        ),
        (
            "push-branch-deleted.json",
            "branch `feature-x` was deleted",
            None,
        ),
    ] {
        let ignored = push(name).request().unwrap_err();
        assert!(
            ignored.reason.contains(reason),
            "{name}: {}",
            ignored.reason
        );
        assert_eq!(ignored.commit.as_deref(), commit, "{name}");
        assert_eq!(ignored.delivery, "delivery-1");
        assert_eq!(ignored.event, "push");
    }
}

#[test]
fn a_ref_that_is_no_branch_is_ignored() {
    let body =
        br#"{"ref": "refs/notes/commits", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
                    "repository": {"full_name": "a/b"}}"#;
    let Webhook::Push(p) = webhook::parse("push", "d", body).unwrap() else {
        panic!("not a push")
    };
    assert!(p.request().unwrap_err().reason.contains("not a branch"));
}

#[test]
fn pings_are_parsed_with_and_without_a_repository() {
    let Webhook::Ping(ping) = parsed("ping", "ping.json") else {
        panic!("not a ping")
    };
    assert_eq!(ping.repository.as_deref(), Some("Octocoders/Hello-World"));
    assert!(!ping.zen.is_empty());
    assert!(ping.hook_id.is_some());
    let Webhook::Ping(org) = parsed("ping", "ping-organization.json") else {
        panic!("not a ping")
    };
    assert_eq!(org.repository, None);
}

#[test]
fn pull_requests_opened_synchronized_and_closed_are_kept() {
    let expected = [
        ("pull-request-opened.json", PullRequestAction::Opened),
        (
            "pull-request-synchronize.json",
            PullRequestAction::Synchronize,
        ),
        (
            "pull-request-closed.json",
            PullRequestAction::Closed { merged: false },
        ),
        (
            "pull-request-closed-merged.json",
            PullRequestAction::Closed { merged: true },
        ),
    ];
    for (name, action) in expected {
        let Webhook::PullRequest(pr) = parsed("pull_request", name) else {
            panic!("{name}: not a pull request")
        };
        assert_eq!(pr.action, action, "{name}");
        assert_eq!(pr.number, 2, "{name}");
        assert_eq!(pr.head_branch, "changes", "{name}");
        assert_eq!(pr.base_branch, "master", "{name}");
        assert_eq!(pr.head_commit.len(), 40, "{name}");
        assert_eq!(pr.repository, "Codertocat/Hello-World");
    }
}

#[test]
fn other_events_and_actions_are_ignored_with_a_reason() {
    let Webhook::Ignored(labeled) = parsed("pull_request", "pull-request-labeled.json") else {
        panic!("a labeled pull request is not ignored")
    };
    assert!(labeled.reason.contains("`labeled`"), "{}", labeled.reason);
    let Webhook::Ignored(issue) = parsed("issues", "issues-opened.json") else {
        panic!("an issue is not ignored")
    };
    assert_eq!(issue.event, "issues");
    assert!(issue.reason.contains("`issues`"));
    assert_eq!(issue.repository.as_deref(), Some("Codertocat/Hello-World"));
}

#[test]
fn malformed_bodies_say_where() {
    let err = webhook::parse(
        "push",
        "d",
        b"{\n  \"ref\": \"refs/heads/main\",\n  oops\n}",
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    let WebhookError::Json { line, column, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!((line, column), (3, 3));

    let err = webhook::parse(
        "push",
        "d",
        br#"{"ref": "refs/heads/main", "after": "abc"}"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        WebhookError::Field {
            event: "push".into(),
            path: "after".into(),
            expected: "commit id (40 or 64 hex digits)"
        }
    );
    let body = br#"{"ref": "refs/heads/main", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
                    "repository": {"name": "x"}}"#;
    let err = webhook::parse("push", "d", body).unwrap_err();
    assert!(err.to_string().contains("`repository.full_name`"), "{err}");
    let err = webhook::parse("push", "d", br#"{"ref": 3}"#).unwrap_err();
    assert!(err.to_string().contains("no string at `ref`"), "{err}");
    let err = webhook::parse(
        "pull_request",
        "d",
        br#"{"action": "opened", "pull_request": 1, "repository": {"full_name": "a/b"}}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("object at `pull_request`"),
        "{err}"
    );
    assert_eq!(
        webhook::parse("push", "d", b"[]").unwrap_err().status(),
        400
    );
    assert_eq!(webhook::parse("", "d", b"{}").unwrap_err().status(), 400);
    assert_eq!(
        webhook::parse("push", " ", b"{}").unwrap_err().status(),
        400
    );
}

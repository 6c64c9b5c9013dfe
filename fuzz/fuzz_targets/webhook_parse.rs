//! Fuzz target: `devramps_github::webhook::parse` on arbitrary bytes, as the body of each
//! event type the parser knows (the first byte picks the event).
//!
//! Besides not panicking, every error must say where (serde_json's line and column, or the
//! JSON path of the field) and answer 400; every parsed push either gives the engine's request
//! or says why it is ignored. The same properties run on every `cargo test` in
//! `devramps-github/tests/webhook_props.rs` (proptest).
#![no_main]

use devramps_github::webhook::{self, Webhook, WebhookError};
use libfuzzer_sys::fuzz_target;

const EVENTS: &[&str] = &["push", "ping", "pull_request", "issues"];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let event = EVENTS[usize::from(*first) % EVENTS.len()];
    match webhook::parse(event, "fuzz", body) {
        Ok(Webhook::Push(push)) => match push.request() {
            Ok(request) => assert!(!request.branch.is_empty()),
            Err(ignored) => assert!(!ignored.reason.is_empty()),
        },
        Ok(_) => {}
        Err(e) => {
            assert_eq!(e.status(), 400, "{e}");
            match &e {
                WebhookError::Json { line, column, .. } => assert!(*line >= 1 || *column >= 1),
                WebhookError::Field { path, .. } => assert!(!path.is_empty()),
                other => panic!("unexpected error {other:?}"),
            }
        }
    }
});

//! The parser never panics, on arbitrary bytes and on mutated fixtures, and its errors say
//! where (a line and column, or a JSON path).
#![allow(clippy::unwrap_used)]

use devramps_github::webhook::{self, WebhookError};
use proptest::prelude::*;

const FIXTURES: &[(&str, &str)] = &[
    ("push", "push.json"),
    ("push", "push-forced.json"),
    ("push", "push-branch-deleted.json"),
    ("push", "push-tag.json"),
    ("ping", "ping-organization.json"),
    ("pull_request", "pull-request-opened.json"),
    ("pull_request", "pull-request-closed.json"),
    ("issues", "issues-opened.json"),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn says_where(err: &WebhookError) -> bool {
    match err {
        WebhookError::Json { line, column, .. } => *line >= 1 || *column >= 1,
        WebhookError::Field { path, .. } => !path.is_empty(),
        _ => false,
    }
}

/// A JSON value where a field is expected: another type, null, or absent.
fn replacement() -> impl Strategy<Value = Option<serde_json::Value>> {
    prop_oneof![
        Just(None),
        Just(Some(serde_json::Value::Null)),
        any::<bool>().prop_map(|b| Some(b.into())),
        any::<i64>().prop_map(|n| Some(n.into())),
        ".{0,12}".prop_map(|s| Some(s.into())),
        Just(Some(serde_json::json!([]))),
        Just(Some(serde_json::json!({}))),
    ]
}

fn paths(value: &serde_json::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            prefix.push(k.clone());
            out.push(prefix.clone());
            if prefix.len() < 3 {
                paths(v, prefix, out);
            }
            prefix.pop();
        }
    }
}

fn replace(value: &mut serde_json::Value, path: &[String], with: Option<serde_json::Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = value;
    for key in parents {
        match here.get_mut(key) {
            Some(next) => here = next,
            None => return,
        }
    }
    if let serde_json::Value::Object(map) = here {
        match with {
            Some(v) => {
                map.insert(last.clone(), v);
            }
            None => {
                map.remove(last);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(event in "push|ping|pull_request|issues|.{0,8}",
                                   body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = webhook::parse(&event, "d", &body) {
            prop_assert!(e.status() == 400, "{e}");
        }
    }

    #[test]
    fn truncated_or_flipped_fixtures_never_panic(which in 0..FIXTURES.len(), cut in any::<prop::sample::Index>(),
                                                 flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)) {
        let (event, name) = FIXTURES[which];
        let mut body = fixture(name);
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        if let Err(e) = webhook::parse(event, "d", &body) {
            prop_assert!(says_where(&e), "{e:?}");
        }
    }

    #[test]
    fn fields_replaced_by_other_types_are_errors_at_their_path(which in 0..FIXTURES.len(),
                                                               pick in any::<prop::sample::Index>(),
                                                               with in replacement()) {
        let (event, name) = FIXTURES[which];
        let mut value: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
        let mut all = Vec::new();
        paths(&value, &mut Vec::new(), &mut all);
        let path = all[pick.index(all.len())].clone();
        replace(&mut value, &path, with);
        let body = serde_json::to_vec(&value).unwrap();
        if let Err(e) = webhook::parse(event, "d", &body) {
            prop_assert!(says_where(&e), "{e:?}");
            if let WebhookError::Field { path: at, .. } = &e {
                // The error names the replaced field or one of its parents / children.
                let joined = path.join(".");
                prop_assert!(joined.starts_with(at.as_str()) || at.starts_with(joined.as_str()),
                             "replaced `{joined}`, error at `{at}`");
            }
        }
    }
}

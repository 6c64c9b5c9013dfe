//! `POST /webhooks/github` (not wired yet: it needs `devramps_github::webhook`).

use serde_json::Value;

use crate::routes::Route;

/// The webhook routes.
pub(crate) fn routes() -> Vec<Route> {
    Vec::new()
}

/// Their OpenAPI path items.
pub(crate) fn openapi() -> Vec<(String, Value)> {
    Vec::new()
}

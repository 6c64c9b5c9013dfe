//! `/healthz`, `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::error::{ApiResult, Problem};

/// 200 once the server accepts requests.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the server takes work: not stopping, the store and the engine answer; 503
/// otherwise.
pub(super) async fn readyz(State(app): State<AppState>) -> ApiResult<&'static str> {
    if app.config.shutdown.is_triggered() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ));
    }
    let streams = app.config.store.streams().await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer: {e}"),
        )
    })?;
    if let Some(slug) = streams.first() {
        app.engine.state(slug).await.map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the engine does not answer: {e}"),
            )
        })?;
    }
    Ok("ready\n")
}

/// The Prometheus exposition.
pub(super) async fn metrics(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    let streams = app.config.store.streams().await.map_err(Problem::from)?;
    let mut states = Vec::with_capacity(streams.len());
    for slug in streams {
        let state = app.engine.state(&slug).await.map_err(Problem::from)?;
        states.push((slug, state));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.config.metrics.render(&states),
    ))
}

//! Pipelines, a pipeline's state (the `stages` and `deployments` sections of the simulate
//! report, and the steps waiting for a person), one revision, and a step's logs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use devramps_core::lifecycle::PipelineState;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::summary::Summary;
use crate::error::{ApiResult, Problem};

/// `GET /api/v1/pipelines`: `{"pipelines": [slug, ...]}`.
pub(super) async fn list(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let streams = app.config.store.streams().await.map_err(Problem::from)?;
    Ok(Json(json!({ "pipelines": streams })))
}

/// The state of a known pipeline.
async fn state(app: &AppState, slug: &str) -> ApiResult<PipelineState> {
    app.known(slug).await?;
    app.engine.state(slug).await.map_err(Problem::from)
}

/// The report sections of `state`: built by the simulator's report code from the state alone
/// (no log needed for these sections).
fn report(slug: &str, state: &PipelineState) -> devramps_sim::Report {
    devramps_sim::log_report(slug, state, &[], jiff::Timestamp::UNIX_EPOCH)
}

/// `GET /api/v1/pipelines/{slug}`: `{"slug", "stages", "deployments", "approvals"}`. The
/// answer is kept and brought up to date with the records appended since (see
/// [`Summary`]): while the log has not moved, one `last_seq` read.
pub(super) async fn show(State(app): State<AppState>, Path(slug): Path<String>) -> Response {
    match shown(&app, &slug).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn shown(app: &AppState, slug: &str) -> ApiResult<axum::body::Bytes> {
    let store = &app.config.store;
    let last = store.last_seq(slug).await.map_err(Problem::from)?;
    if last == 0 {
        app.known(slug).await?;
    }
    let mut kept = app.shown.lock().await;
    if let Some(summary) = kept.get_mut(slug) {
        if summary.applied() == last {
            return Ok(summary.body());
        }
        if summary.applied() < last {
            let events = store
                .read(slug, summary.applied(), None)
                .await
                .map_err(Problem::from)?;
            match summary.advance(slug, events) {
                Ok(()) => return Ok(summary.body()),
                Err(e) => tracing::warn!(pipeline = %slug, error = %e, "state answer made afresh"),
            }
        }
        kept.remove(slug);
    }
    let summary = Summary::new(slug, state(app, slug).await?)
        .map_err(|e| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let body = summary.body();
    kept.insert(slug.to_owned(), summary);
    Ok(body)
}

/// `GET /api/v1/pipelines/{slug}/revisions/{revision}`: one entry of `deployments`.
pub(super) async fn revision(
    State(app): State<AppState>,
    Path((slug, revision)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let revision: u64 = revision
        .parse()
        .map_err(|_| Problem::bad_request(format!("`{revision}` is not a revision number")))?;
    let mut state = state(&app, &slug).await?;
    let Some(deployment) = state.deployments.remove(&revision) else {
        return Err(Problem::not_found(format!(
            "pipeline `{slug}` has no revision {revision}"
        )));
    };
    state.deployments.clear();
    state.deployments.insert(revision, deployment);
    let report = report(&slug, &state);
    Ok(Json(
        serde_json::to_value(&report.deployments[0]).unwrap_or(Value::Null),
    ))
}

/// The query of `GET .../logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    stage: String,
    step: String,
    revision: Option<u64>,
}

/// `GET /api/v1/pipelines/{slug}/logs?stage=S&step=STEP[&revision=N]`: the log lines of the
/// step's execution, `{"execution", "lines": [{timestamp, level, message, data}]}`.
pub(super) async fn logs(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let state = state(&app, &slug).await?;
    if !devramps_sim::has_stage(&state, &q.stage) {
        return Err(Problem::not_found(format!(
            "pipeline `{slug}` has no stage `{}`",
            q.stage
        )));
    }
    if let Some(artifact) = q.step.strip_prefix("build:") {
        let artifact = artifact.trim();
        let Some(key) =
            devramps_sim::build_execution(&slug, &state, &q.stage, artifact, q.revision)
        else {
            return Err(Problem::not_found(format!(
                "no build of artifact `{artifact}` by stage `{}`",
                q.stage
            )));
        };
        let lines = app.engine.build_logs(&key).await.map_err(Problem::from)?;
        return Ok(Json(
            json!({ "execution": key.to_string(), "lines": lines }),
        ));
    }
    let Some((key, step_type)) =
        devramps_sim::step_execution(&slug, &state, &q.stage, &q.step, q.revision)
    else {
        return Err(Problem::not_found(format!(
            "no run of step `{}` in stage `{}`{}",
            q.step,
            q.stage,
            q.revision
                .map(|r| format!(" for revision {r}"))
                .unwrap_or_default()
        )));
    };
    let lines = app
        .engine
        .step_logs(&step_type, &key)
        .await
        .map_err(Problem::from)?;
    Ok(Json(
        json!({ "execution": key.to_string(), "lines": lines }),
    ))
}

//! Pipelines, a pipeline's state (the `stages` and `deployments` sections of the simulate
//! report, and the steps waiting for a person), one revision, and a step's logs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use devramps_core::lifecycle::PipelineState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
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
/// answer is kept with the sequence number of the log it folds, and given again while the
/// store's log has not moved past it (one `last_seq` read instead of a fold of the history).
pub(super) async fn show(State(app): State<AppState>, Path(slug): Path<String>) -> Response {
    match shown(&app, &slug).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn shown(app: &AppState, slug: &str) -> ApiResult<axum::body::Bytes> {
    let last = app
        .config
        .store
        .last_seq(slug)
        .await
        .map_err(Problem::from)?;
    let cached = app
        .shown
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(slug)
        .filter(|(seq, _)| *seq == last)
        .map(|(_, body)| body.clone());
    if let Some(body) = cached {
        return Ok(body);
    }
    let state = state(app, slug).await?;
    #[derive(Serialize)]
    struct Shown<'a> {
        slug: &'a str,
        stages: &'a devramps_sim::StageMap<devramps_sim::StageSummary>,
        deployments: &'a [devramps_sim::DeploymentReport],
        approvals: Vec<devramps_sim::ApprovalReport>,
    }
    let report = report(slug, &state);
    let shown = Shown {
        slug,
        stages: &report.stages,
        deployments: &report.deployments,
        approvals: devramps_sim::waiting_approvals(&state),
    };
    let body = serde_json::to_vec(&shown)
        .map(axum::body::Bytes::from)
        .map_err(|e| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    app.shown
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(slug.to_owned(), (state.applied, body.clone()));
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

//! The operations: `POST /api/v1/pipelines/{slug}/<operation>` with a JSON body (`stage`,
//! `step`, `revision`, `to`, `commit`, `reason`), recorded with the caller's name as actor.
//! The answer is `{"records": [...]}` (what the engine appended), 409 with `rule` and
//! `reason` when the rules refuse.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::routing::{MethodRouter, post};
use devramps_core::engine::PatchRequest;
use devramps_core::lifecycle::{
    Actor, Control, ControlAction, Decide, Operate, Person, PipelineDecision, Record,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, Problem};

/// One operation: its path segment, what it needs and what it does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OperationSpec {
    /// The last path segment.
    pub(crate) name: &'static str,
    /// For the OpenAPI document.
    pub(crate) summary: &'static str,
    /// The body fields it requires.
    pub(crate) requires: &'static [&'static str],
}

const fn op(
    name: &'static str,
    summary: &'static str,
    requires: &'static [&'static str],
) -> OperationSpec {
    OperationSpec {
        name,
        summary,
        requires,
    }
}

/// Every operation, as `devramps status` and the operations name them (`cli.md`), with the
/// on-call operations of the engine.
pub(crate) const OPERATIONS: &[OperationSpec] = &[
    op(
        "approve",
        "Approve a step waiting for a person (L16)",
        &["stage", "step"],
    ),
    op(
        "reject",
        "Reject a step waiting for a person (L16)",
        &["stage", "step"],
    ),
    op(
        "retry",
        "Retry a failed, timed-out or cancelled stage-deployment (L11)",
        &["stage"],
    ),
    op(
        "cancel",
        "Cancel the stage-deployment in progress (L12)",
        &["stage"],
    ),
    op(
        "rollback",
        "Roll a stage back to an earlier revision (L13)",
        &["stage", "to"],
    ),
    op(
        "roll-forward",
        "Roll a stage forward to a newer revision (L14)",
        &["stage", "to"],
    ),
    op(
        "stop-promotions",
        "Stop promotions into a stage (L9)",
        &["stage"],
    ),
    op(
        "resume-promotions",
        "Resume promotions into a stage (L9)",
        &["stage"],
    ),
    op(
        "unblock",
        "Remove the blocker a rollback left on a stage (L9)",
        &["stage"],
    ),
    op(
        "bypass",
        "Let one queued revision start once despite blockers (L9)",
        &["stage", "revision"],
    ),
    op(
        "patch",
        "Deploy a chosen commit as a patch; patch mode (L17)",
        &["commit"],
    ),
    op("release-patch", "End patch mode (L17)", &[]),
    op(
        "approve-pipeline",
        "Approve a deployment's definition change (L18)",
        &["revision"],
    ),
    op(
        "reject-pipeline",
        "Reject a deployment's definition change (L18)",
        &["revision"],
    ),
];

/// The body of an operation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationBody {
    stage: Option<String>,
    step: Option<String>,
    revision: Option<u64>,
    to: Option<u64>,
    commit: Option<String>,
    reason: Option<String>,
}

/// The handler of `spec`.
pub(super) fn handler(spec: &'static OperationSpec) -> MethodRouter<AppState> {
    post(
        move |State(app): State<AppState>,
              Path(slug): Path<String>,
              Extension(caller): Extension<Caller>,
              body: Bytes| async move { operate(spec, app, slug, caller, body).await },
    )
}

async fn operate(
    spec: &OperationSpec,
    app: AppState,
    slug: String,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: OperationBody = if body.iter().all(u8::is_ascii_whitespace) {
        OperationBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not a valid operation: {e}")))?
    };
    for field in spec.requires {
        let present = match *field {
            "stage" => body.stage.is_some(),
            "step" => body.step.is_some(),
            "revision" => body.revision.is_some(),
            "to" => body.to.is_some(),
            _ => body.commit.is_some(),
        };
        if !present {
            return Err(Problem::bad_request(format!(
                "`{}` needs `{field}` in its body",
                spec.name
            )));
        }
    }
    app.known(&slug).await?;
    let state = app.engine.state(&slug).await.map_err(Problem::from)?;
    let stage = body.stage.clone().unwrap_or_default();
    if body.stage.is_some() && !devramps_sim::has_stage(&state, &stage) {
        return Err(
            Problem::not_found(format!("pipeline `{slug}` has no stage `{stage}`"))
                .with("stage", stage),
        );
    }
    let actor = Actor::User(caller.name.clone());
    let reason = body.reason.clone();
    let engine = &app.engine;
    let operate = |revision: u64| {
        let o = Operate::new(revision, &stage, actor.clone());
        match &reason {
            Some(r) => o.with_reason(r),
            None => o,
        }
    };
    let control = |action: ControlAction| {
        let c = Control::new(&stage, action, actor.clone());
        match &reason {
            Some(r) => c.with_reason(r),
            None => c,
        }
    };
    let missing = |e: String| Problem::not_found(e);
    let result = match spec.name {
        "approve" | "reject" => {
            let step = body.step.clone().unwrap_or_default();
            let revision = match body.revision {
                Some(r) => r,
                None => devramps_sim::waiting_revision(&state, &stage, &step).map_err(missing)?,
            };
            let mut decide = Decide::new(revision, &stage, &step, actor.clone());
            if let Some(r) = &reason {
                decide = decide.with_comment(r);
            }
            if spec.name == "approve" {
                engine.approve(&slug, decide).await
            } else {
                engine.reject(&slug, decide).await
            }
        }
        "retry" | "cancel" => {
            let retry = spec.name == "retry";
            let revision = match body.revision {
                Some(r) => r,
                None => devramps_sim::stage_revision(&state, &stage, retry).map_err(missing)?,
            };
            if retry {
                engine.retry(&slug, operate(revision)).await
            } else {
                engine.cancel(&slug, operate(revision)).await
            }
        }
        "rollback" => {
            engine
                .rollback(&slug, operate(body.to.unwrap_or_default()))
                .await
        }
        "roll-forward" => {
            engine
                .roll_forward(&slug, operate(body.to.unwrap_or_default()))
                .await
        }
        "stop-promotions" => {
            engine
                .control(&slug, control(ControlAction::StopPromotions))
                .await
        }
        "resume-promotions" => {
            engine
                .control(&slug, control(ControlAction::ResumePromotions))
                .await
        }
        "unblock" => engine.control(&slug, control(ControlAction::Unblock)).await,
        "bypass" => {
            let action = ControlAction::Bypass {
                revision: body.revision.unwrap_or_default(),
            };
            engine.control(&slug, control(action)).await
        }
        "patch" => {
            let mut patch = PatchRequest::new(body.commit.clone().unwrap_or_default(), actor);
            if let Some(r) = &reason {
                patch = patch.with_reason(r);
            }
            engine.patch(&slug, patch).await
        }
        "release-patch" => {
            let mut person = Person::new(actor);
            if let Some(r) = &reason {
                person = person.with_reason(r);
            }
            engine.release_patch(&slug, person).await
        }
        _ => {
            let mut decision = PipelineDecision::new(body.revision.unwrap_or_default(), actor);
            if let Some(r) = &reason {
                decision = decision.with_comment(r);
            }
            if spec.name == "approve-pipeline" {
                engine.approve_pipeline(&slug, decision).await
            } else {
                engine.reject_pipeline(&slug, decision).await
            }
        }
    };
    let records: Vec<Record> = result.map_err(Problem::from)?;
    Ok(Json(json!({ "records": records })))
}

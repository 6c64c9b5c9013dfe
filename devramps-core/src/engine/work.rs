//! Turning the machine's commands into futures over the backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::backend::{
    Backends, BuildRequest, ExecutionKey, InfraRequest, MirrorRequest, Outcome, SecretScope,
    StageTarget, StepRequest,
};
use crate::expr::{Deferred, ParamValue, Resolution};
use crate::lifecycle::{Command, PipelineState, WorkResult};
use crate::plan::Plan;

/// A finished piece of work: which pipeline, which execution, how it ended.
pub(crate) type Done = (String, ExecutionKey, WorkResult);

fn failed(reason: impl Into<String>) -> WorkResult {
    WorkResult::Done(Outcome::Failed {
        reason: reason.into(),
    })
}

/// Fetches the secrets `value` needs and resolves every deferred value.
async fn resolve(
    backends: &Backends,
    pipeline: &str,
    stage: &str,
    value: &ParamValue,
    outputs: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
) -> Result<crate::expr::FinalValue, String> {
    let mut resolution = Resolution {
        outputs,
        ..Resolution::default()
    };
    for deferred in value.deferred() {
        match deferred {
            Deferred::Secret(name) if !resolution.secrets.contains_key(name) => {
                if let Some(v) = backends
                    .secrets
                    .secret(&SecretScope::Organization, name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    resolution.secrets.insert(name.clone(), v);
                }
            }
            Deferred::StageSecret(name) if !resolution.stage_secrets.contains_key(name) => {
                let scope = SecretScope::Stage {
                    pipeline: pipeline.to_owned(),
                    stage: stage.to_owned(),
                };
                if let Some(v) = backends
                    .secrets
                    .secret(&scope, name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    resolution.stage_secrets.insert(name.clone(), v);
                }
            }
            _ => {}
        }
    }
    resolution.resolve(value).map_err(|e| e.to_string())
}

/// The future that carries out `command` for `pipeline`, given the machine's state when the
/// command was issued; it ends with the work's result (`None` for cancellations, whose effect
/// shows in the cancelled execution's own result).
///
/// With `stopping`, a build or step is told to stop as soon as it is started (or re-attached): a
/// stage-deployment that is `CANCELLING` while its work is re-attached, by a new lease holder
/// or after a restart, may never have received the cancel (L12).
pub(crate) fn start(
    backends: &Backends,
    pipeline: &str,
    state: &PipelineState,
    command: Command,
    stopping: bool,
) -> Option<BoxFuture<'static, Option<Done>>> {
    if let Command::Cancel { key } = command {
        return Some(Box::pin(stop(backends, key).map(|()| None)));
    }
    let backends = backends.clone();
    let key = command.key();
    let span = tracing::info_span!(
        "work",
        pipeline = %key.pipeline,
        revision = key.revision,
        stage = %key.stage,
        attempt = key.attempt,
        step = %key.step
    );
    let future = work(backends, pipeline.to_owned(), state, command, stopping)?;
    Some(Box::pin(tracing::Instrument::instrument(
        async move { Some(future.await) },
        span,
    )))
}

/// The future that tells the execution `key` to stop (whoever started it).
pub(crate) fn stop(backends: &Backends, key: ExecutionKey) -> BoxFuture<'static, ()> {
    let backends = backends.clone();
    Box::pin(async move {
        if let Err(e) = cancel(&backends, &key).await {
            tracing::warn!(execution = %key, error = %e, "cancel failed");
        }
    })
}

async fn cancel(backends: &Backends, key: &ExecutionKey) -> crate::Result<()> {
    if key.step.starts_with("build:") {
        return backends.builds.cancel(key).await;
    }
    for runner in backends.steps.all() {
        runner.cancel(key).await?;
    }
    Ok(())
}

fn target(plan: &Plan, stage: &str, pipeline: &str) -> Option<StageTarget> {
    let s = plan.stages.iter().find(|s| s.name == stage)?;
    Some(StageTarget {
        pipeline: pipeline.to_owned(),
        stage: stage.to_owned(),
        account_id: s.account_id.clone(),
        region: s.region.clone(),
    })
}

fn work(
    backends: Backends,
    slug: String,
    state: &PipelineState,
    command: Command,
    stopping: bool,
) -> Option<BoxFuture<'static, Done>> {
    if matches!(command, Command::Cancel { .. }) {
        return None;
    }
    let key = command.key().clone();
    let deployment = state.deployments.get(&key.revision)?;
    let plan: Arc<Plan> = deployment.plan().cloned()?;
    let commit = deployment.commit.clone();
    let stage_plan = plan.stages.iter().find(|s| s.name == key.stage)?.clone();
    let target = target(&plan, &key.stage, &slug)?;
    let outputs: BTreeMap<String, BTreeMap<String, serde_json::Value>> = state
        .run(key.revision, &key.stage)
        .map(|run| {
            stage_plan
                .steps
                .iter()
                .zip(&run.steps)
                .filter(|(_, s)| !s.outputs.is_empty())
                .map(|(p, s)| (p.key().to_owned(), s.outputs.clone()))
                .collect()
        })
        .unwrap_or_default();
    Some(Box::pin(async move {
        let result = match command {
            Command::Build { artifact, .. } => {
                let Some(a) = plan.artifacts.iter().find(|a| a.id == artifact) else {
                    return (slug, key, failed(format!("unknown artifact `{artifact}`")));
                };
                let params = if a.per_stage {
                    stage_plan.builds.get(&artifact).cloned()
                } else {
                    a.build_params.clone()
                };
                match resolve(
                    &backends,
                    &slug,
                    &key.stage,
                    &params.unwrap_or(ParamValue::Null),
                    BTreeMap::new(),
                )
                .await
                {
                    Err(e) => failed(e),
                    Ok(params) => {
                        let request = BuildRequest {
                            key: key.clone(),
                            artifact,
                            artifact_type: a.artifact_type,
                            commit,
                            params,
                        };
                        let stop = stopping.then(|| backends.builds.cancel(&key));
                        run(
                            backends.builds.start(request),
                            stop,
                            backends.builds.wait(&key),
                        )
                        .await
                    }
                }
            }
            Command::ValidateResources { .. } => {
                let artifacts: Vec<_> = plan
                    .artifacts
                    .iter()
                    .map(|a| (a.id.clone(), a.artifact_type))
                    .collect();
                match backends.resources.validate(&target, &artifacts).await {
                    Ok(missing) if missing.is_empty() => WorkResult::Done(Outcome::Succeeded {
                        outputs: BTreeMap::new(),
                    }),
                    Ok(missing) => failed(format!("missing resources: {}", missing.join(", "))),
                    Err(e) => failed(e.to_string()),
                }
            }
            Command::Mirror { .. } => {
                let mut result = WorkResult::Done(Outcome::Succeeded {
                    outputs: BTreeMap::new(),
                });
                for a in &plan.artifacts {
                    let Some(destination) = stage_plan.artifacts.get(&a.id).cloned() else {
                        continue;
                    };
                    let request = MirrorRequest {
                        target: target.clone(),
                        artifact: a.id.clone(),
                        artifact_type: a.artifact_type,
                        build_commit: a.build_commit.clone(),
                        destination,
                    };
                    if let Err(e) = backends.mirror.mirror(&request).await {
                        result = failed(format!("mirroring `{}` failed: {e}", a.id));
                        break;
                    }
                }
                result
            }
            Command::PlanInfra { step, .. } | Command::ApplyInfra { step, .. } => {
                let apply = matches!(command, Command::ApplyInfra { .. });
                let step_plan = &stage_plan.steps[step];
                let field = |name: &str| step_plan.params.get(name).cloned();
                let source = match field("source") {
                    Some(ParamValue::String(s)) => s.to_string(),
                    _ => String::new(),
                };
                let variables = field("variables").unwrap_or(ParamValue::Map(Default::default()));
                match resolve(&backends, &slug, &key.stage, &variables, outputs).await {
                    Err(e) => failed(e),
                    Ok(variables) => {
                        let request = InfraRequest {
                            key: key.clone(),
                            target,
                            source,
                            commit,
                            variables,
                        };
                        match backends.infra.plan(&request).await {
                            Err(e) => failed(e.to_string()),
                            Ok(p) if !apply => WorkResult::Planned(p),
                            Ok(p) => match backends.infra.apply(&request, &p).await {
                                Ok(outputs) => WorkResult::Done(Outcome::Succeeded { outputs }),
                                Err(e) => failed(e.to_string()),
                            },
                        }
                    }
                }
            }
            Command::RunStep { step, approved, .. } => {
                let step_plan = &stage_plan.steps[step];
                match backends.steps.get(&step_plan.step_type) {
                    Err(e) => failed(e.to_string()),
                    Ok(runner) => {
                        match resolve(&backends, &slug, &key.stage, &step_plan.params, outputs)
                            .await
                        {
                            Err(e) => failed(e),
                            Ok(params) => {
                                let request = StepRequest {
                                    key: key.clone(),
                                    step_type: step_plan.step_type.clone(),
                                    params,
                                    approved,
                                };
                                let stop = stopping.then(|| runner.cancel(&key));
                                run(runner.start(request), stop, runner.wait(&key)).await
                            }
                        }
                    }
                }
            }
            Command::Cancel { .. } => failed("cancel"),
        };
        (slug, key, result)
    }))
}

/// Starts (or re-attaches to) an execution, stops it at once when asked, and waits for its
/// outcome.
async fn run(
    start: impl std::future::Future<Output = crate::Result<()>>,
    stop: Option<impl std::future::Future<Output = crate::Result<()>>>,
    wait: impl std::future::Future<Output = crate::Result<Outcome>>,
) -> WorkResult {
    if let Err(e) = start.await {
        return failed(e.to_string());
    }
    if let Some(stop) = stop
        && let Err(e) = stop.await
    {
        tracing::warn!(error = %e, "cancel after re-attaching failed");
    }
    match wait.await {
        Ok(outcome) => WorkResult::Done(outcome),
        Err(e) => failed(e.to_string()),
    }
}

//! Turning the machine's commands into futures over the backends. A command carries its whole
//! request; this only fetches the secrets it needs, resolves the deferred values and calls the
//! backend. It never reads the machine's state or the plan.

use std::collections::BTreeMap;

use futures::future::{BoxFuture, FutureExt};

use super::backoff::Backoff;

use crate::backend::{
    Backends, BuildRequest, ExecutionKey, InfraRequest, Outcome, Runner, SecretScope, StepRequest,
    Unit,
};
use crate::expr::{Deferred, FinalValue, ParamValue, Resolution};
use crate::lifecycle::{
    BuildWork, Command, InfraWork, MirrorWork, StepOutputs, StepWork, ValidateWork, WorkResult,
};

/// A finished piece of work: which pipeline, which execution, how it ended.
pub(crate) type Done = (String, ExecutionKey, WorkResult);

fn failed(reason: impl Into<String>) -> WorkResult {
    WorkResult::Done(Outcome::Failed {
        reason: reason.into(),
    })
}

fn succeeded() -> WorkResult {
    WorkResult::Done(Outcome::Succeeded {
        outputs: BTreeMap::new(),
    })
}

/// Fetches the secrets `value` needs and resolves every deferred value (step outputs from
/// `outputs`).
async fn resolve(
    backends: &Backends,
    key: &ExecutionKey,
    value: &ParamValue,
    outputs: StepOutputs,
) -> Result<FinalValue, String> {
    let mut resolution = Resolution {
        outputs,
        ..Resolution::default()
    };
    for deferred in value.deferred() {
        match deferred {
            Deferred::Secret(name) if !resolution.secrets.contains_key(name) => {
                let scope = SecretScope::Organization;
                if let Some(v) = retrying(backends, "read a secret", || {
                    backends.secrets.secret(&scope, name)
                })
                .await
                .map_err(|e| e.to_string())?
                {
                    resolution.secrets.insert(name.clone(), v);
                }
            }
            Deferred::StageSecret(name) if !resolution.stage_secrets.contains_key(name) => {
                let scope = SecretScope::Stage {
                    pipeline: key.pipeline.clone(),
                    stage: key.stage.clone(),
                };
                if let Some(v) = retrying(backends, "read a secret", || {
                    backends.secrets.secret(&scope, name)
                })
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

/// The future that carries out `command` for `pipeline`; it ends with the work's result
/// (`None` for cancellations, whose effect shows in the cancelled execution's own result).
///
/// With `stopping`, a build or step is told to stop as soon as it is started (or re-attached): a
/// stage-deployment that is `CANCELLING` while its work is re-attached, by a new lease holder
/// or after a restart, may never have received the cancel (L12).
pub(crate) fn start(
    backends: &Backends,
    pipeline: &str,
    command: Command,
    stopping: bool,
) -> BoxFuture<'static, Option<Done>> {
    if let Command::Cancel { key } = command {
        return Box::pin(stop(backends, key).map(|()| None));
    }
    let backends = backends.clone();
    let slug = pipeline.to_owned();
    let key = command.key().clone();
    let span = tracing::info_span!(
        "work",
        pipeline = %key.pipeline,
        revision = key.revision,
        stage = %key.stage,
        attempt = key.attempt,
        step = %key.unit
    );
    Box::pin(tracing::Instrument::instrument(
        async move {
            let result = execute(&backends, command, stopping).await;
            Some((slug, key, result))
        },
        span,
    ))
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
    if let Unit::Build { .. } = key.unit {
        return backends.builds.cancel(key).await;
    }
    for runner in backends.steps.all() {
        runner.cancel(key).await?;
    }
    Ok(())
}

async fn execute(backends: &Backends, command: Command, stopping: bool) -> WorkResult {
    match command {
        Command::Build(work) => build(backends, work, stopping).await,
        Command::ValidateResources(work) => validate(backends, work).await,
        Command::Mirror(work) => mirror(backends, work).await,
        Command::PlanInfra(work) => infra(backends, work, false).await,
        Command::ApplyInfra(work) => infra(backends, work, true).await,
        Command::RunStep(work) => step(backends, work, stopping).await,
        Command::Cancel { .. } => failed("cancel"),
    }
}

async fn build(backends: &Backends, work: BuildWork, stopping: bool) -> WorkResult {
    let params = match resolve(backends, &work.key, &work.params, StepOutputs::new()).await {
        Ok(params) => params,
        Err(e) => return failed(e),
    };
    let key = work.key;
    let request = BuildRequest::new(
        key.clone(),
        work.artifact,
        work.artifact_type,
        work.commit,
        params,
    )
    .with_destination(work.destination);
    run(backends, &*backends.builds, &key, request, stopping).await
}

async fn validate(backends: &Backends, work: ValidateWork) -> WorkResult {
    let validated = retrying(backends, "validate resources", || {
        backends.resources.validate(&work.request)
    })
    .await;
    match validated {
        Ok(missing) if missing.is_empty() => succeeded(),
        Ok(missing) => failed(format!("missing resources: {}", missing.join(", "))),
        Err(e) => failed(e.to_string()),
    }
}

async fn mirror(backends: &Backends, work: MirrorWork) -> WorkResult {
    for request in &work.artifacts {
        if let Err(e) = retrying(backends, "mirror", || backends.mirror.mirror(request)).await {
            return failed(format!("mirroring `{}` failed: {e}", request.artifact));
        }
    }
    succeeded()
}

async fn infra(backends: &Backends, work: InfraWork, apply: bool) -> WorkResult {
    let variables = match resolve(backends, &work.key, &work.variables, work.outputs).await {
        Ok(variables) => variables,
        Err(e) => return failed(e),
    };
    let request = InfraRequest::new(work.key, work.target, work.source, work.commit, variables)
        .with_state(work.state);
    match retrying(backends, "plan", || backends.infra.plan(&request)).await {
        Err(e) => failed(e.to_string()),
        Ok(p) if !apply => WorkResult::Planned(p),
        Ok(p) => match retrying(backends, "apply", || backends.infra.apply(&request, &p)).await {
            Ok(outputs) => WorkResult::Done(Outcome::Succeeded { outputs }),
            Err(e) => failed(e.to_string()),
        },
    }
}

async fn step(backends: &Backends, work: StepWork, stopping: bool) -> WorkResult {
    let runner = match backends.steps.get(&work.step_type) {
        Ok(runner) => runner,
        Err(e) => return failed(e.to_string()),
    };
    let params = match resolve(backends, &work.key, &work.params, work.outputs).await {
        Ok(params) => params,
        Err(e) => return failed(e),
    };
    if let Some(polling) = &work.polling
        && !stopping
    {
        // The step asked to be polled later: wait, then start the poll (L20: a re-attach
        // after a restart waits again, which only delays the poll).
        let now = backends.clock.now();
        let due = now.checked_add(polling.delay()).unwrap_or(now);
        backends.clock.sleep_until(due).await;
    }
    let key = work.key;
    let request = StepRequest::new(key.clone(), work.step_type, params)
        .approved(work.approved)
        .with_commit(work.commit)
        .with_target(work.target)
        .with_polling(work.polling);
    run(backends, &**runner, &key, request, stopping).await
}

/// Calls `call` until it answers something other than a transient error
/// ([`Error::Unavailable`](crate::Error::Unavailable)), waiting with backoff on the backends'
/// clock in between: a backend that is briefly down delays work, it never fails it.
async fn retrying<T, F, Fut>(backends: &Backends, what: &str, mut call: F) -> crate::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    let mut backoff = Backoff::default();
    loop {
        match call().await {
            Err(e) if e.is_transient() => {
                let due = backoff.failed(backends.clock.now(), e.retry_after());
                tracing::warn!(error = %e, what, retry_at = %due, "transient failure; will retry");
                backends.clock.sleep_until(due).await;
            }
            result => return result,
        }
    }
}

/// Starts (or re-attaches to) an execution, stops it at once when asked, and waits for its
/// outcome. A transient failure of the runner is retried: `start` again (a re-attach, by the
/// runner's contract), `wait` again; it never fails the execution.
async fn run<R: Clone + Send + Sync + 'static>(
    backends: &Backends,
    runner: &dyn Runner<R>,
    key: &ExecutionKey,
    request: R,
    stopping: bool,
) -> WorkResult {
    let started = retrying(backends, "start", || runner.start(request.clone())).await;
    if let Err(e) = started {
        return failed(e.to_string());
    }
    if stopping && let Err(e) = runner.cancel(key).await {
        tracing::warn!(error = %e, "cancel after re-attaching failed");
    }
    match retrying(backends, "wait", || runner.wait(key)).await {
        Ok(outcome) => WorkResult::Done(outcome),
        Err(e) => failed(e.to_string()),
    }
}

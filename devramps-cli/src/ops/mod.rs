//! `devramps status`, `devramps logs` and the operations (approve, reject, retry, cancel,
//! rollback, roll-forward, stop-promotions, resume-promotions, unblock, bypass): they act on the
//! same store as the engine of `devramps run`, through an engine instance that only records
//! (`EngineConfig::recording_only`), so the instance that drives sees them and goes on.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use devramps_core::Error;
use devramps_core::engine::{Engine, EngineConfig};
use devramps_core::lifecycle::{Actor, Control, ControlAction, Decide, Operate, PipelineState};

use crate::output::{Format, Status, usage_error};
use crate::store_url;

mod show;

pub(crate) use show::{logs, status};

/// Where the pipeline's state is: the repository, the pipeline, the store.
#[derive(Args, Debug, Clone)]
pub(crate) struct Where {
    /// The git repository whose `.devramps/state/` holds the default store.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) repo: PathBuf,
    /// The pipeline's slug (default: the only pipeline in the store).
    #[arg(long, value_name = "SLUG")]
    pub(crate) pipeline: Option<String>,
    /// The store: `sqlite:PATH` or the local store under `.devramps/state/` (default).
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
}

/// Who acts and why.
#[derive(Args, Debug, Clone)]
pub(crate) struct Who {
    /// The actor recorded (default: the OS user name, as `user:NAME`).
    #[arg(long, value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Why, recorded with the operation.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
}

/// Arguments of `devramps status`.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    /// Text for people, or JSON `{slug, stages, deployments, approvals}`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

/// Arguments of `devramps logs`.
#[derive(Args, Debug)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    /// The stage.
    #[arg(long)]
    pub(crate) stage: String,
    /// The step, by id or name; `build:<artifact>` for the build of an artifact the stage
    /// started.
    #[arg(long)]
    pub(crate) step: String,
    /// The revision (default: the newest that ran the step in the stage).
    #[arg(long)]
    pub(crate) revision: Option<u64>,
}

/// An operation on a stage.
#[derive(Subcommand, Debug)]
pub(crate) enum Operation {
    /// Approve a step waiting for a person (L16).
    Approve(DecideArgs),
    /// Reject a step waiting for a person (L16).
    Reject(DecideArgs),
    /// Retry a failed, timed-out or cancelled stage-deployment (L11).
    Retry(StageArgs),
    /// Cancel the stage-deployment in progress (L12).
    Cancel(StageArgs),
    /// Roll a stage back to an earlier revision (L13).
    Rollback(ToArgs),
    /// Roll a stage forward to a newer revision (L14).
    RollForward(ToArgs),
    /// Stop promotions into a stage (L9).
    StopPromotions(ControlArgs),
    /// Resume promotions into a stage (L9).
    ResumePromotions(ControlArgs),
    /// Remove the blocker a rollback left on a stage (L9).
    Unblock(ControlArgs),
    /// Let one queued revision start once despite blockers and the window (L9).
    Bypass(BypassArgs),
}

/// `approve` / `reject`.
#[derive(Args, Debug)]
pub(crate) struct DecideArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    who: Who,
    /// The stage.
    #[arg(long)]
    stage: String,
    /// The step, by id or name.
    #[arg(long)]
    step: String,
    /// The revision (default: the one whose step waits in the stage).
    #[arg(long)]
    revision: Option<u64>,
}

/// `retry` / `cancel`.
#[derive(Args, Debug)]
pub(crate) struct StageArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    who: Who,
    /// The stage.
    #[arg(long)]
    stage: String,
    /// The revision (default: the one in progress for cancel, the newest that ended badly for
    /// retry).
    #[arg(long)]
    revision: Option<u64>,
}

/// `rollback` / `roll-forward`.
#[derive(Args, Debug)]
pub(crate) struct ToArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    who: Who,
    /// The stage.
    #[arg(long)]
    stage: String,
    /// The target revision.
    #[arg(long, value_name = "REVISION")]
    to: u64,
}

/// `stop-promotions` / `resume-promotions` / `unblock`.
#[derive(Args, Debug)]
pub(crate) struct ControlArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    who: Who,
    /// The stage.
    #[arg(long)]
    stage: String,
}

/// `bypass`.
#[derive(Args, Debug)]
pub(crate) struct BypassArgs {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    who: Who,
    /// The stage.
    #[arg(long)]
    stage: String,
    /// The queued revision to let through.
    #[arg(long)]
    revision: u64,
}

/// An engine instance over the store of `at` that records without driving, and the slug.
struct Session {
    engine: Engine,
    slug: String,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    fn open(at: &Where) -> Result<Session, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let repo = Arc::new(crate::plan::open_repo(&at.repo)?);
        let state_dir = crate::local::state_dir(&repo);
        let store = store_url::parse(at.store.as_deref(), &state_dir)?;
        if store == store_url::StoreUrl::Memory {
            return Err(
                "`memory:` holds nothing outside the process that made it\n  help: \
                        use the store `devramps run` used (the default, or --store sqlite:PATH)"
                    .to_owned(),
            );
        }
        if let store_url::StoreUrl::Sqlite(path) = &store
            && !path.exists()
        {
            return Err(format!(
                "no store at `{}`: nothing was deployed from this repository yet\n  help: \
                 `devramps run` creates it; pass --store if it used another",
                path.display()
            ));
        }
        let local = crate::local::open(&repo, &store, &[])?;
        let config = EngineConfig::new(format!("cli-{}", std::process::id())).recording_only();
        let (engine, driver) = Engine::new(local.backends.clone(), config);
        let _guard = runtime.enter();
        tokio::spawn(driver.run());
        let slug = match &at.pipeline {
            Some(slug) => slug.clone(),
            None => {
                let streams = runtime
                    .block_on(local.backends.store.streams())
                    .map_err(|e| format!("cannot read the store: {e}"))?;
                match streams.as_slice() {
                    [one] => one.clone(),
                    [] => return Err("the store has no pipeline yet".to_owned()),
                    many => {
                        return Err(format!(
                            "the store has {} pipelines: {}\n  help: choose one with --pipeline \
                             SLUG",
                            many.len(),
                            many.join(", ")
                        ));
                    }
                }
            }
        };
        Ok(Session {
            engine,
            slug,
            runtime,
        })
    }

    fn state(&self) -> Result<PipelineState, String> {
        self.runtime
            .block_on(self.engine.state(&self.slug))
            .map_err(|e| format!("cannot read pipeline `{}`: {e}", self.slug))
    }
}

fn actor(who: &Who) -> Actor {
    let name = who.actor.clone().unwrap_or_else(os_user);
    Actor::User(name.strip_prefix("user:").unwrap_or(&name).to_owned())
}

/// The OS user's name: `$USER`, `$LOGNAME`, else what `id -un` says, else `unknown`.
fn os_user() -> String {
    let from_env = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()));
    from_env
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            let name = String::from_utf8(out.stdout).ok()?.trim().to_owned();
            (out.status.success() && !name.is_empty()).then_some(name)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs an operation.
pub(crate) fn operate(op: &Operation) -> Status {
    match try_operate(op) {
        Ok(status) => status,
        Err(message) => {
            usage_error(&message);
            Status::Usage
        }
    }
}

fn try_operate(op: &Operation) -> Result<Status, String> {
    let at = match op {
        Operation::Approve(a) | Operation::Reject(a) => &a.at,
        Operation::Retry(a) | Operation::Cancel(a) => &a.at,
        Operation::Rollback(a) | Operation::RollForward(a) => &a.at,
        Operation::StopPromotions(a) | Operation::ResumePromotions(a) | Operation::Unblock(a) => {
            &a.at
        }
        Operation::Bypass(a) => &a.at,
    };
    let session = Session::open(at)?;
    let (engine, slug) = (&session.engine, session.slug.as_str());
    let result = match op {
        Operation::Approve(a) | Operation::Reject(a) => {
            let state = session.state()?;
            let revision = match a.revision {
                Some(r) => r,
                None => waiting_revision(&state, &a.stage, &a.step)?,
            };
            let mut decide = Decide::new(revision, &a.stage, &a.step, actor(&a.who));
            if let Some(reason) = &a.who.reason {
                decide = decide.with_comment(reason);
            }
            if matches!(op, Operation::Approve(_)) {
                session.runtime.block_on(engine.approve(slug, decide))
            } else {
                session.runtime.block_on(engine.reject(slug, decide))
            }
        }
        Operation::Retry(a) | Operation::Cancel(a) => {
            let retry = matches!(op, Operation::Retry(_));
            let state = session.state()?;
            let revision = match a.revision {
                Some(r) => r,
                None => stage_revision(&state, &a.stage, retry)?,
            };
            let o = operation(revision, &a.stage, &a.who);
            if retry {
                session.runtime.block_on(engine.retry(slug, o))
            } else {
                session.runtime.block_on(engine.cancel(slug, o))
            }
        }
        Operation::Rollback(a) => {
            let o = operation(a.to, &a.stage, &a.who);
            session.runtime.block_on(engine.rollback(slug, o))
        }
        Operation::RollForward(a) => {
            let o = operation(a.to, &a.stage, &a.who);
            session.runtime.block_on(engine.roll_forward(slug, o))
        }
        Operation::StopPromotions(a) | Operation::ResumePromotions(a) | Operation::Unblock(a) => {
            let action = match op {
                Operation::StopPromotions(_) => ControlAction::StopPromotions,
                Operation::ResumePromotions(_) => ControlAction::ResumePromotions,
                _ => ControlAction::Unblock,
            };
            let c = control(&a.stage, action, &a.who);
            session.runtime.block_on(engine.control(slug, c))
        }
        Operation::Bypass(a) => {
            let action = ControlAction::Bypass {
                revision: a.revision,
            };
            let c = control(&a.stage, action, &a.who);
            session.runtime.block_on(engine.control(slug, c))
        }
    };
    let _ = session.runtime.block_on(engine.stop());
    match result {
        Ok(records) => {
            for record in &records {
                if let Some(line) = devramps_core::lifecycle::describe(record) {
                    println!("{line}");
                }
            }
            Ok(Status::Success)
        }
        Err(Error::Refused {
            operation,
            rule,
            reason,
        }) => {
            eprintln!("refused: {operation} breaks {rule}: {reason}");
            Ok(Status::Invalid)
        }
        Err(e) => Err(format!("the operation failed: {e}")),
    }
}

fn operation(revision: u64, stage: &str, who: &Who) -> Operate {
    let o = Operate::new(revision, stage, actor(who));
    match &who.reason {
        Some(reason) => o.with_reason(reason),
        None => o,
    }
}

fn control(stage: &str, action: ControlAction, who: &Who) -> Control {
    let c = Control::new(stage, action, actor(who));
    match &who.reason {
        Some(reason) => c.with_reason(reason),
        None => c,
    }
}

/// The revision whose `step` waits for a person in `stage`.
fn waiting_revision(state: &PipelineState, stage: &str, step: &str) -> Result<u64, String> {
    devramps_sim::waiting_revision(state, stage, step).map_err(|e| {
        format!("{e}\n  help: `devramps status` shows what waits; name it with --revision N")
    })
}

/// The revision in progress in `stage` (cancel), or the newest that ended badly there (retry).
fn stage_revision(state: &PipelineState, stage: &str, retry: bool) -> Result<u64, String> {
    devramps_sim::stage_revision(state, stage, retry).map_err(|e| format!("{e} with --revision N"))
}

/// A step waiting for a person.
pub(crate) use devramps_sim::ApprovalReport as Approval;

fn approvals(state: &PipelineState) -> Vec<Approval> {
    devramps_sim::waiting_approvals(state)
}

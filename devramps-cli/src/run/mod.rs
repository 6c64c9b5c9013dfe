//! `devramps run`: deploys a commit of a local git repository for real, on this machine, with
//! the durable local store, the real clock and the process runners (`cli.md`).

mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use devramps_core::backend::{Clock, SourceRepository};
use devramps_core::engine::{Engine, EngineConfig, NotifyingObserver, PushRequest};
use devramps_core::lifecycle::{Event, PipelineState, StageState};
use devramps_core::pipeline::{PIPELINE_DIR, PIPELINE_FILE, PipelineDefinition};
use devramps_git::GitRepository;
use devramps_local::notify::{SlackNotifier, spawn_notifications};

use crate::output::{Format, Status, emit, on_runtime};
use crate::store_url;

/// The long description of `devramps run` (`--help`).
pub(crate) const LONG_ABOUT: &str = "Deploy a commit of a local git repository for real, on \
        this machine, as if it had been pushed to --branch.\n\n\
        The engine runs here with the durable local store (default \
        `.devramps/state/devramps.sqlite` of the repository; --store sqlite:PATH or memory:), \
        the real clock and the real runners: CUSTOM:* steps from the step registries named by \
        --step-registry (a directory whose package.json has a `start-step-registry` script \
        speaking the DevRamps step protocol), DEVRAMPS:APPROVAL:TEST test gates in a checkout \
        of the commit, bakes, artifact builds and Terraform. Bundles are built in a clean \
        export of the commit and kept, content-addressed, under `.devramps/state/artifacts/`, \
        where mirroring copies them into each stage's bucket; images are built with docker, \
        podman or buildah ($DEVRAMPS_DOCKER_TOOL) and pushed to $DEVRAMPS_REGISTRY (a registry \
        standing for every ECR registry), but mirroring images needs the AWS backends. \
        Terraform steps run $DEVRAMPS_TERRAFORM (default `terraform` on PATH; `tofu` works), \
        with a local state file under `.devramps/state/terraform/state/` (the organization's \
        state bucket with --store s3://); sensitive outputs are shown as (sensitive). The \
        other built-in steps (ECS, EKS, Lambda, S3) need the AWS backends and fail with a \
        message that says so. \
        Secrets come from the environment: secret(\"NAME\") is DEVRAMPS_SECRET_NAME, \
        stage_secret(\"NAME\") in stage prod is DEVRAMPS_STAGE_SECRET_PROD_NAME.\n\n\
        Each stage and step is shown as it changes, with the step logs; a step waiting for a \
        person is shown with the `devramps approve` command that answers it from another \
        terminal, and run keeps waiting. Ctrl-C stops waiting and leaves the deployment as it \
        is (step processes keep running): run the same command again to resume the same \
        revision.\n\n\
        It ends when every stage of the revision has ended (or will never start), or when \
        synthesis failed. --format json prints the report of `devramps simulate` for the \
        pipeline on stdout at the end (the live view then goes to stderr).";

/// The exit codes and the end (`devramps run --help`).
pub(crate) const AFTER_HELP: &str = "Exit codes: 0 synthesis succeeded and every stage that \
        started succeeded; 1 otherwise (or stopped with Ctrl-C before the end); 2 usage error \
        (no repository, unknown commit or pipeline, a store that cannot be opened).";

/// Arguments of `devramps run`.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The git repository (default: the current directory).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) repo: PathBuf,
    /// The pipeline's slug (default: the only pipeline at the commit).
    #[arg(long, value_name = "SLUG")]
    pub(crate) pipeline: Option<String>,
    /// The commit to deploy.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    pub(crate) commit: String,
    /// The branch it is deployed as pushed to (default: the pipeline's tracked branch).
    #[arg(long, value_name = "NAME")]
    pub(crate) branch: Option<String>,
    /// A step registry for CUSTOM:* steps (repeatable).
    #[arg(long = "step-registry", value_name = "DIR")]
    pub(crate) step_registry: Vec<PathBuf>,
    /// Where the event log and leases live: `sqlite:PATH`, `memory:` (default: the local
    /// store under `.devramps/state/`).
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Text for people (live), or the JSON report at the end.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

/// Runs `devramps run`.
pub(crate) fn run(args: &RunArgs) -> Status {
    on_runtime(deploy(args))
}

/// What `run` deploys: the repository, the commit, the pipeline and the branch.
pub(crate) struct Target {
    /// The repository.
    pub(crate) repo: Arc<GitRepository>,
    /// The full commit id.
    pub(crate) commit: String,
    /// The pipeline's slug.
    pub(crate) slug: String,
    /// The branch.
    pub(crate) branch: String,
}

/// Resolves the repository, commit, pipeline and branch of `args`.
async fn target(args: &RunArgs) -> Result<Target, String> {
    let repo = Arc::new(crate::plan::open_repo(&args.repo)?);
    let commit = repo
        .resolve(&args.commit)
        .await
        .map_err(|e| crate::plan::revision_error(&repo, "--commit", &args.commit, &e))?;
    let slug = crate::plan::choose_pipeline(&repo, &commit, args.pipeline.as_deref()).await?;
    let branch = match &args.branch {
        Some(branch) => branch.clone(),
        None => {
            let path = format!("/{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}");
            let text = repo
                .read_file(&commit, &path)
                .await
                .ok()
                .flatten()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            // An invalid definition fails at synthesis, where the log says why.
            text.and_then(|t| devramps_core::plan::parse(&t).ok())
                .map_or_else(
                    || "main".to_owned(),
                    |d: PipelineDefinition| d.tracked_branch().to_owned(),
                )
        }
    };
    Ok(Target {
        repo,
        commit,
        slug,
        branch,
    })
}

async fn deploy(args: &RunArgs) -> Result<Status, String> {
    let target = target(args).await?;
    let state_dir = crate::local::state_dir(&target.repo);
    let store = store_url::parse(args.store.as_deref(), &state_dir)?;
    let local = crate::local::open(&target.repo, &store, &args.step_registry)?;
    let clock = local.backends.clock.clone();
    let mut config = EngineConfig::new(format!("run-{}", std::process::id()))
        .with_poll_interval(Some(Duration::from_millis(500)));
    // Slack, when `DEVRAMPS_SLACK_WEBHOOK_URL` is set: each record this process appends is
    // notified at most once, after it is durable.
    let slack = SlackNotifier::from_env().map_err(|e| format!("notifications: {e}"))?;
    let notifying = slack.map(|slack| {
        let (observer, appends) = NotifyingObserver::new(1024);
        config = config.clone().with_observer(Arc::new(observer));
        spawn_notifications(appends, local.backends.store.clone(), Arc::new(slack))
    });
    let (engine, driver) = Engine::new(local.backends.clone(), config);
    let driving = tokio::spawn(driver.run());

    let mut view = view::View::new(args.format, &target, &args.store, &args.repo);
    // The delivery names the commit and branch, so running the same command again (after a
    // kill or Ctrl-C) is a duplicate delivery (L2) and resumes the same revision.
    let delivery = format!("run:{}:{}", target.branch, target.commit);
    let push = PushRequest::new(&target.branch, &target.commit).with_delivery(delivery);
    engine
        .push(&target.slug, push)
        .await
        .map_err(|e| format!("cannot record the push: {e}"))?;
    let revision = revision_of(&engine, &target).await?;
    view.started(revision);

    let mut interrupted = false;
    let state = loop {
        // The state first, then the log: the log read after holds every record the state
        // folded, so the view never ends before it showed what ended the run.
        let state = engine
            .state(&target.slug)
            .await
            .map_err(|e| format!("cannot read the state: {e}"))?;
        let records = engine
            .history(&target.slug)
            .await
            .map_err(|e| format!("cannot read the log: {e}"))?;
        view.update(&engine, &records, &state, revision).await;
        if finished(&state, revision) || driving.is_finished() {
            break state;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => {
                interrupted = true;
                break state;
            }
        }
    };
    let records = engine.history(&target.slug).await.unwrap_or_default();
    view.update(&engine, &records, &state, revision).await;
    let _ = engine.stop().await;
    match driving.await {
        Ok(Err(e)) => return Err(format!("the engine stopped: {e}")),
        Err(e) => return Err(format!("the engine stopped: {e}")),
        Ok(Ok(())) => {}
    }
    if let Some(task) = notifying {
        // The observers went with the driver: the task ends once it delivered what it has.
        if tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
        {
            eprintln!("warning: notifications still being delivered after 30 s were dropped");
        }
    }
    let status = if !interrupted && succeeded(&state, revision) {
        Status::Success
    } else {
        Status::Invalid
    };
    view.finished(&state, revision, interrupted);
    if args.format == Format::Json {
        let report = devramps_sim::log_report(&target.slug, &state, &records, clock.now());
        return Ok(emit(&devramps_sim::to_json(&report), status));
    }
    Ok(status)
}

/// The revision of the pushed commit: the newest deployment of it.
async fn revision_of(engine: &Engine, target: &Target) -> Result<u64, String> {
    let records = engine
        .history(&target.slug)
        .await
        .map_err(|e| format!("cannot read the log: {e}"))?;
    let accepted = records.iter().rev().find_map(|r| match &r.event {
        Event::DeploymentAccepted {
            revision, commit, ..
        } if *commit == target.commit => Some(*revision),
        _ => None,
    });
    if let Some(revision) = accepted {
        return Ok(revision);
    }
    let ignored = records.iter().rev().find_map(|r| match &r.event {
        Event::PushIgnored { commit, reason, .. } if *commit == target.commit => {
            Some(reason.clone())
        }
        _ => None,
    });
    Err(match ignored {
        Some(reason) => format!("the push of {} was not deployed: {reason}", target.commit),
        None => format!("the push of {} was not recorded", target.commit),
    })
}

/// Whether every stage-deployment of `revision` has ended or will never start, or synthesis
/// failed.
pub(crate) fn finished(state: &PipelineState, revision: u64) -> bool {
    let Some(d) = state.deployments.get(&revision) else {
        return true;
    };
    if synthesis_failed(state, revision) {
        return true;
    }
    !d.awaits_approval()
        && !d.stages.is_empty()
        && d.stages
            .iter()
            .all(|run| run.state.is_terminal(run.waiting_for))
}

fn synthesis_failed(state: &PipelineState, revision: u64) -> bool {
    state
        .deployments
        .get(&revision)
        .is_some_and(|d| !d.synthesis_errors.is_empty())
}

/// Whether synthesis succeeded and every stage that started succeeded.
fn succeeded(state: &PipelineState, revision: u64) -> bool {
    let Some(d) = state.deployments.get(&revision) else {
        return false;
    };
    !synthesis_failed(state, revision)
        && d.stages
            .iter()
            .filter(|run| !matches!(run.state, StageState::NotStarted | StageState::Skipped))
            .all(|run| run.state == StageState::Succeeded)
}

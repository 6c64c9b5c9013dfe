//! `devramps serve`: the engine with its HTTP front door (`devramps-serve`), and
//! `devramps token new` (`cli.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use devramps_core::engine::{Engine, EngineConfig, NotifyingObserver};
use devramps_github::CommitStatuses;
use devramps_github::webhook::WebhookSecrets;
use devramps_local::notify::{SlackNotifier, spawn_notifications};
use devramps_serve::{Metrics, Role, ServeConfig, Shutdown, Tokens};

use crate::output::{Status, on_runtime, usage_error};
use crate::store_url;

/// The long description of `devramps serve` (`--help`).
pub(crate) const LONG_ABOUT: &str = "Run the engine with its HTTP front door.\n\n\
        The engine drives every pipeline of the store (default: the durable local store under \
        `.devramps/state/` of --repo; --store sqlite:PATH or s3://BUCKET/PREFIX) over the \
        local git repository --repo, with the runners of `devramps run` (--step-registry for \
        CUSTOM:* steps).\n\n\
        --github OWNER/NAME reads the repository through GitHub's REST API instead (the state \
        under `.devramps/state/` of the current directory), ignores webhooks of other \
        repositories, and posts a commit status per stage (`devramps/<pipeline>/<stage>`, \
        linked to --public-url). Credentials from the environment: GITHUB_TOKEN (a personal \
        or fine-grained token with statuses write), or GITHUB_APP_ID + \
        GITHUB_APP_INSTALLATION_ID + GITHUB_APP_PRIVATE_KEY_FILE (a GitHub App; preferred \
        when set); GITHUB_API_URL for GitHub Enterprise (https://HOST/api/v3). Test gates need \
        a local clone: with --github they fail with that reason.\n\n\
        Routes: GET /healthz, GET /readyz, GET /metrics (Prometheus), \
        POST /webhooks/github (signed with a secret of --webhook-secret-file), the API under \
        /api/v1 (its OpenAPI document at /api/v1/openapi.json).\n\n\
        Without --tokens the API answers only on a loopback address, as `admin` named \
        `local`; with it, GET needs a token of any role and operations `operator` or `admin` \
        (`devramps token new` makes one). SIGTERM or SIGINT: stop accepting, finish what is \
        in flight, stop the engine and release its leases, exit 0.";

/// `devramps serve --help`'s end.
pub(crate) const AFTER_HELP: &str = "Examples:\n  \
        devramps serve --repo . --webhook-secret-file secret.txt --step-registry registry/\n  \
        devramps token new --role operator --name alice >> tokens.txt\n  \
        devramps serve --bind 0.0.0.0:8080 --tokens tokens.txt --webhook-secret-file secret.txt\n  \
        GITHUB_TOKEN=ghp_... devramps serve --github acme/shop --webhook-secret-file secret.txt \
        --public-url https://devramps.example.com\n\n\
        Exit codes: 0 stopped by SIGTERM or SIGINT; 1 the engine stopped on an error; 2 usage \
        error (no repository, no or bad GitHub credentials with --github, a store, tokens or \
        secret file that cannot be read, a non-loopback --bind without --tokens).";

/// Arguments of `devramps serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The git repository (default: the current directory).
    #[arg(long, value_name = "DIR", conflicts_with = "github")]
    repo: Option<PathBuf>,
    /// A GitHub repository as the source (OWNER/NAME), read through the REST API with the
    /// credentials of GITHUB_TOKEN or GITHUB_APP_ID + GITHUB_APP_INSTALLATION_ID +
    /// GITHUB_APP_PRIVATE_KEY_FILE (GITHUB_API_URL: another API base).
    #[arg(long, value_name = "OWNER/NAME")]
    github: Option<String>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    bind: SocketAddr,
    /// The server's address as people reach it: the links of the commit statuses posted
    /// with --github (default: `http://` and the bound address).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Where the event log and leases live: `sqlite:PATH`, `s3://BUCKET/PREFIX`, `memory:`
    /// (default: the local store under `.devramps/state/`).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The webhook secrets, one per line (several during a rotation).
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// The API's tokens: `sha256:<hex> <role> <name>` a line.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// A step registry for CUSTOM:* steps (repeatable).
    #[arg(long = "step-registry", value_name = "DIR")]
    step_registry: Vec<PathBuf>,
    /// How long this server's leases last unless renewed, in seconds: after a crash, another
    /// (or the restarted) server takes over the pipelines once they lapse.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    lease_ttl: u64,
}

/// `devramps token ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Print a fresh token (first line) and its line for the tokens file (second line).
    New(TokenNewArgs),
}

/// Arguments of `devramps token new`.
#[derive(Args, Debug)]
pub(crate) struct TokenNewArgs {
    /// viewer, operator or admin.
    #[arg(long, value_parser = ["viewer", "operator", "admin"])]
    role: String,
    /// The caller's name: the actor of its operations.
    #[arg(long)]
    name: String,
}

/// Runs `devramps token ...`.
pub(crate) fn token(command: &TokenCommand) -> Status {
    let TokenCommand::New(args) = command;
    let role = Role::parse(&args.role).unwrap_or(Role::Viewer);
    match devramps_serve::new_token(role, &args.name) {
        Ok((token, line)) => {
            println!("{token}\n{line}");
            eprintln!(
                "the first line is the token (give it to its holder; it is shown once); add the \
                 second to the file given to `devramps serve --tokens`"
            );
            Status::Success
        }
        Err(message) => {
            usage_error(&message);
            Status::Usage
        }
    }
}

/// Runs `devramps serve`.
pub(crate) fn run(args: &ServeArgs) -> Status {
    on_runtime(serve(args))
}

/// Reads the tokens and secrets, checks the bind address.
fn serve_config(args: &ServeArgs, config: ServeConfig) -> Result<ServeConfig, String> {
    let mut config = config;
    match &args.tokens {
        Some(path) => config = config.with_tokens(Tokens::read(path)?),
        None if !args.bind.ip().is_loopback() => {
            return Err(format!(
                "--bind {} is not a loopback address: without --tokens the API answers only \
                 on loopback\n  help: make tokens with `devramps token new` and pass --tokens \
                 FILE, or bind 127.0.0.1",
                args.bind
            ));
        }
        None => {}
    }
    if let Some(path) = &args.webhook_secret_file {
        let text = devramps_sim::files::read_text(path)
            .map_err(|e| format!("--webhook-secret-file: {e}"))?;
        let secrets = WebhookSecrets::from_lines(&text)
            .map_err(|e| format!("--webhook-secret-file `{}`: {e}", path.display()))?;
        config = config.with_webhook_secrets(secrets);
    }
    Ok(config)
}

/// The origin of the commits: a local clone (`--repo`) or GitHub (`--github`, with its client
/// for the commit statuses).
fn origin(
    args: &ServeArgs,
) -> Result<(crate::local::Origin, Option<devramps_github::GitHubClient>), String> {
    match &args.github {
        Some(github) => {
            let credentials = crate::github::credentials(|name| std::env::var(name).ok())?;
            let (client, origin) = crate::github::origin(github, credentials)?;
            Ok((origin, Some(client)))
        }
        None => {
            let repo_dir = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
            let repo = Arc::new(crate::plan::open_repo(&repo_dir)?);
            Ok((crate::local::Origin::git(&repo), None))
        }
    }
}

async fn serve(args: &ServeArgs) -> Result<Status, String> {
    let (origin, github) = origin(args)?;
    let store = store_url::parse(args.store.as_deref(), &origin.state_dir)?;
    let local = crate::local::open_from(&origin, &store, &args.step_registry)?;
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let config = serve_config(
        args,
        ServeConfig::new(&local.backends)
            .with_metrics(metrics.clone())
            .with_shutdown(shutdown.clone())
            .with_repository(args.github.clone()),
    )?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;

    let mut engine_config = EngineConfig::new(format!("serve-{}", std::process::id()))
        .with_poll_interval(Some(Duration::from_millis(500)))
        .with_lease_ttl(Duration::from_secs(args.lease_ttl.max(1)))
        .with_observer(metrics);
    let slack = SlackNotifier::from_env().map_err(|e| format!("notifications: {e}"))?;
    let notifying = slack.map(|slack| {
        let (observer, appends) = NotifyingObserver::new(1024);
        engine_config = engine_config.clone().with_observer(Arc::new(observer));
        spawn_notifications(appends, local.backends.store.clone(), Arc::new(slack))
    });
    // Commit statuses on GitHub: the observer never waits; the poster posts from its task.
    let posting = match (&github, &args.github) {
        (Some(client), Some(repository)) => {
            let public = match &args.public_url {
                Some(url) => url.clone(),
                None => format!("http://{addr}"),
            };
            let (observer, poster) = CommitStatuses::new(client.clone(), repository)
                .and_then(|s| s.with_target_url(&public))
                .map_err(|e| format!("commit statuses (--public-url {public}): {e}"))?
                .channel();
            engine_config = engine_config.with_observer(Arc::new(observer));
            Some(tokio::spawn(poster.run(local.backends.store.clone())))
        }
        _ => None,
    };
    let (engine, driver) = Engine::new(local.backends.clone(), engine_config);
    let mut driving = tokio::spawn(driver.run());
    let app = devramps_serve::router(engine.clone(), config)
        .into_make_service_with_connect_info::<SocketAddr>();
    println!("devramps serve: listening on http://{addr}");

    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.triggered().await })
            .await
    });
    // Until a signal, or until the engine stops by itself (an error).
    let driver_ended = tokio::select! {
        () = signal() => None,
        ended = &mut driving => Some(ended),
    };
    shutdown.trigger();
    let served = server.await;
    let _ = engine.stop().await;
    let driven = match driver_ended {
        Some(ended) => ended,
        None => driving.await,
    };
    // The engine's last handle goes: its observers with it, which ends the poster's queue.
    drop(engine);
    if let Some(task) = notifying
        && tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
    {
        eprintln!("warning: notifications still being delivered after 30 s were dropped");
    }
    if let Some(task) = posting
        && tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
    {
        eprintln!("warning: commit statuses still being posted after 30 s were dropped");
    }
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("the server stopped: {e}")),
        Err(e) => return Err(format!("the server stopped: {e}")),
    }
    match driven {
        Ok(Ok(())) => {
            eprintln!("devramps serve: stopped");
            Ok(Status::Success)
        }
        Ok(Err(e)) => {
            eprintln!("error: the engine stopped: {e}");
            Ok(Status::Invalid)
        }
        Err(e) => {
            eprintln!("error: the engine stopped: {e}");
            Ok(Status::Invalid)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => None } } => {}
    }
}

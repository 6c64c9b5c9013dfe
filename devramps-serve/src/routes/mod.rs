//! The routes, in one table ([`table`]) that builds the router and that the OpenAPI test
//! compares with the served document.

mod events;
mod health;
mod operations;
mod pipelines;
mod summary;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{MethodRouter, get};
use devramps_core::engine::Engine;

use crate::config::ServeConfig;
use crate::error::{ApiResult, Problem};

pub(crate) use operations::OPERATIONS;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<ServeConfig>,
    /// Per pipeline: the answer of `GET /api/v1/pipelines/{slug}`, kept and brought up to
    /// date with the log ([`summary::Summary`]).
    pub(crate) shown: Arc<tokio::sync::Mutex<std::collections::HashMap<String, summary::Summary>>>,
}

impl AppState {
    /// 404 unless the store has a log for `slug`.
    pub(crate) async fn known(&self, slug: &str) -> ApiResult<()> {
        let last = self
            .config
            .store
            .last_seq(slug)
            .await
            .map_err(Problem::from)?;
        if last == 0 {
            return Err(Problem::not_found(format!("no pipeline `{slug}`")).with("pipeline", slug));
        }
        Ok(())
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (health, the OpenAPI document; webhooks check their signature).
    Public,
    /// A caller with a role ([`crate::auth`]).
    Api,
}

/// One route: its method, its path (axum's and OpenAPI's `{param}` syntax), who may call it
/// and its handler.
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) access: Access,
    pub(crate) handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &str, access: Access, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path: path.to_owned(),
        access,
        handler,
    }
}

/// Every route of the router.
pub(crate) fn table() -> Vec<Route> {
    use Access::{Api, Public};
    let p = "/api/v1/pipelines/{slug}";
    let mut routes = vec![
        route(Method::GET, "/healthz", Public, get(health::healthz)),
        route(Method::GET, "/readyz", Public, get(health::readyz)),
        route(Method::GET, "/metrics", Api, get(health::metrics)),
        route(
            Method::GET,
            "/api/v1/openapi.json",
            Public,
            get(crate::openapi::serve),
        ),
        route(Method::GET, "/api/v1/pipelines", Api, get(pipelines::list)),
        route(Method::GET, p, Api, get(pipelines::show)),
        route(
            Method::GET,
            &format!("{p}/revisions/{{revision}}"),
            Api,
            get(pipelines::revision),
        ),
        route(Method::GET, &format!("{p}/events"), Api, get(events::page)),
        route(
            Method::GET,
            &format!("{p}/events/stream"),
            Api,
            get(events::stream),
        ),
        route(Method::GET, &format!("{p}/logs"), Api, get(pipelines::logs)),
    ];
    for op in OPERATIONS {
        routes.push(route(
            Method::POST,
            &format!("{p}/{}", op.name),
            Api,
            operations::handler(op),
        ));
    }
    routes.extend(crate::webhooks::routes());
    routes
}

/// The router of `table()` over `state`, with authentication on the API routes.
pub(crate) fn build(state: AppState) -> Router {
    let mut public = Router::new();
    let mut api = Router::new();
    for r in table() {
        match r.access {
            Access::Public => public = public.route(&r.path, r.handler),
            Access::Api => api = api.route(&r.path, r.handler),
        }
    }
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::authenticate,
    ));
    public
        .merge(api)
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn fallback(method: Method, uri: Uri) -> Problem {
    Problem::not_found(format!("no route for {method} {}", uri.path())).with("route", false)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not answer {method}", uri.path()),
    )
    .with("route", false)
}

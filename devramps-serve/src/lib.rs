//! The HTTP front door of the devramps engine: an [`axum::Router`] with the operations API
//! under `/api/v1`, a live event stream, GitHub webhooks, health, readiness and Prometheus
//! metrics. `devramps serve` runs it; an embedder nests [`router`] in its own app.
//!
//! ```no_run
//! # async fn example(backends: devramps_core::backend::Backends) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use devramps_core::engine::{Engine, EngineConfig};
//! use devramps_serve::{Metrics, ServeConfig, router};
//!
//! let metrics = Arc::new(Metrics::new());
//! let config = EngineConfig::new("serve-1").with_observer(metrics.clone());
//! let (engine, driver) = Engine::new(backends.clone(), config);
//! tokio::spawn(driver.run());
//! let app = router(engine, ServeConfig::new(&backends).with_metrics(metrics));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The routes, status codes, tokens file and webhook answers follow `shared/spec/cli.md`
//! (`devramps serve`); the OpenAPI document is served at `/api/v1/openapi.json`. Errors are
//! problem details (RFC 9457, [`Problem`]); an operation the lifecycle rules refuse is a 409
//! whose body names the `rule` and the `reason`.
//!
//! Serve with connect info (as above), so that without a tokens file the API can check that
//! callers are on a loopback address.
#![forbid(unsafe_code)]

pub mod auth;
mod config;
mod error;
mod metrics;
mod openapi;
mod routes;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use devramps_core::engine::Engine;

pub use auth::{Caller, Role, Tokens, new_token, token_hash};
pub use config::{DEFAULT_BODY_TIMEOUT, MAX_WEBHOOK_BODY, ServeConfig, Shutdown};
pub use error::{PROBLEM_JSON, Problem};
pub use metrics::Metrics;
pub use openapi::document as openapi_document;

/// The router of the API over `engine` (whose driver the caller runs) and `config`.
pub fn router(engine: Engine, config: ServeConfig) -> Router {
    routes::build(routes::AppState {
        engine,
        config: Arc::new(config),
        shown: Arc::default(),
    })
}

/// The method and path of every route (`{param}` syntax), for checks and documentation.
pub fn routes() -> Vec<(String, String)> {
    routes::table()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect()
}

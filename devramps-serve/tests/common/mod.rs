//! A real server on 127.0.0.1 over in-memory backends with scripted steps, for the API tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_memory::{MemoryHandles, scripted_backends};
use devramps_serve::{Metrics, ServeConfig, Shutdown, router};

/// Two stages; staging bakes 30 minutes (of a manual clock nobody advances), so a deployment
/// waits there until a person approves the bake.
pub const PIPELINE: &str = "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
    pipeline_updates_require_approval: NEVER\n  stages:\n    \
    - { name: staging, account_id: \"111111111111\", region: us-east-1 }\n    \
    - { name: prod, account_id: \"222222222222\", region: us-east-1 }\n  steps:\n    \
    - { name: Bake, id: bake, type: \"DEVRAMPS:APPROVAL:BAKE\", params: { duration_minutes: 30 } }\n  \
    artifacts: {}\n";

/// A commit with a full id, as GitHub sends them.
pub const SHA1: &str = "1111111111111111111111111111111111111111";
/// Its child.
pub const SHA2: &str = "2222222222222222222222222222222222222222";

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub backends: devramps_core::backend::Backends,
    pub engine: Engine,
    pub handles: MemoryHandles,
    pub shutdown: Shutdown,
    pub stop: Shutdown,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts a server; `configure` adjusts its configuration (tokens, secrets, ...).
    pub async fn start(configure: impl FnOnce(ServeConfig) -> ServeConfig) -> Server {
        let (backends, handles) = scripted_backends();
        handles
            .source
            .commit("c1", None, [(".devramps/app/pipeline.yaml", PIPELINE)]);
        handles.source.commit(
            "c2",
            Some("c1"),
            [(".devramps/app/pipeline.yaml", PIPELINE), ("README", "2")],
        );
        handles.source.set_ref("main", "c1");
        // Commits with GitHub-shaped ids, for webhooks.
        handles
            .source
            .commit(SHA1, None, [(".devramps/app/pipeline.yaml", PIPELINE)]);
        handles.source.commit(
            SHA2,
            Some(SHA1),
            [(".devramps/app/pipeline.yaml", PIPELINE), ("README", "2")],
        );
        let metrics = Arc::new(Metrics::new());
        let config = EngineConfig::new("test").with_observer(metrics.clone());
        let (engine, driver) = Engine::new(backends.clone(), config);
        tokio::spawn(driver.run());
        let shutdown = Shutdown::new();
        let config = configure(
            ServeConfig::new(&backends)
                .with_metrics(metrics)
                .with_shutdown(shutdown.clone()),
        );
        let app = router(engine.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        // The server itself stops with `stop`; `shutdown` only tells the router's parts.
        let stop = Shutdown::new();
        let stopping = stop.clone();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopping.triggered().await })
                .await;
        });
        Server {
            addr,
            backends,
            engine,
            handles,
            shutdown,
            stop,
            client: reqwest::Client::new(),
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Pushes commit `commit` to main through the engine.
    pub async fn push(&self, commit: &str) {
        self.engine
            .push("app", PushRequest::new("main", commit))
            .await
            .expect("push recorded");
    }

    /// GET with an optional bearer token: status and body as JSON (Null when not JSON).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.expect("GET answered")).await
    }

    /// POST of a JSON body with an optional bearer token.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.expect("POST answered")).await
    }
}

async fn answer(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

//! The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json`. Written here by
//! hand (the operations from their table); a test checks that its paths and methods are
//! exactly the router's routes.

use axum::Json;
use serde_json::{Value, json};

use crate::routes::OPERATIONS;

/// `GET /api/v1/openapi.json`.
pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn slug() -> Value {
    json!({ "name": "slug", "in": "path", "required": true, "schema": { "type": "string" } })
}

fn query(name: &str, kind: &str, required: bool, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description,
            "schema": { "type": kind } })
}

fn read(summary: &str, parameters: Value, answer: Value) -> Value {
    json!({ "get": {
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": answer,
            "400": problem("a malformed query"),
            "401": problem("no valid token"),
            "404": problem("no such pipeline, stage, step or revision"),
        }
    }})
}

/// The document.
pub fn document() -> Value {
    let object = json!({ "type": "object" });
    let mut paths = serde_json::Map::new();
    paths.insert(
        "/healthz".into(),
        json!({ "get": { "summary": "200 once the server accepts requests (no token)", "security": [],
            "responses": { "200": { "description": "ok", "content": { "text/plain": {} } } } } }),
    );
    paths.insert(
        "/readyz".into(),
        json!({ "get": { "summary": "200 when the store and the engine answer and the server is not stopping", "security": [],
            "responses": { "200": { "description": "ready", "content": { "text/plain": {} } },
                           "503": problem("not ready") } } }),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": { "summary": "Prometheus metrics: webhook deliveries by result, step durations, stage-deployments by state",
            "responses": { "200": { "description": "text exposition format 0.0.4", "content": { "text/plain": {} } },
                           "401": problem("no valid token") } } }),
    );
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({ "get": { "summary": "This document", "security": [],
            "responses": { "200": ok_json("the OpenAPI document", object.clone()) } } }),
    );
    paths.insert(
        "/api/v1/pipelines".into(),
        read(
            "The pipelines with a log",
            json!([]),
            ok_json(
                "`{\"pipelines\": [slug]}`",
                json!({ "type": "object", "properties": {
                "pipelines": { "type": "array", "items": { "type": "string" } } } }),
            ),
        ),
    );
    let p = "/api/v1/pipelines/{slug}";
    paths.insert(
        p.into(),
        read(
            "A pipeline's state: the `stages` and `deployments` sections of the simulate report, and the steps waiting for a person",
            json!([slug()]),
            ok_json("the state", json!({ "$ref": "#/components/schemas/PipelineState" })),
        ),
    );
    paths.insert(
        format!("{p}/revisions/{{revision}}"),
        read(
            "One deployment, as in `deployments`",
            json!([slug(), { "name": "revision", "in": "path", "required": true, "schema": { "type": "integer" } }]),
            ok_json("the deployment", object.clone()),
        ),
    );
    paths.insert(
        format!("{p}/events"),
        read(
            "The event log, paged by sequence number",
            json!([
                slug(),
                query(
                    "after",
                    "integer",
                    false,
                    "records after this sequence number (default 0)"
                ),
                query(
                    "limit",
                    "integer",
                    false,
                    "at most this many (default 1000, at most 10000)"
                )
            ]),
            ok_json(
                "`{\"events\": [{seq, at, actor, type, ...}], \"next\": SEQ, \"last_seq\": N}`",
                object.clone(),
            ),
        ),
    );
    paths.insert(
        format!("{p}/events/stream"),
        read(
            "The event log as Server-Sent Events (id: seq, event: the record's type, data: the record); resumes after `Last-Event-ID`",
            json!([slug(), query("after", "integer", false, "start after this sequence number (default 0)")]),
            json!({ "description": "an event stream", "content": { "text/event-stream": {} } }),
        ),
    );
    paths.insert(
        format!("{p}/logs"),
        read(
            "The log lines of a step's execution",
            json!([
                slug(),
                query("stage", "string", true, "the stage"),
                query(
                    "step",
                    "string",
                    true,
                    "the step, by id or name; `build:<artifact>` for a build the stage started"
                ),
                query(
                    "revision",
                    "integer",
                    false,
                    "default: the newest that ran it"
                )
            ]),
            ok_json(
                "`{\"execution\", \"lines\": [{timestamp, level, message}]}`",
                object.clone(),
            ),
        ),
    );
    for op in OPERATIONS {
        let required: Vec<&str> = op.requires.to_vec();
        paths.insert(
            format!("{p}/{}", op.name),
            json!({ "post": {
                "summary": op.summary,
                "parameters": [slug()],
                "requestBody": { "required": !required.is_empty(), "content": { "application/json": { "schema": {
                    "allOf": [ { "$ref": "#/components/schemas/OperationBody" } ],
                    "required": required } } } },
                "responses": {
                    "200": ok_json("the records appended: `{\"records\": [...]}`", object.clone()),
                    "400": problem("a malformed body or a missing field"),
                    "401": problem("no valid token"),
                    "403": problem("the token's role may not operate"),
                    "404": problem("no such pipeline or stage, or nothing to operate on"),
                    "409": problem("refused by the lifecycle rules: `rule` and `reason`"),
                }
            }}),
        );
    }
    for (path, item) in crate::webhooks::openapi() {
        paths.insert(path, item);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "devramps serve", "version": env!("CARGO_PKG_VERSION"),
                  "description": "The operations API of a devramps engine. Tokens: `Authorization: Bearer TOKEN`; GET needs any role, operations `operator`." },
        "security": [ { "bearer": [] } ],
        "paths": Value::Object(paths),
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Problem": { "type": "object", "description": "RFC 9457 problem details",
                    "properties": { "type": { "type": "string" }, "title": { "type": "string" },
                        "status": { "type": "integer" }, "detail": { "type": "string" },
                        "rule": { "type": "string" }, "reason": { "type": "string" } },
                    "required": ["type", "title", "status", "detail"] },
                "OperationBody": { "type": "object", "additionalProperties": false,
                    "properties": { "stage": { "type": "string" }, "step": { "type": "string" },
                        "revision": { "type": "integer" }, "to": { "type": "integer" },
                        "commit": { "type": "string" }, "reason": { "type": "string" } } },
                "PipelineState": { "type": "object",
                    "properties": { "slug": { "type": "string" },
                        "stages": { "type": "object", "description": "by stage, in pipeline order: current_revision, current_commit, blockers" },
                        "deployments": { "type": "array", "items": { "type": "object" } },
                        "approvals": { "type": "array", "items": { "type": "object",
                            "properties": { "revision": { "type": "integer" }, "stage": { "type": "string" },
                                "step": { "type": "string" }, "name": { "type": "string" } } } } },
                    "required": ["slug", "stages", "deployments", "approvals"] }
            }
        }
    })
}

//! The served OpenAPI document names exactly the router's routes, and each of them answers
//! (none falls through to "no route" or "method not allowed").

mod common;

use std::collections::BTreeSet;

use common::Server;

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = Server::start(|c| c).await;
    let (status, doc) = server.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = devramps_serve::routes().into_iter().collect();
    assert_eq!(documented, routed, "the document and the router differ");

    // Each documented route is routed: its answer is never the router's own 404 or 405.
    server.push("c1").await;
    for (method, path) in &documented {
        let concrete = path.replace("{slug}", "app").replace("{revision}", "1");
        let request = match method.as_str() {
            "GET" if concrete.ends_with("/stream") => continue,
            "GET" => server.client.get(server.url(&concrete)),
            _ => server.client.post(server.url(&concrete)).body("{}"),
        };
        let response = request.send().await.expect("answered");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(
            body.get("route").is_none() && status != 405,
            "{method} {concrete} is documented but not routed: {status} {body}"
        );
    }
}

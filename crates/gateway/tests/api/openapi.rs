//! The OpenAPI document: served as generated, and true to the router: every operation it
//! lists is routed, and every other method on its paths is a 405. Whether the answers match
//! it is schemathesis's part (`scripts/fuzz-api.sh`, run by `make test`).

use serde_json::Value;
use testkit::TestApp;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_lists_every_route_and_only_routed_methods() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.expect("JSON");
    let generated = serde_json::to_value(gateway::openapi_document()).expect("document");
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().expect("paths");

    let mut operations = 0;
    for (template, item) in paths {
        let path = template
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{username}", "nobody-at-all");
        for method in METHODS {
            let response = app
                .http
                .request(
                    method.to_uppercase().parse().expect("method"),
                    format!("{}{path}", app.gateway_url()),
                )
                .send()
                .await
                .expect("gateway answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some(operation) = item.get(method) {
                operations += 1;
                // Routed: whatever the answer (401, 400, 404 for the made-up id...), it is
                // not "no route" nor "method not allowed".
                assert_ne!(
                    status, 405,
                    "{method} {template} is documented but not routed"
                );
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    !message.starts_with("no route"),
                    "{method} {template} is documented but not routed: {body}"
                );
                // Each answer it gives is one it documents.
                assert!(
                    operation["responses"].get(status.to_string()).is_some(),
                    "{method} {template} answered {status} ({code}), which it does not document"
                );
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (405, "method_not_allowed"),
                    "{method} {template} is routed but not documented"
                );
            }
        }
    }
    assert_eq!(
        operations, 49,
        "every route of routes::configure is documented"
    );

    // Swagger UI, with its assets vendored into the binary.
    let entry = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/api/v1/docs/", app.gateway_url()))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(entry.status(), 308);
    assert_eq!(entry.headers()["location"], "/api/v1/docs/index.html");
    let ui = app.get("/api/v1/docs/index.html").await;
    assert_eq!(ui.status(), 200);
    let html = ui.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    let init = app.get("/api/v1/docs/swagger-initializer.js").await;
    assert_eq!(init.status(), 200);
    let script = init.text().await.expect("script");
    assert!(script.contains("/api/v1/openapi.json"), "{script}");
}

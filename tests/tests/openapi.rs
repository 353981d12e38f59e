//! `docs/openapi.yaml`, the API's OpenAPI document, checked against what
//! deploys and serves the API, so that the three cannot drift:
//!
//! - its operations (`METHOD /path`) are exactly `template.yaml`'s routes;
//! - the router answers each of them (never `404 route_not_found` nor `405`),
//!   with a status the document lists for it, and answers every other method
//!   on a documented path `405` with an `Allow` of the documented ones;
//! - `GET /openapi.yaml` serves this very file.
//!
//! What the answers hold, field by field, is for `scripts/check-openapi`
//! (schemathesis against a local server). No emulator is needed here: the
//! API runs on the in-memory store and queue.

use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, StatusCode};
use jobline_api::Api;
use jobline_core::{Config, JobId};
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::store::MemoryStore;
use jobline_tests::template::Template;
use lambda_http::{Body, Request};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The path of the document, from this crate.
const DOCUMENT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");

/// The methods tried on every documented path.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

/// The document as JSON.
fn document() -> Value {
    let text = std::fs::read_to_string(DOCUMENT_PATH).expect("read docs/openapi.yaml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML");
    serde_json::to_value(yaml).expect("docs/openapi.yaml is plain JSON-like YAML")
}

/// Each documented operation, `METHOD /path`, with the statuses it lists.
fn operations(document: &Value) -> BTreeMap<String, BTreeSet<u16>> {
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if !METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                continue; // `parameters`, `summary`...
            }
            let statuses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"))
                .keys()
                .map(|status| status.parse().expect("a numeric status"))
                .collect();
            operations.insert(format!("{} {path}", method.to_uppercase()), statuses);
        }
    }
    operations
}

fn template_routes() -> BTreeSet<String> {
    Template::load()
        .resources_of_type("AWS::ApiGatewayV2::Route")
        .map(|(_, route)| {
            route["Properties"]["RouteKey"]
                .as_str()
                .expect("RouteKey")
                .to_owned()
        })
        .collect()
}

fn api() -> Api {
    let config = Config::from_lookup(|name| match name {
        "JOBS_TABLE" => Some("jobs".into()),
        "JOBS_QUEUE_URL" => Some("queue".into()),
        "ALLOW_ANONYMOUS" => Some("true".into()),
        _ => None,
    })
    .expect("config");
    Api::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryQueue::new()),
        jobline_jobs::builtin(),
        &config,
    )
}

/// `method path`, with `{id}` as a job id no job has.
fn request(method: &Method, path: &str) -> Request {
    let uri = path.replace("{id}", &JobId::random().to_string());
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::Empty)
        .expect("request")
}

/// The status and, for an error, its code.
async fn answer(
    api: &Api,
    method: &Method,
    path: &str,
) -> (StatusCode, Option<String>, Option<String>) {
    let response = api.handle(request(method, path)).await.response;
    let code = serde_json::from_slice::<Value>(response.body().as_ref())
        .ok()
        .and_then(|body| body["error"]["code"].as_str().map(str::to_owned));
    let allow = response
        .headers()
        .get(ALLOW)
        .map(|allow| allow.to_str().expect("ASCII Allow").to_owned());
    (response.status(), code, allow)
}

fn is_served(status: StatusCode, code: Option<&str>) -> bool {
    status != StatusCode::METHOD_NOT_ALLOWED && code != Some("route_not_found")
}

#[test]
fn the_document_is_openapi_3_1_with_unique_operation_ids() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("a path item").values() {
            if let Some(id) = operation.get("operationId") {
                let id = id.as_str().expect("operationId string");
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
    }
    assert_eq!(
        ids.len(),
        operations(&document).len(),
        "every operation has an id"
    );
}

#[test]
fn the_documents_operations_are_the_templates_routes() {
    let documented: BTreeSet<String> = operations(&document()).into_keys().collect();
    assert_eq!(
        documented,
        template_routes(),
        "docs/openapi.yaml's operations (left) and template.yaml's routes (right) differ"
    );
}

#[tokio::test]
async fn the_router_answers_every_documented_operation_and_only_those() {
    let api = api();
    let operations = operations(&document());
    let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for key in operations.keys() {
        let (method, path) = key.split_once(' ').expect("METHOD /path");
        by_path.entry(path).or_default().insert(method);
    }
    for (path, served) in &by_path {
        for method in &METHODS {
            let key = format!("{method} {path}");
            let (status, code, allow) = answer(&api, method, path).await;
            if served.contains(method.as_str()) {
                assert!(
                    is_served(status, code.as_deref()),
                    "{key} is documented, but the router answers {status} {code:?}"
                );
                assert!(
                    operations[&key].contains(&status.as_u16()),
                    "{key} answered {status} ({code:?}), which docs/openapi.yaml does not list"
                );
            } else {
                assert_eq!(
                    (status, code.as_deref()),
                    (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
                    "{key} is not documented, so it must be 405"
                );
                let allowed: BTreeSet<&str> = allow
                    .as_deref()
                    .unwrap_or_else(|| panic!("{key}: a 405 without Allow"))
                    .split(',')
                    .map(str::trim)
                    .collect();
                assert_eq!(
                    allowed, *served,
                    "{key}: Allow is not the documented methods"
                );
            }
        }
    }

    // Paths the document does not have are no route at all.
    for path in [
        "/",
        "/job",
        "/jobs/{id}/cancel/now",
        "/jobs/{id}/retry",
        "/openapi.json",
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, code, _) = answer(&api, &method, path).await;
            assert_eq!(
                (status, code.as_deref()),
                (StatusCode::NOT_FOUND, Some("route_not_found")),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn get_openapi_yaml_serves_this_document() {
    let response = api()
        .handle(request(&Method::GET, "/openapi.yaml"))
        .await
        .response;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/yaml");
    let file = std::fs::read_to_string(DOCUMENT_PATH).expect("read docs/openapi.yaml");
    assert_eq!(
        std::str::from_utf8(response.body().as_ref()).expect("UTF-8"),
        file,
        "the served document is docs/openapi.yaml (rebuild after editing it)"
    );
}

//! `docs/openapi.yaml`, the API's OpenAPI document, checked against what
//! deploys and serves the API, so that the three cannot drift:
//!
//! - its operations (`METHOD /path`) are exactly `template.yaml`'s routes;
//! - the router answers each of them (never `404 route_not_found` nor `405`),
//!   with a status the document lists for it, and answers every other method
//!   on a documented path `405` with an `Allow` of the documented ones;
//! - `GET /openapi.yaml` serves this very file;
//! - on a real schedule and a real delayed job, every schedule operation and
//!   `POST /jobs/{id}/run` answers a status the document lists for it;
//! - the fields of the `Schedule`, `LastFire`, `ScheduleFires`, `Job` and
//!   `Accepted` schemas are exactly those the API answers with, and an
//!   `invalid_schedule` error's `field` is one the document names.
//!
//! What the answers hold, field by field, is for `scripts/check-openapi`
//! (schemathesis against a local server). No emulator is needed here: the
//! API runs on the in-memory store, queue, schedules and timers.

use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, StatusCode};
use jobline_api::Api;
use jobline_core::{Clock, Config, JobId};
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::schedules::MemorySchedules;
use jobline_testkit::memory::store::MemoryStore;
use jobline_testkit::memory::timers::MemoryTimers;
use jobline_tests::template::Template;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

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

/// The most schedules a caller may have here, as the template's default.
const MAX_SCHEDULES_PER_CALLER: usize = 100;

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
    api_on(Clock::system())
}

/// The API, reading the time from `clock`.
fn api_on(clock: Clock) -> Api {
    let config = Config::from_lookup(|name| match name {
        "JOBS_TABLE" => Some("jobs".into()),
        "JOBS_QUEUE_URL" => Some("queue".into()),
        "ALLOW_ANONYMOUS" => Some("true".into()),
        _ => None,
    })
    .expect("config");
    // With timers and schedules, as deployed: the schedule routes answer
    // as they do there, not `404 schedules_disabled`.
    Api::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryQueue::new()),
        jobline_jobs::builtin(),
        &config,
    )
    .with_timers(Arc::new(MemoryTimers::new()))
    .with_schedules(Arc::new(MemorySchedules::new()), MAX_SCHEDULES_PER_CALLER)
    .with_clock(clock)
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
        "/jobs/{id}/trigger",
        "/schedules/{id}/run",
        "/schedules/{id}/pause/now",
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

/// `method path` with `body` (JSON), answered: the status and the body.
async fn send(api: &Api, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let body = body.map_or(Body::Empty, |body| Body::from(body.to_string()));
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(body)
        .expect("request");
    let response = api.handle(request).await.response;
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (response.status(), body)
}

/// A schedule of the caller's, created through the API: its answer.
async fn create_schedule(api: &Api, overlap: &str) -> Value {
    let (status, schedule) = send(
        api,
        Method::POST,
        "/schedules",
        Some(json!({
            "expression": "cron(0 9 ? * MON-FRI *)",
            "timezone": "Europe/Paris",
            "type": "primes",
            "payload": {"upTo": 1000},
            "overlap": overlap,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    schedule
}

/// Asserts that `METHOD path` of the document lists `status`.
fn assert_listed(
    operations: &BTreeMap<String, BTreeSet<u16>>,
    key: &str,
    status: StatusCode,
    body: &Value,
) {
    let listed = operations
        .get(key)
        .unwrap_or_else(|| panic!("{key} is not in docs/openapi.yaml"));
    assert!(
        listed.contains(&status.as_u16()),
        "{key} answered {status} ({body}), which docs/openapi.yaml does not list"
    );
}

#[tokio::test]
async fn every_schedule_operation_and_run_now_answer_a_documented_status() {
    // A clock that stands still, moved a second before each call: two
    // triggers within one second would be one fire, and one job.
    let clock = Clock::at(1_800_000_000_000);
    let api = api_on(clock.clone());
    let operations = operations(&document());
    let skip = create_schedule(&api, "skip").await;
    let id = skip["scheduleId"].as_str().expect("scheduleId").to_owned();
    let path = format!("/schedules/{id}");
    let calls: Vec<(&str, Method, String, Option<Value>)> = vec![
        (
            "GET /schedules",
            Method::GET,
            "/schedules?limit=1".into(),
            None,
        ),
        (
            "GET /schedules",
            Method::GET,
            "/schedules?limit=0".into(),
            None,
        ),
        (
            "GET /schedules",
            Method::GET,
            "/schedules?cursor=nope".into(),
            None,
        ),
        ("GET /schedules/{id}", Method::GET, path.clone(), None),
        (
            "PATCH /schedules/{id}",
            Method::PATCH,
            path.clone(),
            Some(json!({"payload": {"upTo": 10}})),
        ),
        (
            "PATCH /schedules/{id}",
            Method::PATCH,
            path.clone(),
            Some(json!({"type": "sleep"})),
        ),
        (
            "PATCH /schedules/{id}",
            Method::PATCH,
            path.clone(),
            Some(json!({"expression": "rate(5 minute)"})),
        ),
        (
            "PATCH /schedules/{id}",
            Method::PATCH,
            path.clone(),
            Some(json!({"timezone": "europe/paris"})),
        ),
        (
            "POST /schedules/{id}/pause",
            Method::POST,
            format!("{path}/pause"),
            None,
        ),
        (
            "POST /schedules/{id}/resume",
            Method::POST,
            format!("{path}/resume"),
            None,
        ),
        (
            "POST /schedules/{id}/trigger",
            Method::POST,
            format!("{path}/trigger"),
            None,
        ),
        // `overlap: skip`, and the triggered job has not run: 409.
        (
            "POST /schedules/{id}/trigger",
            Method::POST,
            format!("{path}/trigger"),
            None,
        ),
        (
            "POST /schedules",
            Method::POST,
            "/schedules".into(),
            Some(json!({"expression": "at(2027-01-01T00:00:00)", "type": "primes"})),
        ),
        (
            "POST /schedules",
            Method::POST,
            "/schedules".into(),
            Some(json!({"expression": "rate(1 day)", "type": "teleport"})),
        ),
        (
            "POST /schedules",
            Method::POST,
            "/schedules".into(),
            Some(json!({"expression": "rate(1 day)", "type": "primes", "colour": "red"})),
        ),
        ("DELETE /schedules/{id}", Method::DELETE, path.clone(), None),
        ("DELETE /schedules/{id}", Method::DELETE, path.clone(), None),
        (
            "POST /schedules/{id}/trigger",
            Method::POST,
            format!("{path}/trigger"),
            None,
        ),
    ];
    let mut seen = BTreeSet::new();
    for (key, method, uri, body) in calls {
        clock.advance(Duration::from_secs(1));
        let (status, answer) = send(&api, method, &uri, body).await;
        assert_listed(&operations, key, status, &answer);
        seen.insert((key, status.as_u16()));
    }
    for expected in [
        ("POST /schedules/{id}/trigger", 202),
        ("POST /schedules/{id}/trigger", 409),
        ("POST /schedules/{id}/trigger", 404),
        ("PATCH /schedules/{id}", 200),
        ("PATCH /schedules/{id}", 422),
        ("DELETE /schedules/{id}", 204),
        ("POST /schedules", 422),
        ("GET /schedules", 400),
    ] {
        assert!(
            seen.contains(&expected),
            "{expected:?} was never answered: {seen:?}"
        );
    }

    // A delayed job, run now, then again (a repeat sends it again), and a
    // cancelled one, which cannot run.
    let (status, accepted) = send(
        &api,
        Method::POST,
        "/jobs",
        Some(json!({"type": "primes", "payload": {"upTo": 10}, "delaySeconds": 3600})),
    )
    .await;
    assert_listed(&operations, "POST /jobs", status, &accepted);
    assert_eq!(accepted["status"], "scheduled", "{accepted}");
    let run = format!("/jobs/{}/run", accepted["jobId"].as_str().expect("jobId"));
    for _ in 0..2 {
        let (status, answer) = send(&api, Method::POST, &run, None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_listed(&operations, "POST /jobs/{id}/run", status, &answer);
    }
    let (_, cancelled) = send(
        &api,
        Method::POST,
        "/jobs",
        Some(json!({"type": "primes", "payload": {"upTo": 10}, "delaySeconds": 3600})),
    )
    .await;
    let id = cancelled["jobId"].as_str().expect("jobId");
    let (status, _) = send(&api, Method::POST, &format!("/jobs/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = send(&api, Method::POST, &format!("/jobs/{id}/run"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_listed(&operations, "POST /jobs/{id}/run", status, &answer);
}

/// The property names of the schema `name`, and those it requires.
fn schema_fields(document: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &document["components"]["schemas"][name];
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {name} has no properties"))
        .keys()
        .cloned()
        .collect();
    let required = schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().expect("a name").to_owned())
                .collect()
        })
        .unwrap_or_default();
    (properties, required)
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// Asserts that `answer` has exactly the fields of schema `name` (all
/// required ones, none other) when `whole`, or only fields it names.
fn assert_fields(document: &Value, name: &str, answer: &Value, whole: bool) {
    let (properties, required) = schema_fields(document, name);
    let answered = keys(answer);
    assert!(
        answered.is_subset(&properties),
        "{name}: the API answers {:?}, which the schema does not have",
        answered.difference(&properties).collect::<Vec<_>>()
    );
    assert!(
        required.is_subset(&answered),
        "{name}: the schema requires {:?}, which the API does not answer",
        required.difference(&answered).collect::<Vec<_>>()
    );
    if whole {
        assert_eq!(
            answered, properties,
            "{name}: the schema's fields and the API's differ"
        );
    }
}

#[tokio::test]
async fn the_schemas_have_the_fields_the_api_answers() {
    let api = api();
    let document = document();
    let schedule = create_schedule(&api, "allow").await;
    assert_fields(&document, "Schedule", &schedule, true);
    assert_fields(&document, "ScheduleFires", &schedule["fires"], true);
    let id = schedule["scheduleId"].as_str().expect("scheduleId");

    // A trigger: its 202 is `Accepted`, with the fire's `runAt`.
    let (status, accepted) = send(
        &api,
        Method::POST,
        &format!("/schedules/{id}/trigger"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_fields(&document, "Accepted", &accepted, true);
    let (_, shown) = send(&api, Method::GET, &format!("/schedules/{id}"), None).await;
    assert_fields(&document, "LastFire", &shown["lastFire"], true);
    let (_, page) = send(&api, Method::GET, "/schedules", None).await;
    assert_fields(&document, "SchedulePage", &page, true);

    // The fire's job, as `GET /jobs/{id}` shows it: `JobFields` and `result`.
    let (_, job) = send(
        &api,
        Method::GET,
        &format!("/jobs/{}", accepted["jobId"].as_str().expect("jobId")),
        None,
    )
    .await;
    assert_eq!(job["scheduleId"], id, "{job}");
    let mut fields = job.clone();
    fields.as_object_mut().expect("a job").remove("result");
    assert_fields(&document, "JobFields", &fields, true);
    let (_, jobs) = send(&api, Method::GET, &format!("/jobs?scheduleId={id}"), None).await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");

    // An `invalid_schedule` names a field the document names.
    let enumerated = document
        .pointer("/components/schemas/InvalidScheduleError/properties/error/properties/field/enum")
        .and_then(Value::as_array)
        .expect("InvalidScheduleError's field enum")
        .clone();
    for body in [
        json!({"expression": "cron(0 9 * * * *)", "type": "primes"}),
        json!({"expression": "rate(1 day)", "timezone": "Mars/Olympus", "type": "primes"}),
        json!({"expression": "rate(1 day)", "type": "primes", "overlap": "never"}),
        json!({"expression": "rate(1 day)", "type": "primes", "payload": [1]}),
        json!({"expression": "rate(1 day)"}),
    ] {
        let (status, error) = send(&api, Method::POST, "/schedules", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(
            error["error"]["code"], "invalid_schedule",
            "{body}: {error}"
        );
        assert!(
            enumerated.contains(&error["error"]["field"]),
            "{body}: field {} is not in InvalidScheduleError's enum",
            error["error"]["field"]
        );
    }
}

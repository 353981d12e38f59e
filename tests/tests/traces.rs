//! One trace across the queue: a job's spans, exported over OTLP, at an
//! endpoint this test starts.
//!
//! The whole local stack (the HTTP server, the API, the worker and its
//! pollers, the stream relay and the notifier) runs against moto with the
//! OTLP exporter installed and pointed at a collector in this process, which
//! keeps every request's protobuf body. A job submitted with a `traceparent`
//! header and a callback URL must yield the spans `submit`, `claim`, `run`,
//! `finish` and `webhook`, all in the caller's trace: `submit` a child of
//! the caller's span, every other one a child of `submit`, each with the
//! job's `jobId` and `jobType`; and the webhook's receiver must get a
//! `traceparent` of that trace, naming the `webhook` span. A job submitted
//! without one gets a new trace (answered in the 202's `traceparent`),
//! which its spans share the same way, `submit` as its root; and a
//! schedule's job triggered with a `traceparent` joins that trace, with
//! `fire` in `submit`'s place.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_core::spans::{self, ExportSettings};
use jobline_core::trace_context::TraceContext;
use jobline_local::poller::PollerSettings;
use jobline_local::stack::{Webhooks, notifier_poller_settings};
use jobline_local::stream::StreamReader;
use jobline_sqs::SqsJobQueue;
use jobline_testkit::testing::receiver;
use jobline_tests::TestEnv;
use jobline_tests::stack::Served;
use jobline_webhooks::Deliverer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// The spans of one job, in the order it makes them.
const SPANS: [&str; 5] = ["submit", "claim", "run", "finish", "webhook"];

/// The caller's own span, whose child the first job's `submit` must be.
const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The span of the caller that triggers a schedule: its job's `fire` must
/// be its child.
const TRIGGERING: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// One request the collector got.
#[derive(Debug, Clone)]
struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// An OTLP/HTTP endpoint on loopback: answers every request `200` with an
/// empty `ExportTraceServiceResponse`, and keeps what it got.
struct Collector {
    traces_url: String,
    got: Arc<Mutex<Vec<Export>>>,
}

impl Collector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let traces_url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Export>>> = Arc::default();
        let kept = Arc::clone(&got);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let kept = Arc::clone(&kept);
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                            kept.lock().unwrap().push(Export {
                                path: parts.uri.path().to_owned(),
                                content_type: parts
                                    .headers
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned(),
                                body: body.unwrap_or_default(),
                            });
                            let response = hyper::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { traces_url, got }
    }

    /// Every span received so far, decoded; each request checked to be an
    /// OTLP/HTTP protobuf export to `/v1/traces`.
    fn spans(&self) -> Vec<Span> {
        let got = self.got.lock().unwrap().clone();
        got.iter()
            .flat_map(|export| {
                assert_eq!(export.path, "/v1/traces");
                assert_eq!(export.content_type, "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(export.body.as_slice())
                    .expect("an OTLP protobuf export");
                request
                    .resource_spans
                    .into_iter()
                    .flat_map(|resource| resource.scope_spans)
                    .flat_map(|scope| scope.spans)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Flushes the process's spans until every one of [`SPANS`] of trace
    /// `trace_id` (hex) came, for at most 30 s; those spans by name.
    async fn trace(&self, trace_id: &str) -> HashMap<String, Span> {
        let started = Instant::now();
        loop {
            spans::flush().await;
            let found: HashMap<String, Span> = self
                .spans()
                .into_iter()
                .filter(|span| hex(&span.trace_id) == trace_id)
                .map(|span| (span.name.clone(), span))
                .collect();
            // The root: `submit`, or a fired job's `fire`.
            let rooted = found.contains_key("submit") || found.contains_key("fire");
            if rooted && SPANS[1..].iter().all(|name| found.contains_key(*name)) {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "trace {trace_id}: only {:?} of {SPANS:?} (or fire) within 30 s",
                found.keys().collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Attribute `key` of `span`, as text.
fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(number) => Some(number.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// `POST /jobs` with `body`, and `traceparent` if given, to the server at
/// `addr`: the status, the `traceparent` answered and the JSON body.
async fn submit(addr: SocketAddr, traceparent: Option<&str>, body: &Value) -> (u16, String, Value) {
    post(addr, "/jobs", traceparent, body).await
}

/// `POST path` with `body`, and `traceparent` if given, to the server at
/// `addr`: the status, the `traceparent` answered and the JSON body.
async fn post(
    addr: SocketAddr,
    path: &str,
    traceparent: Option<&str>,
    body: &Value,
) -> (u16, String, Value) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = sender
        .send_request(
            request
                // Null: no body.
                .body(Full::new(if body.is_null() {
                    Bytes::new()
                } else {
                    Bytes::from(body.to_string())
                }))
                .unwrap(),
        )
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let answered = response
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        answered,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Checks the trace of job `id`: its five spans in trace `trace_id`,
/// `root` (`submit`, or a fired job's `fire`) under `caller_span` (none:
/// the root), every other one under it, each with the job's id and type;
/// and the `traceparent` the receiver got names the `webhook` span.
/// Returns the `root` span's id.
fn check_trace(
    spans: &HashMap<String, Span>,
    root: &str,
    id: &str,
    caller_span: Option<&str>,
    webhook_header: &TraceContext,
) -> String {
    let names: Vec<&str> = std::iter::once(root)
        .chain(SPANS[1..].iter().copied())
        .collect();
    let submit = &spans[root];
    assert_eq!(
        hex(&submit.parent_span_id),
        caller_span.unwrap_or_default(),
        "the root's parent: the caller's span, or none"
    );
    let submit_id = hex(&submit.span_id);
    for name in names.iter().copied() {
        let span = &spans[name];
        assert_eq!(attribute(span, "jobId").as_deref(), Some(id), "{name}");
        assert_eq!(
            attribute(span, "jobType").as_deref(),
            Some("primes"),
            "{name}"
        );
        assert!(
            span.end_time_unix_nano >= span.start_time_unix_nano,
            "{name}"
        );
        if name != root {
            assert_eq!(
                hex(&span.parent_span_id),
                submit_id,
                "{name} is {root}'s child"
            );
        }
    }
    let mut ids: Vec<String> = names
        .iter()
        .map(|name| hex(&spans[*name].span_id))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), SPANS.len(), "five spans, five ids");
    if root == "submit" {
        assert_eq!(
            attribute(&spans["submit"], "http.response.status_code").as_deref(),
            Some("202")
        );
        // Server (OTLP's SpanKind number).
        assert_eq!(spans["submit"].kind, 2);
    } else {
        // Consumer: the fire function handles Scheduler's invocation.
        assert_eq!(spans[root].kind, 5);
    }
    assert_eq!(
        attribute(&spans["finish"], "outcome").as_deref(),
        Some("succeeded")
    );
    assert_eq!(
        attribute(&spans["webhook"], "outcome").as_deref(),
        Some("delivered")
    );
    assert_eq!(
        webhook_header.span_id().to_string(),
        hex(&spans["webhook"].span_id),
        "the webhook's traceparent names its span"
    );
    // Internal, client (OTLP's SpanKind numbers).
    assert_eq!(spans["run"].kind, 1);
    assert_eq!(spans["webhook"].kind, 3);
    submit_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_spans_from_submit_to_webhook_are_one_trace() {
    jobline_tests::require_emulator!();
    let collector = Collector::start().await;
    spans::install(&ExportSettings {
        traces_endpoint: Some(collector.traces_url.clone()),
        service_name: "jobline-traces-test".to_owned(),
    })
    .expect("install the OTLP exporter");

    let mut env = TestEnv::new().await;
    let (notify, secret) = env.provision_webhooks().await;
    env.config.webhooks.secret_id = Some(secret);
    env.config.webhooks.queue_url = Some(notify.queue_url.clone());
    env.config.webhooks.allow_local_callbacks = true;
    let webhooks = Webhooks {
        store: Arc::new(env.store()),
        keys: Arc::new(env.clients.webhook_keys(&env.config).expect("a secret")),
        queue: Arc::new(SqsJobQueue::new(env.clients.sqs.clone(), &notify.queue_url)),
        stream: StreamReader::for_table(
            &env.clients.dynamodb,
            env.clients.streams.clone(),
            &env.table,
        )
        .await
        .expect("the table's stream"),
        deliverer: Deliverer::new(),
        poller: PollerSettings {
            wait_secs: 1,
            ..notifier_poller_settings()
        },
    };
    let schedules = env.schedule_parts(10).await;
    let served = Served::start(
        env.stack(jobline_jobs::builtin())
            .webhooks(webhooks)
            .schedules(schedules)
            .build(),
    )
    .await;
    let (hook_url, hooks) = receiver(vec![204]).await;
    let job = json!({"type": "primes", "payload": {"upTo": 100}, "callbackUrl": hook_url});

    // With the caller's traceparent: its trace, under its span.
    let caller: TraceContext = CALLER.parse().unwrap();
    let (status, answered, body) = submit(served.addr, Some(CALLER), &job).await;
    assert_eq!(status, 202, "{body}");
    let answered: TraceContext = answered.parse().expect("the 202's traceparent");
    assert_eq!(answered.trace_id(), caller.trace_id());
    let traced = body["jobId"].as_str().unwrap().to_owned();

    // Without: a trace of its own, answered in the 202.
    let (status, fresh, body) = submit(served.addr, None, &job).await;
    assert_eq!(status, 202, "{body}");
    let fresh: TraceContext = fresh.parse().expect("the 202's traceparent");
    assert_ne!(fresh.trace_id(), caller.trace_id());
    let untraced = body["jobId"].as_str().unwrap().to_owned();

    // A schedule's fire (a trigger: the timer's fire takes the same path,
    // with no caller's trace to join): in the triggering caller's trace,
    // answered in the 202, with `fire` in `submit`'s place.
    let mut schedule = job.clone();
    schedule["expression"] = json!("rate(1 hour)");
    let (status, _, body) = post(served.addr, "/schedules", None, &schedule).await;
    assert_eq!(status, 201, "{body}");
    let trigger = format!(
        "/schedules/{}/trigger",
        body["scheduleId"].as_str().unwrap()
    );
    let (status, fired_trace, body) =
        post(served.addr, &trigger, Some(TRIGGERING), &Value::Null).await;
    assert_eq!(status, 202, "{body}");
    let fired_trace: TraceContext = fired_trace.parse().expect("the 202's traceparent");
    let fired = body["jobId"].as_str().unwrap().to_owned();

    // Both webhooks delivered, each with a traceparent of its job's trace.
    let started = Instant::now();
    let headers: HashMap<String, TraceContext> = loop {
        let got = hooks.lock().unwrap().clone();
        let by_job: HashMap<String, TraceContext> = got
            .iter()
            .map(|request| {
                let event: Value = serde_json::from_str(&request.body).unwrap();
                let header = request
                    .headers
                    .get("traceparent")
                    .expect("a traceparent header");
                (
                    event["data"]["jobId"].as_str().unwrap().to_owned(),
                    header.parse().expect("a valid traceparent"),
                )
            })
            .collect();
        if by_job.len() == 3 {
            break by_job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "webhooks within 60 s: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(headers[&traced].trace_id(), caller.trace_id());
    assert_eq!(headers[&untraced].trace_id(), fresh.trace_id());

    let trace = collector.trace(&caller.trace_id().to_string()).await;
    let submit_id = check_trace(
        &trace,
        "submit",
        &traced,
        Some("00f067aa0ba902b7"),
        &headers[&traced],
    );
    // The 202's traceparent is the submit span's.
    assert_eq!(answered.span_id().to_string(), submit_id);

    let own = collector.trace(&fresh.trace_id().to_string()).await;
    let root = check_trace(&own, "submit", &untraced, None, &headers[&untraced]);
    assert_eq!(fresh.span_id().to_string(), root);

    let triggering: TraceContext = TRIGGERING.parse().unwrap();
    assert_eq!(fired_trace.trace_id(), triggering.trace_id());
    assert_eq!(headers[&fired].trace_id(), triggering.trace_id());
    let fire = collector.trace(&triggering.trace_id().to_string()).await;
    let fire_id = check_trace(
        &fire,
        "fire",
        &fired,
        Some("b7ad6b7169203331"),
        &headers[&fired],
    );
    assert_eq!(fired_trace.span_id().to_string(), fire_id);
    assert!(attribute(&fire["fire"], "scheduleId").is_some());

    served.stop().await;
    for url in [&notify.queue_url, &notify.dlq_url] {
        let _ = env.clients.sqs.delete_queue().queue_url(url).send().await;
    }
    env.cleanup().await;
}

//! A stand-in for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), enough
//! to start a `provided.al2023` function binary and invoke it.
//!
//! A function's init ends when it first asks for work with
//! `GET /2018-06-01/runtime/invocation/next`; the stub notes that instant
//! ([`RuntimeApi::ready`]). [`RuntimeApi::invoke`] then hands the next
//! `/next` an event with the headers Lambda sends (request id, deadline,
//! function ARN, trace id) and waits for the function's
//! `POST …/invocation/{id}/response` (or `/error`), one invocation at a time,
//! as Lambda does in one execution environment.

use crate::error::{BenchError, within};
use crate::server::{FullResponse, LoopbackServer, json_response};
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// The deadline Lambda would give each invocation (the worker's timeout).
const INVOCATION_TIMEOUT_MS: i64 = 60_000;

/// How a function got on with its init.
#[derive(Debug, Clone, PartialEq)]
enum Init {
    Starting,
    /// It first asked for work at this instant.
    Ready(Instant),
    /// It reported an init error.
    Failed(String),
}

/// What an invocation returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The response document, or the error document.
    pub body: Value,
    /// Reported through `/error` rather than `/response`.
    pub error: bool,
    /// From handing out the event to receiving the answer.
    pub duration: Duration,
}

struct Pending {
    event: Value,
    reply: oneshot::Sender<Outcome>,
}

struct InFlight {
    reply: oneshot::Sender<Outcome>,
    dispatched: Instant,
}

struct Shared {
    function_arn: String,
    init: watch::Sender<Init>,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
}

/// A Runtime API stub on a free loopback port; it stops when dropped.
pub struct RuntimeApi {
    server: LoopbackServer,
    invocations: mpsc::UnboundedSender<Pending>,
    init: watch::Receiver<Init>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// Starts a stub for the function `function_name`.
    pub async fn start(function_name: &str) -> Result<Self, BenchError> {
        let (invocations, queue) = mpsc::unbounded_channel();
        let (init_sender, init) = watch::channel(Init::Starting);
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            init: init_sender,
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
        });
        let server =
            LoopbackServer::start(move |request| handle(Arc::clone(&shared), request)).await?;
        Ok(Self {
            server,
            invocations,
            init,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Waits up to `seconds` for the function's first `/next`, and returns
    /// when it arrived.
    pub async fn ready(&mut self, seconds: u64) -> Result<Instant, BenchError> {
        let state = within(
            seconds,
            "the function's first /next",
            self.init.wait_for(|init| *init != Init::Starting),
        )
        .await?
        .map_err(|_| BenchError::Unexpected("the runtime stub stopped".into()))?
        .clone();
        match state {
            Init::Ready(at) => Ok(at),
            Init::Failed(error) => Err(BenchError::Unexpected(format!(
                "the function reported an init error: {error}"
            ))),
            Init::Starting => Err(BenchError::Unexpected("init state went back".into())),
        }
    }

    /// Invokes the function with `event` and waits up to `seconds` for it.
    pub async fn invoke(&self, event: Value, seconds: u64) -> Result<Outcome, BenchError> {
        let (reply, answer) = oneshot::channel();
        self.invocations
            .send(Pending { event, reply })
            .map_err(|_| BenchError::Unexpected("the runtime stub stopped".into()))?;
        within(seconds, "the function's response", answer)
            .await?
            .map_err(|_| BenchError::Unexpected("the invocation was dropped".into()))
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> FullResponse {
    let path = request.uri().path().to_owned();
    if request.method() == http::Method::GET && path == NEXT_PATH {
        return next(&shared).await;
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return json_response(400, "application/json", error.to_string()),
    };
    let document: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if path == INIT_ERROR_PATH {
        shared.init.send_replace(Init::Failed(document.to_string()));
        return accepted();
    }
    let answer = path
        .strip_prefix(INVOCATION_PREFIX)
        .and_then(|rest| rest.rsplit_once('/'));
    let Some((request_id, kind @ ("response" | "error"))) = answer else {
        return json_response(404, "application/json", format!(r#"{{"path":"{path}"}}"#));
    };
    let in_flight = shared
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(request_id);
    match in_flight {
        Some(in_flight) => {
            // The harness may have given up waiting; then nobody listens.
            drop(in_flight.reply.send(Outcome {
                body: document,
                error: kind == "error",
                duration: in_flight.dispatched.elapsed(),
            }));
            accepted()
        }
        None => json_response(
            404,
            "application/json",
            r#"{"unknown":"request id"}"#.into(),
        ),
    }
}

/// Notes the first `/next`, then waits for an event to hand out.
async fn next(shared: &Shared) -> FullResponse {
    let now = Instant::now();
    shared.init.send_if_modified(|init| {
        let first = *init == Init::Starting;
        if first {
            *init = Init::Ready(now);
        }
        first
    });
    let pending = shared.queue.lock().await.recv().await;
    let Some(Pending { event, reply }) = pending else {
        return json_response(500, "application/json", r#"{"stopped":true}"#.into());
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let deadline = jobline_core::Clock::system().now_ms() + INVOCATION_TIMEOUT_MS;
    let mut response = json_response(200, "application/json", event.to_string());
    let headers = response.headers_mut();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-67890abc-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0".into(),
        ),
    ] {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    shared
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            request_id,
            InFlight {
                reply,
                dispatched: Instant::now(),
            },
        );
    response
}

fn accepted() -> FullResponse {
    json_response(202, "application/json", r#"{"status":"OK"}"#.into())
}

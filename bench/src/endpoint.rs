//! The AWS endpoint the benchmarks point `AWS_ENDPOINT_URL` at: it records
//! every request (operation, arrival, answer time, status) and either
//! forwards it to the emulator (to count the calls Jobline really makes) or
//! answers it at once from [`crate::canned`] (to measure CPU and memory
//! without the emulator's latency). It also counts TCP connections, so a
//! function that touches the network during init is caught.

use crate::aws_call::{Operation, RecordedCall};
use crate::canned;
use crate::error::BenchError;
use crate::server::{FullResponse, LoopbackServer, json_response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The content type of both services' JSON protocols.
const AMZ_JSON: &str = "application/x-amz-json-1.0";

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Where requests go after they are recorded.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Answered at once with canned success responses.
    Canned,
    /// Forwarded to `upstream` (`http://host:port`), such as moto, each
    /// answer held back `latency` as if AWS were a network away. Calls made
    /// concurrently then overlap at the endpoint however fast the upstream
    /// is, and calls made one after another never do.
    Forward { upstream: String, latency: Duration },
}

/// A recording AWS endpoint on a free loopback port.
#[derive(Debug)]
pub struct AwsEndpoint {
    server: LoopbackServer,
    calls: Arc<Mutex<Vec<RecordedCall>>>,
}

#[derive(Debug)]
struct Shared {
    backend: Backend,
    client: Client<HttpConnector, Full<Bytes>>,
    calls: Arc<Mutex<Vec<RecordedCall>>>,
}

impl AwsEndpoint {
    pub async fn start(backend: Backend) -> Result<Self, BenchError> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            backend: match backend {
                Backend::Forward { upstream, latency } => Backend::Forward {
                    upstream: upstream.trim_end_matches('/').to_owned(),
                    latency,
                },
                canned => canned,
            },
            client: Client::builder(TokioExecutor::new()).build_http(),
            calls: Arc::clone(&calls),
        });
        let server =
            LoopbackServer::start(move |request| handle(Arc::clone(&shared), request)).await?;
        Ok(Self { server, calls })
    }

    /// The URL to put in `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// The calls recorded since the last take, in arrival order.
    pub fn take_calls(&self) -> Vec<RecordedCall> {
        let mut calls =
            std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner));
        calls.sort_by_key(|call| call.started);
        calls
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> FullResponse {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return json_response(400, AMZ_JSON, error.to_string()),
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let operation = Operation::classify_request(
        parts.method.as_str(),
        parts.uri.path(),
        target,
        authorization,
        &body,
    );
    let response = match &shared.backend {
        Backend::Canned => {
            let canned = canned::respond(&operation, &body);
            json_response(canned.status, AMZ_JSON, canned.body.to_string())
        }
        Backend::Forward { upstream, latency } => {
            let response = forward(&shared.client, upstream, parts, body)
                .await
                .unwrap_or_else(|error| json_response(502, AMZ_JSON, error));
            tokio::time::sleep(*latency).await;
            response
        }
    };
    let call = RecordedCall {
        operation,
        started,
        finished: Instant::now(),
        status: response.status().as_u16(),
    };
    shared
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(call);
    response
}

/// Sends the request on to `upstream` unchanged (the emulator does not check
/// signatures) and returns its whole answer.
async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<FullResponse, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| format!("bad forwarded request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("forwarding to {upstream} failed: {e}"))?;
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the answer of {upstream} failed: {e}"))?
        .to_bytes();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_call::tally;
    use jobline_core::Clock;
    use jobline_core::{ApiStore, JobId, JobMessage, JobQueue, JobRecord, JobState, WorkerStore};
    use jobline_dynamodb::DynamoJobStore;
    use jobline_local::Clients;
    use jobline_sqs::SqsJobQueue;

    async fn clients(endpoint: &AwsEndpoint) -> Clients {
        crate::sdk_clients(&endpoint.url()).await
    }

    /// The canned answers satisfy the real SDK and Jobline's adapters.
    #[tokio::test]
    async fn jobline_adapters_accept_the_canned_answers() {
        let endpoint = AwsEndpoint::start(Backend::Canned).await.unwrap();
        let clients = clients(&endpoint).await;
        let store = DynamoJobStore::new(clients.dynamodb.clone(), "jobs");
        let queue = SqsJobQueue::new(clients.sqs.clone(), "http://queue/123456789012/jobs");

        let job = JobRecord::new_queued(
            JobId::random(),
            "bench",
            &crate::events::job_request(),
            Clock::system().now_ms(),
            30,
        );
        store.create(&job).await.unwrap();
        let claimed = store
            .claim(
                job.id,
                Clock::system().now_ms(),
                Clock::system().now_ms() + 60_000,
                1,
                "bench",
            )
            .await
            .unwrap();
        assert_eq!(claimed.id, job.id);
        assert_eq!((claimed.state, claimed.attempts), (JobState::Running, 1));
        assert!(
            !queue
                .send(&JobMessage::new(job.id))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(queue.delete(&["r".to_owned()]).await.unwrap().is_empty());

        let calls = endpoint.take_calls();
        let counts = tally(&calls);
        assert_eq!(counts["DynamoDB.PutItem"].calls, 1);
        assert_eq!(counts["DynamoDB.UpdateItem"].calls, 1);
        assert_eq!(counts["SQS.SendMessage"].calls, 1);
        assert_eq!(counts["SQS.DeleteMessageBatch"].calls, 1);
        assert!(calls.iter().all(|c| !c.failed()));
        assert!(endpoint.connections() >= 1);
        assert!(endpoint.take_calls().is_empty(), "taken once");
    }

    /// Requests are forwarded with their answers intact, and recorded.
    #[tokio::test]
    async fn forwarding_passes_answers_through() {
        let upstream = AwsEndpoint::start(Backend::Canned).await.unwrap();
        let latency = Duration::from_millis(20);
        let proxy = AwsEndpoint::start(Backend::Forward {
            upstream: upstream.url(),
            latency,
        })
        .await
        .unwrap();
        let clients = clients(&proxy).await;
        let queue = SqsJobQueue::new(clients.sqs.clone(), "http://queue/123456789012/jobs");
        queue.send(&JobMessage::new(JobId::random())).await.unwrap();
        let refused = clients.dynamodb.scan().table_name("jobs").send().await;
        assert!(refused.is_err(), "the canned upstream refuses Scan");

        let calls = proxy.take_calls();
        assert!(calls.iter().all(|c| c.finished - c.started >= latency));
        let seen = tally(&calls);
        assert_eq!(seen["SQS.SendMessage"].calls, 1);
        assert_eq!(seen["DynamoDB.Scan"].failed, 1);
        assert_eq!(tally(&upstream.take_calls()), seen);
    }
}

//! The HTTP API: `POST /jobs` accepts a job and answers `202 Accepted` at
//! once; `GET /jobs/{id}` reports it. Requests arrive as API Gateway HTTP API
//! (payload v2) events through `lambda_http`, or from the local server.
//!
//! A submission is one `PutItem` and one `SendMessage`, sent concurrently: the
//! message carries only the job id, and the worker treats a message whose job
//! is not written yet as "try again shortly". Should the send fail after the
//! write succeeded, the job is marked `enqueue failed` (a conditional
//! `PutItem`, so the API role needs nothing but `PutItem`/`GetItem`) and the
//! client gets a 503 it can retry, with the same idempotency key if it sent one.

mod error;
mod identity;

pub use error::ApiError;
pub use identity::{ANONYMOUS_OWNER, caller};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION};
use http::{Method, StatusCode};
use jobline_shared::job::{format_ms, now_ms};
use jobline_shared::{
    Config, JobId, JobMessage, JobQueue, JobRecord, JobRequest, JobStore, JobTypes, Metric,
    Metrics, StoreError,
};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest request body accepted, 256 KiB. A job record holds the payload
/// and must fit DynamoDB's 400 KB item limit with room for the result.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A response and the metrics of the request that produced it.
#[derive(Debug)]
pub struct Reply {
    pub response: Response<Body>,
    pub metrics: Metrics,
}

/// The API, with its store, queue and job types.
pub struct Api {
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    job_types: JobTypes,
    retention_days: u32,
    public_base_url: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("job_types", &self.job_types)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    #[serde(rename = "type")]
    job_type: String,
    #[serde(default = "empty_object")]
    payload: Value,
}

fn empty_object() -> Value {
    json!({})
}

impl Api {
    pub fn new(
        store: Arc<dyn JobStore>,
        queue: Arc<dyn JobQueue>,
        job_types: JobTypes,
        config: &Config,
    ) -> Self {
        Self {
            store,
            queue,
            job_types,
            retention_days: config.retention_days,
            public_base_url: config.public_base_url.clone(),
        }
    }

    /// Routes one request. Never fails: every error becomes a JSON response.
    pub async fn handle(&self, request: Request) -> Reply {
        let mut metrics = Metrics::new();
        let segments: Vec<&str> = request
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let result = match (request.method(), segments.as_slice()) {
            (&Method::POST, ["jobs"]) => self.submit(&request, &mut metrics).await,
            (&Method::GET, ["jobs", id]) => self.status(&request, id).await,
            (_, ["jobs"]) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            (_, ["jobs", _]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            _ => Err(ApiError::RouteNotFound),
        };
        let response = result.unwrap_or_else(|error| {
            if error.status().is_server_error() {
                tracing::error!(%error, "request failed");
            }
            error.into_response()
        });
        Reply { response, metrics }
    }

    async fn submit(
        &self,
        request: &Request,
        metrics: &mut Metrics,
    ) -> Result<Response<Body>, ApiError> {
        let body: &[u8] = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
                size: body.len(),
            });
        }
        // The body is read as JSON whatever its Content-Type: `curl -d`
        // sends form-urlencoded by default, and nothing else is accepted.
        let json: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        let submit: SubmitBody =
            serde_json::from_value(json).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        let handler =
            self.job_types
                .get(&submit.job_type)
                .ok_or_else(|| ApiError::UnknownJobType {
                    job_type: submit.job_type.clone(),
                    known: self.job_types.names().map(str::to_owned).collect(),
                })?;
        handler
            .validate(&submit.payload)
            .map_err(ApiError::InvalidPayload)?;

        let owner = caller(request);
        let id = match idempotency_key(request)? {
            Some(key) => JobId::from_idempotency_key(&owner, key),
            None => JobId::random(),
        };
        let job_request = JobRequest {
            job_type: submit.job_type,
            payload: submit.payload,
        };
        let job = JobRecord::new_queued(id, &owner, &job_request, now_ms(), self.retention_days);
        let message = JobMessage { job_id: id };
        let (created, sent) = tokio::join!(self.store.create(&job), self.queue.send(&message));
        let accepted = match (created, sent) {
            (Ok(()), Ok(_)) => {
                metrics.count(&job.job_type, Metric::JobsAccepted);
                tracing::info!(jobId = %id, jobType = %job.job_type, "job accepted");
                job
            }
            (
                Err(StoreError::Conflict {
                    current: Some(existing),
                }),
                _,
            ) => {
                if existing.fingerprint != job.fingerprint || existing.owner != owner {
                    return Err(ApiError::IdempotencyKeyReused);
                }
                tracing::info!(jobId = %id, "idempotent replay of an accepted job");
                *existing
            }
            (Ok(()), Err(send_error)) => {
                let reason = format!("the job could not be queued: {send_error}");
                if let Err(mark_error) = self.store.mark_enqueue_failed(&job, &reason).await {
                    tracing::error!(jobId = %id, %mark_error, "could not mark the job enqueue-failed");
                }
                return Err(ApiError::Unavailable(reason));
            }
            (Err(store_error), _) => {
                return Err(ApiError::Unavailable(format!(
                    "the job could not be stored: {store_error}"
                )));
            }
        };
        let status_url = self.status_url(request, accepted.id);
        let body = json!({
            "jobId": accepted.id,
            "status": accepted.state,
            "statusUrl": status_url,
        });
        json_response(StatusCode::ACCEPTED)
            .header(LOCATION, status_url)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }

    async fn status(&self, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let id: JobId = id.parse().map_err(|_| ApiError::JobNotFound)?;
        let job = self
            .store
            .get(id)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
            .filter(|job| job.owner == caller(request))
            .ok_or(ApiError::JobNotFound)?;
        let body = job_view(&job);
        json_response(StatusCode::OK)
            .header(CACHE_CONTROL, "no-store")
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }

    /// `PUBLIC_BASE_URL`, else the request's own scheme and host, then `/jobs/{id}`.
    fn status_url(&self, request: &Request, id: JobId) -> String {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        let base = match (&self.public_base_url, header(HOST.as_str())) {
            (Some(base), _) => base.clone(),
            (None, Some(host)) => {
                let scheme = header("x-forwarded-proto").unwrap_or("http");
                format!("{scheme}://{host}")
            }
            (None, None) => String::new(),
        };
        format!("{base}/jobs/{id}")
    }
}

fn idempotency_key(request: &Request) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(ApiError::InvalidIdempotencyKey)?;
    Ok(Some(key))
}

fn json_response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
}

/// The public view of a job, as `GET /jobs/{id}` returns it.
pub fn job_view(job: &JobRecord) -> Value {
    json!({
        "jobId": job.id,
        "type": job.job_type,
        "status": job.state,
        "createdAt": format_ms(job.created_at),
        "startedAt": job.started_at.map(format_ms),
        "finishedAt": job.finished_at.map(format_ms),
        "attempts": job.attempts,
        "result": job.result,
        "error": job.error,
        "deadLettered": job.dead_lettered,
        "replays": job.replays,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_shared::JobState;
    use jobline_shared::queue::memory::MemoryQueue;
    use jobline_shared::store::memory::MemoryStore;

    fn api(store: &Arc<MemoryStore>, queue: &Arc<MemoryQueue>, base: Option<&str>) -> Api {
        let mut config = Config::from_lookup(|name| match name {
            "JOBS_TABLE" => Some("t".into()),
            "JOBS_QUEUE_URL" => Some("q".into()),
            _ => None,
        })
        .expect("config");
        config.public_base_url = base.map(str::to_owned);
        Api::new(store.clone(), queue.clone(), JobTypes::builtin(), &config)
    }

    fn submit(key: Option<&str>) -> Request {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri("/jobs")
            .header("host", "localhost:3000");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        builder
            .body(Body::from(r#"{"type":"primes","payload":{"upTo":10}}"#))
            .expect("request")
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(reply.response.body().as_ref()).expect("JSON")
    }

    #[tokio::test]
    async fn accepts_writes_and_sends_the_id() {
        let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
        let reply = api(&store, &queue, Some("https://jobs.example.com"))
            .handle(submit(None))
            .await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
        let body = body(&reply);
        let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            body["statusUrl"],
            format!("https://jobs.example.com/jobs/{id}")
        );
        assert_eq!(
            reply.response.headers()[LOCATION],
            body["statusUrl"].as_str().unwrap()
        );
        assert_eq!(queue.sent(), [JobMessage { job_id: id }]);
        assert_eq!(store.job(id).unwrap().state, JobState::Queued);
    }

    #[tokio::test]
    async fn a_failed_send_is_a_503_and_marks_the_job() {
        let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
        queue.set_failing(true);
        let api = api(&store, &queue, None);
        let reply = api.handle(submit(Some("k"))).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(&reply)["error"]["code"], "unavailable");
        let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
        let job = store.job(id).unwrap();
        assert!(job.enqueue_failed);
        assert_eq!(job.state, JobState::Failed);

        queue.set_failing(false);
        let retried = api.handle(submit(Some("k"))).await;
        assert_eq!(retried.response.status(), StatusCode::ACCEPTED);
        assert_eq!(store.job(id).unwrap().state, JobState::Queued);
    }

    #[tokio::test]
    async fn a_store_outage_is_a_503_for_submit_and_status() {
        let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
        store.set_failing(true);
        let api = api(&store, &queue, None);
        let reply = api.handle(submit(None)).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.metrics.total(Metric::JobsAccepted), 0.0);
        let status = http::Request::builder()
            .uri(format!("/jobs/{}", JobId::random()))
            .body(Body::Empty)
            .unwrap();
        let reply = api.handle(status).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn job_view_shows_times_as_rfc3339() {
        let request = JobRequest {
            job_type: "primes".into(),
            payload: json!({}),
        };
        let mut job = JobRecord::new_queued(JobId::random(), "a", &request, 0, 1);
        job.started_at = Some(1_500);
        let view = job_view(&job);
        assert_eq!(view["createdAt"], "1970-01-01T00:00:00Z");
        assert_eq!(view["startedAt"], "1970-01-01T00:00:01.5Z");
        assert_eq!(view["finishedAt"], Value::Null);
        assert_eq!(view["status"], "queued");
    }
}

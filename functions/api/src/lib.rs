//! The HTTP API: `POST /jobs` accepts a job and answers `202 Accepted` at
//! once; `GET /jobs/{id}` reports it. Requests arrive as API Gateway HTTP API
//! (payload v2) events through `lambda_http`, or from the local server.
//!
//! # Submitting: write, then send
//!
//! A submission is a conditional `PutItem` of the job record, **then** a
//! `SendMessage` of its id: a message never precedes its record, so a worker
//! never meets a message whose job does not exist yet. This costs one more
//! round trip than sending both at once (about one DynamoDB write's latency,
//! a few milliseconds in a region), and it is what lets 202 mean "it will
//! finish". 202 is answered only once the job is queued (or further along):
//!
//! - When the `PutItem` is refused because the id exists (an
//!   `Idempotency-Key` replay) with the same owner and body: if the item's
//!   `createdAt` is this request's own, it is this request's write, which the
//!   SDK retried after losing its response, so the submission goes on and
//!   sends; otherwise it is a replay, answered 202 with the existing job's
//!   state. A replay of a job a worker has claimed sends **no** new message
//!   (its message exists: a second one would skip its backoff and add to its
//!   deliveries). A replay of a job still `queued` with no attempt sends its
//!   message again: the request that wrote it may have died between its write
//!   and its send (the client's retry is what heals that), and a duplicate of
//!   a job not yet started only costs the worker one refused claim. A
//!   different body under the same key is 422; a key whose job has expired is
//!   409.
//! - When the send fails, the job is marked `enqueue failed` (a conditional
//!   `PutItem`, so the API role needs nothing but `PutItem`/`GetItem`) and the
//!   client gets a 503; a retry with the same key re-creates and re-sends it.
//!   If that mark is refused because a worker has already claimed the job,
//!   the message did arrive (only `SendMessage`'s response was lost): 202.
//!
//! Before any of this, the job must fit its item (`submission.rs`): the
//! payload as stored within its 256 KiB budget, the whole new item within
//! the payload's and the fixed attributes' budgets, else 413. DynamoDB would
//! refuse an item over 400 KB with an error no retry cures, and an item near
//! it would leave no room for the job's result.
//!
//! Each DynamoDB and SQS operation is bounded (`API_AWS_TIMEOUT_MS`, set on
//! the clients in `main.rs`), so a slow AWS call becomes a 503 well within the
//! function's timeout instead of a gateway timeout with an unknown outcome.
//!
//! # Expiry
//!
//! A job is gone (404) from its `expiresAt` on (`JOB_RETENTION_DAYS` after its
//! creation or replay): DynamoDB's TTL deletes expired items only within a
//! few days, so a read may still find one.
//!
//! # Polling: `Retry-After`
//!
//! The 202 and the status of an unfinished job (`queued`, `running`) carry
//! `Retry-After: 2` ([`POLL_AFTER_SECS`]): a job waits at least the worker's
//! batching and SQS's polling before it starts, so polling faster mostly reads
//! `queued` again, and each poll costs an API Gateway request, a Lambda
//! request and a read. Two seconds keeps a typical job at about three polls
//! (the cost model of the README) while a client learns of a short job's end
//! within two seconds.
//!
//! # Backlog
//!
//! Above `MAX_BACKLOG` queued messages a new submission is 429 `backlog_full`
//! with `Retry-After` ([`backlog`]); a replay of an already accepted key still
//! gets its 202, since it adds no work.
//!
//! # Links, errors, logs
//!
//! `statusUrl` and `Location` come from `PUBLIC_BASE_URL` or, deployed, from
//! the request context's API Gateway domain name (and stage, unless
//! `$default`), always `https`; never from `Host` or `X-Forwarded-Proto`,
//! which the client writes. With neither, the link is relative.
//!
//! Clients get fixed error messages; the detail of a 5xx (AWS errors name
//! tables, queues and the account) goes to the logs. Each request logs one
//! line with flat fields `jobId`, `jobType`, `status` (and `code` for an
//! error): `info`, or `error` with the detail for a 5xx. The rest is `debug`.

pub mod backlog;
mod error;
mod identity;
mod submission;

pub use backlog::{Backlog, QueueDepth, SqsQueueDepth};
pub use error::ApiError;
pub use identity::{ANONYMOUS_OWNER, caller};
pub use submission::{MAX_BODY_BYTES, MAX_IDEMPOTENCY_KEY_LEN};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{Method, StatusCode};
use jobline_shared::job::{format_ms, now_ms};
use jobline_shared::{
    Config, JobId, JobMessage, JobQueue, JobRecord, JobState, JobStore, JobTypes, Metric, Metrics,
    StoreError,
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// `Retry-After` of a 202 and of an unfinished job's status, in seconds
/// (the module doc says why).
pub const POLL_AFTER_SECS: u32 = 2;

/// `Retry-After` of a 429 `backlog_full`, in seconds: a backlog over the
/// bound drains in minutes, not in the seconds of a depth reading.
pub const BACKLOG_RETRY_AFTER_SECS: u32 = 30;

/// The error a job keeps when its message could not be sent (the client
/// sees it in the job's status; the SQS error goes to the logs).
const ENQUEUE_FAILED: &str =
    "the job could not be queued; submit it again with the same Idempotency-Key";

/// A response and the metrics of the request that produced it (already
/// emitted by [`Api::handle`]; kept for tests).
#[derive(Debug)]
pub struct Reply {
    pub response: Response<Body>,
    pub metrics: Metrics,
}

/// The API, with its store, queue and job types.
#[derive(Debug)]
pub struct Api {
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    job_types: JobTypes,
    retention_days: u32,
    public_base_url: Option<String>,
    allow_anonymous: bool,
    max_backlog: u64,
    backlog: Option<Backlog>,
    /// The time now, in epoch milliseconds (a seam for tests).
    clock: fn() -> i64,
}

/// What the outcome line of a request names, filled in as it is learnt.
#[derive(Debug, Default)]
struct Trace {
    job_id: Option<JobId>,
    job_type: Option<String>,
}

impl Api {
    /// The API without a backlog bound; see [`Api::with_queue_depth`].
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
            allow_anonymous: config.allow_anonymous,
            max_backlog: config.max_backlog,
            backlog: None,
            clock: now_ms,
        }
    }

    /// Bounds the backlog at the configured `MAX_BACKLOG` (0: no bound),
    /// reading the queue's depth through `depth`.
    pub fn with_queue_depth(mut self, depth: Arc<dyn QueueDepth>) -> Self {
        self.backlog = (self.max_backlog > 0)
            .then(|| Backlog::new(depth, self.max_backlog, backlog::DEPTH_CACHE));
        self
    }

    /// Routes one request and emits its metrics (EMF), so no entry point
    /// has to remember to. Never fails: every error becomes a JSON response.
    pub async fn handle(&self, request: Request) -> Reply {
        let mut metrics = Metrics::new();
        let mut trace = Trace::default();
        let segments: Vec<&str> = request
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let result = match (request.method(), segments.as_slice()) {
            (&Method::POST, ["jobs"]) => self.submit(&request, &mut metrics, &mut trace).await,
            (&Method::GET, ["jobs", id]) => self.status(&request, id, &mut trace).await,
            (_, ["jobs"]) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            (_, ["jobs", _]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            _ => Err(ApiError::RouteNotFound),
        };
        let job_id = trace.job_id.map(tracing::field::display);
        let job_type = trace.job_type.as_deref();
        let response = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                tracing::info!(jobId = job_id, jobType = job_type, status, "request");
                response
            }
            Err(error) => {
                let (status, code) = (error.status().as_u16(), error.code());
                match error.detail() {
                    Some(detail) => tracing::error!(
                        jobId = job_id,
                        jobType = job_type,
                        status,
                        code,
                        error = detail,
                        "request failed"
                    ),
                    None => {
                        tracing::info!(jobId = job_id, jobType = job_type, status, code, "request")
                    }
                }
                error.into_response()
            }
        };
        metrics.emit();
        Reply { response, metrics }
    }

    async fn submit(
        &self,
        request: &Request,
        metrics: &mut Metrics,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous)?;
        let key = submission::idempotency_key(request)?;
        let job_request = submission::job_request(request.body().as_ref())?;
        trace.job_type = Some(job_request.job_type.clone());
        let id = key.map_or_else(JobId::random, |key| {
            JobId::from_idempotency_key(&owner, key)
        });
        trace.job_id = Some(id);
        let job = JobRecord::new_queued(
            id,
            &owner,
            &job_request,
            (self.clock)(),
            self.retention_days,
        );
        submission::check_sizes(&job)?;
        let handler =
            self.job_types
                .get(&job.job_type)
                .ok_or_else(|| ApiError::UnknownJobType {
                    job_type: job.job_type.clone(),
                    known: self.job_types.names().map(str::to_owned).collect(),
                })?;
        handler
            .validate(&job.payload)
            .map_err(ApiError::InvalidPayload)?;

        if self.backlog_full().await {
            if key.is_some() {
                let existing = self
                    .store
                    .get(id)
                    .await
                    .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
                if let Some(existing) = existing {
                    check_replay(&existing, &job)?;
                    if !existing.enqueue_failed {
                        tracing::debug!("replay of an accepted job while the backlog is full");
                        return self.accepted(request, &existing);
                    }
                }
            }
            metrics.count(&job.job_type, Metric::JobsRefused);
            return Err(ApiError::BacklogFull {
                retry_after_secs: BACKLOG_RETRY_AFTER_SECS,
            });
        }

        // Whether this request creates the job (not a replay of an accepted one).
        let new_job = match self.store.create(&job).await {
            Ok(()) => true,
            Err(StoreError::Conflict {
                current: Some(existing),
            }) => {
                check_replay(&existing, &job)?;
                if existing.created_at == job.created_at {
                    tracing::debug!("the store holds this request's own write (a retried PutItem)");
                    true
                } else if existing.state == JobState::Queued && existing.attempts == 0 {
                    // Never claimed: the request that wrote it may have died
                    // between its write and its send, leaving no message. Send
                    // again; a duplicate only costs the worker a refused claim.
                    tracing::debug!("replay of a job not yet started: sending its message again");
                    false
                } else {
                    tracing::debug!("idempotent replay of an accepted job");
                    return self.accepted(request, &existing);
                }
            }
            Err(error) => return Err(ApiError::StoreUnavailable(error.to_string())),
        };

        if let Err(send_error) = self.queue.send(&JobMessage { job_id: id }).await {
            let detail = match self.store.mark_enqueue_failed(&job, ENQUEUE_FAILED).await {
                Ok(()) => send_error.to_string(),
                // A worker claimed the job: the message arrived after all
                // (only its response was lost), so the job is accepted.
                Err(StoreError::Conflict {
                    current: Some(claimed),
                }) if claimed.attempts > 0 => {
                    tracing::warn!(
                        error = %send_error,
                        "SendMessage failed, but a worker has already claimed the job"
                    );
                    metrics.count(&job.job_type, Metric::JobsAccepted);
                    return self.accepted(request, &claimed);
                }
                Err(mark_error) => {
                    format!(
                        "{send_error}; marking the job enqueue-failed also failed: {mark_error}"
                    )
                }
            };
            return Err(ApiError::QueueUnavailable(detail));
        }
        if new_job {
            metrics.count(&job.job_type, Metric::JobsAccepted);
        }
        self.accepted(request, &job)
    }

    async fn backlog_full(&self) -> bool {
        match &self.backlog {
            Some(backlog) => backlog.is_full().await,
            None => false,
        }
    }

    /// The 202 for `job`, with its link and when to poll it.
    fn accepted(&self, request: &Request, job: &JobRecord) -> Result<Response<Body>, ApiError> {
        let status_url = format!("{}/jobs/{}", self.public_base(request), job.id);
        let body = json!({
            "jobId": job.id,
            "status": job.state,
            "statusUrl": status_url,
        });
        json_response(StatusCode::ACCEPTED)
            .header(LOCATION, status_url)
            .header(RETRY_AFTER, POLL_AFTER_SECS)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }

    async fn status(
        &self,
        request: &Request,
        id: &str,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous)?;
        let id: JobId = id.parse().map_err(|_| ApiError::JobNotFound)?;
        trace.job_id = Some(id);
        let now_ms = (self.clock)();
        let job = self
            .store
            .get(id)
            .await
            .map_err(|e| ApiError::StatusUnavailable(e.to_string()))?
            .filter(|job| job.owner == owner && !expired(job, now_ms))
            .ok_or(ApiError::JobNotFound)?;
        trace.job_type = Some(job.job_type.clone());
        let mut response = json_response(StatusCode::OK).header(CACHE_CONTROL, "no-store");
        if !job.state.is_finished() {
            response = response.header(RETRY_AFTER, POLL_AFTER_SECS);
        }
        response
            .body(Body::from(job_view(&job).to_string()))
            .map_err(ApiError::internal)
    }

    /// `PUBLIC_BASE_URL`; else, deployed, `https://` and the API Gateway
    /// domain name of the request context, and its stage unless `$default`;
    /// else nothing (relative links). Never the client's `Host`.
    fn public_base(&self, request: &Request) -> String {
        if let Some(base) = &self.public_base_url {
            return base.clone();
        }
        let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
            return String::new();
        };
        let Some(domain) = context.domain_name.as_deref().filter(|d| !d.is_empty()) else {
            return String::new();
        };
        match context
            .stage
            .as_deref()
            .filter(|stage| !stage.is_empty() && *stage != "$default")
        {
            Some(stage) => format!("https://{domain}/{stage}"),
            None => format!("https://{domain}"),
        }
    }
}

/// Whether `job` is past its `expiresAt` at `now_ms`, and so gone to its
/// client: DynamoDB's TTL deletes an expired item only within a few days
/// (and the emulator never), so a read may still meet it. An `expiresAt` of
/// 0 (absent) is no expiry, as DynamoDB's TTL skips such items.
fn expired(job: &JobRecord, now_ms: i64) -> bool {
    job.expires_at > 0 && job.expires_at <= now_ms / 1000
}

/// Whether `existing`, the job already under this request's id, may answer
/// `job`'s request as a replay: not if it has expired (its client sees it
/// gone, and the store keeps the id until the TTL deletes it), nor if
/// another caller or body made it.
fn check_replay(existing: &JobRecord, job: &JobRecord) -> Result<(), ApiError> {
    if expired(existing, job.created_at) {
        return Err(ApiError::IdempotencyKeyExpired);
    }
    if existing.owner != job.owner || existing.fingerprint != job.fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(())
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
        "discarded": job.discarded,
        "replays": job.replays,
    })
}

#[cfg(test)]
mod tests {
    use super::backlog::fake::FakeDepth;
    use super::*;
    use jobline_shared::queue::memory::MemoryQueue;
    use jobline_shared::queue::{Receive, ReceivedMessage};
    use jobline_shared::store::memory::MemoryStore;
    use jobline_shared::{JobRequest, QueueError};
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;

    fn config(base: Option<&str>) -> Config {
        let mut config = Config::from_lookup(|name| match name {
            "JOBS_TABLE" => Some("t".into()),
            "JOBS_QUEUE_URL" => Some("q".into()),
            "ALLOW_ANONYMOUS" => Some("true".into()),
            "MAX_BACKLOG" => Some("10".into()),
            _ => None,
        })
        .expect("config");
        config.public_base_url = base.map(str::to_owned);
        config
    }

    fn api(store: &Arc<MemoryStore>, queue: &Arc<MemoryQueue>, base: Option<&str>) -> Api {
        Api::new(
            store.clone(),
            queue.clone(),
            JobTypes::builtin(),
            &config(base),
        )
    }

    fn fakes() -> (Arc<MemoryStore>, Arc<MemoryQueue>) {
        (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()))
    }

    const BODY: &str = r#"{"type":"primes","payload":{"upTo":10}}"#;

    fn submit(key: Option<&str>) -> Request {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri("/jobs")
            .header("host", "localhost:3000");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        builder.body(Body::from(BODY)).expect("request")
    }

    fn get(id: JobId) -> Request {
        http::Request::builder()
            .uri(format!("/jobs/{id}"))
            .body(Body::Empty)
            .unwrap()
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(reply.response.body().as_ref()).expect("JSON")
    }

    fn record(id: JobId, created_at: i64) -> JobRecord {
        let request = JobRequest {
            job_type: "primes".into(),
            payload: json!({"upTo": 10}),
        };
        JobRecord::new_queued(id, ANONYMOUS_OWNER, &request, created_at, 30)
    }

    #[tokio::test]
    async fn accepts_writes_and_sends_the_id() {
        let (store, queue) = fakes();
        let reply = api(&store, &queue, Some("https://jobs.example.com"))
            .handle(submit(None))
            .await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
        assert_eq!(reply.response.headers()[RETRY_AFTER], "2");
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
        let (store, queue) = fakes();
        queue.set_failing(true);
        let api = api(&store, &queue, None);
        let reply = api.handle(submit(Some("k"))).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(&reply)["error"]["code"], "unavailable");
        assert_eq!(
            body(&reply)["error"]["message"],
            "the job queue is unavailable; nothing was accepted, retry with the same Idempotency-Key"
        );
        let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
        let job = store.job(id).unwrap();
        assert!(job.enqueue_failed);
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error.as_deref(), Some(ENQUEUE_FAILED));

        queue.set_failing(false);
        let retried = api.handle(submit(Some("k"))).await;
        assert_eq!(retried.response.status(), StatusCode::ACCEPTED);
        assert_eq!(store.job(id).unwrap().state, JobState::Queued);
        assert_eq!(queue.sent(), [JobMessage { job_id: id }]);
    }

    /// A queue whose `SendMessage` delivers but loses its response, and
    /// whose message a worker claims before the API hears of the failure.
    #[derive(Debug)]
    struct LostResponse {
        store: Arc<MemoryStore>,
        queue: MemoryQueue,
    }

    #[async_trait::async_trait]
    impl JobQueue for LostResponse {
        async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
            self.queue.send(message).await?;
            self.store
                .claim(message.job_id, 1, 2, 1, "test-delivery")
                .await
                .expect("claim");
            Err(QueueError::Aws {
                operation: "SendMessage",
                source: "the response was lost".into(),
            })
        }
        async fn change_visibility(&self, handle: &str, secs: u32) -> Result<(), QueueError> {
            self.queue.change_visibility(handle, secs).await
        }
        async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
            self.queue.receive(request).await
        }
        async fn delete(&self, handles: &[String]) -> Result<Vec<String>, QueueError> {
            self.queue.delete(handles).await
        }
    }

    #[tokio::test]
    async fn a_failed_send_whose_job_a_worker_claimed_is_accepted() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(LostResponse {
            store: store.clone(),
            queue: MemoryQueue::new(),
        });
        let api = Api::new(
            store.clone(),
            queue.clone(),
            JobTypes::builtin(),
            &config(None),
        );
        let reply = api.handle(submit(Some("k"))).await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
        assert_eq!(reply.metrics.total(Metric::JobsAccepted), 1.0);
        let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
        assert_eq!(body(&reply)["jobId"], id.to_string());
        assert_eq!(body(&reply)["status"], "running");
        let job = store.job(id).unwrap();
        assert!(!job.enqueue_failed, "the claimed job is left alone");
        assert_eq!(job.state, JobState::Running);
        assert_eq!(queue.queue.sent(), [JobMessage { job_id: id }]);
    }

    #[tokio::test]
    async fn a_payload_over_its_budget_as_stored_is_413_and_nothing_is_written() {
        let (store, queue) = fakes();
        let api = api(&store, &queue, None);
        // A valid primes job under the body limit as sent, and 3.8 times
        // longer as stored (over DynamoDB's 400 KB: the store would refuse
        // it, with an error no retry cures).
        let numbers = vec!["1E15"; MAX_BODY_BYTES / 5 - 10].join(",");
        let body_text = format!(r#"{{"type":"primes","payload":{{"upTo":10,"pad":[{numbers}]}}}}"#);
        assert!(body_text.len() <= MAX_BODY_BYTES);
        let request = http::Request::builder()
            .method("POST")
            .uri("/jobs")
            .body(Body::from(body_text))
            .unwrap();
        let reply = api.handle(request).await;
        assert_eq!(reply.response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let error = &body(&reply)["error"];
        assert_eq!(error["code"], "payload_too_large");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("the limit is 262144 bytes"),
            "{error}"
        );
        assert_eq!(store.writes(), 0);
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn a_job_past_its_expiry_is_gone_and_its_key_cannot_replay_it() {
        // Kept 30 days (the default JOB_RETENTION_DAYS) from its creation.
        const EXPIRES_MS: i64 = 1_000 + 30 * 86_400_000;
        let (store, queue) = fakes();
        let mut api = api(&store, &queue, None);
        api.clock = || 1_000;
        let accepted = api.handle(submit(Some("k"))).await;
        assert_eq!(accepted.response.status(), StatusCode::ACCEPTED);
        let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
        assert_eq!(store.job(id).unwrap().expires_at * 1000, EXPIRES_MS);

        api.clock = || EXPIRES_MS - 1_000;
        assert_eq!(api.handle(get(id)).await.response.status(), StatusCode::OK);
        // From `expiresAt` on the TTL may delete it: it is gone, whether or
        // not the item still exists.
        api.clock = || EXPIRES_MS;
        let reply = api.handle(get(id)).await;
        assert_eq!(reply.response.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(&reply)["error"]["code"], "job_not_found");
        assert!(store.job(id).is_some(), "the item is still there");

        let replay = api.handle(submit(Some("k"))).await;
        assert_eq!(replay.response.status(), StatusCode::CONFLICT);
        assert_eq!(body(&replay)["error"]["code"], "idempotency_key_expired");
        assert_eq!(queue.sent().len(), 1, "nothing more was sent");
    }

    #[tokio::test]
    async fn a_store_outage_is_a_503_for_submit_and_status_and_sends_nothing() {
        let (store, queue) = fakes();
        store.set_failing(true);
        let api = api(&store, &queue, None);
        let reply = api.handle(submit(None)).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.metrics.total(Metric::JobsAccepted), 0.0);
        assert!(
            body(&reply)["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("the job store is unavailable; nothing was accepted")
        );
        assert!(queue.sent().is_empty(), "no message without its record");
        let reply = api.handle(get(JobId::random())).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_replay_of_a_started_job_sends_nothing() {
        let (store, queue) = fakes();
        let mut api = api(&store, &queue, None);
        api.clock = || 1_000;
        let first = api.handle(submit(Some("k"))).await;
        let id: JobId = body(&first)["jobId"].as_str().unwrap().parse().unwrap();
        store
            .claim(id, 1_000, 2_000, 1, "delivery")
            .await
            .expect("claim");
        api.clock = || 1_001;
        let replay = api.handle(submit(Some("k"))).await;
        assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
        assert_eq!(body(&replay)["jobId"], body(&first)["jobId"]);
        assert_eq!(body(&replay)["status"], "running");
        assert_eq!(replay.metrics.total(Metric::JobsAccepted), 0.0);
        assert_eq!(queue.sent().len(), 1, "one message for one job");
    }

    #[tokio::test]
    async fn a_replay_of_a_job_never_started_sends_its_message_again() {
        let (store, queue) = fakes();
        let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
        // The request that wrote it died before its SendMessage.
        store.insert(record(id, 1_000));
        let mut api = api(&store, &queue, None);
        api.clock = || 5_000;
        let replay = api.handle(submit(Some("k"))).await;
        assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
        assert_eq!(queue.sent(), [JobMessage { job_id: id }]);
    }

    #[tokio::test]
    async fn the_requests_own_retried_write_is_still_sent() {
        let (store, queue) = fakes();
        let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
        // The PutItem landed but its response was lost; the SDK's retry
        // meets the item this very request wrote (same createdAt).
        store.insert(record(id, 1_000));
        let mut api = api(&store, &queue, None);
        api.clock = || 1_000;
        let reply = api.handle(submit(Some("k"))).await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
        assert_eq!(queue.sent(), [JobMessage { job_id: id }]);
        assert_eq!(reply.metrics.total(Metric::JobsAccepted), 1.0);
        // A later request with the key, once a worker has the job, is a replay.
        store
            .claim(id, 1_500, 9_000, 1, "delivery")
            .await
            .expect("claim");
        api.clock = || 2_000;
        let replay = api.handle(submit(Some("k"))).await;
        assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn unfinished_jobs_say_when_to_poll_again() {
        let (store, queue) = fakes();
        let api = api(&store, &queue, None);
        let id = JobId::random();
        for (state, retry_after) in [
            (JobState::Queued, Some("2")),
            (JobState::Running, Some("2")),
            (JobState::Succeeded, None),
            (JobState::Failed, None),
        ] {
            let mut job = record(id, now_ms());
            job.state = state;
            store.insert(job);
            let reply = api.handle(get(id)).await;
            assert_eq!(reply.response.status(), StatusCode::OK);
            assert_eq!(
                reply
                    .response
                    .headers()
                    .get(RETRY_AFTER)
                    .map(|v| v.to_str().unwrap()),
                retry_after,
                "{state}"
            );
        }
    }

    #[tokio::test]
    async fn a_full_backlog_refuses_new_jobs_but_not_replays() {
        let (store, queue) = fakes();
        let depth = FakeDepth::new(0);
        let mut api = api(&store, &queue, None);
        // Read at every request, so the test need not wait for the cache.
        api.backlog = Some(Backlog::new(depth.clone(), 10, std::time::Duration::ZERO));
        let accepted = api.handle(submit(Some("early"))).await;
        assert_eq!(accepted.response.status(), StatusCode::ACCEPTED);
        depth.depth.store(11, std::sync::atomic::Ordering::SeqCst);
        for key in [None, Some("late")] {
            let refused = api.handle(submit(key)).await;
            assert_eq!(refused.response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(refused.response.headers()[RETRY_AFTER], "30");
            assert_eq!(body(&refused)["error"]["code"], "backlog_full");
            assert_eq!(refused.metrics.total(Metric::JobsRefused), 1.0);
        }
        let replay = api.handle(submit(Some("early"))).await;
        assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
        assert_eq!(body(&replay)["jobId"], body(&accepted)["jobId"]);
        assert_eq!(queue.sent().len(), 1, "only the early job was queued");
        assert_eq!(store.snapshot().len(), 1);
    }

    #[tokio::test]
    async fn no_backlog_bound_when_max_backlog_is_zero() {
        let (store, queue) = fakes();
        let mut config = config(None);
        config.max_backlog = 0;
        let api = Api::new(store, queue, JobTypes::builtin(), &config)
            .with_queue_depth(FakeDepth::new(u64::MAX));
        let reply = api.handle(submit(None)).await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn without_an_identity_and_without_anonymous_it_is_401() {
        let (store, queue) = fakes();
        let mut config = config(None);
        config.allow_anonymous = false;
        let api = Api::new(store, queue.clone(), JobTypes::builtin(), &config);
        for request in [submit(None), get(JobId::random())] {
            let reply = api.handle(request).await;
            assert_eq!(reply.response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(body(&reply)["error"]["code"], "unauthenticated");
        }
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn links_never_come_from_the_clients_host() {
        let (store, queue) = fakes();
        let api = api(&store, &queue, None);
        let mut forged = submit(None);
        let headers = forged.headers_mut();
        headers.insert("host", "evil.example.com".parse().unwrap());
        headers.insert("x-forwarded-proto", "javascript".parse().unwrap());
        let reply = api.handle(forged).await;
        let url = body(&reply)["statusUrl"].as_str().unwrap().to_owned();
        assert!(url.starts_with("/jobs/"), "{url}");

        for (stage, base) in [
            (
                "$default",
                "https://abc123.execute-api.us-east-1.amazonaws.com",
            ),
            (
                "prod",
                "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
            ),
        ] {
            let mut context = ApiGatewayV2httpRequestContext::default();
            context.domain_name = Some("abc123.execute-api.us-east-1.amazonaws.com".into());
            context.stage = Some(stage.into());
            let mut request = submit(None);
            request
                .headers_mut()
                .insert("host", "evil.example.com".parse().unwrap());
            request
                .extensions_mut()
                .insert(RequestContext::ApiGatewayV2(context));
            let reply = api.handle(request).await;
            let url = body(&reply)["statusUrl"].as_str().unwrap().to_owned();
            assert!(url.starts_with(&format!("{base}/jobs/")), "{url}");
            assert_eq!(reply.response.headers()[LOCATION], url.as_str());
        }
    }

    /// The JSON log lines written while `run` runs, at `info` and above.
    async fn logs(run: impl Future<Output = ()>) -> Vec<Value> {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        // Tests run on several threads, and a callsite first reached on one
        // with no subscriber caches "never" for all: a global subscriber
        // that wants everything keeps every callsite live.
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            drop(tracing::subscriber::set_global_default(
                tracing_subscriber::registry(),
            ));
        });
        let guard = tracing::subscriber::set_default(subscriber);
        run.await;
        drop(guard);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn one_log_line_per_request_with_flat_fields_and_the_detail_only_there() {
        let (store, queue) = fakes();
        let api = api(&store, &queue, None);
        let lines = logs(async {
            let reply = api.handle(submit(None)).await;
            assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
            queue.set_failing(true);
            let reply = api.handle(submit(None)).await;
            assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
        })
        .await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (accepted, failed) = (&lines[0], &lines[1]);
        assert_eq!(accepted["level"], "INFO");
        assert_eq!(accepted["status"], 202);
        assert_eq!(accepted["jobType"], "primes");
        assert!(accepted["jobId"].as_str().unwrap().parse::<JobId>().is_ok());
        assert_eq!(failed["level"], "ERROR");
        assert_eq!(failed["status"], 503);
        assert_eq!(failed["code"], "unavailable");
        assert!(failed["jobId"].is_string());
        assert!(
            failed["error"].as_str().unwrap().contains("SendMessage"),
            "the logs get the detail: {failed}"
        );
    }

    #[test]
    fn job_view_shows_times_as_rfc3339() {
        let mut job = record(JobId::random(), 0);
        job.started_at = Some(1_500);
        let view = job_view(&job);
        assert_eq!(view["createdAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(view["startedAt"], "1970-01-01T00:00:01.500Z");
        assert_eq!(view["finishedAt"], Value::Null);
        assert_eq!(view["status"], "queued");
        assert_eq!(view["deadLettered"], false);
        assert_eq!(view["discarded"], false);
    }

    #[tokio::test]
    async fn the_status_says_when_an_operator_discarded_the_job() {
        let (store, queue) = fakes();
        let api = api(&store, &queue, None);
        let id = JobId::random();
        store.insert(record(id, now_ms()));
        let discarded = store.discard(id, now_ms()).await;
        assert_eq!(
            discarded.unwrap(),
            jobline_shared::store::DiscardOutcome::Discarded
        );
        let reply = api.handle(get(id)).await;
        assert_eq!(reply.response.status(), StatusCode::OK);
        let view = body(&reply);
        assert_eq!(view["status"], "failed");
        assert_eq!(view["discarded"], true);
        assert_eq!(view["deadLettered"], false);
    }
}

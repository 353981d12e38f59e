//! The HTTP API: `POST /jobs` accepts a job and answers `202 Accepted` at
//! once; `GET /jobs/{id}` reports it (with its progress); `POST
//! /jobs/{id}/cancel` cancels it. Requests arrive as API Gateway HTTP API
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
//!   `PutItem`) and the client gets a 503; a retry with the same key
//!   re-creates and re-sends it. Only the request that created the record
//!   may mark it (its `createdAt`), and only until a repeat has sent its
//!   message again: a repeat first records `resentAt` (one `UpdateItem`,
//!   conditional on the job still queued, never claimed and not enqueue
//!   failed), so a creator whose send timed out after a repeat's succeeded
//!   cannot fail a job whose message is in the queue. If the mark is refused
//!   because a worker has claimed the job or a repeat re-sent it: 202. A
//!   repeat whose own send fails answers 503 and marks nothing; the client's
//!   next retry sends again, and the time bound ends a job none arrives for.
//!
//! Before any of this, the job must fit its item (`submission.rs`): the
//! payload as stored within its 256 KiB budget, the whole new item within
//! the payload's and the fixed attributes' budgets, else 413. DynamoDB would
//! refuse an item over 400 KB with an error no retry cures, and an item near
//! it would leave no room for the job's result.
//!
//! Each DynamoDB and SQS operation is bounded (`API_AWS_TIMEOUT_MS`, set on
//! the clients in `main.rs`, at most a quarter of the function's timeout less
//! a second: a request makes up to four calls in a row), so a slow AWS call
//! becomes a 503 within the function's timeout instead of a gateway timeout
//! with an unknown outcome.
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
//! (the cost model of BENCHMARKS.md) while a client learns of a short job's end
//! within two seconds.
//!
//! # Later, and again
//!
//! A submission with `runAt` or `delaySeconds` (up to a year) is written
//! `scheduled` and sent when due (`dispatch.rs`: a delayed message up to
//! SQS's 15 minutes, a one-time EventBridge Scheduler timer beyond, which
//! invokes the fire function). `/schedules` keeps each caller's recurring
//! schedules (`routes/schedules.rs` says how a schedule's record and its
//! timer are kept in step); each of their fires creates one job through
//! the same path as `POST /jobs` ([`fire`]), so the fire function is this
//! library behind another entry point (`functions/fire`).
//!
//! # Backlog
//!
//! Each caller may have at most its bound of unfinished jobs
//! (`MAX_UNFINISHED_PER_CALLER`, or its own in `CALLER_LIMITS`): over it, a
//! new submission is 429 `too_many_jobs`, naming the bound, with
//! `Retry-After`, and only that caller is refused (`admission.rs`). Above
//! `MAX_BACKLOG` queued messages of all callers together a new submission is
//! 429 `backlog_full` with `Retry-After` ([`backlog`]). A replay of an
//! already accepted key still gets its 202, since it adds no work.
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

mod admission;
pub mod backlog;
mod dispatch;
mod error;
pub mod fire;
mod identity;
mod listing;
mod openapi;
mod routes;
mod schedule_request;
mod submission;

pub use backlog::{Backlog, QueueDepth};
pub use dispatch::job_timer_name;
pub use error::ApiError;
pub use identity::{ANONYMOUS_OWNER, caller};
pub use schedule_request::{NEXT_FIRES, schedule_view};
pub use submission::{MAX_BODY_BYTES, MAX_IDEMPOTENCY_KEY_LEN};

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, StatusCode};
use jobline_core::caller::CallerCounts;
use jobline_core::files::UploadFiles;
use jobline_core::results::ResultStore;
use jobline_core::schedule::ScheduleStore;
use jobline_core::timers::Timers;
pub use jobline_core::view::{job_summary, job_view};
use jobline_core::{ApiStore, Clock, Config, JobId, JobQueue, JobRecord, JobTypes, Metrics};
use jobline_webhooks::{CallbackPolicy, KeySource};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
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
    store: Arc<dyn ApiStore>,
    queue: Arc<dyn JobQueue>,
    results: Option<Arc<dyn ResultStore>>,
    /// The webhook master keys: webhooks are on when there are some.
    webhook_keys: Option<Arc<dyn KeySource>>,
    callback_policy: CallbackPolicy,
    job_types: JobTypes,
    retention_days: u32,
    public_base_url: Option<String>,
    allow_anonymous: bool,
    /// `ASSUMED_ROLE_OWNER`: who owns an assumed-role session's jobs.
    assumed_role_owner: jobline_core::config::AssumedRoleOwner,
    max_backlog: u64,
    backlog: Option<Backlog>,
    /// The engine of delays past 15 minutes and of schedules (EventBridge
    /// Scheduler): without it, neither.
    timers: Option<Arc<dyn Timers>>,
    /// The callers' schedules: on with [`Api::with_schedules`].
    schedules: Option<Schedules>,
    /// Uploads and outputs: on with [`Api::with_files`].
    files: Option<Arc<dyn UploadFiles>>,
    /// Each caller's unfinished jobs, counted: the per-caller bound is on
    /// with [`Api::with_caller_counts`].
    counts: Option<Arc<dyn CallerCounts>>,
    /// Each caller's bounds (`MAX_UNFINISHED_PER_CALLER`, `CALLER_LIMITS`).
    caller_limits: jobline_core::config::CallerLimits,
    /// The time: the tests' movable clock, or the wall clock.
    clock: Clock,
}

/// The schedules' store and the per-caller bound.
#[derive(Debug, Clone)]
struct Schedules {
    store: Arc<dyn ScheduleStore>,
    max_per_caller: usize,
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
        store: Arc<dyn ApiStore>,
        queue: Arc<dyn JobQueue>,
        job_types: JobTypes,
        config: &Config,
    ) -> Self {
        Self {
            store,
            queue,
            results: None,
            webhook_keys: None,
            callback_policy: config.webhooks.policy(),
            job_types,
            retention_days: config.retention_days,
            public_base_url: config.public_base_url.clone(),
            allow_anonymous: config.allow_anonymous,
            assumed_role_owner: config.assumed_role_owner,
            max_backlog: config.max_backlog,
            backlog: None,
            timers: None,
            schedules: None,
            files: None,
            counts: None,
            caller_limits: config.callers.clone(),
            clock: Clock::system(),
        }
    }

    /// Sets delays past SQS's 15 minutes on `timers`' one-time timers.
    #[must_use]
    pub fn with_timers(mut self, timers: Arc<dyn Timers>) -> Self {
        self.timers = Some(timers);
        self
    }

    /// Turns schedules on: the callers' schedules in `store`, at most
    /// `max_per_caller` each, fired by recurring timers (which
    /// [`with_timers`](Self::with_timers) must set).
    #[must_use]
    pub fn with_schedules(mut self, store: Arc<dyn ScheduleStore>, max_per_caller: usize) -> Self {
        self.schedules = Some(Schedules {
            store,
            max_per_caller,
        });
        self
    }

    /// The schedules, and their timers: 404 where they are off.
    fn schedules(&self) -> Result<&Schedules, ApiError> {
        self.schedules.as_ref().ok_or(ApiError::SchedulesDisabled)
    }

    fn timers(&self) -> Result<&Arc<dyn Timers>, ApiError> {
        self.timers.as_ref().ok_or(ApiError::SchedulesDisabled)
    }

    /// Reads the time from `clock` (the tests' movable one).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Hands out links to the results stored in `results` (those over the
    /// job item's budget), and deletes them with their jobs.
    #[must_use]
    pub fn with_results(mut self, results: Arc<dyn ResultStore>) -> Self {
        self.results = Some(results);
        self
    }

    /// Bounds each caller's unfinished jobs, counted in `counts` (the
    /// callers table; the notifier counts them down), and its uploads of
    /// the UTC day.
    #[must_use]
    pub fn with_caller_counts(mut self, counts: Arc<dyn CallerCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    /// Turns uploads on (`/uploads`, and jobs that name them), and lists
    /// each finished job's outputs, in `files`.
    #[must_use]
    pub fn with_files(mut self, files: Arc<dyn UploadFiles>) -> Self {
        self.files = Some(files);
        self
    }

    /// Turns webhooks on: submissions may carry a `callbackUrl`, and
    /// `GET /webhook-secret` hands each caller its signing secret, derived
    /// from `keys`.
    #[must_use]
    pub fn with_webhook_keys(mut self, keys: Arc<dyn KeySource>) -> Self {
        self.webhook_keys = Some(keys);
        self
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
            (&Method::GET, ["jobs"]) => self.list(&request).await,
            (&Method::GET, ["jobs", id]) => self.status(&request, id, &mut trace).await,
            (&Method::DELETE, ["jobs", id]) => self.delete(&request, id, &mut trace).await,
            (&Method::POST, ["jobs", id, "cancel"]) => {
                self.cancel(&request, id, &mut metrics, &mut trace).await
            }
            (&Method::POST, ["jobs", id, "run"]) => self.run_now(&request, id, &mut trace).await,
            (_, ["jobs"]) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            (_, ["jobs", _]) => Err(ApiError::MethodNotAllowed {
                allow: "GET, DELETE",
            }),
            (_, ["jobs", _, "cancel" | "run"]) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            (&Method::POST, ["schedules"]) => self.create_schedule(&request).await,
            (&Method::GET, ["schedules"]) => self.list_schedules(&request).await,
            (&Method::GET, ["schedules", id]) => self.show_schedule(&request, id).await,
            (&Method::PATCH, ["schedules", id]) => self.patch_schedule(&request, id).await,
            (&Method::DELETE, ["schedules", id]) => self.delete_schedule(&request, id).await,
            (&Method::POST, ["schedules", id, action @ ("pause" | "resume")]) => {
                self.pause_schedule(&request, id, *action == "pause").await
            }
            (&Method::POST, ["schedules", id, "trigger"]) => {
                self.trigger_schedule(&request, id, &mut metrics).await
            }
            (_, ["schedules"]) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            (_, ["schedules", _]) => Err(ApiError::MethodNotAllowed {
                allow: "GET, PATCH, DELETE",
            }),
            (_, ["schedules", _, "pause" | "resume" | "trigger"]) => {
                Err(ApiError::MethodNotAllowed { allow: "POST" })
            }
            (&Method::POST, ["uploads"]) => self.create_upload(&request).await,
            (&Method::GET, ["uploads", id]) => self.show_upload(&request, id).await,
            (_, ["uploads"]) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            (_, ["uploads", _]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            (&Method::GET, ["webhook-secret"]) => self.webhook_secret(&request).await,
            (_, ["webhook-secret"]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            (method, ["openapi.yaml"]) => openapi::answer(method),
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

/// A JSON answer that is never cached: a job's state changes under it.
pub(crate) fn fresh_json(status: StatusCode) -> http::response::Builder {
    json_response(status).header(CACHE_CONTROL, "no-store")
}

pub(crate) fn json_response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
}

/// Whether `job` is past its `expiresAt` at `now_ms`, and so gone to its
/// client: DynamoDB's TTL deletes an expired item only within a few days
/// (and the emulator never), so a read may still meet it. An `expiresAt` of
/// 0 (absent) is no expiry, as DynamoDB's TTL skips such items.
pub(crate) fn expired(job: &JobRecord, now_ms: i64) -> bool {
    job.expires_at > 0 && job.expires_at <= now_ms / 1000
}

#[cfg(test)]
mod schedule_tests;
#[cfg(test)]
mod tests;

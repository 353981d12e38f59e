//! API errors: each has an HTTP status, a stable `code`, and a message that
//! says what is wrong, rendered as `{"error": {"code", "message"}}`.
//!
//! Server-side failures (503, 500) carry a `detail` (the AWS error chain, which
//! names tables, queues and the account) for the logs only: their messages are
//! fixed sentences that tell the client what happened and what to do.

use http::StatusCode;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use jobline_core::caller::UploadQuota;
use lambda_http::{Body, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but not a job request; the message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// A `type` no handler is registered for. The message repeats it only
    /// as far as `shown_job_type` allows: the submission checked it
    /// against the type rule, and this bounds it again wherever it comes from.
    #[error(
        "unknown job type {}; known types: {}",
        shown_job_type(job_type),
        known.join(", ")
    )]
    UnknownJobType {
        job_type: String,
        known: Vec<String>,
    },
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// A `callbackUrl` the SSRF guard refuses; the message says why.
    #[error("{0}")]
    InvalidCallbackUrl(String),
    /// A `callbackUrl`, or the webhook secret, where webhooks are off.
    #[error("webhooks are not enabled on this deployment; submit without `callbackUrl`")]
    WebhooksDisabled,
    #[error("the request body is {size} bytes; the limit is {limit} bytes")]
    BodyTooLarge { limit: usize, size: usize },
    /// The payload as the job record stores it (compact JSON, numbers in
    /// their stored form) is over its budget.
    #[error(
        "the payload is {size} bytes as stored (compact JSON, numbers written out: 1E15 is \
         stored as 1000000000000000.0); the limit is {limit} bytes"
    )]
    PayloadTooLarge { limit: usize, size: usize },
    /// The new job's whole record is over its budget (a payload near its
    /// limit with a long caller identity).
    #[error(
        "the job record would be {size} bytes with its payload and caller identity; the limit is \
         {limit} bytes: send a smaller payload"
    )]
    JobTooLarge { limit: usize, size: usize },
    /// The local server did not receive the whole request in time.
    #[error("the request was not received within {secs} s")]
    RequestTimeout { secs: u64 },
    /// The local server could not read the request body (the client broke
    /// the connection or the framing).
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error(
        "send one Idempotency-Key header of 1 to {} visible ASCII characters, without commas",
        crate::MAX_IDEMPOTENCY_KEY_LEN
    )]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    /// The key's job is past its retention; its item waits for the TTL.
    #[error(
        "this Idempotency-Key's job has expired and is being deleted; submit the job with a new \
         Idempotency-Key"
    )]
    IdempotencyKeyExpired,
    #[error("the request carries no caller identity: sign it (IAM) or send a bearer token (JWT)")]
    Unauthenticated,
    #[error(
        "too many jobs are waiting; nothing was accepted, retry after {retry_after_secs} seconds"
    )]
    BacklogFull { retry_after_secs: u32 },
    /// The caller has as many unfinished jobs as its bound allows.
    #[error(
        "you have {limit} unfinished jobs, the most this deployment allows you; nothing was \
         accepted, retry after {retry_after_secs} seconds, once some have finished"
    )]
    TooManyJobs { limit: u64, retry_after_secs: u32 },
    /// The caller's uploads of the UTC day are at its quota.
    #[error(
        "you have used today's upload quota ({}); no link was made, retry after \
         {retry_after_secs} seconds, at 00:00 UTC",
        quota_text(quota)
    )]
    TooManyUploads {
        quota: UploadQuota,
        retry_after_secs: u32,
    },
    #[error("no such job")]
    JobNotFound,
    /// A `GET /jobs` query parameter is malformed; the message names it.
    #[error("{0}")]
    InvalidQuery(String),
    /// A `GET /jobs` cursor is not one this caller was given.
    #[error("the cursor is not one of your listing's; start again without it")]
    InvalidCursor,
    /// A delete of a job that has not finished.
    #[error("the job is {state}; only a finished job can be deleted (cancel it first)")]
    JobNotFinished { state: jobline_core::JobState },
    /// A cancel of a job that had already finished.
    #[error(
        "the job has already finished ({state}); only a queued or running job can be cancelled"
    )]
    JobFinished { state: jobline_core::JobState },
    #[error(
        "no such route; the API serves POST and GET /jobs, GET and DELETE /jobs/{{id}}, POST \
         /jobs/{{id}}/cancel and /run, POST and GET /schedules, GET, PATCH and DELETE \
         /schedules/{{id}}, POST /schedules/{{id}}/pause, /resume and /trigger, POST /uploads, GET \
         /uploads/{{id}}, and GET /webhook-secret"
    )]
    RouteNotFound,
    #[error("method not allowed; this route allows {allow}")]
    MethodNotAllowed { allow: &'static str },
    /// A submission's write failed; the detail is for the logs.
    #[error(
        "the job store is unavailable; nothing was accepted, retry with the same Idempotency-Key"
    )]
    StoreUnavailable(String),
    /// A submission's send failed; the detail is for the logs.
    #[error(
        "the job queue is unavailable; nothing was accepted, retry with the same Idempotency-Key"
    )]
    QueueUnavailable(String),
    /// A status read failed; the detail is for the logs.
    #[error("the job store is unavailable; retry shortly")]
    StatusUnavailable(String),
    /// The webhook master key could not be read; the detail is for the logs.
    #[error("the webhook secret is unavailable; retry shortly")]
    SecretUnavailable(String),
    /// A bug; the detail is for the logs.
    #[error("internal error; retry shortly, with the same Idempotency-Key for a submission")]
    Internal(String),
    /// A delay over SQS's 15 minutes where no scheduler is configured.
    #[error(
        "this deployment runs jobs at most 15 minutes later (it has no scheduler); send a smaller \
         `delaySeconds` or an earlier `runAt`"
    )]
    LongDelaysDisabled,
    /// A schedule request names something invalid; `field` is the request
    /// field to fix.
    #[error("{message}")]
    InvalidSchedule {
        field: &'static str,
        message: String,
    },
    #[error("no such schedule")]
    ScheduleNotFound,
    /// The caller has as many schedules as the deployment allows.
    #[error(
        "you have {limit} schedules, the most this deployment allows per caller; delete one first"
    )]
    TooManySchedules { limit: usize },
    /// A trigger that the schedule's overlap policy skips.
    #[error(
        "the schedule's previous job has not finished and its overlap policy is `skip`; trigger \
         it when that job is done"
    )]
    ScheduleOverlap,
    /// The schedule changed between its read and this request's write.
    #[error("the schedule was changed by another request meanwhile; read it again and retry")]
    ScheduleChanged,
    /// Schedules where the deployment has no scheduler.
    #[error("schedules are not enabled on this deployment")]
    SchedulesDisabled,
    /// `POST /jobs/{id}/run` of a job that is not waiting for its time.
    #[error("the job's status is {state}; only a scheduled job can be run now")]
    JobNotScheduled { state: jobline_core::JobState },
    /// EventBridge Scheduler throttled the request.
    #[error("the scheduler is busy; nothing was changed, retry after {retry_after_secs} seconds")]
    SchedulerThrottled { retry_after_secs: u32 },
    /// The scheduler failed; the detail is for the logs.
    #[error("the scheduler is unavailable; nothing was changed, retry shortly")]
    SchedulerUnavailable(String),
    /// An upload's declaration is invalid; `field` is the request field to fix.
    #[error("{message}")]
    InvalidUpload {
        field: &'static str,
        message: String,
    },
    /// A declared size over what one `PUT` carries.
    #[error("the file is {size} bytes; an upload carries at most {limit} bytes")]
    UploadTooLarge { size: u64, limit: u64 },
    /// No upload by this id, for this caller (never sent, or another's).
    #[error("no such upload")]
    UploadNotFound,
    /// A job's payload names an upload that is not there (never sent,
    /// still being sent, or another caller's: the three look alike).
    #[error("input upload {upload} was not found: it has not been uploaded yet, or is not yours")]
    InputNotFound { upload: String },
    /// A job's payload names an upload past its window.
    #[error(
        "input upload {upload} has expired: a job may name an upload for 24 hours after its \
         creation; upload the file again"
    )]
    InputExpired { upload: String },
    /// A job's payload names an upload whose object is not what was declared.
    #[error(
        "input upload {upload} does not match what was declared (its size, content type or \
         SHA-256); upload the file again"
    )]
    InputMismatch { upload: String },
    /// Uploads where the deployment has no bucket.
    #[error("uploads are not enabled on this deployment (it has no results bucket)")]
    UploadsDisabled,
    /// The bucket failed; the detail is for the logs.
    #[error("file storage is unavailable; nothing was accepted, retry shortly")]
    FilesUnavailable(String),
}

/// A failed call to the bucket's files: for the logs.
impl From<jobline_core::files::FileError> for ApiError {
    fn from(error: jobline_core::files::FileError) -> Self {
        Self::FilesUnavailable(error.to_string())
    }
}

/// `Retry-After` of a 503 `scheduler_throttled`, in seconds: EventBridge
/// Scheduler's quotas refill each second.
pub const SCHEDULER_RETRY_AFTER_SECS: u32 = 2;

impl From<jobline_core::timers::TimerError> for ApiError {
    fn from(error: jobline_core::timers::TimerError) -> Self {
        use jobline_core::timers::TimerError;
        match error {
            TimerError::Throttled => Self::SchedulerThrottled {
                retry_after_secs: SCHEDULER_RETRY_AFTER_SECS,
            },
            // The API validated what it sent: a refusal is the API's bug.
            TimerError::Invalid(detail) => {
                Self::Internal(format!("the scheduler refused: {detail}"))
            }
            TimerError::Unavailable(detail) => Self::SchedulerUnavailable(detail),
        }
    }
}

/// A failed read or write of the schedules table: for the logs.
impl From<jobline_core::schedule::ScheduleStoreError> for ApiError {
    fn from(error: jobline_core::schedule::ScheduleStoreError) -> Self {
        Self::StatusUnavailable(error.to_string())
    }
}

/// How an unknown job type is named back: quoted, if it is a valid type
/// name (`submission::valid_job_type`, at most 64 characters of a small
/// alphabet); otherwise it is not repeated at all.
fn shown_job_type(job_type: &str) -> String {
    if crate::submission::valid_job_type(job_type) {
        format!("{job_type:?}")
    } else {
        "(not a valid type name)".to_owned()
    }
}

/// A failed read or write of a job outside a submission: the detail is for
/// the logs, the client gets the fixed "retry shortly" (a submission's own
/// failures say more, and are built where it knows which step failed).
impl From<jobline_core::StoreError> for ApiError {
    fn from(error: jobline_core::StoreError) -> Self {
        Self::StatusUnavailable(error.to_string())
    }
}

/// A result's link or deletion failed: as a failed read of its job.
impl From<jobline_core::results::ResultError> for ApiError {
    fn from(error: jobline_core::results::ResultError) -> Self {
        Self::StatusUnavailable(error.to_string())
    }
}

impl ApiError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_)
            | Self::InvalidIdempotencyKey
            | Self::UnreadableBody
            | Self::InvalidQuery(_)
            | Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_)
            | Self::UnknownJobType { .. }
            | Self::InvalidPayload(_)
            | Self::InvalidCallbackUrl(_)
            | Self::WebhooksDisabled
            | Self::LongDelaysDisabled
            | Self::InvalidSchedule { .. }
            | Self::InvalidUpload { .. }
            | Self::InputNotFound { .. }
            | Self::InputExpired { .. }
            | Self::InputMismatch { .. }
            | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BodyTooLarge { .. }
            | Self::PayloadTooLarge { .. }
            | Self::JobTooLarge { .. }
            | Self::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::IdempotencyKeyExpired
            | Self::JobFinished { .. }
            | Self::JobNotFinished { .. }
            | Self::JobNotScheduled { .. }
            | Self::TooManySchedules { .. }
            | Self::ScheduleOverlap
            | Self::ScheduleChanged => StatusCode::CONFLICT,
            Self::BacklogFull { .. } | Self::TooManyJobs { .. } | Self::TooManyUploads { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::JobNotFound
            | Self::RouteNotFound
            | Self::ScheduleNotFound
            | Self::SchedulesDisabled
            | Self::UploadNotFound
            | Self::UploadsDisabled => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_)
            | Self::QueueUnavailable(_)
            | Self::StatusUnavailable(_)
            | Self::SecretUnavailable(_)
            | Self::SchedulerThrottled { .. }
            | Self::SchedulerUnavailable(_)
            | Self::FilesUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidRequest(_) => "invalid_request",
            Self::UnknownJobType { .. } => "unknown_job_type",
            Self::InvalidPayload(_) => "invalid_payload",
            Self::InvalidCallbackUrl(_) => "invalid_callback_url",
            Self::WebhooksDisabled => "webhooks_disabled",
            Self::BodyTooLarge { .. } | Self::PayloadTooLarge { .. } | Self::JobTooLarge { .. } => {
                "payload_too_large"
            }
            Self::RequestTimeout { .. } => "request_timeout",
            Self::UnreadableBody => "unreadable_body",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyExpired => "idempotency_key_expired",
            Self::Unauthenticated => "unauthenticated",
            Self::BacklogFull { .. } => "backlog_full",
            Self::TooManyJobs { .. } => "too_many_jobs",
            Self::TooManyUploads { .. } => "too_many_uploads",
            Self::JobNotFound => "job_not_found",
            Self::JobFinished { .. } => "job_finished",
            Self::JobNotFinished { .. } => "job_not_finished",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidCursor => "invalid_cursor",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::StoreUnavailable(_)
            | Self::QueueUnavailable(_)
            | Self::StatusUnavailable(_)
            | Self::SecretUnavailable(_)
            | Self::SchedulerUnavailable(_)
            | Self::FilesUnavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
            Self::LongDelaysDisabled => "long_delays_disabled",
            Self::InvalidSchedule { .. } => "invalid_schedule",
            Self::ScheduleNotFound => "schedule_not_found",
            Self::TooManySchedules { .. } => "too_many_schedules",
            Self::ScheduleChanged => "schedule_changed",
            Self::ScheduleOverlap => "schedule_overlap",
            Self::SchedulesDisabled => "schedules_disabled",
            Self::JobNotScheduled { .. } => "job_not_scheduled",
            Self::SchedulerThrottled { .. } => "scheduler_throttled",
            Self::InvalidUpload { .. } => "invalid_upload",
            Self::UploadTooLarge { .. } => "upload_too_large",
            Self::UploadNotFound => "upload_not_found",
            Self::InputNotFound { .. } => "input_not_found",
            Self::InputExpired { .. } => "input_expired",
            Self::InputMismatch { .. } => "input_mismatch",
            Self::UploadsDisabled => "uploads_disabled",
        }
    }

    /// What only the logs get: the underlying failure of a 5xx.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::StoreUnavailable(detail)
            | Self::QueueUnavailable(detail)
            | Self::StatusUnavailable(detail)
            | Self::SecretUnavailable(detail)
            | Self::SchedulerUnavailable(detail)
            | Self::FilesUnavailable(detail)
            | Self::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        if let Self::JobFinished { state }
        | Self::JobNotFinished { state }
        | Self::JobNotScheduled { state } = &self
        {
            body["error"]["status"] = json!(state);
        }
        if let Self::InvalidSchedule { field, .. } | Self::InvalidUpload { field, .. } = &self {
            body["error"]["field"] = json!(field);
        }
        if let Self::TooManyJobs { limit, .. } = &self {
            body["error"]["limit"] = json!(limit);
        }
        if let Self::TooManyUploads { quota, .. } = &self {
            body["error"]["limit"] = json!({
                "uploadsPerDay": bounded(quota.uploads),
                "bytesPerDay": bounded(quota.bytes),
            });
        }
        let mut builder = Response::builder()
            .status(self.status())
            .header(CONTENT_TYPE, "application/json");
        match self {
            Self::MethodNotAllowed { allow } => builder = builder.header(ALLOW, allow),
            Self::BacklogFull { retry_after_secs }
            | Self::TooManyJobs {
                retry_after_secs, ..
            }
            | Self::TooManyUploads {
                retry_after_secs, ..
            }
            | Self::SchedulerThrottled { retry_after_secs } => {
                builder = builder.header(RETRY_AFTER, retry_after_secs);
            }
            _ => {}
        }
        // The builder only fails on invalid header values, and these are static.
        builder
            .body(Body::from(body.to_string()))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

/// A quota's bound, or `None` where it has none (`u64::MAX`).
fn bounded(max: u64) -> Option<u64> {
    (max != u64::MAX).then_some(max)
}

/// What an [`UploadQuota`] allows a day, in words.
fn quota_text(quota: &UploadQuota) -> String {
    let uploads = bounded(quota.uploads).map(|n| format!("{n} uploads"));
    let bytes = bounded(quota.bytes).map(|b| format!("{} GiB declared", b / (1 << 30)));
    let parts: Vec<String> = uploads.into_iter().chain(bytes).collect();
    format!("at most {} a UTC day", parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_their_detail_out_of_the_body() {
        let secret = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs";
        for error in [
            ApiError::StoreUnavailable(secret.into()),
            ApiError::QueueUnavailable(secret.into()),
            ApiError::StatusUnavailable(secret.into()),
            ApiError::internal(secret),
        ] {
            assert_eq!(error.detail(), Some(secret));
            assert!(error.status().is_server_error());
            let response = error.into_response();
            let body = std::str::from_utf8(response.body().as_ref()).unwrap();
            assert!(!body.contains("123456789012"), "{body}");
            assert!(body.contains("retry"), "{body}");
        }
    }

    #[test]
    fn the_local_servers_own_answers_have_the_one_shape() {
        for (error, status, code, message) in [
            (
                ApiError::RequestTimeout { secs: 30 },
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request was not received within 30 s",
            ),
            (
                ApiError::UnreadableBody,
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read",
            ),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body, json!({"error": {"code": code, "message": message}}));
        }
    }

    #[test]
    fn a_cancel_of_a_finished_job_names_its_state() {
        let response = ApiError::JobFinished {
            state: jobline_core::JobState::Succeeded,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"]["code"], "job_finished");
        assert_eq!(body["error"]["status"], "succeeded");
    }

    #[test]
    fn an_unknown_job_type_is_named_back_only_if_it_is_a_short_name() {
        let known = vec!["csv-stats".to_owned(), "primes".to_owned()];
        let unknown = |job_type: &str| ApiError::UnknownJobType {
            job_type: job_type.to_owned(),
            known: known.clone(),
        };
        assert_eq!(
            unknown("teleport").to_string(),
            r#"unknown job type "teleport"; known types: csv-stats, primes"#
        );
        for job_type in [
            "x".repeat(65),
            "x".repeat(1 << 20),
            "<b>bold</b>".to_owned(),
        ] {
            let error = unknown(&job_type);
            let body: serde_json::Value =
                serde_json::from_slice(error.into_response().body()).unwrap();
            let message = body["error"]["message"].as_str().unwrap();
            assert_eq!(
                message,
                "unknown job type (not a valid type name); known types: csv-stats, primes"
            );
            assert_eq!(body["error"]["code"], "unknown_job_type");
        }
    }

    #[test]
    fn a_full_backlog_says_when_to_come_back() {
        let response = ApiError::BacklogFull {
            retry_after_secs: 30,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "30");
    }
}

//! API errors: each has an HTTP status, a stable `code`, and a message that
//! says what is wrong, rendered as `{"error": {"code", "message"}}`.

use http::StatusCode;
use http::header::{ALLOW, CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body is not a job request: {0}")]
    InvalidRequest(String),
    #[error("unknown job type {job_type:?}; known types: {}", known.join(", "))]
    UnknownJobType {
        job_type: String,
        known: Vec<String>,
    },
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    #[error("the request body is {size} bytes; the limit is {limit} bytes")]
    PayloadTooLarge { limit: usize, size: usize },
    #[error(
        "the Idempotency-Key header must be 1 to {} visible ASCII characters",
        crate::MAX_IDEMPOTENCY_KEY_LEN
    )]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("no such job")]
    JobNotFound,
    #[error("no such route; the API serves POST /jobs and GET /jobs/{{id}}")]
    RouteNotFound,
    #[error("method not allowed; this route allows {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}; nothing was accepted, retry the request")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::InvalidRequest(_)
            | Self::UnknownJobType { .. }
            | Self::InvalidPayload(_)
            | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::JobNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::JobNotFound => "job_not_found",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut builder = Response::builder()
            .status(self.status())
            .header(CONTENT_TYPE, "application/json");
        if let Self::MethodNotAllowed { allow } = self {
            builder = builder.header(ALLOW, allow);
        }
        // The builder only fails on invalid header values, and these are static.
        builder
            .body(Body::from(body.to_string()))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

//! What can go wrong calling Jobline: [`ClientError`], one enum for every
//! call. An answer outside 2xx is [`ClientError::Status`] with the API's own
//! error body (`{"error":{"code":…,"message":…}}`), so a program can show it
//! or read its `code` ([`ClientError::code`]).

use http::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A boxed source error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors calling the Jobline API (or sending an upload's file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL given to [`Client::new`](crate::Client::new) cannot be used.
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    /// The request cannot be sent as asked (a header value that is not
    /// visible ASCII, an idempotency key too long…); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The system's root certificates could not be loaded for `https://`.
    #[error("loading the system's root certificates for TLS failed: {0}")]
    Tls(#[source] std::io::Error),
    /// A SigV4 signature could not be made (or its credentials loaded).
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The request failed on the network (after its retries, if any).
    #[error("{method} {url} failed: {source}")]
    Transport {
        method: Method,
        /// The URL without its query (a presigned URL's query is a credential).
        url: String,
        #[source]
        source: BoxError,
    },
    /// No complete answer within the request's timeout (after its retries, if any).
    #[error("{method} {url} got no answer within {} s", after.as_secs_f64())]
    Timeout {
        method: Method,
        url: String,
        after: Duration,
    },
    /// The API answered outside 2xx; `body` is its error body.
    #[error("the API answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    /// The API answered 2xx with a body that is not JSON.
    #[error("the API answered {status} with a body that is not JSON: {body}")]
    NotJson { status: StatusCode, body: String },
    /// The API's JSON is not what this client expects of `what`.
    #[error("the API's {what} is not as expected: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A job's JSON without a known `status`.
    #[error("the job JSON has no known \"status\": {0}")]
    NoJobState(String),
    /// A 200 to a cancel whose job is neither cancelled, nor marked
    /// `cancelRequested`, nor finished.
    #[error(
        "the API accepted the cancellation but the job is neither cancelled nor cancelRequested: {0}"
    )]
    NotCancelled(String),
    /// Reading the file to upload failed.
    #[error("reading {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The storage behind an upload's URL refused the file.
    #[error("sending the upload's file was refused with {status}: {body}")]
    UploadRefused { status: StatusCode, body: String },
    /// The upload is not `complete` after its file was sent: `status` is what
    /// the API says it is.
    #[error("upload {id} is {status} after its file was sent, not complete")]
    UploadIncomplete { id: String, status: String },
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error `code` of an error answer, e.g. `job_not_found`.
    pub fn code(&self) -> Option<String> {
        let Self::Status { body, .. } = self else {
            return None;
        };
        let json: Value = serde_json::from_str(body).ok()?;
        json["error"]["code"].as_str().map(str::to_owned)
    }

    pub(crate) fn decode(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Decode { what, source }
    }
}

/// A SigV4 signature could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The credentials provider failed.
    #[error("AWS credentials could not be loaded: {0}")]
    Credentials(#[source] BoxError),
    /// The signer refused the request or its parameters.
    #[error("SigV4 signing failed: {0}")]
    Sign(#[source] BoxError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_give_their_status_and_code() {
        let error = ClientError::Status {
            status: StatusCode::NOT_FOUND,
            body: r#"{"error":{"code":"job_not_found","message":"no such job"}}"#.into(),
        };
        assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(error.code().as_deref(), Some("job_not_found"));
        let html = ClientError::Status {
            status: StatusCode::BAD_GATEWAY,
            body: "<h1>Bad Gateway</h1>".into(),
        };
        assert_eq!(html.code(), None);
        assert_eq!(ClientError::InvalidRequest("x".into()).status(), None);
    }
}

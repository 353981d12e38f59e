//! The API client behind `jobline submit`, `status`, `wait` and `cancel`: HTTP/1.1
//! through hyper's client, over rustls with the system's root certificates
//! (the same TLS stack the AWS SDK already links, so it adds no crates).
//!
//! Every request has a deadline, and every answer outside 2xx becomes an
//! [`ClientError::Status`] carrying the API's own error body, so the user sees
//! `{"error":{"code":…,"message":…}}` rather than a bare status. The one
//! error answer a command expects, `cancel`'s 409 `job_finished`, is an
//! outcome instead: [`Cancel::Finished`].

use crate::sigv4::{Signer, SigningError};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jobline_core::{Clock, JobId, JobState};
use serde_json::{Value, json};
use std::time::Duration;

mod schedules;
pub use schedules::{RunNow, Triggered};

/// How long one request may take, answer body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a non-JSON error body an error message shows.
const SHOWN_BODY_CHARS: usize = 500;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("loading the system's root certificates for TLS failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("{method} {url} failed: {source}")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("{method} {url} got no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout { method: Method, url: String },
    /// The API answered outside 2xx; `body` is its error body.
    #[error("the API answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the API answered {status} with a body that is not JSON: {body}")]
    NotJson { status: StatusCode, body: String },
    #[error("the job JSON has no known \"status\": {0}")]
    NoJobState(String),
    /// A 200 to a cancel whose job is neither cancelled, nor marked
    /// `cancelRequested`, nor finished.
    #[error(
        "the API accepted the cancellation but the job is neither cancelled nor cancelRequested: {0}"
    )]
    NotCancelled(String),
}

/// When a submitted job runs, if not at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// `runAt`: at this RFC 3339 time (with its offset, as written).
    At(String),
    /// `delaySeconds`: this many seconds after the API accepts it.
    After(u64),
}

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials: the local server, or an API without an authorizer.
    Anonymous,
    /// `Authorization: Bearer <token>`, for a JWT authorizer.
    Bearer(String),
    /// SigV4, for routes with IAM authorization.
    SigV4(Signer),
}

/// The HTTP client: plain for `http://` (so a machine without root
/// certificates can still reach a local server), rustls for `https://`.
#[derive(Debug)]
enum Transport {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl Transport {
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Self::Plain(client) => client.request(request).await,
            Self::Tls(client) => client.request(request).await,
        }
    }
}

/// A client of one Jobline API.
#[derive(Debug)]
pub struct ApiClient {
    /// `scheme://authority/path-prefix`, without a trailing slash.
    base: String,
    auth: Auth,
    transport: Transport,
}

/// How `wait` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    /// The job reached a final status; `job` is its final JSON.
    Finished { job: Value, status: JobState },
    /// The timeout passed first; `job` is the last JSON seen.
    TimedOut { job: Value, status: JobState },
}

/// What `POST /jobs/{id}/cancel` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// The job is `cancelled`: it was queued, or had been cancelled before
    /// (the API answers both alike). `job` is its JSON.
    Cancelled { job: Value },
    /// The job is running and now `cancelRequested`: it ends `cancelled` at
    /// its next heartbeat, unless it finishes first. `job` is its JSON.
    Requested { job: Value },
    /// The job had already finished (409 `job_finished`) with `status`.
    Finished { status: JobState },
}

impl ApiClient {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:3000` or an
    /// API Gateway stage URL such as `https://id.execute-api.eu-west-1.amazonaws.com/prod`).
    pub fn new(base_url: &str, auth: Auth) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base_url.parse().map_err(|_| invalid("not a URL"))?;
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if uri.query().is_some() {
            return Err(invalid("a base URL has no query"));
        }
        let transport = match uri.scheme_str() {
            Some("http") => Transport::Plain(Client::builder(TokioExecutor::new()).build_http()),
            Some("https") => {
                let connector = HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(ClientError::Tls)?
                    .https_only()
                    .enable_http1()
                    .build();
                Transport::Tls(Client::builder(TokioExecutor::new()).build(connector))
            }
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let scheme = uri.scheme_str().unwrap_or("https");
        let prefix = uri.path().trim_end_matches('/');
        Ok(Self {
            base: format!("{scheme}://{authority}{prefix}"),
            auth,
            transport,
        })
    }

    /// `POST /jobs`: submits a job, to run at once or `when` says; returns
    /// the 202 body (`{"jobId","status","statusUrl"}`, and `runAt`).
    pub async fn submit(
        &self,
        job_type: &str,
        payload: &Value,
        callback_url: Option<&str>,
        idempotency_key: Option<&str>,
        when: Option<&When>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({ "type": job_type, "payload": payload });
        if let Some(url) = callback_url {
            body["callbackUrl"] = json!(url);
        }
        match when {
            Some(When::At(at)) => body["runAt"] = json!(at),
            Some(When::After(secs)) => body["delaySeconds"] = json!(secs),
            None => {}
        }
        let body = body.to_string();
        let mut request = Request::post(self.url("/jobs")).header(CONTENT_TYPE, "application/json");
        if let Some(key) = idempotency_key {
            let key = HeaderValue::from_str(key).map_err(|_| {
                ClientError::InvalidRequest("the idempotency key must be visible ASCII".into())
            })?;
            request = request.header("idempotency-key", key);
        }
        self.call(request, Bytes::from(body)).await
    }

    /// `GET /webhook-secret`: the caller's `whsec_` signing secret.
    pub async fn webhook_secret(&self) -> Result<String, ClientError> {
        let answer = self
            .call(Request::get(self.url("/webhook-secret")), Bytes::new())
            .await?;
        answer["secret"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::InvalidRequest(format!("no secret in {answer}")))
    }

    /// `GET /jobs/{id}`: the job's JSON.
    pub async fn status(&self, id: JobId) -> Result<Value, ClientError> {
        self.call(Request::get(self.url(&format!("/jobs/{id}"))), Bytes::new())
            .await
    }

    /// `POST /jobs/{id}/cancel`: cancels a queued job, or asks a running
    /// one to stop.
    pub async fn cancel(&self, id: JobId) -> Result<Cancel, ClientError> {
        let request = Request::post(self.url(&format!("/jobs/{id}/cancel")));
        let (status, body) = self.send(request, Bytes::new()).await?;
        cancel_outcome(status, &body)
    }

    /// `GET /jobs` with `query` (already encoded): one page,
    /// `{"jobs": […], "nextCursor"}`.
    pub async fn list(&self, query: &str) -> Result<Value, ClientError> {
        self.call(
            Request::get(self.url(&format!("/jobs?{query}"))),
            Bytes::new(),
        )
        .await
    }

    /// `DELETE /jobs/{id}`: `Ok(None)` once deleted; `Ok(Some(state))` when
    /// the job has not finished (409 `job_not_finished`) and was kept.
    pub async fn delete(&self, id: JobId) -> Result<Option<JobState>, ClientError> {
        let request = Request::delete(self.url(&format!("/jobs/{id}")));
        let (status, body) = self.send(request, Bytes::new()).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status == StatusCode::CONFLICT
            && let Some(state) = error_status(&body, "job_not_finished")
        {
            return Ok(Some(state));
        }
        json_answer(status, &body).map(|_| None)
    }

    /// Polls `GET /jobs/{id}` every `interval` until the job reaches a final
    /// status, or `timeout` passes (one poll is always made). Each job JSON
    /// polled goes to `polled` first; its error ends the wait.
    pub async fn wait<E: From<ClientError>>(
        &self,
        id: JobId,
        timeout: Duration,
        interval: Duration,
        mut polled: impl FnMut(&Value) -> Result<(), E>,
    ) -> Result<Waited, E> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.status(id).await?;
            polled(&job)?;
            let status = job_status(&job)?;
            if status.is_finished() {
                return Ok(Waited::Finished { job, status });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Waited::TimedOut { job, status });
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request with the client's credentials and reads the answer
    /// as JSON; an answer outside 2xx is an [`ClientError::Status`].
    async fn call(
        &self,
        request: http::request::Builder,
        body: Bytes,
    ) -> Result<Value, ClientError> {
        let (status, body) = self.send(request, body).await?;
        json_answer(status, &body)
    }

    /// Sends one request with the client's credentials; returns the answer's
    /// status and body, whatever the status.
    async fn send(
        &self,
        request: http::request::Builder,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut request = request
            .header(ACCEPT, "application/json")
            .header(
                USER_AGENT,
                concat!("jobline-cli/", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        match &self.auth {
            Auth::Anonymous => {}
            Auth::Bearer(token) => {
                let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    ClientError::InvalidRequest("the token must be visible ASCII".into())
                })?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            Auth::SigV4(signer) => signer.sign(&mut request, Clock::system().system_time())?,
        }
        let method = request.method().clone();
        let url = request.uri().to_string();
        let exchange = async {
            let response = self.transport.send(request.map(Full::new)).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Err(_) => Err(ClientError::Timeout { method, url }),
            Ok(Err(source)) => Err(ClientError::Transport {
                method,
                url,
                source,
            }),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}

/// An answer's JSON body; an answer outside 2xx is an
/// [`ClientError::Status`].
fn json_answer(status: StatusCode, body: &[u8]) -> Result<Value, ClientError> {
    let json = serde_json::from_slice::<Value>(body);
    match json {
        Ok(json) if status.is_success() => Ok(json),
        Ok(json) => Err(ClientError::Status {
            status,
            body: json.to_string(),
        }),
        Err(_) if status.is_success() => Err(ClientError::NotJson {
            status,
            body: shown_text(body),
        }),
        Err(_) => Err(ClientError::Status {
            status,
            body: shown_text(body),
        }),
    }
}

/// The outcome of a cancel's answer: a 409 `job_finished` names the status
/// the job finished with; a 200 is read from the job JSON; any other answer
/// is an error as for every request.
fn cancel_outcome(status: StatusCode, body: &[u8]) -> Result<Cancel, ClientError> {
    if status == StatusCode::CONFLICT
        && let Some(status) = error_status(body, "job_finished")
    {
        return Ok(Cancel::Finished { status });
    }
    let job = json_answer(status, body)?;
    match job_status(&job)? {
        JobState::Cancelled => Ok(Cancel::Cancelled { job }),
        status if status.is_finished() => Ok(Cancel::Finished { status }),
        _ if job["cancelRequested"] == true => Ok(Cancel::Requested { job }),
        _ => Err(ClientError::NotCancelled(job.to_string())),
    }
}

/// The job state an error answer with `code` names in its `status`.
fn error_status(body: &[u8], code: &str) -> Option<JobState> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| json.get("error").cloned())
        .filter(|error| error["code"] == code)
        .and_then(|error| parse_status(&error["status"]))
}

/// A job JSON's `"status"`.
pub fn job_status(job: &Value) -> Result<JobState, ClientError> {
    parse_status(&job["status"]).ok_or_else(|| ClientError::NoJobState(job.to_string()))
}

fn parse_status(status: &Value) -> Option<JobState> {
    status.as_str()?.parse().ok()
}

/// A body that is not JSON, as text short enough for an error message.
fn shown_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut shown: String = text.chars().take(SHOWN_BODY_CHARS).collect();
    if text.chars().count() > SHOWN_BODY_CHARS {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_their_path_prefix() {
        let client = ApiClient::new("http://127.0.0.1:3000/", Auth::Anonymous).unwrap();
        assert_eq!(client.url("/jobs"), "http://127.0.0.1:3000/jobs");
        let client = ApiClient::new("http://localhost:3000/prod/", Auth::Anonymous).unwrap();
        assert_eq!(client.url("/jobs"), "http://localhost:3000/prod/jobs");
    }

    #[test]
    fn bad_base_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("ftp://example.com", "scheme"),
            ("/jobs", "host"),
            ("http://example.com/?a=1", "query"),
            ("http://exa mple.com", "not a URL"),
        ] {
            let err = ApiClient::new(url, Auth::Anonymous).unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
        }
    }

    #[test]
    fn job_statuses_are_read_from_the_status_field() {
        assert_eq!(
            job_status(&json!({"status": "running"})).unwrap(),
            JobState::Running
        );
        let cancelled = job_status(&json!({"status": "cancelled"})).unwrap();
        assert_eq!(cancelled, JobState::Cancelled);
        assert_eq!(cancelled.to_string(), "cancelled");
        assert!(job_status(&json!({"status": "paused"})).is_err());
        assert!(job_status(&json!({})).is_err());
    }

    #[test]
    fn only_succeeded_failed_and_cancelled_are_final() {
        let final_statuses: Vec<String> = ["queued", "running", "succeeded", "failed", "cancelled"]
            .into_iter()
            .map(|name| job_status(&json!({ "status": name })).unwrap())
            .filter(|status| status.is_finished())
            .map(|status| status.to_string())
            .collect();
        assert_eq!(final_statuses, ["succeeded", "failed", "cancelled"]);
    }

    fn cancel_answer(status: u16, body: &Value) -> Result<Cancel, ClientError> {
        cancel_outcome(
            StatusCode::from_u16(status).unwrap(),
            body.to_string().as_bytes(),
        )
    }

    #[test]
    fn a_cancel_answered_200_is_read_from_the_job() {
        let cancelled = json!({"status": "cancelled", "cancelRequested": false});
        assert_eq!(
            cancel_answer(200, &cancelled).unwrap(),
            Cancel::Cancelled { job: cancelled }
        );
        let requested = json!({"status": "running", "cancelRequested": true});
        assert_eq!(
            cancel_answer(200, &requested).unwrap(),
            Cancel::Requested { job: requested }
        );
        // The job finished between the request and the answer.
        assert_eq!(
            cancel_answer(
                200,
                &json!({"status": "succeeded", "cancelRequested": true})
            )
            .unwrap(),
            Cancel::Finished {
                status: JobState::Succeeded
            }
        );
        let ignored = cancel_answer(200, &json!({"status": "running", "cancelRequested": false}));
        assert!(
            matches!(ignored, Err(ClientError::NotCancelled(_))),
            "{ignored:?}"
        );
    }

    #[test]
    fn a_cancel_answered_409_job_finished_names_the_final_status() {
        let finished = json!({"error": {
            "code": "job_finished", "message": "job already finished", "status": "failed"
        }});
        assert_eq!(
            cancel_answer(409, &finished).unwrap(),
            Cancel::Finished {
                status: JobState::Failed
            }
        );
        // Another conflict is an error answer like any other.
        let other = json!({"error": {"code": "idempotency_conflict", "message": "busy"}});
        let err = cancel_answer(409, &other).unwrap_err();
        assert!(
            matches!(&err, ClientError::Status { status, .. } if *status == StatusCode::CONFLICT),
            "{err:?}"
        );
    }

    #[test]
    fn a_cancel_of_an_unknown_job_is_the_api_error() {
        let missing = json!({"error": {"code": "job_not_found", "message": "no such job"}});
        let err = cancel_answer(404, &missing).unwrap_err();
        assert!(
            matches!(&err, ClientError::Status { status, body }
                if *status == StatusCode::NOT_FOUND && body.contains("job_not_found")),
            "{err:?}"
        );
    }

    #[test]
    fn non_json_bodies_are_shown_shortened() {
        assert_eq!(shown_text(b"  "), "(empty body)");
        assert_eq!(
            shown_text(b"<h1>Bad Gateway</h1>\n"),
            "<h1>Bad Gateway</h1>"
        );
        let long = "x".repeat(SHOWN_BODY_CHARS + 10);
        assert_eq!(
            shown_text(long.as_bytes()).chars().count(),
            SHOWN_BODY_CHARS + 1
        );
    }
}

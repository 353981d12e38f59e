//! The API client behind `jobline submit`, `status` and `wait`: HTTP/1.1
//! through hyper's client, over rustls with the system's root certificates
//! (the same TLS stack the AWS SDK already links, so it adds no crates).
//!
//! Every request has a deadline, and every answer outside 2xx becomes an
//! [`ClientError::Status`] carrying the API's own error body, so the user sees
//! `{"error":{"code":…,"message":…}}` rather than a bare status.

use crate::sigv4::{Signer, SigningError};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jobline_shared::{JobId, JobState};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

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
    NoJobStatus(String),
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
    /// The job succeeded or failed; `job` is its final JSON.
    Finished { job: Value, state: JobState },
    /// The timeout passed first; `job` is the last JSON seen.
    TimedOut { job: Value, state: JobState },
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

    /// `POST /jobs`: submits a job; returns the 202 body
    /// (`{"jobId","status","statusUrl"}`).
    pub async fn submit(
        &self,
        job_type: &str,
        payload: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = json!({ "type": job_type, "payload": payload }).to_string();
        let mut request = Request::post(self.url("/jobs")).header(CONTENT_TYPE, "application/json");
        if let Some(key) = idempotency_key {
            let key = HeaderValue::from_str(key).map_err(|_| {
                ClientError::InvalidRequest("the idempotency key must be visible ASCII".into())
            })?;
            request = request.header("idempotency-key", key);
        }
        self.call(request, Bytes::from(body)).await
    }

    /// `GET /jobs/{id}`: the job's JSON.
    pub async fn status(&self, id: JobId) -> Result<Value, ClientError> {
        self.call(Request::get(self.url(&format!("/jobs/{id}"))), Bytes::new())
            .await
    }

    /// Polls `GET /jobs/{id}` every `interval` until the job succeeds or
    /// fails, or `timeout` passes (one poll is always made).
    pub async fn wait(
        &self,
        id: JobId,
        timeout: Duration,
        interval: Duration,
    ) -> Result<Waited, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.status(id).await?;
            let state = job_state(&job)?;
            if state.is_finished() {
                return Ok(Waited::Finished { job, state });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Waited::TimedOut { job, state });
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
            Auth::SigV4(signer) => signer.sign(&mut request, SystemTime::now())?,
        }
        let method = request.method().clone();
        let url = request.uri().to_string();
        let exchange = async {
            let response = self.transport.send(request.map(Full::new)).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, body))
        };
        let (status, body) = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Err(_) => return Err(ClientError::Timeout { method, url }),
            Ok(Err(source)) => {
                return Err(ClientError::Transport {
                    method,
                    url,
                    source,
                });
            }
            Ok(Ok(answer)) => answer,
        };
        let json = serde_json::from_slice::<Value>(&body);
        match json {
            Ok(json) if status.is_success() => Ok(json),
            Ok(json) => Err(ClientError::Status {
                status,
                body: json.to_string(),
            }),
            Err(_) if status.is_success() => Err(ClientError::NotJson {
                status,
                body: shown_text(&body),
            }),
            Err(_) => Err(ClientError::Status {
                status,
                body: shown_text(&body),
            }),
        }
    }
}

/// A job JSON's `"status"`.
pub fn job_state(job: &Value) -> Result<JobState, ClientError> {
    job.get("status")
        .and_then(Value::as_str)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| ClientError::NoJobStatus(job.to_string()))
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
    fn job_states_are_read_from_the_status_field() {
        assert_eq!(
            job_state(&json!({"status": "running"})).unwrap(),
            JobState::Running
        );
        assert!(job_state(&json!({"status": "paused"})).is_err());
        assert!(job_state(&json!({})).is_err());
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

//! [`Client`]: one Jobline API, its base URL and credentials, and how every
//! call is sent: with a deadline, authenticated, retried as the
//! [`RetryPolicy`] says, and read as JSON. An answer outside 2xx becomes
//! [`ClientError::Status`] carrying the API's own error body. The calls
//! themselves are in `jobs.rs`, `wait.rs`, `schedules.rs` and `uploads.rs`;
//! [`RawJson`] is the same calls answering the API's JSON as it came.

use crate::auth::Auth;
use crate::error::ClientError;
use crate::retry::{RetryPolicy, retry_after};
use crate::transport::{Answer, Body, Failure, Transport, full, shown_url};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use hyper::body::Bytes;
use jobline_core::Clock;
use jobline_core::JobState;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// How long one API request may take, answer body included (the default of
/// [`Client::with_timeout`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sending an upload's file may take (the default of
/// [`Client::with_transfer_timeout`]).
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// How much of a non-JSON error body an error message shows.
const SHOWN_BODY_CHARS: usize = 500;

/// A client of one Jobline API. Cheap to share by reference: its HTTP
/// connections are pooled, and every method takes `&self`.
#[derive(Debug)]
pub struct Client {
    /// `scheme://authority/path-prefix`, without a trailing slash.
    base: String,
    auth: Auth,
    pub(crate) transport: Transport,
    pub(crate) retry: RetryPolicy,
    timeout: Duration,
    pub(crate) transfer_timeout: Duration,
    user_agent: HeaderValue,
    /// The time requests are signed at (the wall clock, or a test's).
    clock: Clock,
}

/// Whether a request whose answer was lost may be sent again: `Safe` when
/// sending it twice does what sending it once does (reads, cancels, a
/// submission with its idempotency key); `Unsafe` is retried only when it
/// was certainly not sent (no connection) or refused with 429 or 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    Safe,
    Unsafe,
}

/// The same calls as [`Client`]'s, answering the API's JSON as it came
/// (every field, in the API's own form): for a program that prints the
/// answers, such as the `jobline` CLI. Get it with [`Client::json`].
#[derive(Debug, Clone, Copy)]
pub struct RawJson<'a> {
    pub(crate) client: &'a Client,
}

impl Client {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:3000`, or
    /// an API Gateway stage URL such as
    /// `https://id.execute-api.eu-west-1.amazonaws.com/prod`: a path prefix
    /// is kept), authenticating with `auth`. Default timeouts and
    /// [`RetryPolicy`].
    ///
    /// ```
    /// use jobline_client::{Auth, Client};
    /// let client = Client::new("http://127.0.0.1:3000", Auth::None)?;
    /// assert_eq!(client.base_url(), "http://127.0.0.1:3000");
    /// # Ok::<(), jobline_client::ClientError>(())
    /// ```
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
        let scheme = match uri.scheme_str() {
            Some(scheme @ ("http" | "https")) => scheme,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let transport = Transport::new();
        if scheme == "https" {
            // Fails now, not at the first call, without root certificates.
            transport.tls()?;
        }
        let prefix = uri.path().trim_end_matches('/');
        Ok(Self {
            base: format!("{scheme}://{authority}{prefix}"),
            auth,
            transport,
            retry: RetryPolicy::default(),
            timeout: REQUEST_TIMEOUT,
            transfer_timeout: TRANSFER_TIMEOUT,
            user_agent: HeaderValue::from_static(concat!(
                "jobline-client/",
                env!("CARGO_PKG_VERSION")
            )),
            clock: Clock::system(),
        })
    }

    /// The client signing requests at `clock`'s time (a test's movable one).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The client with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The client with another timeout for each API request (one attempt,
    /// answer included); [`REQUEST_TIMEOUT`] by default.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client with another timeout for sending an upload's file;
    /// [`TRANSFER_TIMEOUT`] by default.
    #[must_use]
    pub fn with_transfer_timeout(mut self, timeout: Duration) -> Self {
        self.transfer_timeout = timeout;
        self
    }

    /// The client sending another `User-Agent` (`jobline-client/VERSION` by
    /// default).
    pub fn with_user_agent(mut self, user_agent: &str) -> Result<Self, ClientError> {
        self.user_agent = HeaderValue::from_str(user_agent).map_err(|_| {
            ClientError::InvalidRequest("the user agent must be visible ASCII".into())
        })?;
        Ok(self)
    }

    /// The API's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The calls answering raw JSON (see [`RawJson`]).
    pub fn json(&self) -> RawJson<'_> {
        RawJson { client: self }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one API request (`body` as JSON, if any, and `headers`) with
    /// the client's credentials, retried as the policy says; returns the
    /// last answer whatever its status.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(HeaderName, HeaderValue)],
        repeat: Repeat,
    ) -> Result<Answer, ClientError> {
        let url: Uri = self
            .url(path)
            .parse()
            .map_err(|_| ClientError::InvalidRequest(format!("not a valid path: {path:?}")))?;
        let body = body.map(|json| Bytes::from(json.to_string()));
        let build = async || self.request(&method, &url, body.as_ref(), headers).await;
        self.with_retries(&method, &url, repeat, self.timeout, build)
            .await
    }

    /// [`send`](Self::send), then the answer's JSON: an answer outside 2xx
    /// is [`ClientError::Status`].
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Value, ClientError> {
        let answer = self.send(method, path, body, &[], repeat).await?;
        json_answer(answer.status, &answer.body)
    }

    /// One attempt's request, signed now.
    async fn request(
        &self,
        method: &Method,
        url: &Uri,
        body: Option<&Bytes>,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Request<Body>, ClientError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, self.user_agent.clone());
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let mut request = builder
            .body(body.cloned().unwrap_or_default())
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    ClientError::InvalidRequest("the token must be visible ASCII".into())
                })?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            Auth::SigV4(signer) => signer.sign(&mut request, self.clock.system_time()).await?,
        }
        Ok(request.map(full))
    }

    /// Sends the requests `build` makes, one an attempt, until one is
    /// answered other than 429 or 503, or fails for good, or the policy
    /// allows no more attempts; returns the last answer (or failure).
    pub(crate) async fn with_retries(
        &self,
        method: &Method,
        url: &Uri,
        repeat: Repeat,
        timeout: Duration,
        mut build: impl AsyncFnMut() -> Result<Request<Body>, ClientError>,
    ) -> Result<Answer, ClientError> {
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.transport.exchange(build().await?, timeout).await;
            let wanted = match &outcome {
                Ok(answer) if busy(answer.status) => Some(
                    retry_after(&answer.headers).unwrap_or_else(|| self.retry.backoff(attempt)),
                ),
                Ok(_) | Err(Failure::Fatal(_)) => None,
                Err(Failure::Connect(_)) => Some(self.retry.backoff(attempt)),
                Err(Failure::Broken(_) | Failure::Timeout) => {
                    (repeat == Repeat::Safe).then(|| self.retry.backoff(attempt))
                }
            };
            match wanted.and_then(|wanted| self.retry.next_wait(attempt, waited, wanted)) {
                Some(wait) => {
                    let why = match &outcome {
                        Ok(answer) => answer.status.to_string(),
                        Err(Failure::Connect(e) | Failure::Broken(e)) => e.to_string(),
                        Err(_) => "timeout".to_owned(),
                    };
                    tracing::debug!(%method, url = %shown_url(url), attempt, ?wait, why, "retrying");
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                None => {
                    return outcome.map_err(|failure| {
                        failure.into_error(method.clone(), shown_url(url), timeout)
                    });
                }
            }
        }
    }
}

impl Client {
    /// GETs `url`, a link the API handed out (a result's `resultUrl`, an
    /// output's `url`: presigned, so sent with no credentials), within the
    /// transfer timeout; its body if the answer is 2xx, else
    /// [`ClientError::Status`] with the body's text.
    ///
    /// ```no_run
    /// # async fn example(client: &jobline_client::Client, url: &str) -> Result<(), jobline_client::ClientError> {
    /// let bytes = client.fetch_link(url).await?;
    /// println!("{} bytes", bytes.len());
    /// # Ok(()) }
    /// ```
    pub async fn fetch_link(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let uri: Uri = url.parse().map_err(|_| ClientError::InvalidUrl {
            url: "(a link)".to_owned(),
            reason: "not a URL",
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(ClientError::InvalidUrl {
                url: shown_url(&uri),
                reason: "the scheme must be http or https",
            });
        }
        let answer = self
            .with_retries(
                &Method::GET,
                &uri,
                Repeat::Safe,
                self.transfer_timeout,
                async || {
                    Request::get(uri.clone())
                        .header(USER_AGENT, self.user_agent.clone())
                        .body(full(Default::default()))
                        .map_err(|e| ClientError::InvalidRequest(e.to_string()))
                },
            )
            .await?;
        if !answer.status.is_success() {
            return Err(ClientError::Status {
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(500)
                    .collect(),
            });
        }
        Ok(answer.body.to_vec())
    }
}

/// 429 and 503: the API did nothing and asks to come back.
fn busy(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// An answer's JSON body; an answer outside 2xx is an
/// [`ClientError::Status`].
pub(crate) fn json_answer(status: StatusCode, body: &[u8]) -> Result<Value, ClientError> {
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

/// An answer with no body expected (204); any other is read as JSON, an
/// error outside 2xx.
pub(crate) fn empty_answer(answer: &Answer) -> Result<(), ClientError> {
    if answer.status == StatusCode::NO_CONTENT {
        return Ok(());
    }
    json_answer(answer.status, &answer.body).map(|_| ())
}

/// `json` read as `T`; `what` names it in the error.
pub(crate) fn decode<T: DeserializeOwned>(
    json: Value,
    what: &'static str,
) -> Result<T, ClientError> {
    serde_json::from_value(json).map_err(ClientError::decode(what))
}

/// The `code` and `message` of an error body.
pub(crate) fn error_of(body: &[u8]) -> Option<(String, String)> {
    let json = serde_json::from_slice::<Value>(body).ok()?;
    let error = json.get("error")?;
    Some((
        error["code"].as_str()?.to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// The job state an error answer with `code` names in its `status`.
pub(crate) fn error_status(body: &[u8], code: &str) -> Option<JobState> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| json.get("error").cloned())
        .filter(|error| error["code"] == code)
        .and_then(|error| parse_status(&error["status"]))
}

/// A job JSON's `"status"`.
pub(crate) fn job_status(job: &Value) -> Result<JobState, ClientError> {
    parse_status(&job["status"]).ok_or_else(|| ClientError::NoJobState(job.to_string()))
}

fn parse_status(status: &Value) -> Option<JobState> {
    status.as_str()?.parse().ok()
}

/// A body that is not JSON, as text short enough for an error message.
pub(crate) fn shown_text(body: &[u8]) -> String {
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
    use serde_json::json;

    #[test]
    fn base_urls_keep_their_path_prefix() {
        let client = Client::new("http://127.0.0.1:3000/", Auth::None).unwrap();
        assert_eq!(client.url("/jobs"), "http://127.0.0.1:3000/jobs");
        let client = Client::new("http://localhost:3000/prod/", Auth::None).unwrap();
        assert_eq!(client.url("/jobs"), "http://localhost:3000/prod/jobs");
        assert_eq!(client.base_url(), "http://localhost:3000/prod");
    }

    #[test]
    fn bad_base_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("ftp://example.com", "scheme"),
            ("/jobs", "host"),
            ("http://example.com/?a=1", "query"),
            ("http://exa mple.com", "not a URL"),
        ] {
            let err = Client::new(url, Auth::None).unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
        }
        let err = Client::new("http://h", Auth::None)
            .unwrap()
            .with_user_agent("bad\nagent")
            .unwrap_err();
        assert!(matches!(err, ClientError::InvalidRequest(_)), "{err:?}");
    }

    #[test]
    fn job_statuses_are_read_from_the_status_field() {
        assert_eq!(
            job_status(&json!({"status": "running"})).unwrap(),
            JobState::Running
        );
        assert!(job_status(&json!({"status": "paused"})).is_err());
        assert!(job_status(&json!({})).is_err());
    }

    #[test]
    fn error_bodies_give_their_code_message_and_status() {
        let body = br#"{"error":{"code":"schedule_overlap","message":"busy"}}"#;
        assert_eq!(
            error_of(body),
            Some(("schedule_overlap".to_owned(), "busy".to_owned()))
        );
        assert_eq!(error_of(b"<html>"), None);
        assert_eq!(error_of(br#"{"jobId":"x"}"#), None);
        let finished = br#"{"error":{"code":"job_finished","message":"m","status":"failed"}}"#;
        assert_eq!(
            error_status(finished, "job_finished"),
            Some(JobState::Failed)
        );
        assert_eq!(error_status(finished, "job_not_scheduled"), None);
    }

    #[test]
    fn answers_outside_2xx_are_errors_with_the_apis_body() {
        let ok = json_answer(StatusCode::OK, br#"{"a":1}"#).unwrap();
        assert_eq!(ok, json!({"a": 1}));
        let err = json_answer(StatusCode::NOT_FOUND, br#"{"error":{}}"#).unwrap_err();
        assert!(matches!(err, ClientError::Status { .. }), "{err:?}");
        let err = json_answer(StatusCode::OK, b"<html>").unwrap_err();
        assert!(matches!(err, ClientError::NotJson { .. }), "{err:?}");
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

//! One HTTP exchange: HTTP/1.1 through hyper's pooled client, plain for
//! `http://` (so a machine without root certificates still reaches a local
//! server) and rustls with the system's root certificates for `https://`,
//! loaded once, on the first `https://` request (or at once for an
//! `https://` API). The answer's body is read whole, within the exchange's
//! timeout; the request's body may be streamed (an upload's file).

use crate::error::{BoxError, ClientError};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::OnceLock;
use std::time::Duration;

/// A request's body: bytes, or a stream (an upload's file).
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// `bytes` as a request body.
pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An answer: its status, headers and whole body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection was made: the request was not sent.
    Connect(BoxError),
    /// The connection failed after it was made: the request may have
    /// arrived.
    Broken(BoxError),
    /// No complete answer in time: the request may have arrived.
    Timeout,
    /// Not an exchange's failure (TLS set-up).
    Fatal(ClientError),
}

impl Failure {
    /// The error a caller sees for this failure of `method url`.
    pub(crate) fn into_error(self, method: Method, url: String, after: Duration) -> ClientError {
        match self {
            Self::Connect(source) | Self::Broken(source) => ClientError::Transport {
                method,
                url,
                source,
            },
            Self::Timeout => ClientError::Timeout { method, url, after },
            Self::Fatal(error) => error,
        }
    }
}

/// The HTTP clients: one for `http://`, one for `https://` (built once).
#[derive(Debug)]
pub(crate) struct Transport {
    plain: Client<HttpConnector, Body>,
    tls: OnceLock<Client<HttpsConnector<HttpConnector>, Body>>,
}

impl Transport {
    pub(crate) fn new() -> Self {
        Self {
            plain: Client::builder(TokioExecutor::new()).build_http(),
            tls: OnceLock::new(),
        }
    }

    /// The `https://` client, its root certificates loaded on first use.
    pub(crate) fn tls(&self) -> Result<&Client<HttpsConnector<HttpConnector>, Body>, ClientError> {
        if let Some(client) = self.tls.get() {
            return Ok(client);
        }
        let connector = HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(ClientError::Tls)?
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(self.tls.get_or_init(|| client))
    }

    /// Sends `request` and reads its whole answer within `timeout`.
    pub(crate) async fn exchange(
        &self,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let https = request.uri().scheme_str() == Some("https");
        let exchange = async {
            let response = if https {
                let client = self.tls().map_err(Failure::Fatal)?;
                client.request(request).await
            } else {
                self.plain.request(request).await
            };
            let response: Response<Incoming> = response.map_err(|error| {
                if error.is_connect() {
                    Failure::Connect(error.into())
                } else {
                    Failure::Broken(error.into())
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| Failure::Broken(error.into()))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }
}

/// `url` without its query, for messages: a presigned URL's query is a
/// credential.
pub(crate) fn shown_url(url: &http::Uri) -> String {
    match (url.scheme_str(), url.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{}", url.path()),
        _ => url.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_query() {
        let url: http::Uri = "https://bucket.s3.amazonaws.com/uploads/1?X-Amz-Signature=abc"
            .parse()
            .unwrap();
        assert_eq!(shown_url(&url), "https://bucket.s3.amazonaws.com/uploads/1");
        let url: http::Uri = "http://127.0.0.1:3000/jobs?limit=5".parse().unwrap();
        assert_eq!(shown_url(&url), "http://127.0.0.1:3000/jobs");
    }
}

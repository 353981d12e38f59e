//! The local stand-in for API Gateway: plain HTTP/1.1 on a TCP port, each
//! request handed to [`jobline_api::Api::handle`] as a `lambda_http` request.
//!
//! Robust the way a long-running local server must be:
//! - a failed `accept` never ends it: a failure of one connection
//!   (`ECONNABORTED`…) is skipped, a shortage of resources (`EMFILE`…) is
//!   logged and waited out with a short, growing pause ([`AcceptFailure`]);
//! - slow clients are bounded: the request head within
//!   [`HttpSettings::header_read_timeout`] (hyper closes the connection,
//!   idle keep-alive ones included), the body within
//!   [`HttpSettings::request_read_timeout`] (`408`);
//! - a body over Lambda's 6 MB request limit is refused with the API's
//!   `413 payload_too_large`, as API Gateway would refuse it;
//! - what it answers itself (`408`, `413`, `400 unreadable_body`) is an
//!   [`ApiError`], so every error has the API's one shape;
//! - on stop, it stops accepting, lets open connections finish their request
//!   for up to [`HttpSettings::drain_timeout`], then closes them. Each
//!   request runs in a task of its own that is always awaited, so a
//!   submission is never cut between its `PutItem` and its `SendMessage`.

use crate::shutdown::Shutdown;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use jobline_api::{Api, ApiError, MAX_BODY_BYTES};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The largest body read, as Lambda's 6 MB request payload limit; the API
/// itself refuses bodies over its own, smaller limit with a 413.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// The first pause after a failed `accept` for want of resources; it doubles
/// on each failure in a row, up to [`MAX_ACCEPT_BACKOFF`].
pub const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The longest pause after a failed `accept`.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Time limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// From a connection's first byte (or the end of its last response) to
    /// the end of the request head.
    pub header_read_timeout: Duration,
    /// From the request head to the end of its body.
    pub request_read_timeout: Duration,
    /// How long open connections may take to finish after a stop.
    pub drain_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "cannot listen on {addr}: the address is already in use (another program, or another \
         jobline-local, listens there); stop it or choose another port"
    )]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Other {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds `addr` and reports the address actually bound (for port 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let failed = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AddrInUse => BindError::InUse { addr },
        _ => BindError::Other { addr, source },
    };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    Ok((listener, local))
}

/// What a failed `accept` means for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFailure {
    /// Only that connection failed (the client gave up, a signal
    /// interrupted the call): accept the next at once.
    Connection,
    /// The process or system is short of something (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`…): accepting again at once would fail again and
    /// spin, so pause first. Connections closing free what is missing.
    Resources,
}

impl AcceptFailure {
    pub fn of(error: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::TimedOut => Self::Connection,
            _ => Self::Resources,
        }
    }
}

/// Serves `api` on `listener` until `stop` is requested, then drains: open
/// connections get [`HttpSettings::drain_timeout`] to finish, and every
/// request already handed to the API is awaited to its end.
pub async fn run(listener: TcpListener, api: Arc<Api>, settings: HttpSettings, stop: Shutdown) {
    let mut connections = JoinSet::new();
    // Each request task holds a sender; `recv` returns `None` once all are
    // dropped, that is once every request task has ended.
    let (requests, mut requests_done) = mpsc::channel::<()>(1);
    let mut backoff = MIN_ACCEPT_BACKOFF;
    let mut stopping = stop.clone();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = stopping.requested() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = MIN_ACCEPT_BACKOFF;
                accepted
            }
            Err(error) => {
                match AcceptFailure::of(&error) {
                    AcceptFailure::Connection => {
                        tracing::debug!(%error, "a connection failed before it was accepted");
                    }
                    AcceptFailure::Resources => {
                        tracing::warn!(
                            %error,
                            pause_ms = backoff.as_millis(),
                            "cannot accept connections; pausing"
                        );
                        tokio::select! {
                            () = stopping.requested() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    }
                }
                continue;
            }
        };
        let (api, requests, stop) = (Arc::clone(&api), requests.clone(), stop.clone());
        connections.spawn(connection(stream, peer, api, settings, requests, stop));
    }
    drop(listener);
    drop(requests);
    while connections.try_join_next().is_some() {}
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "stopped accepting; letting open connections finish");
    }
    let drained = tokio::time::timeout(settings.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            timeout_secs = settings.drain_timeout.as_secs(),
            "closing connections still open after the drain timeout"
        );
        connections.shutdown().await;
    }
    // Requests already handed to the API run to their end.
    while requests_done.recv().await.is_some() {}
}

/// Serves one connection until it closes, or until a stop lets it finish
/// its current request and closes it.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    settings: HttpSettings,
    requests: mpsc::Sender<()>,
    mut stop: Shutdown,
) {
    let service = service_fn(move |request| {
        handle(
            Arc::clone(&api),
            settings.request_read_timeout,
            requests.clone(),
            request,
        )
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stop.requested() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

fn to_hyper(response: lambda_http::Response<lambda_http::Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
}

async fn handle(
    api: Arc<Api>,
    read_timeout: Duration,
    requests: mpsc::Sender<()>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(read_timeout, read_body(body))
        .await
        .unwrap_or(Err(ApiError::RequestTimeout {
            secs: read_timeout.as_secs(),
        }));
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) => return Ok(to_hyper(error.into_response())),
    };
    let request = http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    // A task of its own, holding a `requests` sender until it ends: if the
    // connection goes away, the request still runs to its end, and the
    // drain waits for it.
    let handled = tokio::spawn(async move {
        let response = api.handle(request).await.response;
        drop(requests);
        response
    })
    .await;
    Ok(to_hyper(handled.unwrap_or_else(|error| {
        tracing::error!(%error, "a request task failed");
        ApiError::internal(error).into_response()
    })))
}

/// Reads a body of at most [`MAX_REQUEST_BYTES`]. A longer one is refused
/// unread when its `Content-Length` says so, and otherwise read to its end
/// (and dropped) to tell the client its size; either way with the API's own
/// answer to a body over its (smaller) limit.
async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = |size| ApiError::BodyTooLarge {
        limit: MAX_BODY_BYTES,
        size,
    };
    let declared = body.size_hint().exact().map(usize::try_from);
    if let Some(size) = declared {
        let size = size.unwrap_or(usize::MAX);
        if size > MAX_REQUEST_BYTES {
            return Err(too_large(size));
        }
    }
    let mut collected = Vec::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            tracing::debug!(%error, "the request body could not be read");
            ApiError::UnreadableBody
        })?;
        if let Ok(data) = frame.into_data() {
            size = size.saturating_add(data.len());
            if size <= MAX_REQUEST_BYTES {
                collected.extend_from_slice(&data);
            }
        }
    }
    if size > MAX_REQUEST_BYTES {
        return Err(too_large(size));
    }
    Ok(Bytes::from(collected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_failed_connection_is_skipped_and_a_shortage_waited_out() {
        for kind in [
            ErrorKind::ConnectionAborted,
            ErrorKind::ConnectionReset,
            ErrorKind::Interrupted,
            ErrorKind::WouldBlock,
        ] {
            assert_eq!(
                AcceptFailure::of(&Error::from(kind)),
                AcceptFailure::Connection,
                "{kind:?}"
            );
        }
        // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
        for errno in [24, 23, 105, 12] {
            assert_eq!(
                AcceptFailure::of(&Error::from_raw_os_error(errno)),
                AcceptFailure::Resources,
                "errno {errno}"
            );
        }
        assert_eq!(
            AcceptFailure::of(&Error::from(ErrorKind::OutOfMemory)),
            AcceptFailure::Resources
        );
    }

    #[tokio::test]
    async fn a_taken_address_is_named_in_plain_words() {
        let (_held, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let error = bind(addr).await.unwrap_err();
        assert!(matches!(error, BindError::InUse { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(&addr.to_string()) && message.contains("already in use"),
            "{message}"
        );
    }
}

//! The local stand-in for API Gateway: plain HTTP/1.1 on a TCP port, each
//! request handed to [`jobline_api::Api::handle`] as a `lambda_http` request.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_api::Api;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The largest body read, as Lambda's 6 MB request payload limit; the API
/// itself refuses bodies over its own, smaller limit with a 413.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// Serves `api` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&api), request));
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// Binds `addr` and reports the address actually bound (for port 0).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

async fn handle(
    api: Arc<Api>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let status = if error.is::<http_body_util::LengthLimitError>() {
                http::StatusCode::PAYLOAD_TOO_LARGE
            } else {
                http::StatusCode::BAD_REQUEST
            };
            let body = format!(
                r#"{{"error":{{"code":"unreadable_body","message":"could not read the request body: {}"}}}}"#,
                error.to_string().replace('"', "'")
            );
            let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            return Ok(response);
        }
    };
    let request = http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    let reply = api.handle(request).await;
    reply.metrics.emit();
    let (parts, body) = reply.response.into_parts();
    let body = Bytes::copy_from_slice(body.as_ref());
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}

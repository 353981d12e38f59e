//! A plain HTTP/1.1 server on a free port of 127.0.0.1, the base of the
//! harness's stand-ins (the Lambda Runtime API and the AWS endpoint). It
//! counts the connections it accepts, which is how the init benchmark tells
//! whether a function touched the network before it asked for work.
//! Dropping the server stops it and closes every connection it holds.

use crate::error::BenchError;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A response with its whole body.
pub type FullResponse = Response<Full<Bytes>>;

/// A running server; it stops when dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl LoopbackServer {
    /// Serves every request with `handler` on a free loopback port.
    pub async fn start<H, F>(handler: H) -> Result<Self, BenchError>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = FullResponse> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(BenchError::io("binding a port on 127.0.0.1"))?;
        let addr = listener
            .local_addr()
            .map_err(BenchError::io("reading the bound address"))?;
        let connections = Arc::new(AtomicUsize::new(0));
        let accept_loop = tokio::spawn(accept(listener, handler, Arc::clone(&connections)));
        Ok(Self {
            addr,
            connections,
            accept_loop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        // The connection tasks live in the loop's JoinSet: aborting the loop
        // drops the set, which aborts them.
        self.accept_loop.abort();
    }
}

async fn accept<H, F>(listener: TcpListener, handler: H, connections: Arc<AtomicUsize>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = FullResponse> + Send + 'static,
{
    let mut open = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                open.spawn(async move {
                    let service = service_fn(move |request| {
                        let response = handler(request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    // A peer that goes away mid-request (a killed function)
                    // ends its connection; nothing to report.
                    drop(
                        http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await,
                    );
                });
            }
            Some(_) = open.join_next(), if !open.is_empty() => {}
        }
    }
}

/// A response with `status`, a JSON content type and `body`.
pub fn json_response(status: u16, content_type: &str, body: String) -> FullResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

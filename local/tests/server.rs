//! The local HTTP server over real TCP connections, with no emulator: only
//! answers that the API gives without touching AWS (an unknown route, a body
//! over the limit) and those the server gives itself, so its AWS clients
//! point at a closed port.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use jobline_core::config::Config;
use jobline_local::Clients;
use jobline_local::Stack;
use jobline_local::server::{self, HttpSettings, MAX_REQUEST_BYTES};
use jobline_local::shutdown;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SETTINGS: HttpSettings = HttpSettings {
    header_read_timeout: Duration::from_millis(500),
    request_read_timeout: Duration::from_millis(500),
    drain_timeout: Duration::from_secs(2),
};

/// A running server and its stop.
struct Running {
    addr: SocketAddr,
    stop: shutdown::Trigger,
    server: tokio::task::JoinHandle<()>,
}

async fn start() -> Running {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDLOCALTEST",
            "secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let clients = Clients::from_sdk_config(&sdk);
    let config = Config::from_lookup(|name| match name {
        "JOBS_TABLE" => Some("unused".into()),
        "JOBS_QUEUE_URL" => Some("http://127.0.0.1:9/000000000000/unused".into()),
        "ALLOW_ANONYMOUS" => Some("true".into()),
        "TLS_TRUST_ROOTS" => Some("system".into()),
        _ => None,
    })
    .expect("a valid configuration");
    let stack = Stack::builder(
        Arc::new(clients.store(&config)),
        Arc::new(clients.queue(&config)),
        &config,
    )
    .build();
    let (listener, addr) = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, shutdown) = shutdown::channel();
    let server = tokio::spawn(server::run(
        listener,
        Arc::clone(stack.api()),
        SETTINGS,
        shutdown,
    ));
    Running { addr, stop, server }
}

/// Sends `head` and `body` on a new connection and reads the answer to its
/// end: the status and the JSON body.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Value) {
    jobline_tests::http::exchange(addr, &[head.as_bytes(), body].concat()).await
}

async fn get_unknown_route(addr: SocketAddr) -> (u16, Value) {
    exchange(
        addr,
        "GET /nowhere HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
        b"",
    )
    .await
}

#[tokio::test]
async fn answers_while_idle_and_slow_header_clients_hold_connections() {
    let running = start().await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(running.addr).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        stream
            .write_all(b"POST /jobs HTTP/1.1\r\nhost: test\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let (status, body) = get_unknown_route(running.addr).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "route_not_found");

    // The header read timeout closes the slow clients' connections.
    let started = Instant::now();
    for stream in &mut slow {
        let mut buffer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer))
            .await
            .expect("the server closes a connection whose head never ends")
            .ok();
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, _) = get_unknown_route(running.addr).await;
    assert_eq!(status, 404, "still answering");
    running.stop.stop();
    running.server.await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_payload_too_large() {
    let running = start().await;
    // Declared too large: refused unread.
    let declared = MAX_REQUEST_BYTES + 1;
    let (status, body) = exchange(
        running.addr,
        &format!("POST /jobs HTTP/1.1\r\nhost: test\r\ncontent-length: {declared}\r\n\r\n"),
        b"",
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&declared.to_string()),
        "{body}"
    );

    // Chunked, so only reading tells: read to its end and sized.
    let chunk = vec![b'x'; 1024 * 1024];
    let mut chunked = Vec::new();
    for _ in 0..7 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = exchange(
        running.addr,
        "POST /jobs HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        &chunked,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&(7 * chunk.len()).to_string()),
        "{body}"
    );

    // Under Lambda's limit but over the API's: the API's own 413.
    let big = vec![b' '; jobline_api::MAX_BODY_BYTES + 1];
    let (status, body) = exchange(
        running.addr,
        &format!(
            "POST /jobs HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            big.len()
        ),
        &big,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    running.stop.stop();
    running.server.await.unwrap();
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let running = start().await;
    let (status, body) = exchange(
        running.addr,
        "POST /jobs HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n",
        b"{\"",
    )
    .await;
    assert_eq!(status, 408);
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    running.stop.stop();
    running.server.await.unwrap();
}

#[tokio::test]
async fn a_stop_closes_idle_connections_and_ends_promptly() {
    let running = start().await;
    let mut idle = TcpStream::connect(running.addr).await.unwrap();
    // A keep-alive connection that has finished a request.
    idle.write_all(b"GET /nowhere HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0; 1024];
    assert!(idle.read(&mut buffer).await.unwrap() > 0);
    let started = Instant::now();
    running.stop.stop();
    tokio::time::timeout(SETTINGS.drain_timeout, running.server)
        .await
        .expect("an idle connection does not hold up the stop")
        .unwrap();
    assert!(started.elapsed() < SETTINGS.drain_timeout);
    assert!(
        TcpStream::connect(running.addr).await.is_err(),
        "no longer listening"
    );
}

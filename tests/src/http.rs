//! A bare HTTP/1.1 client for the tests that drive the local server the
//! way a client on the network would: one request a connection, its status
//! and JSON body back, every failure (refused, reset, unreadable) as text,
//! so the fault tests can count what their clients saw; and raw exchanges
//! ([`exchange`], [`post_jobs`], [`get`]) whose bytes reach the server
//! exactly as written, for the hostile-input and process tests.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jobline_core::JobId;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request to the server at `addr`: `method` on `path`, with an
/// `Idempotency-Key` if `key` is given and `body` as JSON; the answer's
/// status and JSON body (`null` if it has none), or why the call failed.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// `GET url` (plain HTTP, as the emulator serves presigned links): the
/// status and body, read to the end within a minute.
pub async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http link");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .expect("the whole answer within a minute")
        .unwrap();
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer[head_end + 4..].to_vec())
}

/// A submission its client saw accepted.
#[derive(Debug)]
pub struct Accepted {
    pub id: JobId,
    /// The request's body.
    pub request: Value,
    /// Tries before the 202: 503s and broken connections.
    pub retries: usize,
}

/// Submits `request` with `key` to the server at `addr` until it is
/// accepted, retrying 503s and broken connections with the same key, as
/// docs/api.md tells clients to (a client's whole job). A 503 must leak no
/// AWS detail; any other answer but 202 fails the test.
pub async fn submit_until_accepted(addr: SocketAddr, key: String, request: Value) -> Accepted {
    for retries in 0..30 {
        match call(addr, "POST", "/jobs", Some(&key), Some(&request)).await {
            Ok((202, body)) => {
                let id = body["jobId"].as_str().expect("jobId").parse().expect("id");
                return Accepted {
                    id,
                    request,
                    retries,
                };
            }
            Ok((503, body)) => assert!(
                !body.to_string().contains("arn:"),
                "a 503 leaks no AWS detail: {body}"
            ),
            Ok((status, body)) => panic!("{key}: unexpected {status}: {body}"),
            Err(_broken) => {}
        }
        tokio::time::sleep(Duration::from_millis(100 + 50 * retries as u64)).await;
    }
    panic!("{key}: not accepted after 30 tries");
}

/// Submits every `(key, request)` through `clients` clients at once, each
/// sending its share one after another ([`submit_until_accepted`]).
pub async fn submit_all(
    addr: SocketAddr,
    requests: Vec<(String, Value)>,
    clients: usize,
) -> Vec<Accepted> {
    let mut running = Vec::new();
    for chunk in requests.chunks(requests.len().div_ceil(clients.max(1)).max(1)) {
        let chunk = chunk.to_vec();
        running.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for (key, request) in chunk {
                done.push(submit_until_accepted(addr, key, request).await);
            }
            done
        }));
    }
    let mut accepted = Vec::new();
    for client in running {
        accepted.extend(client.await.expect("client"));
    }
    accepted
}

/// Sends `request` (head and body, as bytes) on a new connection and reads
/// the answer until the server closes it: the status and the JSON body
/// (`Null` if it is not JSON).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer before the whole body is sent, and close.
    drop(stream.write_all(request).await);
    let mut answer = Vec::new();
    drop(
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("an answer within 10 s"),
    );
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// `POST /jobs` with `body`, sent as given (hostile bytes included).
pub async fn post_jobs(addr: SocketAddr, body: &[u8]) -> (u16, Value) {
    let mut request = format!(
        "POST /jobs HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    exchange(addr, &request).await
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

/// `PUT url` (a presigned upload link on the emulator, plain HTTP) with
/// `headers` (those the link signs) and `body`: the status and the body's
/// text.
pub async fn put(url: &str, headers: &[(String, String)], body: Vec<u8>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http link");
    let authority = &rest[..rest.find('/').expect("a path")];
    let stream = TcpStream::connect(authority).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method("PUT")
        .uri(url)
        .header("host", authority);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let response = tokio::time::timeout(Duration::from_secs(120), sender.send_request(request))
        .await
        .expect("an answer within two minutes")
        .expect("the PUT");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the answer's body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

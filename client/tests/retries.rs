//! Retries against a stub of the API: a submission refused with 503 and
//! `Retry-After` is sent again after that wait with the same
//! `Idempotency-Key`; other 4xx are final; retries stop at their bounds; a
//! broken connection is retried only for a request that is safe to repeat.

use crate::support::{Reply, Stub};
use jobline_client::{Auth, Client, ClientError, JobId, NewSchedule, RetryPolicy, Submission};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn accepted(id: JobId) -> Reply {
    Reply::json(
        202,
        json!({"jobId": id, "status": "queued", "statusUrl": format!("/jobs/{id}")}),
    )
}

fn busy(status: u16, retry_after: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": "backlog_full", "message": "come back later"}}),
    )
    .header("retry-after", retry_after)
}

/// A policy whose backoff is short, for the tests that do not use `Retry-After`.
fn quick(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn a_submission_refused_with_503_is_sent_again_after_retry_after_with_the_same_key() {
    let id = JobId::random();
    let stub = Stub::replies(vec![busy(503, "1"), accepted(id)]).await;
    let client = Client::new(&stub.url, Auth::Bearer("jwt".into())).unwrap();
    let submission = Submission::new("primes", json!({"upTo": 10}));
    let started = Instant::now();
    let answer = client.submit(&submission).await.unwrap();
    assert_eq!(answer.job_id, id);

    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    let keys: Vec<_> = seen.iter().map(|s| s.header("idempotency-key")).collect();
    assert_eq!(keys, [Some(submission.idempotency_key()); 2]);
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(seen[1].header("authorization"), Some("Bearer jwt"));
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "Retry-After honoured: {gap:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The same submission sent again carries the same key; a new one its own.
    let stub = Stub::replies(vec![accepted(id)]).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    client.submit(&submission).await.unwrap();
    client
        .submit(&Submission::new("primes", json!({})))
        .await
        .unwrap();
    let seen = stub.seen();
    assert_eq!(
        seen[0].header("idempotency-key"),
        Some(submission.idempotency_key())
    );
    assert_ne!(
        seen[1].header("idempotency-key"),
        Some(submission.idempotency_key())
    );
}

#[tokio::test]
async fn other_4xx_answers_are_never_retried_and_429_is() {
    for status in [400, 401, 403, 404, 408, 409, 413, 422] {
        let stub = Stub::replies(vec![Reply::json(
            status,
            json!({"error": {"code": "nope", "message": "no"}}),
        )])
        .await;
        let client = Client::new(&stub.url, Auth::None).unwrap();
        let error = client.status(JobId::random()).await.unwrap_err();
        assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(error.code().as_deref(), Some("nope"));
        assert_eq!(stub.seen().len(), 1, "{status} is final");
    }
    let id = JobId::random();
    let stub = Stub::replies(vec![busy(429, "0"), accepted(id)]).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    client
        .submit(&Submission::new("primes", json!({})))
        .await
        .unwrap();
    assert_eq!(stub.seen().len(), 2);
}

#[tokio::test]
async fn retries_stop_at_their_attempts_and_their_total_wait() {
    let stub = Stub::replies(vec![busy(503, "0")]).await;
    let client = Client::new(&stub.url, Auth::None)
        .unwrap()
        .with_retry(quick(3));
    let error = client.status(JobId::random()).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert!(error.to_string().contains("come back later"), "{error}");
    assert_eq!(stub.seen().len(), 3);

    // A 503 without Retry-After waits the backoff.
    let stub = Stub::replies(vec![Reply::json(503, json!({}))]).await;
    let client = Client::new(&stub.url, Auth::None)
        .unwrap()
        .with_retry(quick(2));
    client.status(JobId::random()).await.unwrap_err();
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(5));

    // A Retry-After past the total wait allowed is not waited for.
    let stub = Stub::replies(vec![busy(429, "120")]).await;
    let client = Client::new(&stub.url, Auth::None).unwrap();
    let started = Instant::now();
    let error = client.status(JobId::random()).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(stub.seen().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));

    // No retries at all.
    let stub = Stub::replies(vec![busy(503, "0")]).await;
    let client = Client::new(&stub.url, Auth::None)
        .unwrap()
        .with_retry(RetryPolicy::none());
    client.status(JobId::random()).await.unwrap_err();
    assert_eq!(stub.seen().len(), 1);
}

/// A server whose first `drops` connections read a request and close
/// without answering; later ones answer `answer` (a whole HTTP/1.1
/// response). Returns its URL and the requests it read.
async fn flaky(
    drops: usize,
    answer: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = requests.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 8192];
            // The head and a small body arrive together on loopback.
            while !String::from_utf8_lossy(&request).contains("\r\n\r\n") {
                let read = stream.read(&mut buffer).await.unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            kept.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&request).into_owned());
            n += 1;
            if n > drops {
                let _ = stream.write_all(answer.as_bytes()).await;
            }
            drop(stream);
        }
    });
    (url, requests)
}

fn http_answer(status: &str, body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn key_of(request: &str) -> Option<String> {
    request
        .lines()
        .find_map(|line| line.strip_prefix("idempotency-key: "))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_broken_connection_is_retried_only_when_repeating_is_safe() {
    let id = JobId::random();
    let body = json!({"jobId": id, "status": "queued", "statusUrl": "u"});
    let (url, requests) = flaky(1, http_answer("202 Accepted", &body)).await;
    let client = Client::new(&url, Auth::None).unwrap().with_retry(quick(3));
    let submission = Submission::new("primes", json!({}));
    assert_eq!(client.submit(&submission).await.unwrap().job_id, id);
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| key_of(r).as_deref() == Some(submission.idempotency_key())),
        "{requests:?}"
    );

    // A schedule's creation is not repeated: a second schedule would be made.
    let (url, requests) = flaky(1, http_answer("201 Created", &json!({}))).await;
    let client = Client::new(&url, Auth::None).unwrap().with_retry(quick(3));
    let error = client
        .create_schedule(&NewSchedule::new("rate(1 hour)", "primes", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn refused_connections_and_timeouts_are_retried_then_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&url, Auth::None).unwrap().with_retry(quick(3));
    let error = client.status(JobId::random()).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");

    let id = JobId::random();
    let job = json!({"jobId": id, "type": "primes", "status": "running",
                     "createdAt": "2027-03-01T08:00:00.000Z"});
    let stub = Stub::replies(vec![
        Reply::json(200, job.clone()).after(Duration::from_secs(2)),
        Reply::json(200, job),
    ])
    .await;
    let client = Client::new(&stub.url, Auth::None)
        .unwrap()
        .with_timeout(Duration::from_millis(200))
        .with_retry(quick(2));
    assert_eq!(client.status(id).await.unwrap().job_id, id);
    assert_eq!(stub.seen().len(), 2);

    let stub_slow = Stub::replies(vec![
        Reply::json(200, json!({})).after(Duration::from_secs(2)),
    ])
    .await;
    let slow = Client::new(&stub_slow.url, Auth::None)
        .unwrap()
        .with_timeout(Duration::from_millis(200))
        .with_retry(RetryPolicy::none());
    let error = slow.status(id).await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");
}

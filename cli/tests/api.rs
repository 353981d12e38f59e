//! `submit`, `status`, `wait`, `cancel`, `list` and `delete` end to end against a stub of the API on
//! 127.0.0.1: the requests the CLI sends, and the exit codes and output of
//! the answers it gets.

use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_cli::client::{ApiClient, Auth, ClientError};
use jobline_cli::sigv4::Signer;
use jobline_cli::sigv4::{Credentials, SigningIdentity};
use jobline_cli::{Cli, CliError, Exit, ProgressStyle, run};
use jobline_core::JobId;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// An HTTP server that answers with `answers` in turn (the last one
/// repeats) and records every request.
struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    async fn start(answers: Vec<(u16, Value)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let recorder = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (seen, answers) = (recorder.clone(), answers.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (seen, answers) = (seen.clone(), answers.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        seen.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_owned(),
                            query: parts.uri.query().unwrap_or_default().to_owned(),
                            headers: parts.headers,
                            body,
                        });
                        let mut answers = answers.lock().unwrap();
                        let (status, body) = if answers.len() > 1 {
                            answers.pop_front().unwrap()
                        } else {
                            answers.front().cloned().unwrap()
                        };
                        // A 204 has no body.
                        let body = if status == 204 {
                            Bytes::new()
                        } else {
                            Bytes::from(body.to_string())
                        };
                        let response = Response::builder()
                            .status(StatusCode::from_u16(status).unwrap())
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Runs `jobline ARGS…` with stderr off a terminal; returns the result,
/// stdout and stderr.
async fn jobline(args: &[&str]) -> (Result<Exit, CliError>, String, String) {
    let cli = Cli::try_parse_from(std::iter::once("jobline").chain(args.iter().copied())).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = run(cli.command, ProgressStyle::Lines, &mut out, &mut err).await;
    (
        result,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn job(id: JobId, status: &str) -> Value {
    json!({"jobId": id, "type": "primes", "status": status, "attempts": 1, "replays": 0})
}

#[tokio::test]
async fn submit_posts_the_job_and_prints_the_202_body() {
    let id = JobId::random();
    let accepted = json!({"jobId": id, "status": "queued", "statusUrl": format!("/jobs/{id}")});
    let stub = Stub::start(vec![(202, accepted.clone())]).await;
    let (result, out, _) = jobline(&[
        "submit",
        "--api",
        &format!("{}/prod/", stub.url),
        "--type",
        "primes",
        "--payload",
        r#"{"upTo": 100}"#,
        "--idempotency-key",
        "order-42",
        "--token",
        "jwt-token",
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), accepted);
    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/prod/jobs")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"type": "primes", "payload": {"upTo": 100}})
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["idempotency-key"], "order-42");
    assert_eq!(request.headers["authorization"], "Bearer jwt-token");
}

#[tokio::test]
async fn status_prints_the_job_and_errors_show_the_api_body() {
    let id = JobId::random();
    let stub = Stub::start(vec![(200, job(id, "running"))]).await;
    let (result, out, _) = jobline(&["status", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        job(id, "running")
    );
    let request = &stub.seen()[0];
    assert_eq!(request.path, format!("/jobs/{id}"));
    assert!(request.headers.get("authorization").is_none());

    let missing = json!({"error": {"code": "not_found", "message": "no such job"}});
    let stub = Stub::start(vec![(404, missing)]).await;
    let (result, out, _) = jobline(&["status", "--api", &stub.url, &id.to_string()]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, CliError::Client(ClientError::Status { status, .. }) if status.as_u16() == 404),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("404 Not Found"), "{message}");
    assert!(message.contains(r#""code":"not_found""#), "{message}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn wait_polls_until_the_job_finishes_and_exits_by_outcome() {
    let id = JobId::random();
    let stub = Stub::start(vec![
        (200, job(id, "queued")),
        (200, job(id, "running")),
        (200, job(id, "succeeded")),
    ])
    .await;
    let (result, out, _) = jobline(&[
        "wait",
        "--api",
        &stub.url,
        "--interval",
        "1",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "succeeded"
    );
    assert_eq!(stub.seen().len(), 3);

    let stub = Stub::start(vec![(200, job(id, "running")), (200, job(id, "failed"))]).await;
    let (result, out, _) = jobline(&[
        "wait",
        "--api",
        &stub.url,
        "--interval",
        "1",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Failed);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "failed"
    );
}

#[tokio::test]
async fn wait_shows_each_change_of_progress_and_ends_at_cancelled() {
    let id = JobId::random();
    let at = |fraction: f64, message: &str| {
        let mut job = job(id, "running");
        job["progress"] = json!({
            "fraction": fraction, "message": message, "updatedAt": "2026-11-29T17:09:54.123Z"
        });
        job
    };
    let mut cancelled = at(0.5, "counted 5 of 10");
    cancelled["status"] = json!("cancelled");
    let stub = Stub::start(vec![
        (200, job(id, "queued")),
        (200, at(0.1, "counted 1 of 10")),
        (200, at(0.1, "counted 1 of 10")),
        (200, at(0.5, "counted 5 of 10")),
        (200, cancelled),
    ])
    .await;
    let (result, out, err) = jobline(&[
        "wait",
        "--api",
        &stub.url,
        "--interval",
        "1",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Failed);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "cancelled"
    );
    assert_eq!(err, " 10% counted 1 of 10\n 50% counted 5 of 10\n");
    assert_eq!(stub.seen().len(), 5);
}

#[tokio::test]
async fn cancel_posts_and_says_what_happened() {
    let id = JobId::random();
    let mut cancelled = job(id, "cancelled");
    cancelled["cancelRequested"] = json!(false);
    let stub = Stub::start(vec![(200, cancelled.clone())]).await;
    let (result, out, err) = jobline(&[
        "cancel",
        "--api",
        &format!("{}/prod", stub.url),
        "--token",
        "jwt-token",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), cancelled);
    assert_eq!(err, format!("job {id} is cancelled\n"));
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", format!("/prod/jobs/{id}/cancel").as_str())
    );
    assert!(request.body.is_empty());
    assert_eq!(request.headers["authorization"], "Bearer jwt-token");

    let mut requested = job(id, "running");
    requested["cancelRequested"] = json!(true);
    let stub = Stub::start(vec![(200, requested.clone())]).await;
    let (result, out, err) = jobline(&["cancel", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), requested);
    assert!(
        err.starts_with(&format!("cancellation requested: job {id} is running")),
        "{err}"
    );
}

#[tokio::test]
async fn cancel_of_a_finished_job_exits_1_and_of_an_unknown_job_is_an_error() {
    let id = JobId::random();
    let finished = json!({"error": {
        "code": "job_finished", "message": "the job has already finished", "status": "succeeded"
    }});
    let stub = Stub::start(vec![(409, finished)]).await;
    let (result, out, err) = jobline(&["cancel", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Failed);
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        format!("job {id} had already finished (succeeded): nothing to cancel\n")
    );

    let missing = json!({"error": {"code": "job_not_found", "message": "no such job"}});
    let stub = Stub::start(vec![(404, missing)]).await;
    let (result, out, _) = jobline(&["cancel", "--api", &stub.url, &id.to_string()]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, CliError::Client(ClientError::Status { status, .. }) if status.as_u16() == 404),
        "{error:?}"
    );
    assert!(error.to_string().contains("job_not_found"), "{error}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn wait_times_out_with_the_last_job_seen() {
    let id = JobId::random();
    let stub = Stub::start(vec![(200, job(id, "running"))]).await;
    let (result, out, err) = jobline(&[
        "wait",
        "--api",
        &stub.url,
        "--timeout",
        "0",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::TimedOut);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "running"
    );
    assert!(err.contains("still running"), "{err}");
    assert_eq!(stub.seen().len(), 1);
}

#[tokio::test]
async fn an_unreachable_api_is_an_error_naming_the_url() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let id = JobId::random();
    let (result, _, _) = jobline(&["status", "--api", &url, &id.to_string()]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, CliError::Client(ClientError::Transport { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn sigv4_signs_the_headers_it_sends() {
    let id = JobId::random();
    let stub = Stub::start(vec![(200, job(id, "queued"))]).await;
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
    let signer = Signer::new(SigningIdentity {
        credentials,
        region: "eu-west-1".into(),
    });
    let client = ApiClient::new(&stub.url, Auth::SigV4(signer)).unwrap();
    client.status(id).await.unwrap();

    let request = &stub.seen()[0];
    let authorization = request.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-west-1/execute-api/aws4_request"),
        "{authorization}"
    );
    assert_eq!(request.headers["x-amz-security-token"], "token");
    let signed = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert!(signed.split(';').any(|h| h == "host"), "{signed}");
    for header in signed.split(';') {
        assert!(
            request.headers.contains_key(header),
            "signed {header} was sent"
        );
    }
}

#[tokio::test]
async fn list_follows_the_pages_up_to_its_limit_and_prints_a_line_a_job() {
    let ids: Vec<JobId> = (0..3).map(|_| JobId::random()).collect();
    let stub = Stub::start(vec![
        (
            200,
            json!({"jobs": [job(ids[0], "running"), job(ids[1], "running")], "nextCursor": "c1"}),
        ),
        (
            200,
            json!({"jobs": [job(ids[2], "running")], "nextCursor": null}),
        ),
    ])
    .await;
    let (result, out, err) = jobline(&[
        "list", "--api", &stub.url, "--limit", "5", "--status", "running", "--type", "a b",
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    let listed: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            job(ids[0], "running"),
            job(ids[1], "running"),
            job(ids[2], "running")
        ]
    );
    assert_eq!(err, "", "no more pages");
    let seen = stub.seen();
    assert_eq!(seen[0].path, "/jobs");
    assert_eq!(seen[0].query, "limit=5&status=running&type=a%20b");
    assert_eq!(seen[1].query, "limit=3&status=running&type=a%20b&cursor=c1");

    let stub = Stub::start(vec![(
        200,
        json!({"jobs": [job(ids[0], "queued")], "nextCursor": "c2"}),
    )])
    .await;
    let (result, out, err) = jobline(&["list", "--api", &stub.url, "--limit", "1"]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(out.lines().count(), 1);
    assert_eq!(err, "more jobs: jobline list --cursor c2\n");
    assert_eq!(stub.seen().len(), 1, "stops at its limit");
}

#[tokio::test]
async fn delete_says_whether_the_job_is_gone() {
    let id = JobId::random();
    let stub = Stub::start(vec![(204, Value::Null)]).await;
    let (result, out, err) = jobline(&["delete", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", format!("job {id} is deleted\n").as_str())
    );
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("DELETE", format!("/jobs/{id}").as_str())
    );

    let unfinished = json!({"error": {
        "code": "job_not_finished", "message": "the job is running", "status": "running"
    }});
    let stub = Stub::start(vec![(409, unfinished)]).await;
    let (result, _, err) = jobline(&["delete", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Failed);
    assert!(
        err.contains("is running: only a finished job can be deleted"),
        "{err}"
    );

    let missing = json!({"error": {"code": "job_not_found", "message": "no such job"}});
    let stub = Stub::start(vec![(404, missing)]).await;
    let (result, _, _) = jobline(&["delete", "--api", &stub.url, &id.to_string()]).await;
    assert!(result.is_err(), "an unknown job is an error");
}

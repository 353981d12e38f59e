//! `submit` (now or later, after an upload), `status`, `wait`, `cancel`,
//! `run`, `list`, `delete`, `upload` and `schedule …` end to end against a
//! stub of the API on 127.0.0.1: the requests the CLI sends, and the exit
//! codes and output of the answers it gets.

use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_cli::{Cli, CliError, Exit, ProgressStyle, run};
use jobline_client::ClientError;
use jobline_core::JobId;
use jobline_core::schedule::ScheduleId;
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
        Self::start_at(|_| answers).await
    }

    /// A stub whose answers are made knowing its URL.
    async fn start_at(answers: impl FnOnce(&str) -> Vec<(u16, Value)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::from(answers(&url))));
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
    let (result, _, _) =
        jobline(&["status", "--api", &url, "--retries", "0", &id.to_string()]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, CliError::Client(ClientError::Transport { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
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

#[tokio::test]
async fn submit_at_or_in_sends_run_at_or_delay_seconds() {
    let id = JobId::random();
    let accepted = json!({"jobId": id, "status": "scheduled", "statusUrl": format!("/jobs/{id}"),
                          "runAt": "2027-03-01T08:00:00.000Z"});
    let stub = Stub::start(vec![(202, accepted.clone())]).await;
    let (result, out, _) = jobline(&[
        "submit", "--api", &stub.url, "--type", "primes", "--in", "90s",
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), accepted);
    let (_, _, _) = jobline(&[
        "submit",
        "--api",
        &stub.url,
        "--type",
        "primes",
        "--at",
        "2027-03-01T09:00:00+01:00",
    ])
    .await;
    let seen = stub.seen();
    let bodies: Vec<Value> = seen
        .iter()
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"type": "primes", "payload": {}, "delaySeconds": 90}),
            json!({"type": "primes", "payload": {}, "runAt": "2027-03-01T09:00:00+01:00"}),
        ]
    );
}

#[tokio::test]
async fn run_queues_a_scheduled_job_and_exits_1_for_another() {
    let id = JobId::random();
    let stub = Stub::start(vec![(200, job(id, "queued"))]).await;
    let (result, out, err) = jobline(&["run", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        job(id, "queued")
    );
    assert_eq!(err, format!("job {id} is queued: it runs now\n"));
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", format!("/jobs/{id}/run").as_str())
    );
    assert!(request.body.is_empty());

    let running = json!({"error": {"code": "job_not_scheduled",
        "message": "the job is running; only a scheduled job can be run now", "status": "running"}});
    let stub = Stub::start(vec![(409, running)]).await;
    let (result, out, err) = jobline(&["run", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Failed);
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        format!("job {id} is running: only a scheduled job can be run now\n")
    );

    let missing = json!({"error": {"code": "job_not_found", "message": "no such job"}});
    let stub = Stub::start(vec![(404, missing)]).await;
    let (result, _, _) = jobline(&["run", "--api", &stub.url, &id.to_string()]).await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("job_not_found"), "{error}");
}

/// A schedule's JSON as the API shows it.
fn schedule(id: ScheduleId, paused: bool) -> Value {
    json!({
        "scheduleId": id.to_string(), "expression": "rate(1 hour)", "timezone": "UTC",
        "description": "every hour", "type": "primes", "payload": {"upTo": 10},
        "callbackUrl": null, "overlap": "allow", "paused": paused,
        "createdAt": "2027-03-01T08:00:00.000Z", "updatedAt": "2027-03-01T08:00:00.000Z",
        "nextFires": if paused { json!([]) } else { json!(["2027-03-01T09:00:00.000Z"]) },
        "lastFire": null,
        "fires": {"fired": 0, "skipped": 0, "refused": 0, "lastMissedAt": null, "lastRefusal": null},
        "jobsUrl": format!("/jobs?scheduleId={id}"),
    })
}

#[tokio::test]
async fn schedule_create_posts_the_definition_and_prints_the_schedule() {
    let id = ScheduleId::random();
    let stub = Stub::start(vec![(201, schedule(id, false))]).await;
    let (result, out, _) = jobline(&[
        "schedule",
        "create",
        "--api",
        &stub.url,
        "--token",
        "jwt-token",
        "--expression",
        "cron(0 9 ? * MON-FRI *)",
        "--timezone",
        "Europe/Paris",
        "--type",
        "primes",
        "--payload",
        r#"{"upTo": 10}"#,
        "--overlap",
        "skip",
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        schedule(id, false)
    );
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/schedules")
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], "Bearer jwt-token");
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Paris",
               "type": "primes", "payload": {"upTo": 10}, "overlap": "skip"})
    );

    // Only what is given is sent: the API's defaults apply to the rest.
    let stub = Stub::start(vec![(201, schedule(id, false))]).await;
    jobline(&[
        "schedule",
        "create",
        "--api",
        &stub.url,
        "--expression",
        "rate(1 hour)",
        "--type",
        "primes",
    ])
    .await
    .0
    .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&stub.seen()[0].body).unwrap(),
        json!({"expression": "rate(1 hour)", "type": "primes", "payload": {}})
    );

    let invalid = json!({"error": {"code": "invalid_schedule", "field": "timezone",
        "message": "unknown time zone \"Mars/Olympus\""}});
    let stub = Stub::start(vec![(422, invalid)]).await;
    let (result, out, _) = jobline(&[
        "schedule",
        "create",
        "--api",
        &stub.url,
        "--expression",
        "rate(1 hour)",
        "--timezone",
        "Mars/Olympus",
        "--type",
        "primes",
    ])
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, CliError::Client(ClientError::Status { status, .. }) if status.as_u16() == 422),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("422 Unprocessable Entity"), "{message}");
    assert!(message.contains(r#""field":"timezone""#), "{message}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn schedule_list_follows_the_pages_to_its_limit_or_all() {
    let ids: Vec<ScheduleId> = (0..3).map(|_| ScheduleId::random()).collect();
    let pages = vec![
        (
            200,
            json!({"schedules": [schedule(ids[0], false), schedule(ids[1], true)], "nextCursor": "c1"}),
        ),
        (
            200,
            json!({"schedules": [schedule(ids[2], false)], "nextCursor": null}),
        ),
    ];
    let stub = Stub::start(pages.clone()).await;
    let (result, out, err) = jobline(&["schedule", "list", "--api", &stub.url, "--all"]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    let listed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            schedule(ids[0], false),
            schedule(ids[1], true),
            schedule(ids[2], false)
        ]
    );
    assert_eq!(err, "");
    let seen = stub.seen();
    assert_eq!(seen[0].path, "/schedules");
    assert_eq!(seen[0].query, "limit=100");
    assert_eq!(seen[1].query, "limit=100&cursor=c1");

    let stub = Stub::start(pages).await;
    let (result, out, err) =
        jobline(&["schedule", "list", "--api", &stub.url, "--limit", "2"]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(out.lines().count(), 2);
    assert_eq!(err, "more schedules: jobline schedule list --cursor c1\n");
    assert_eq!(stub.seen().len(), 1, "stops at its limit");
    assert_eq!(stub.seen()[0].query, "limit=2");
}

#[tokio::test]
async fn schedule_show_prints_the_summary_or_the_json() {
    let id = ScheduleId::random();
    let job_id = JobId::random();
    let mut shown = schedule(id, false);
    shown["lastFire"] = json!({"scheduledAt": "2027-03-01T08:00:00.000Z", "jobId": job_id,
                                "statusUrl": format!("/jobs/{job_id}")});
    shown["fires"]["fired"] = json!(3);
    let stub = Stub::start(vec![(200, shown.clone())]).await;
    let (result, out, _) =
        jobline(&["schedule", "show", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert!(
        out.starts_with(&format!("schedule {id}: active\n")),
        "{out}"
    );
    assert!(
        out.contains("  when          rate(1 hour): every hour\n"),
        "{out}"
    );
    assert!(out.contains("  time zone     UTC\n"), "{out}");
    assert!(
        out.contains("  next fires    2027-03-01T09:00:00.000Z\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  last fire     2027-03-01T08:00:00.000Z: job {job_id}\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("  fires         3 fired, 0 skipped, 0 refused\n"),
        "{out}"
    );
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", format!("/schedules/{id}").as_str())
    );

    let (result, out, _) = jobline(&[
        "schedule",
        "show",
        "--api",
        &stub.url,
        "--json",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), shown);

    let missing = json!({"error": {"code": "schedule_not_found", "message": "no such schedule"}});
    let stub = Stub::start(vec![(404, missing)]).await;
    let (result, _, _) = jobline(&["schedule", "show", "--api", &stub.url, &id.to_string()]).await;
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("schedule_not_found")
    );
}

#[tokio::test]
async fn schedule_update_patches_only_the_fields_given() {
    let id = ScheduleId::random();
    let stub = Stub::start(vec![(200, schedule(id, false))]).await;
    let (result, out, _) = jobline(&[
        "schedule",
        "update",
        "--api",
        &stub.url,
        &id.to_string(),
        "--expression",
        "rate(2 hours)",
        "--payload",
        r#"{"upTo": 20}"#,
        "--no-callback-url",
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        schedule(id, false)
    );
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("PATCH", format!("/schedules/{id}").as_str())
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"expression": "rate(2 hours)", "payload": {"upTo": 20}, "callbackUrl": null})
    );
    jobline(&[
        "schedule",
        "update",
        "--api",
        &stub.url,
        &id.to_string(),
        "--timezone",
        "Asia/Tokyo",
        "--overlap",
        "allow",
    ])
    .await
    .0
    .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&stub.seen()[1].body).unwrap(),
        json!({"timezone": "Asia/Tokyo", "overlap": "allow"})
    );
}

#[tokio::test]
async fn schedule_pause_resume_and_delete_say_what_they_did() {
    let id = ScheduleId::random();
    let stub = Stub::start(vec![
        (200, schedule(id, true)),
        (200, schedule(id, false)),
        (204, Value::Null),
    ])
    .await;
    let (result, out, err) =
        jobline(&["schedule", "pause", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["paused"], true);
    assert_eq!(
        err,
        format!("schedule {id} is paused: it fires nothing until resumed\n")
    );
    let (result, out, err) =
        jobline(&["schedule", "resume", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["paused"],
        false
    );
    assert!(
        err.starts_with(&format!("schedule {id} is resumed")),
        "{err}"
    );
    let (result, out, err) =
        jobline(&["schedule", "delete", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!("schedule {id} is deleted (the jobs it created stay)\n")
    );
    let seen: Vec<(String, String)> = stub
        .seen()
        .into_iter()
        .map(|s| (s.method, s.path))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), format!("/schedules/{id}/pause")),
            ("POST".to_owned(), format!("/schedules/{id}/resume")),
            ("DELETE".to_owned(), format!("/schedules/{id}")),
        ]
    );
}

#[tokio::test]
async fn schedule_trigger_prints_its_job_and_exits_1_when_skipped() {
    let id = ScheduleId::random();
    let job_id = JobId::random();
    let accepted = json!({"jobId": job_id, "status": "queued", "statusUrl": format!("/jobs/{job_id}"),
                          "runAt": "2027-03-01T08:00:00.000Z"});
    let stub = Stub::start(vec![(202, accepted.clone())]).await;
    let (result, out, err) =
        jobline(&["schedule", "trigger", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), accepted);
    assert_eq!(
        err,
        format!("schedule {id} fired: job {job_id} is queued\n")
    );
    let request = &stub.seen()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", format!("/schedules/{id}/trigger").as_str())
    );

    let overlap = json!({"error": {"code": "schedule_overlap",
        "message": "the schedule's previous job has not finished and its overlap policy is `skip`"}});
    let stub = Stub::start(vec![(409, overlap)]).await;
    let (result, out, err) =
        jobline(&["schedule", "trigger", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Failed);
    assert!(out.is_empty());
    assert!(
        err.starts_with(&format!(
            "schedule {id} did not fire: the schedule's previous job"
        )),
        "{err}"
    );

    let throttled = json!({"error": {"code": "scheduler_throttled",
        "message": "the scheduler is busy; nothing was changed, retry after 2 seconds"}});
    let stub = Stub::start(vec![(503, throttled)]).await;
    let (result, _, _) = jobline(&[
        "schedule",
        "trigger",
        "--api",
        &stub.url,
        "--retries",
        "0",
        &id.to_string(),
    ])
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, CliError::Client(ClientError::Status { status, .. }) if status.as_u16() == 503),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("retry after 2 seconds"),
        "{error}"
    );
}

#[tokio::test]
async fn list_filters_by_schedule() {
    let id = ScheduleId::random();
    let stub = Stub::start(vec![(200, json!({"jobs": [], "nextCursor": null}))]).await;
    let (result, _, _) = jobline(&[
        "list",
        "--api",
        &stub.url,
        "--status",
        "scheduled",
        "--schedule-id",
        &id.to_string(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        stub.seen()[0].query,
        format!("limit=20&status=scheduled&scheduleId={id}")
    );
}

#[tokio::test]
async fn a_503_is_retried_and_retries_can_be_turned_off() {
    let id = JobId::random();
    let busy = json!({"error": {"code": "backlog_full", "message": "busy"}});
    let stub = Stub::start(vec![(503, busy.clone()), (200, job(id, "queued"))]).await;
    let (result, out, _) = jobline(&["status", "--api", &stub.url, &id.to_string()]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        job(id, "queued")
    );
    assert_eq!(stub.seen().len(), 2);

    let stub = Stub::start(vec![(503, busy)]).await;
    let (result, _, _) = jobline(&[
        "status",
        "--api",
        &stub.url,
        "--retries",
        "0",
        &id.to_string(),
    ])
    .await;
    assert!(result.unwrap_err().to_string().contains("503"));
    assert_eq!(stub.seen().len(), 1);
}

const UPLOAD_ID: &str = "0193f0a4-0000-7000-8000-00000000beef";

/// An upload's JSON as `GET /uploads/{id}` shows it.
fn upload_view(status: &str, data: &[u8], content_type: &str) -> Value {
    use sha2::Digest;
    let sha256: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({
        "uploadId": UPLOAD_ID, "status": status, "size": data.len(), "contentType": content_type,
        "sha256": sha256, "createdAt": "2027-03-01T08:00:00.000Z",
        "expiresAt": "2027-03-02T08:00:00.000Z", "statusUrl": format!("/uploads/{UPLOAD_ID}"),
    })
}

/// The answers of an upload of `data`: the 201 (its URL the stub's own
/// `/bucket/…`), the PUT's, and the upload complete.
fn upload_answers(base: &str, data: &[u8], content_type: &str) -> Vec<(u16, Value)> {
    let mut created = upload_view("pending", data, content_type);
    created["upload"] = json!({
        "method": "PUT", "url": format!("{base}/bucket/{UPLOAD_ID}?X-Amz-Signature=s"),
        "headers": {"content-type": content_type}, "expiresAt": "2027-03-01T08:15:00.000Z",
    });
    vec![
        (201, created),
        (200, json!({})),
        (200, upload_view("complete", data, content_type)),
    ]
}

fn temp_file(name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("jobline-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    path
}

#[tokio::test]
async fn upload_sends_the_file_and_prints_the_upload() {
    let data = b"month,amount\n10,120\n11,80\n";
    let stub = Stub::start_at(|base| upload_answers(base, data, "text/csv")).await;
    let path = temp_file("sales.csv", data);
    let (result, out, _) = jobline(&["upload", "--api", &stub.url, path.to_str().unwrap()]).await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        upload_view("complete", data, "text/csv")
    );
    let seen = stub.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    let (bucket, status) = (
        format!("/bucket/{UPLOAD_ID}"),
        format!("/uploads/{UPLOAD_ID}"),
    );
    assert_eq!(
        calls,
        [
            ("POST", "/uploads"),
            ("PUT", bucket.as_str()),
            ("GET", status.as_str())
        ]
    );
    let asked: Value = serde_json::from_slice(&seen[0].body).unwrap();
    let expected = upload_view("pending", data, "text/csv");
    assert_eq!(
        asked,
        json!({"size": data.len(), "contentType": "text/csv", "sha256": expected["sha256"]})
    );
    assert_eq!(seen[1].body, data);
    assert_eq!(seen[1].headers["content-type"], "text/csv");

    let stub = Stub::start(vec![(200, upload_view("expired", data, "text/csv"))]).await;
    let (result, out, _) = jobline(&["upload", "show", "--api", &stub.url, UPLOAD_ID]).await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "expired"
    );
    assert_eq!(stub.seen()[0].path, format!("/uploads/{UPLOAD_ID}"));
}

#[tokio::test]
async fn submit_with_upload_names_the_upload_in_the_payload() {
    let data = b"a;b\n1;2\n";
    let id = JobId::random();
    let accepted = json!({"jobId": id, "status": "queued", "statusUrl": format!("/jobs/{id}")});
    let stub = Stub::start_at(|base| {
        let mut answers = upload_answers(base, data, "text/plain");
        answers.push((202, accepted.clone()));
        answers
    })
    .await;
    let path = temp_file("rows.txt", data);
    let (result, out, err) = jobline(&[
        "submit",
        "--api",
        &stub.url,
        "--type",
        "csv-stats",
        "--payload",
        r#"{"delimiter": ";"}"#,
        "--upload",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(result.unwrap(), Exit::Success);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), accepted);
    assert!(err.contains(&format!("as upload {UPLOAD_ID}")), "{err}");
    let seen = stub.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].path, "/jobs");
    assert_eq!(
        serde_json::from_slice::<Value>(&seen[3].body).unwrap(),
        json!({"type": "csv-stats", "payload": {"delimiter": ";", "input": {"upload": UPLOAD_ID}}})
    );

    // A payload that cannot name it is refused before anything is sent.
    let stub = Stub::start(vec![(500, json!({}))]).await;
    let (result, _, _) = jobline(&[
        "submit",
        "--api",
        &stub.url,
        "--type",
        "csv-stats",
        "--payload",
        r#"{"input": "rows.txt"}"#,
        "--upload",
        path.to_str().unwrap(),
    ])
    .await;
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(result, Err(CliError::UploadPayload(_))),
        "{result:?}"
    );
    assert!(stub.seen().is_empty());
}

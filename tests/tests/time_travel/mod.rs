//! Every operator and client flow at +0, +2 h, +2 days and +15 days after
//! the state it acts on, on a moved clock ([`Clock::movable`], shared by the
//! API, the worker, the notifier, the pollers, the sweeper, the DLQ tools
//! and the console) instead of hours of sleep, each ending in the state the
//! documentation promises (docs/architecture.md, RELIABILITY.md).
//!
//! The emulator's own time cannot be moved: SQS visibility and delays run on
//! the wall clock (so retries and webhook backoffs take their real seconds),
//! DynamoDB's TTL never deletes and S3 ignores lifecycle rules. Those are
//! modelled or checked as computed bounds: a DLQ message past the DLQ's
//! 14-day retention is deleted to stand in for its expiry; a job past its
//! `expiresAt` must read as gone (404), and its `expiresAt` is checked
//! against the retention instead of waiting for the TTL; a presigned link
//! is expired by its `X-Amz-Date` + `X-Amz-Expires`. Jobs are dead-lettered
//! before the clock moves, so that a redrive's `SentTimestamp` (moto's wall
//! clock) is, as it would be on AWS, later than the job's `finishedAt`.
//!
//! The offsets run in a loop inside each test, the clock moving forward
//! from one to the next, each flow acting on jobs made ready at +0.
//!
//! One file a flow: `dlq.rs`, `sweep.rs`, `links.rs`, `webhooks.rs` and
//! `idempotency.rs`; the stack, the clock's moves and the helpers they share
//! are here.

use http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_api::{ANONYMOUS_OWNER, Api};
use jobline_cli::args::{DlqCommand, ListArgs, SelectArgs};
use jobline_cli::commands::{Exit, run_dlq};
use jobline_cli::console::Console;
use jobline_cli::console::guard::Guard;
use jobline_cli::dlq::DeadLetterQueue;
use jobline_cli::jobs::{Retried, retry};
use jobline_core::config::{WebhookConfig, min_retention_days};
use jobline_core::deadline::Deadlines;
use jobline_core::job::format_ms;
use jobline_core::limits::DLQ_RETENTION_SECS;
use jobline_core::limits::QueueSettings;
use jobline_core::queue::{Receive, ReceivedMessage};
use jobline_core::results::LINK_TTL;
use jobline_core::store::{CancelOutcome, SWEPT_ERROR};
use jobline_core::{
    ApiStore, CancelStore, Clock, Completion, JobId, JobMessage, JobQueue, JobRecord, JobRequest,
    JobState, JobTypes, ReadStore, WorkerConfig, WorkerStore,
};
use jobline_dynamodb::DUE_ATTRIBUTE;
use jobline_local::StackBuilder;
use jobline_local::provision::{self, Queues};
use jobline_sqs::SqsJobQueue;
use jobline_testkit::memory::activity::FixedHistory;
use jobline_tests::fixtures::BigResult;
use jobline_tests::stack::Served;
use jobline_tests::{TestEnv, test_queue_settings};
use jobline_webhooks::keys::REFRESH_INTERVAL;
use jobline_webhooks::{SecretsManagerKeys, WebhookSecret, caller_secret, sign, signature_header};
use lambda_http::Body;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

mod dlq;
mod idempotency;
mod links;
mod sweep;
mod webhooks;

const HOUR: u64 = 3_600;

const DAY: u64 = 86_400;

/// Where each flow runs, after the state it acts on was made at +0.
const OFFSETS: [(&str, Duration); 4] = [
    ("+0", Duration::ZERO),
    ("+2 h", Duration::from_secs(2 * HOUR)),
    ("+2 days", Duration::from_secs(2 * DAY)),
    ("+15 days", Duration::from_secs(15 * DAY)),
];

/// Moves `clock` forward to `offset` from where it started (it also runs
/// on with the wall clock in between).
fn move_to(clock: &Clock, offset: Duration) {
    let by = offset
        .checked_sub(clock.offset())
        .expect("the clock only moves forward");
    clock.advance(by);
}

/// Whether a DLQ message sent at +0 is still there at `offset`: SQS keeps
/// a dead message 14 days from its first send (moto forever).
fn dlq_keeps_it(offset: Duration) -> bool {
    offset < Duration::from_secs(u64::from(DLQ_RETENTION_SECS))
}

/// A table and queues whose messages go to the DLQ after
/// `max_receive_count` deliveries.
async fn env(max_receive_count: u32) -> TestEnv {
    TestEnv::with_settings(test_queue_settings(30, max_receive_count)).await
}

/// The test stack on `clock`: retries after a second, no sweep on a timer
/// (the tests sweep at the times they choose).
fn stack(env: &TestEnv, clock: &Clock, job_types: JobTypes) -> StackBuilder {
    env.stack_on(job_types, clock)
        .worker_config(WorkerConfig {
            retry_base_delay_secs: 1,
            retry_max_delay_secs: 1,
            ..env.config.worker.clone()
        })
        .sweep_interval(Duration::from_secs(DAY))
}

/// One API request; its status and JSON body (`null` when empty).
async fn call(
    api: &Api,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map_or(Body::Empty, |b| Body::from(b.to_string()));
    let reply = api.handle(request.body(body).unwrap()).await;
    let status = reply.response.status().as_u16();
    let bytes: &[u8] = reply.response.body().as_ref();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).unwrap()
    };
    (status, value)
}

/// `POST /jobs` that must be accepted; the job's id.
async fn submit(api: &Api, body: &Value) -> JobId {
    let (status, accepted) = call(api, "POST", "/jobs", &[], Some(body)).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["jobId"].as_str().unwrap().parse().unwrap()
}

async fn get(api: &Api, id: JobId) -> (u16, Value) {
    call(api, "GET", &format!("/jobs/{id}"), &[], None).await
}

async fn delete(api: &Api, id: JobId) -> (u16, Value) {
    call(api, "DELETE", &format!("/jobs/{id}"), &[], None).await
}

async fn record(env: &TestEnv, id: JobId) -> JobRecord {
    env.store().get(id).await.unwrap().expect("the job exists")
}

/// Waits until every job of `ids` is failed and dead-lettered, then until
/// the DLQ holds `dead_messages` messages (SQS moves a message on its next
/// receive, which the running pollers make).
async fn until_dead_lettered(env: &TestEnv, ids: &[JobId], dead_messages: u64) {
    for id in ids {
        let job = env
            .until(*id, 60, |j| j.state == JobState::Failed && j.dead_lettered)
            .await;
        assert!(job.run_started_at.is_some(), "{job:?}");
    }
    let started = Instant::now();
    loop {
        let counts = env.dlq().counts().await.unwrap();
        if counts.visible + counts.in_flight == dead_messages {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the DLQ holds {counts:?}, not {dead_messages} messages"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Receives every visible message of `queue`, hiding each for 30 s.
async fn receive_all(queue: &SqsJobQueue) -> Vec<ReceivedMessage> {
    let request = Receive {
        max_messages: 10,
        wait_secs: 1,
        visibility_secs: 30,
    };
    jobline_tests::receive_all(queue, request).await
}

fn job_of(message: &ReceivedMessage) -> Option<JobId> {
    JobMessage::decode(&message.body).ok().map(|m| m.job_id)
}

/// Deletes the DLQ's messages of `ids`, standing in for their expiry at
/// the end of the DLQ's retention (moto keeps them forever); the others
/// are made visible again. Returns how many were deleted.
async fn expire_dead_letters(env: &TestEnv, ids: &[JobId]) -> usize {
    let dlq = env.dlq();
    let mut deleted = 0;
    for message in receive_all(&dlq).await {
        if job_of(&message).is_some_and(|id| ids.contains(&id)) {
            let left = dlq.delete(&[message.receipt_handle]).await.unwrap();
            assert!(left.is_empty());
            deleted += 1;
        } else {
            dlq.change_visibility(&message.receipt_handle, 0)
                .await
                .unwrap();
        }
    }
    deleted
}

/// SQS's "Start DLQ redrive" (`StartMessageMoveTask`, which moto lacks) for
/// the dead message of `id`: sent to the main queue as a new message, and
/// deleted from the DLQ. Whether there was one to move.
async fn redrive(env: &TestEnv, id: JobId) -> bool {
    let dlq = env.dlq();
    let mut moved = false;
    for message in receive_all(&dlq).await {
        if !moved && job_of(&message) == Some(id) {
            env.queue().send(&JobMessage::new(id)).await.unwrap();
            dlq.delete(&[message.receipt_handle]).await.unwrap();
            moved = true;
        } else {
            dlq.change_visibility(&message.receipt_handle, 0)
                .await
                .unwrap();
        }
    }
    moved
}

/// `expiresAt` of a job created or replayed at a time in `at_ms`, kept
/// `retention_days`: the seconds the TTL may delete it from.
fn expiry_range(at_ms: &RangeInclusive<i64>, retention_days: u32) -> RangeInclusive<i64> {
    let days = i64::from(retention_days) * DAY as i64;
    (at_ms.start() / 1000 + days)..=(at_ms.end() / 1000 + days)
}

/// Checks that `job`, which was `before` when an operator (or a redrive)
/// put it back to work at a time in `requeued_at`, ran again as a new run
/// and succeeded: not failed by the run limit, not cancelled by an old
/// request, kept for the retention from its replay.
fn assert_ran_again(
    job: &JobRecord,
    before: &JobRecord,
    requeued_at: &RangeInclusive<i64>,
    retention_days: u32,
    at: &str,
) {
    let attempt = before.attempts + 1;
    assert_eq!(job.state, JobState::Succeeded, "{at}: {job:?}");
    assert_eq!(job.result, Some(json!({ "attempts": attempt })), "{at}");
    assert_eq!(job.attempts, attempt, "{at}: one more claim");
    assert_eq!(job.replays, before.replays + 1, "{at}");
    assert!(!job.dead_lettered && !job.cancel_requested, "{at}: {job:?}");
    assert_eq!(job.error, None, "{at}: a success clears the last error");
    assert_eq!(job.started_at, before.started_at, "{at}: history is kept");
    let run = job.run_started_at.expect("a run start");
    assert!(
        run >= *requeued_at.start(),
        "{at}: a new run starts at its first claim after the replay, not at {run}"
    );
    assert!(job.finished_at.is_some_and(|f| f >= run), "{at}: {job:?}");
    assert!(
        expiry_range(requeued_at, retention_days).contains(&job.expires_at),
        "{at}: expiresAt {} is not the retention ({retention_days} days) from the replay ({requeued_at:?})",
        job.expires_at
    );
}

/// Waits until `id`, replayed once more than `before`, is finished again.
async fn until_ran_again(env: &TestEnv, id: JobId, before: &JobRecord) -> JobRecord {
    let replays = before.replays + 1;
    env.until(id, 60, |j| j.replays == replays && j.state.is_finished())
        .await
}

/// Product behaviour that is wrong but need not stop the flow around it:
/// gathered, and asserted empty at the end of the test.
#[derive(Debug, Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} finding(s):\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// Whether `text` says clearly that job `id`'s dead message is not in the
/// DLQ (it expired after the DLQ's 14-day retention, or was never there),
/// naming the job.
fn says_not_in_the_dlq(text: &str, id: JobId) -> bool {
    let lower = text.to_lowercase();
    text.contains(&id.to_string())
        && [
            "not in dlq",
            "not in the dlq",
            "not in the dead-letter queue",
            "no message of this job is in the dead-letter queue",
            "no dead letter left",
            "no dead message",
        ]
        .iter()
        .any(|phrase| lower.contains(phrase))
        && lower.contains("retry")
}

/// A job that failed for good on its last delivery at `now` while a
/// client's cancel request arrived (too late to stop the attempt), and
/// whose message SQS moved to the DLQ: as the worker and the redrive policy
/// leave it. `fail-times` with one failure, so its next run succeeds.
async fn dead_with_a_late_cancel(env: &TestEnv, now: i64) -> JobId {
    let request = JobRequest {
        job_type: "fail-times".into(),
        payload: json!({"failures": 1}),
        callback_url: None,
    };
    let store = env.store();
    let job = JobRecord::new_queued(
        JobId::random(),
        ANONYMOUS_OWNER,
        &request,
        now,
        env.config.retention_days,
    );
    store.create(&job).await.unwrap();
    let last = env.config.worker.max_receive_count;
    store
        .claim(job.id, now, now + 21_000, last, "last-delivery")
        .await
        .unwrap();
    assert!(matches!(
        store.cancel(job.id, now).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    let dead = Completion::Failed {
        error: "failing on purpose (attempt 1 of 1 failures)".into(),
        dead_lettered: true,
    };
    store
        .finish(job.id, 1, "last-delivery", &dead, now)
        .await
        .unwrap();
    env.dlq().send(&JobMessage::new(job.id)).await.unwrap();
    job.id
}

/// `jobline dlq <command>` on this test's queues and table, on `clock`;
/// its exit code and output.
async fn jobline_dlq(env: &TestEnv, clock: &Clock, command: DlqCommand) -> (Exit, String) {
    let (dlq, queue, store) = (env.dlq(), env.queue(), env.store());
    let tools = DeadLetterQueue::new(&dlq, &queue, &store).with_clock(clock.clone());
    let mut out = Vec::new();
    let exit = run_dlq(command, tools, &mut out).await.unwrap();
    (exit, String::from_utf8(out).unwrap())
}

fn dlq_replay(ids: &[JobId]) -> DlqCommand {
    DlqCommand::Replay(SelectArgs {
        dry_run: false,
        limit: None,
        job_ids: ids.to_vec(),
        job_types: Vec::new(),
    })
}

/// The size of `big`'s result: over the item's 100 KiB, so it goes to S3.
const BIG_RESULT_CHARS: usize = 150 * 1024;

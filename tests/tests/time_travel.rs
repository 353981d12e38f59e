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

use async_trait::async_trait;
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
use jobline_local::poller::PollerSettings;
use jobline_local::stack::{Webhooks, notifier_poller_settings};
use jobline_local::{ServeError, Stack, StackBuilder};
use jobline_shared::activity::memory::FixedHistory;
use jobline_shared::config::{WebhookConfig, min_retention_days};
use jobline_shared::deadline::Deadlines;
use jobline_shared::job::format_ms;
use jobline_shared::job_types::JobContext;
use jobline_shared::outbox::stream::StreamReader;
use jobline_shared::provision::{self, DLQ_RETENTION_SECS, QueueSettings, Queues};
use jobline_shared::queue::{Receive, ReceivedMessage};
use jobline_shared::results::LINK_TTL;
use jobline_shared::store::{CancelOutcome, DUE_ATTRIBUTE, SWEPT_ERROR};
use jobline_shared::sweeper::Sweeper;
use jobline_shared::webhook::keys::REFRESH_INTERVAL;
use jobline_shared::webhook::{
    Deliverer, SecretsManagerKeys, WebhookSecret, caller_secret, sign, signature_header,
};
use jobline_shared::{
    Clock, Completion, JobError, JobHandler, JobId, JobMessage, JobQueue, JobRecord, JobRequest,
    JobState, JobStore, JobTypes, SqsJobQueue, WorkerConfig,
};
use jobline_tests::{TestEnv, test_queue_settings};
use lambda_http::Body;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

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

/// A stack served in the background: its API (called directly), and its
/// pollers (and notifier) running.
struct Running {
    api: Arc<Api>,
    sweeper: Sweeper,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    async fn start(stack: Stack) -> Self {
        let api = Arc::clone(stack.api());
        let sweeper = stack.sweeper().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(jobline_local::serve(stack, listener, async {
            let _ = stopped.await;
        }));
        Self {
            api,
            sweeper,
            stop,
            serving,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.serving.await.unwrap().unwrap();
    }
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
    let mut messages: Vec<ReceivedMessage> = Vec::new();
    loop {
        let batch = queue
            .receive(Receive {
                max_messages: 10,
                wait_secs: 1,
                visibility_secs: 30,
            })
            .await
            .unwrap();
        if batch.is_empty() {
            return messages;
        }
        for message in batch {
            if !messages.iter().any(|m| m.message_id == message.message_id) {
                messages.push(message);
            }
        }
    }
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
            env.queue().send(&JobMessage { job_id: id }).await.unwrap();
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
    env.dlq()
        .send(&JobMessage { job_id: job.id })
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_hours_or_days_later_runs_again_and_succeeds() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let running = Running::start(stack(&env, &clock, JobTypes::builtin()).build()).await;
    let retention = env.config.retention_days;

    // At +0: per offset, a job the worker dead-letters (two failures, two
    // deliveries), and one whose last attempt failed as its client asked
    // to cancel it.
    let mut dead = Vec::new();
    for _ in OFFSETS {
        let body = json!({"type": "fail-times", "payload": {"failures": 2}});
        dead.push(submit(&running.api, &body).await);
    }
    let mut cancelled = Vec::new();
    for _ in OFFSETS {
        cancelled.push(dead_with_a_late_cancel(&env, clock.now_ms()).await);
    }
    until_dead_lettered(&env, &dead, 8).await;
    for id in &cancelled {
        let job = record(&env, *id).await;
        assert!(job.cancel_requested && job.dead_lettered, "{job:?}");
    }

    let mut findings = Findings::default();
    for (i, (at, offset)) in OFFSETS.into_iter().enumerate() {
        move_to(&clock, offset);
        let jobs = [dead[i], cancelled[i]];
        let mut before = Vec::new();
        for id in jobs {
            before.push(record(&env, id).await);
        }
        let requeued_from = clock.now_ms();
        if dlq_keeps_it(offset) {
            let (exit, out) = jobline_dlq(&env, &clock, dlq_replay(&jobs)).await;
            assert_eq!(exit, Exit::Success, "{at}: {out}");
            assert!(
                out.contains("replayed 2, skipped 0, failed 0"),
                "{at}: {out}"
            );
            for id in jobs {
                assert!(
                    out.contains(&format!("job {id} (fail-times): failed -> queued")),
                    "{at}: {out}"
                );
            }
        } else {
            // The DLQ's retention is over: the messages are gone.
            assert_eq!(expire_dead_letters(&env, &jobs).await, 2, "{at}");
            let (exit, out) = jobline_dlq(
                &env,
                &clock,
                DlqCommand::List(ListArgs {
                    limit: None,
                    json: false,
                }),
            )
            .await;
            assert_eq!(exit, Exit::Success);
            assert_eq!(out, "the dead-letter queue is empty\n", "{at}");
            let (exit, out) = jobline_dlq(&env, &clock, dlq_replay(&jobs)).await;
            assert_eq!(exit, Exit::Success, "{at}: {out}");
            assert!(out.contains("replayed 0,"), "{at}: {out}");
            for id in jobs {
                findings.check(
                    says_not_in_the_dlq(&out, id),
                    format!(
                        "{at}: `jobline dlq replay --job-id {id}` for a job whose dead message \
                         expired with the DLQ's 14-day retention does not say so: it names \
                         neither the job nor the missing message (nor that `jobline retry {id}` \
                         is what runs it again); it printed {out:?}"
                    ),
                );
                // The record outlives its message (its retention is longer than
                // the DLQ's): its client still sees it dead-lettered, and a
                // retry runs it.
                let (status, view) = get(&running.api, id).await;
                assert_eq!(status, 200, "{at}: {view}");
                assert_eq!(view["status"], "failed");
                assert_eq!(view["deadLettered"], true);
                let retried = retry(&env.store(), &env.queue(), id, clock.now_ms())
                    .await
                    .unwrap();
                assert!(matches!(retried, Retried::Requeued { .. }), "{retried:?}");
            }
        }
        let requeued_at = requeued_from..=clock.now_ms();
        for (id, before) in jobs.iter().zip(&before) {
            let job = until_ran_again(&env, *id, before).await;
            assert_ran_again(&job, before, &requeued_at, retention, at);
        }
        // Nothing else was touched.
        for id in dead[i + 1..].iter().chain(&cancelled[i + 1..]) {
            let job = record(&env, *id).await;
            assert_eq!((job.state, job.replays), (JobState::Failed, 0), "{at}");
        }
    }
    running.stop().await;
    env.cleanup().await;
    findings.assert_none();
}

/// The console's actions through its request handler, as a browser that
/// opened the launch URL sends them.
struct ConsoleClient {
    console: Console,
    headers: HeaderMap,
}

impl ConsoleClient {
    const PORT: u16 = 7_878;

    fn new(env: &TestEnv, clock: &Clock) -> Self {
        let guard = Guard::new(Self::PORT);
        let cookie = guard.cookie();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let host = format!("127.0.0.1:{}", Self::PORT);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(&host).unwrap());
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(&format!("http://{host}")).unwrap(),
        );
        Self {
            console: Console {
                store: Arc::new(env.store()),
                queue: Arc::new(env.queue()),
                dlq: Arc::new(env.dlq()),
                history: Arc::new(FixedHistory::new()),
                guard,
                emulated: true,
                clock: clock.clone(),
            },
            headers,
        }
    }

    async fn request(&self, method: Method, path: &str, body: &str) -> String {
        let response = self
            .console
            .handle(&method, path, &self.headers, body.as_bytes())
            .await;
        let status = response.status();
        let html = response.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert_eq!(status.as_u16(), 200, "{method} {path}: {html}");
        html
    }

    async fn page(&self, path: &str) -> String {
        self.request(Method::GET, path, "").await
    }

    /// Confirms `action` on job `id`; the outcome the console shows.
    async fn act(&self, action: &str, id: JobId) -> String {
        let form = format!(
            "action={action}&job={id}&csrf={}",
            self.console.guard.csrf()
        );
        let html = self.request(Method::POST, "/act", &form).await;
        let start = html.find("<p data-outcome>").expect("an outcome") + 16;
        let end = start + html[start..].find("</p>").unwrap();
        html[start..end].to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_console_actions_and_dlq_redrives_hours_or_days_later_run_the_job_again() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let running = Running::start(stack(&env, &clock, JobTypes::builtin()).build()).await;
    let console = ConsoleClient::new(&env, &clock);
    let retention = env.config.retention_days;

    // At +0, per offset: one job for `jobline retry`, one for the console's
    // Retry, one for its Replay, one for an SQS redrive; all dead-lettered.
    let flows = ["retry", "console retry", "console replay", "redrive"];
    let mut jobs: Vec<[JobId; 4]> = Vec::new();
    for _ in OFFSETS {
        let mut ids = [JobId::MIN; 4];
        for id in &mut ids {
            let body = json!({"type": "fail-times", "payload": {"failures": 2}});
            *id = submit(&running.api, &body).await;
        }
        jobs.push(ids);
    }
    let all: Vec<JobId> = jobs.iter().flatten().copied().collect();
    until_dead_lettered(&env, &all, 16).await;

    let mut findings = Findings::default();
    for (i, (at, offset)) in OFFSETS.into_iter().enumerate() {
        move_to(&clock, offset);
        let [by_retry, by_console_retry, by_console_replay, by_redrive] = jobs[i];
        let mut before = HashMap::new();
        for id in jobs[i] {
            before.insert(id, record(&env, id).await);
        }
        let requeued_from = clock.now_ms();
        if !dlq_keeps_it(offset) {
            // Every dead message of +0 has expired.
            expire_dead_letters(&env, &all).await;
            let html = console.page("/dlq").await;
            assert!(html.contains("data-dlq-depth>0<"), "{at}: {html}");
            let confirm = console
                .page(&format!("/confirm?action=replay&job={by_console_replay}"))
                .await;
            assert!(confirm.contains("data-dry-run>0<"), "{at}: {confirm}");
            findings.check(
                says_not_in_the_dlq(&confirm, by_console_replay),
                format!(
                    "{at}: the console lists dead-lettered job {by_console_replay} under Dead \
                     letters and offers Replay, but its message expired with the DLQ's 14-day \
                     retention; the Replay confirmation only says 0 would be replayed and \
                     \"Nothing to do.\" (not that the message is gone, nor that Retry runs it)"
                ),
            );
        }

        let retried = retry(&env.store(), &env.queue(), by_retry, clock.now_ms())
            .await
            .unwrap();
        assert!(
            matches!(retried, Retried::Requeued { .. }),
            "{at}: {retried:?}"
        );
        let outcome = console.act("retry", by_console_retry).await;
        assert!(
            outcome.starts_with("The job is queued again, sent as message"),
            "{at}: {outcome}"
        );
        if dlq_keeps_it(offset) {
            let outcome = console.act("replay", by_console_replay).await;
            assert_eq!(outcome, "1 replayed, 0 skipped, 0 failed.", "{at}");
            assert!(redrive(&env, by_redrive).await, "{at}: a dead message");
        } else {
            // No dead message to replay or redrive: the console's Retry
            // runs the job; a redrive finds nothing to move.
            let outcome = console.act("retry", by_console_replay).await;
            assert!(outcome.starts_with("The job is queued again"), "{outcome}");
            assert!(!redrive(&env, by_redrive).await, "{at}: expired");
        }
        let requeued_at = requeued_from..=clock.now_ms();

        let ran: Vec<JobId> = if dlq_keeps_it(offset) {
            jobs[i].to_vec()
        } else {
            jobs[i][..3].to_vec()
        };
        for (flow, id) in flows.iter().zip(&ran) {
            let before = &before[id];
            let job = until_ran_again(&env, *id, before).await;
            // A redrive is replayed by the worker when it receives it.
            let until = if *id == by_redrive {
                requeued_from..=clock.now_ms()
            } else {
                requeued_at.clone()
            };
            assert_ran_again(&job, before, &until, retention, &format!("{at}, {flow}"));
        }
        if !dlq_keeps_it(offset) {
            // Its message gone, the redriven job stays dead-lettered, as its
            // client sees it, until an operator retries it.
            let job = record(&env, by_redrive).await;
            assert_eq!((job.state, job.replays), (JobState::Failed, 0), "{at}");
            let (status, view) = get(&running.api, by_redrive).await;
            assert_eq!(status, 200);
            assert_eq!(view["deadLettered"], true);
        }
    }
    running.stop().await;
    env.cleanup().await;
    findings.assert_none();
}

/// The job's `dueAt` as DynamoDB holds it (none once finished).
async fn due_at(env: &TestEnv, id: JobId) -> Option<i64> {
    env.job_item(id)
        .await
        .get(DUE_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .map(|n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_message_was_lost_is_swept_only_after_its_due_bound() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    // No pollers: the messages are lost.
    let stack = stack(&env, &clock, JobTypes::builtin()).build();
    let (api, sweeper) = (Arc::clone(stack.api()), stack.sweeper().clone());
    let deadlines = Deadlines::new(
        QueueSettings::for_worker_timeout(env.config.worker.function_timeout_secs),
        &env.config.worker,
    );

    // Never received: its message expired unseen.
    let unseen = submit(&api, &json!({"type": "primes", "payload": {"upTo": 10}})).await;
    // Claimed on its first delivery by a worker that died, its message lost.
    let claimed = submit(&api, &json!({"type": "primes", "payload": {"upTo": 20}})).await;
    let mut claimed_at = None;
    for message in receive_all(&env.queue()).await {
        if job_of(&message) == Some(claimed) {
            let now = clock.now_ms();
            env.store()
                .claim(claimed, now, now + 21_000, message.receive_count(), "died")
                .await
                .unwrap();
            claimed_at = Some((now, message.receive_count()));
        }
        env.queue().delete(&[message.receipt_handle]).await.unwrap();
    }
    let (claim_ms, delivery) = claimed_at.expect("its message was received");

    // Each bound as docs/architecture.md states it, as the items hold it.
    let created = record(&env, unseen).await.created_at;
    let due = [
        (unseen, deadlines.queued_at(created), JobState::Queued),
        (
            claimed,
            deadlines.claimed(claim_ms, delivery),
            JobState::Running,
        ),
    ];
    for (id, bound, _) in due {
        assert_eq!(due_at(&env, id).await, Some(bound));
    }
    // The retention (4 days) and a margin; the run limit and one more
    // delivery's visibility timeout and backoff, and a margin.
    assert_eq!(due[0].1 - created, 4 * 86_400_000 + 60_000);
    assert_eq!(
        due[1].1 - claim_ms,
        3_600_000 + (360_000 + 300_000) + 60_000
    );
    let start = clock.now_ms();
    let offset_ms = |offset: Duration| start + i64::try_from(offset.as_millis()).unwrap();
    assert!(
        (offset_ms(OFFSETS[0].1)..offset_ms(OFFSETS[1].1)).contains(&due[1].1),
        "the claimed job is due between +0 and +2 h"
    );
    assert!(
        (offset_ms(OFFSETS[2].1)..offset_ms(OFFSETS[3].1)).contains(&due[0].1),
        "the unseen job is due between +2 days and +15 days"
    );

    let mut swept = Vec::new();
    for (at, offset) in OFFSETS {
        move_to(&clock, offset);
        let now = clock.now_ms();
        // Not before its bound: a sweep at the bound itself leaves it.
        for (id, bound, state) in due {
            if bound < now && !swept.contains(&id) {
                let report = sweeper.sweep_once(bound).await;
                assert_eq!((report.swept, report.failed), (0, 0), "{at}");
                assert_eq!(record(&env, id).await.state, state, "{at}");
            }
        }
        let report = sweeper.sweep_once(now).await;
        assert_eq!(report.failed, 0, "{at}");
        let mut newly = 0;
        for (id, bound, state) in due {
            let job = record(&env, id).await;
            if bound < now {
                assert_eq!(job.state, JobState::Failed, "{at}: {job:?}");
                assert!(job.dead_lettered, "{at}");
                assert_eq!(job.error.as_deref(), Some(SWEPT_ERROR));
                assert_eq!(due_at(&env, id).await, None, "{at}: out of the index");
                if !swept.contains(&id) {
                    assert_eq!(job.finished_at, Some(now), "{at}: swept now");
                    swept.push(id);
                    newly += 1;
                }
            } else {
                assert_eq!(job.state, state, "{at}: not before {bound}");
                assert_eq!(due_at(&env, id).await, Some(bound));
            }
        }
        assert_eq!(report.swept, newly, "{at}");
    }
    assert_eq!(swept, [claimed, unseen], "each swept once, in its turn");
    for id in [claimed, unseen] {
        let (status, view) = get(&api, id).await;
        assert_eq!(status, 200);
        assert_eq!(
            (&view["status"], &view["deadLettered"], &view["error"]),
            (&json!("failed"), &json!(true), &json!(SWEPT_ERROR))
        );
    }
    env.cleanup().await;
}

/// The size of `big`'s result: over the item's 100 KiB, so it goes to S3.
const BIG_RESULT_CHARS: usize = 150 * 1024;

/// `big`: a result of [`BIG_RESULT_CHARS`] letters.
#[derive(Debug)]
struct Big;

#[async_trait]
impl JobHandler for Big {
    fn name(&self) -> &str {
        "big"
    }

    async fn run(&self, _ctx: &JobContext, _payload: Value) -> Result<Value, JobError> {
        Ok(json!("r".repeat(BIG_RESULT_CHARS)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_at_any_age_and_an_unfinished_one_is_kept() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let types = JobTypes::builtin().with(Big);
    let running = Running::start(stack(&env, &clock, types).build()).await;
    let api = &running.api;

    let mut small = Vec::new();
    let mut large = Vec::new();
    for _ in OFFSETS {
        small.push(submit(api, &json!({"type": "primes", "payload": {"upTo": 10}})).await);
        large.push(submit(api, &json!({"type": "big"})).await);
    }
    let mut keys = Vec::new();
    for (s, l) in small.iter().zip(&large) {
        env.until(*s, 30, |j| j.state == JobState::Succeeded).await;
        let job = env.until(*l, 30, |j| j.state == JobState::Succeeded).await;
        keys.push(job.result_key.expect("stored in S3"));
    }
    // Queued, its message not yet received.
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 5}),
        callback_url: None,
    };
    let unfinished = JobRecord::new_queued(
        JobId::random(),
        ANONYMOUS_OWNER,
        &request,
        clock.now_ms(),
        env.config.retention_days,
    );
    env.store().create(&unfinished).await.unwrap();
    let bucket = env.config.results_bucket.clone().unwrap();
    let object_exists = |key: String| {
        let s3 = env.clients.s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .is_ok()
        }
    };

    for (i, (at, offset)) in OFFSETS.into_iter().enumerate() {
        move_to(&clock, offset);
        for id in [small[i], large[i]] {
            let (status, body) = delete(api, id).await;
            assert_eq!((status, &body), (204, &Value::Null), "{at}");
            assert_eq!(get(api, id).await.0, 404, "{at}");
            assert_eq!(delete(api, id).await.0, 404, "{at}: already gone");
            assert_eq!(env.store().get(id).await.unwrap(), None, "{at}");
        }
        assert!(!object_exists(keys[i].clone()).await, "{at}: result gone");
        let (status, body) = delete(api, unfinished.id).await;
        assert_eq!(status, 409, "{at}: {body}");
        assert_eq!(body["error"]["code"], "job_not_finished");
        assert_eq!(body["error"]["status"], "queued");
        // The other jobs are untouched.
        for j in i + 1..OFFSETS.len() {
            assert_eq!(get(api, small[j]).await.0, 200, "{at}");
            assert!(object_exists(keys[j].clone()).await, "{at}");
        }
    }
    running.stop().await;
    env.cleanup().await;
}

/// A query parameter of `link`.
fn query<'a>(link: &'a str, name: &str) -> &'a str {
    link.split_once('?')
        .expect("a query")
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {link}"))
}

/// SigV4's `X-Amz-Date` (`20261129T170954Z`) in seconds since the epoch.
fn amz_date_secs(text: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    assert_eq!(
        (text.len(), &text[8..9], &text[15..]),
        (16, "T", "Z"),
        "{text}"
    );
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + number(9..11) * 3_600 + number(11..13) * 60 + number(13..15)
}

/// A presigned link's validity, in seconds since the epoch: from its
/// `X-Amz-Date` to that plus its `X-Amz-Expires`.
fn validity(link: &str) -> std::ops::Range<i64> {
    let from = amz_date_secs(query(link, "X-Amz-Date"));
    let expires: i64 = query(link, "X-Amz-Expires").parse().unwrap();
    from..from + expires
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_link_expires_and_each_get_mints_a_fresh_valid_one() {
    jobline_tests::require_emulator!();
    let env = env(2).await;
    let clock = Clock::movable();
    let running = Running::start(stack(&env, &clock, JobTypes::new().with(Big)).build()).await;
    let id = submit(&running.api, &json!({"type": "big"})).await;
    env.until(id, 30, |j| j.state == JobState::Succeeded).await;
    let expected = json!("r".repeat(BIG_RESULT_CHARS));
    assert_eq!(
        amz_date_secs("20261129T170954Z"),
        1_795_972_194,
        "the date parser"
    );

    let mut minted: Vec<(&str, String)> = Vec::new();
    for (at, offset) in OFFSETS {
        move_to(&clock, offset);
        let before = clock.now_ms() / 1000;
        let (status, view) = get(&running.api, id).await;
        let after = clock.now_ms() / 1000;
        assert_eq!(status, 200, "{at}: {view}");
        assert_eq!(view["result"], Value::Null);
        let link = view["resultUrl"].as_str().expect("a link").to_owned();
        let valid = validity(&link);
        assert!(
            (before..=after).contains(&valid.start),
            "{at}: minted at the clock's time ({before}..={after}), not {valid:?}: {link}"
        );
        assert_eq!(
            u64::try_from(valid.end - valid.start).unwrap(),
            LINK_TTL.as_secs()
        );
        assert!(valid.contains(&clock.now_secs()), "{at}: valid now");
        let (status, body) = jobline_tests::http::fetch(&link).await;
        assert_eq!(status, 200, "{at}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
        // Every link minted at an earlier offset has expired by now (moto
        // does not check: the bound is computed).
        let now = clock.now_secs();
        for (then, old) in &minted {
            assert!(
                validity(old).end <= now,
                "{at}: the link minted at {then} is still valid ({:?}, now {now})",
                validity(old)
            );
            assert_ne!(old, &link);
        }
        minted.push((at, link));
    }
    running.stop().await;
    env.cleanup().await;
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
struct Hit {
    webhook_id: String,
    timestamp: u64,
    signature: String,
    body: Vec<u8>,
    job_id: String,
    answered: u16,
}

impl Hit {
    /// Whether one of the request's signatures is `secret`'s.
    fn verifies_with(&self, secret: &WebhookSecret) -> bool {
        let expected = sign(secret, &self.webhook_id, self.timestamp, &self.body);
        self.signature.split(' ').any(|s| s == expected)
    }
}

/// A webhook receiver in this process: answers 500 to the first
/// `fail_first` requests of each event; after those, 204 when a signature
/// verifies with the secret it holds (none: any), else 401.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    secret: Arc<Mutex<Option<WebhookSecret>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let secret: Arc<Mutex<Option<WebhookSecret>>> = Arc::default();
        let (shared_hits, shared_secret) = (Arc::clone(&hits), Arc::clone(&secret));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, secret) = (Arc::clone(&shared_hits), Arc::clone(&shared_secret));
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let (hits, secret) = (Arc::clone(&hits), Arc::clone(&secret));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                            let header = |name: &str| {
                                parts
                                    .headers
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let body = body.unwrap_or_default();
                            let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let mut hit = Hit {
                                webhook_id: header("webhook-id"),
                                timestamp: header("webhook-timestamp").parse().unwrap_or(0),
                                signature: header("webhook-signature"),
                                job_id: event["data"]["jobId"].as_str().unwrap_or("").to_owned(),
                                body,
                                answered: 500,
                            };
                            let mut hits = hits.lock().unwrap();
                            let earlier = hits
                                .iter()
                                .filter(|h| h.webhook_id == hit.webhook_id)
                                .count();
                            let held = secret.lock().unwrap().clone();
                            hit.answered = if earlier < fail_first {
                                500
                            } else if held.as_ref().is_none_or(|s| hit.verifies_with(s)) {
                                204
                            } else {
                                401
                            };
                            let status = hit.answered;
                            hits.push(hit);
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            hits,
            secret,
            task,
        }
    }

    /// The requests of job `id`'s events so far.
    fn hits_of(&self, id: JobId) -> Vec<Hit> {
        let id = id.to_string();
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.job_id == id).cloned().collect()
    }

    /// Waits until job `id`'s events got `count` requests.
    async fn until_hits(&self, id: JobId, count: usize, secs: u64) -> Vec<Hit> {
        let started = Instant::now();
        loop {
            let hits = self.hits_of(id);
            if hits.len() >= count {
                return hits;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "{} request(s) of job {id} within {secs} s, not {count}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// From now on, only signatures with `secret` are accepted.
    fn hold(&self, secret: WebhookSecret) {
        *self.secret.lock().unwrap() = Some(secret);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Webhooks on `env`'s stack: a notifier queue whose last receive is the
/// `max_receive_count`-th, retries after `retry_secs`, local callbacks
/// allowed, the master key in Secrets Manager. Sets `env.config.webhooks`;
/// returns the notifier's queues and the secret's ARN.
async fn provision_webhooks(
    env: &mut TestEnv,
    max_receive_count: u32,
    retry_secs: u32,
) -> (Queues, String) {
    let settings = QueueSettings {
        max_receive_count,
        visibility_timeout_secs: 30,
        ..QueueSettings::NOTIFY
    };
    let notify = provision::create_queues(
        &env.clients.sqs,
        &provision::notify_queue_name(&env.table),
        settings,
    )
    .await
    .unwrap();
    let secret = provision::create_webhook_secret(&env.clients.secrets, &env.table)
        .await
        .unwrap();
    env.config.webhooks = WebhookConfig {
        secret_id: Some(secret.clone()),
        queue_url: Some(notify.queue_url.clone()),
        allow_local_callbacks: true,
        max_receive_count,
        retry_base_delay_secs: retry_secs,
        retry_max_delay_secs: retry_secs,
        timeout: Duration::from_secs(5),
    };
    (notify, secret)
}

/// The webhook parts of the stack, as `jobline-local serve` builds them,
/// with the master keys refreshed on `clock`.
async fn webhooks(env: &TestEnv, notify: &Queues, secret: &str, clock: &Clock) -> Webhooks {
    let stream = StreamReader::for_table(
        &env.clients.dynamodb,
        env.clients.streams.clone(),
        &env.table,
    )
    .await
    .unwrap();
    Webhooks {
        store: Arc::new(env.store()),
        keys: Arc::new(
            SecretsManagerKeys::new(env.clients.secrets.clone(), secret).with_clock(clock.clone()),
        ),
        queue: Arc::new(SqsJobQueue::new(env.clients.sqs.clone(), &notify.queue_url)),
        stream,
        deliverer: Deliverer::new().with_timeout(Duration::from_secs(5)),
        poller: PollerSettings {
            wait_secs: 1,
            ..notifier_poller_settings()
        },
    }
}

/// The master key `secret` holds now, as a fresh reader sees it.
async fn current_master_key(env: &TestEnv, secret: &str) -> Vec<u8> {
    let value = env
        .clients
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .unwrap();
    value.secret_string.expect("a string").into_bytes()
}

/// Waits until job `id`'s webhook is no longer pending; its view.
async fn settled_webhook(api: &Api, id: JobId, secs: u64) -> Value {
    let started = Instant::now();
    loop {
        let (status, view) = get(api, id).await;
        assert_eq!(status, 200, "{view}");
        if view["webhook"]["state"] != "pending" {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "the webhook of {id} is still pending: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the queue at `url` holds no message (a poller deletes a
/// handled message just after the notifier records its delivery).
async fn until_empty(sqs: &aws_sdk_sqs::Client, url: &str) {
    let queue = SqsJobQueue::new(sqs.clone(), url);
    let started = Instant::now();
    loop {
        let counts = queue.counts().await.unwrap();
        if counts.visible + counts.in_flight + counts.delayed == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url} still holds {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_queues(env: &TestEnv, queues: &Queues) {
    for url in [&queues.queue_url, &queues.dlq_url] {
        env.clients
            .sqs
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_run_to_exhaustion_at_any_age_and_the_job_shows_it() {
    jobline_tests::require_emulator!();
    let mut env = env(2).await;
    let (notify, secret) = provision_webhooks(&mut env, 3, 1).await;
    let clock = Clock::movable();
    let parts = webhooks(&env, &notify, &secret, &clock).await;
    let running = Running::start(
        stack(&env, &clock, JobTypes::builtin())
            .webhooks(parts)
            .build(),
    )
    .await;
    let receiver = Receiver::start(usize::MAX).await;
    let caller = caller_secret(&current_master_key(&env, &secret).await, ANONYMOUS_OWNER);

    let mut earlier: Vec<JobId> = Vec::new();
    for (at, offset) in OFFSETS {
        move_to(&clock, offset);
        // The webhooks of earlier offsets were failed for good: the
        // sweeper's pass over owed webhooks hands none of them back.
        let report = running.sweeper.sweep_once(clock.now_ms()).await;
        assert_eq!((report.requeued, report.failed), (0, 0), "{at}");

        let from = clock.now_ms();
        let body = json!({
            "type": "primes",
            "payload": {"upTo": 10},
            "callbackUrl": receiver.url,
        });
        let id = submit(&running.api, &body).await;
        let view = settled_webhook(&running.api, id, 60).await;
        let to = clock.now_ms();
        assert_eq!(
            view["status"], "succeeded",
            "{at}: a failing receiver never fails its job"
        );
        assert_eq!(view["attempts"], 1, "{at}: nor re-runs it");
        assert_eq!(
            view["webhook"],
            json!({
                "state": "failed",
                "attempts": 3,
                "lastStatus": 500,
                "updatedAt": view["webhook"]["updatedAt"],
            }),
            "{at}"
        );
        let job = record(&env, id).await;
        let finished = job.finished_at.expect("finished");
        let delivery = job.webhook.expect("recorded");
        assert_eq!(delivery.for_finished_at, finished);
        assert!((from..=to).contains(&delivery.at_ms), "{at}: {delivery:?}");
        assert_eq!(view["webhook"]["updatedAt"], format_ms(delivery.at_ms));

        let hits = receiver.hits_of(id);
        assert_eq!(hits.len(), 3, "{at}: {hits:?}");
        for hit in &hits {
            assert_eq!(
                hit.webhook_id,
                jobline_notifier::webhook_id(id, finished),
                "{at}"
            );
            let secs = u64::try_from(from / 1000).unwrap()..=u64::try_from(to / 1000).unwrap();
            assert!(
                secs.contains(&hit.timestamp),
                "{at}: webhook-timestamp {} is not on the moved clock ({secs:?})",
                hit.timestamp
            );
            assert!(hit.verifies_with(&caller), "{at}: {hit:?}");
            let event: Value = serde_json::from_slice(&hit.body).unwrap();
            assert_eq!(event["type"], "job.succeeded");
            assert_eq!(event["timestamp"], format_ms(finished));
            assert_eq!(hit.answered, 500);
        }
        // Done with: neither waiting nor dead-lettered in the notifier's queues.
        until_empty(&env.clients.sqs, &notify.queue_url).await;
        until_empty(&env.clients.sqs, &notify.dlq_url).await;
        for old in &earlier {
            assert_eq!(
                receiver.hits_of(*old).len(),
                3,
                "{at}: {old} not sent again"
            );
        }
        earlier.push(id);
    }
    running.stop().await;
    delete_queues(&env, &notify).await;
    env.cleanup().await;
}

/// A fresh 64-character master key.
fn new_master_key(n: u8) -> String {
    format!("{}{}", char::from(b'a' + n), uuid::Uuid::new_v4().simple())
        .repeat(2)
        .chars()
        .take(64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_mid_delivery_reaches_the_next_attempt() {
    jobline_tests::require_emulator!();
    let mut env = env(2).await;
    let (notify, secret) = provision_webhooks(&mut env, 6, 3).await;
    let clock = Clock::movable();
    let parts = webhooks(&env, &notify, &secret, &clock).await;
    let running = Running::start(
        stack(&env, &clock, JobTypes::builtin())
            .webhooks(parts)
            .build(),
    )
    .await;
    // Each event's first attempt fails (500); then the receiver checks the
    // signature against the secret it holds.
    let receiver = Receiver::start(1).await;
    let secret_of = |master: &[u8]| caller_secret(master, ANONYMOUS_OWNER);
    let (status, body) = call(&running.api, "GET", "/webhook-secret", &[], None).await;
    assert_eq!(status, 200, "{body}");
    let k1 = current_master_key(&env, &secret).await;
    assert_eq!(body["secret"], secret_of(&k1).to_whsec());
    receiver.hold(secret_of(&k1));
    let rotate = |n: u8| {
        let (secrets, id) = (env.clients.secrets.clone(), secret.clone());
        async move {
            secrets
                .put_secret_value()
                .secret_id(id)
                .secret_string(new_master_key(n))
                .send()
                .await
                .unwrap();
        }
    };
    let event = json!({"type": "primes", "payload": {"upTo": 10}, "callbackUrl": receiver.url});

    // 1. Rotated between two attempts, within the refresh interval: the
    // notifier still signs with the old key alone. The receiver switched to
    // the new secret, from an API environment started after the rotation
    // (a cold start reads the keys afresh); it refuses the old signature
    // (401), the notifier reads the keys again, sees the rotation and
    // retries, signed with both keys.
    let first = submit(&running.api, &event).await;
    let hits = receiver.until_hits(first, 1, 30).await;
    assert!(hits[0].verifies_with(&secret_of(&k1)), "{hits:?}");
    rotate(2).await;
    let k2 = current_master_key(&env, &secret).await;
    assert_ne!(k1, k2);
    let fresh_api = Api::new(
        Arc::new(env.store()),
        Arc::new(env.queue()),
        JobTypes::builtin(),
        &env.config,
    )
    .with_clock(clock.clone())
    .with_webhook_keys(Arc::new(
        SecretsManagerKeys::new(env.clients.secrets.clone(), &secret).with_clock(clock.clone()),
    ));
    let (_, body) = call(&fresh_api, "GET", "/webhook-secret", &[], None).await;
    assert_eq!(body["secret"], secret_of(&k2).to_whsec(), "the new secret");
    receiver.hold(secret_of(&k2));
    let view = settled_webhook(&running.api, first, 60).await;
    let hits = receiver.hits_of(first);
    assert!(
        hits.iter().any(|h| h.answered == 401),
        "within the refresh interval the notifier signed with the old key alone, which the \
         switched receiver refused: {hits:?}"
    );
    assert_eq!(
        view["webhook"]["state"], "delivered",
        "a receiver that switched to its new secret refused the notifier's old-key signature, \
         and the delivery was not retried with the new keys: {view}; {hits:?}"
    );
    let last = hits.last().unwrap();
    assert!(
        last.verifies_with(&secret_of(&k2)) && last.verifies_with(&secret_of(&k1)),
        "signed with both keys: {last:?}"
    );
    assert_eq!(
        last.signature,
        signature_header(
            &[secret_of(&k2), secret_of(&k1)],
            &last.webhook_id,
            last.timestamp,
            &last.body
        ),
        "the new key's signature first"
    );

    // 2. Rotated again between two attempts of the next event; the clock
    // moves past the refresh interval (to +2 h): the stack's own API hands
    // out the newest secret, and the next attempt is signed with the new
    // and the previous key, with no refusal needed.
    let second = submit(&running.api, &event).await;
    let hits = receiver.until_hits(second, 1, 30).await;
    assert!(hits[0].verifies_with(&secret_of(&k2)));
    rotate(3).await;
    let k3 = current_master_key(&env, &secret).await;
    assert!(OFFSETS[1].1 > REFRESH_INTERVAL);
    move_to(&clock, OFFSETS[1].1);
    let (_, body) = call(&running.api, "GET", "/webhook-secret", &[], None).await;
    assert_eq!(
        body["secret"],
        secret_of(&k3).to_whsec(),
        "the keys are read again once the refresh interval has passed"
    );
    receiver.hold(secret_of(&k3));
    let view = settled_webhook(&running.api, second, 60).await;
    let hits = receiver.hits_of(second);
    assert_eq!(view["webhook"]["state"], "delivered", "{view}; {hits:?}");
    assert_eq!(
        view["webhook"]["attempts"], 2,
        "no refusal: the refresh alone reached the next attempt: {hits:?}"
    );
    let last = hits.last().unwrap();
    assert_eq!(
        last.signature,
        signature_header(
            &[secret_of(&k3), secret_of(&k2)],
            &last.webhook_id,
            last.timestamp,
            &last.body
        )
    );
    running.stop().await;
    delete_queues(&env, &notify).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_holds_for_the_retention_from_creation_or_replay_then_is_expired() {
    jobline_tests::require_emulator!();
    let mut env = env(2).await;
    // The shortest retention allowed (the queue's 4 days, a run and the
    // DLQ's 14 days), and one more offset a day past it.
    env.config.retention_days = min_retention_days(env.config.worker.max_run_secs);
    let retention = env.config.retention_days;
    let past_retention = Duration::from_secs((u64::from(retention) + 1) * DAY);
    assert!(past_retention > OFFSETS[3].1);
    let past_label = format!("+{} days", retention + 1);
    let offsets = OFFSETS
        .into_iter()
        .chain([(past_label.as_str(), past_retention)]);
    let clock = Clock::movable();
    let running = Running::start(stack(&env, &clock, JobTypes::builtin()).build()).await;
    let api = &running.api;
    let keyed = |key: &'static str| [("Idempotency-Key", key)];
    let body_a = json!({"type": "primes", "payload": {"upTo": 10}});
    let other_a = json!({"type": "primes", "payload": {"upTo": 11}});
    let body_b = json!({"type": "fail-times", "payload": {"failures": 2}});

    let created_from = clock.now_ms();
    let (status, accepted) = call(api, "POST", "/jobs", &keyed("report-a"), Some(&body_a)).await;
    assert_eq!(status, 202, "{accepted}");
    let a: JobId = accepted["jobId"].as_str().unwrap().parse().unwrap();
    let (status, accepted) = call(api, "POST", "/jobs", &keyed("report-b"), Some(&body_b)).await;
    assert_eq!(status, 202, "{accepted}");
    let b: JobId = accepted["jobId"].as_str().unwrap().parse().unwrap();
    let created = created_from..=clock.now_ms();
    let done_a = env.until(a, 30, |j| j.state == JobState::Succeeded).await;
    until_dead_lettered(&env, &[b], 1).await;
    for id in [a, b] {
        let job = record(&env, id).await;
        assert_eq!(
            job.expires_at,
            job.created_at / 1000 + i64::from(retention) * DAY as i64,
            "the retention from creation"
        );
        assert!(created.contains(&job.created_at));
    }

    for (i, (at, offset)) in offsets.enumerate() {
        move_to(&clock, offset);
        if offset == OFFSETS[2].1 {
            // B is retried at +2 days: kept for the retention from then.
            let before = record(&env, b).await;
            let now = clock.now_ms();
            let retried = retry(&env.store(), &env.queue(), b, now).await.unwrap();
            assert!(matches!(retried, Retried::Requeued { .. }));
            let job = until_ran_again(&env, b, &before).await;
            assert_ran_again(&job, &before, &(now..=now), retention, at);
        }
        let now_secs = clock.now_secs();
        let a_gone = done_a.expires_at <= now_secs;
        assert_eq!(
            a_gone,
            i == OFFSETS.len(),
            "{at}: A is kept {retention} days, then gone"
        );

        let (status, view) = get(api, a).await;
        let (again, answer) = call(api, "POST", "/jobs", &keyed("report-a"), Some(&body_a)).await;
        let (reused, reused_answer) =
            call(api, "POST", "/jobs", &keyed("report-a"), Some(&other_a)).await;
        let (_, listing) = call(api, "GET", "/jobs?limit=100", &[], None).await;
        let listed = listing["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["jobId"] == a.to_string());
        if a_gone {
            assert_eq!(status, 404, "{at}: past its expiresAt: {view}");
            assert_eq!(again, 409, "{at}: {answer}");
            assert_eq!(answer["error"]["code"], "idempotency_key_expired");
            assert_eq!(reused, 409, "{at}: {reused_answer}");
            assert!(!listed, "{at}: expired jobs are not listed");
            assert_eq!(delete(api, a).await.0, 404, "{at}");
            // A new key submits the work again.
            let (status, fresh) =
                call(api, "POST", "/jobs", &keyed("report-a-2"), Some(&body_a)).await;
            assert_eq!(status, 202, "{fresh}");
            let fresh: JobId = fresh["jobId"].as_str().unwrap().parse().unwrap();
            assert_ne!(fresh, a);
            let job = env.until(fresh, 30, |j| j.state.is_finished()).await;
            assert_eq!(job.state, JobState::Succeeded);
            assert_eq!(
                job.expires_at,
                job.created_at / 1000 + i64::from(retention) * DAY as i64
            );
        } else {
            assert_eq!(status, 200, "{at}: {view}");
            assert_eq!(again, 202, "{at}: {answer}");
            assert_eq!(answer["jobId"], a.to_string());
            assert_eq!(answer["status"], "succeeded");
            assert_eq!(reused, 422, "{at}: {reused_answer}");
            assert_eq!(reused_answer["error"]["code"], "idempotency_key_reused");
            assert!(listed, "{at}");
            assert_eq!(record(&env, a).await, done_a, "{at}: nothing ran again");
        }
        // B, replayed at +2 days, is kept the retention from then: its key
        // still answers with it a day past A's.
        let (status, answer) = call(api, "POST", "/jobs", &keyed("report-b"), Some(&body_b)).await;
        assert_eq!(status, 202, "{at}: {answer}");
        assert_eq!(answer["jobId"], b.to_string());
        assert_eq!(get(api, b).await.0, 200, "{at}");
    }
    running.stop().await;
    env.cleanup().await;
}

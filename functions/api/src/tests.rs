//! The API's unit tests: [`Api::handle`] against the in-memory store and
//! queue, for every route, error and submission path.

use super::backlog::fake::FakeDepth;
use super::*;
use http::header::{LOCATION, RETRY_AFTER};
use jobline_core::queue::{QueueCounts, Receive, ReceivedMessage, VisibilityChange};
use jobline_core::{
    JobMessage, JobRequest, JobState, Metric, OperatorStore, QueueError, WorkerStore,
};
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::store::MemoryStore;
use jobline_testkit::testing::now_ms;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use serde_json::{Value, json};

/// The message the API sends for job `id` of the anonymous caller: in its
/// fair-queue group, with the job's trace context.
pub(crate) fn sent(store: &MemoryStore, id: JobId) -> JobMessage {
    let job = store.job(id).expect("the job is stored");
    let message = JobMessage::of(&job);
    assert_eq!(
        message.group,
        Some(jobline_core::caller::CallerKey::of(ANONYMOUS_OWNER))
    );
    message
}

fn config(base: Option<&str>) -> Config {
    let mut config = Config::from_lookup(|name| match name {
        "JOBS_TABLE" => Some("t".into()),
        "JOBS_QUEUE_URL" => Some("q".into()),
        "ALLOW_ANONYMOUS" => Some("true".into()),
        "MAX_BACKLOG" => Some("10".into()),
        _ => None,
    })
    .expect("config");
    config.public_base_url = base.map(str::to_owned);
    config
}

fn api(store: &Arc<MemoryStore>, queue: &Arc<MemoryQueue>, base: Option<&str>) -> Api {
    Api::new(
        store.clone(),
        queue.clone(),
        jobline_jobs::builtin(),
        &config(base),
    )
}

fn fakes() -> (Arc<MemoryStore>, Arc<MemoryQueue>) {
    (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()))
}

const BODY: &str = r#"{"type":"primes","payload":{"upTo":10}}"#;

fn submit(key: Option<&str>) -> Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("/jobs")
        .header("host", "localhost:3000");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::from(BODY)).expect("request")
}

fn get(id: JobId) -> Request {
    http::Request::builder()
        .uri(format!("/jobs/{id}"))
        .body(Body::Empty)
        .unwrap()
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(reply.response.body().as_ref()).expect("JSON")
}

fn record(id: JobId, created_at: i64) -> JobRecord {
    let request = JobRequest {
        job_type: "primes".into(),
        payload: json!({"upTo": 10}),
        callback_url: None,
    };
    JobRecord::new_queued(id, ANONYMOUS_OWNER, &request, created_at, 30)
}

#[tokio::test]
async fn accepts_writes_and_sends_the_id() {
    let (store, queue) = fakes();
    let reply = api(&store, &queue, Some("https://jobs.example.com"))
        .handle(submit(None))
        .await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    assert_eq!(reply.response.headers()[RETRY_AFTER], "2");
    let body = body(&reply);
    let id: JobId = body["jobId"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        body["statusUrl"],
        format!("https://jobs.example.com/jobs/{id}")
    );
    assert_eq!(
        reply.response.headers()[LOCATION],
        body["statusUrl"].as_str().unwrap()
    );
    assert_eq!(queue.sent(), [sent(&store, id)]);
    assert_eq!(store.job(id).unwrap().state, JobState::Queued);
}

#[tokio::test]
async fn a_failed_send_is_a_503_and_marks_the_job() {
    let (store, queue) = fakes();
    queue.set_failing(true);
    let api = api(&store, &queue, None);
    let reply = api.handle(submit(Some("k"))).await;
    assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(&reply)["error"]["code"], "unavailable");
    assert_eq!(
        body(&reply)["error"]["message"],
        "the job queue is unavailable; nothing was accepted, retry with the same Idempotency-Key"
    );
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    let job = store.job(id).unwrap();
    assert!(job.enqueue_failed);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some(ENQUEUE_FAILED));

    queue.set_failing(false);
    let retried = api.handle(submit(Some("k"))).await;
    assert_eq!(retried.response.status(), StatusCode::ACCEPTED);
    assert_eq!(store.job(id).unwrap().state, JobState::Queued);
    assert_eq!(queue.sent(), [sent(&store, id)]);
}

/// A submission with a `traceparent` request header.
fn traced_submit(key: Option<&str>, traceparent: &[&str]) -> Request {
    let mut request = submit(key);
    for value in traceparent {
        request
            .headers_mut()
            .append("traceparent", http::HeaderValue::from_str(value).unwrap());
    }
    request
}

#[tokio::test]
async fn a_submission_continues_its_callers_trace_or_starts_one() {
    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (store, queue) = fakes();
    let mut api = api(&store, &queue, None);
    api.clock = Clock::at(1_000);
    let reply = api.handle(traced_submit(None, &[CALLER])).await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    let id: JobId = body(&reply)["jobId"].as_str().unwrap().parse().unwrap();
    let stored = store.job(id).unwrap().traceparent.expect("a trace");
    // The job's context is the submission's span: a child of the caller's.
    assert_eq!(
        stored.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_ne!(stored.span_id().to_string(), "00f067aa0ba902b7");
    assert!(stored.sampled());
    assert_eq!(
        reply.response.headers()["traceparent"],
        stored.to_string().as_str()
    );
    // Its message carries it as the `traceparent` attribute.
    assert_eq!(queue.sent()[0].traceparent, Some(stored));

    // None, an invalid one, or two: each job starts a trace of its own.
    let mut traces = std::collections::HashSet::new();
    for headers in [
        &[][..],
        &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"][..],
        &["not a traceparent"][..],
        &[CALLER, CALLER][..],
    ] {
        let reply = api.handle(traced_submit(None, headers)).await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED, "{headers:?}");
        let id: JobId = body(&reply)["jobId"].as_str().unwrap().parse().unwrap();
        let context = store.job(id).unwrap().traceparent.expect("a trace");
        assert_ne!(context.trace_id(), stored.trace_id(), "{headers:?}");
        assert!(traces.insert(context.trace_id()), "{headers:?}");
    }

    // A repeat under the same key answers the first request's trace.
    let first = api.handle(traced_submit(Some("t"), &[])).await;
    api.clock = Clock::at(2_000);
    let again = api.handle(traced_submit(Some("t"), &[CALLER])).await;
    assert_eq!(again.response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        again.response.headers()["traceparent"],
        first.response.headers()["traceparent"]
    );
}

/// What goes wrong with a [`FaultySend`] queue's `SendMessage`.
#[derive(Debug)]
enum SendFault {
    /// It delivers but loses its response, and a worker claims the job
    /// before the API hears of the failure.
    LostResponse(Arc<MemoryStore>),
    /// The first send (request A's) hangs until a second one (request B's,
    /// a repeat with the same key) has been sent, then fails: A's send timed
    /// out although B's message is in the queue.
    FirstTimesOut {
        sends: std::sync::atomic::AtomicU32,
        second_sent: tokio::sync::Notify,
    },
}

/// An in-memory queue whose sends go wrong as its [`SendFault`] says.
#[derive(Debug)]
struct FaultySend {
    queue: MemoryQueue,
    fault: SendFault,
}

impl FaultySend {
    fn new(fault: SendFault) -> Self {
        Self {
            queue: MemoryQueue::new(),
            fault,
        }
    }
}

#[async_trait::async_trait]
impl JobQueue for FaultySend {
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
        let failure = |reason: &str| QueueError::Aws {
            operation: "SendMessage",
            source: reason.to_owned().into(),
        };
        match &self.fault {
            SendFault::LostResponse(store) => {
                self.queue.send(message).await?;
                store
                    .claim(message.job_id, 1, 2, 1, "test-delivery")
                    .await
                    .expect("claim");
                Err(failure("the response was lost"))
            }
            SendFault::FirstTimesOut { sends, second_sent } => {
                if sends.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    second_sent.notified().await;
                    return Err(failure("operation timed out"));
                }
                let sent = self.queue.send(message).await;
                second_sent.notify_one();
                sent
            }
        }
    }
    async fn send_delayed(&self, message: &JobMessage, _: u32) -> Result<String, QueueError> {
        self.send(message).await
    }
    async fn change_visibility(&self, handle: &str, secs: u32) -> Result<(), QueueError> {
        self.queue.change_visibility(handle, secs).await
    }
    async fn change_visibility_batch(
        &self,
        changes: &[VisibilityChange],
    ) -> Result<Vec<String>, QueueError> {
        self.queue.change_visibility_batch(changes).await
    }
    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.queue.receive(request).await
    }
    async fn delete(&self, handles: &[String]) -> Result<Vec<String>, QueueError> {
        self.queue.delete(handles).await
    }
    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        self.queue.counts().await
    }
}

#[tokio::test]
async fn a_failed_send_whose_job_a_worker_claimed_is_accepted() {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(FaultySend::new(SendFault::LostResponse(store.clone())));
    let api = Api::new(
        store.clone(),
        queue.clone(),
        jobline_jobs::builtin(),
        &config(None),
    );
    let reply = api.handle(submit(Some("k"))).await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    assert_eq!(reply.metrics.total(Metric::JobsAccepted), 1.0);
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    assert_eq!(body(&reply)["jobId"], id.to_string());
    assert_eq!(body(&reply)["status"], "running");
    let job = store.job(id).unwrap();
    assert!(!job.enqueue_failed, "the claimed job is left alone");
    assert_eq!(job.state, JobState::Running);
    assert_eq!(queue.queue.sent(), [sent(&store, id)]);
}

#[tokio::test]
async fn a_payload_over_its_budget_as_stored_is_413_and_nothing_is_written() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    // A valid primes job under the body limit as sent, and 3.8 times
    // longer as stored (over DynamoDB's 400 KB: the store would refuse
    // it, with an error no retry cures).
    let numbers = vec!["1E15"; MAX_BODY_BYTES / 5 - 10].join(",");
    let body_text = format!(r#"{{"type":"primes","payload":{{"upTo":10,"pad":[{numbers}]}}}}"#);
    assert!(body_text.len() <= MAX_BODY_BYTES);
    let request = http::Request::builder()
        .method("POST")
        .uri("/jobs")
        .body(Body::from(body_text))
        .unwrap();
    let reply = api.handle(request).await;
    assert_eq!(reply.response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error = &body(&reply)["error"];
    assert_eq!(error["code"], "payload_too_large");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("the limit is 262144 bytes"),
        "{error}"
    );
    assert_eq!(store.writes(), 0);
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn a_job_past_its_expiry_is_gone_and_its_key_cannot_replay_it() {
    // Kept 30 days (the default JOB_RETENTION_DAYS) from its creation.
    const EXPIRES_MS: i64 = 1_000 + 30 * 86_400_000;
    let (store, queue) = fakes();
    let mut api = api(&store, &queue, None);
    api.clock = Clock::at(1_000);
    let accepted = api.handle(submit(Some("k"))).await;
    assert_eq!(accepted.response.status(), StatusCode::ACCEPTED);
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    assert_eq!(store.job(id).unwrap().expires_at * 1000, EXPIRES_MS);

    api.clock = Clock::at(EXPIRES_MS - 1_000);
    assert_eq!(api.handle(get(id)).await.response.status(), StatusCode::OK);
    // From `expiresAt` on the TTL may delete it: it is gone, whether or
    // not the item still exists.
    api.clock = Clock::at(EXPIRES_MS);
    let reply = api.handle(get(id)).await;
    assert_eq!(reply.response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(&reply)["error"]["code"], "job_not_found");
    assert!(store.job(id).is_some(), "the item is still there");

    let replay = api.handle(submit(Some("k"))).await;
    assert_eq!(replay.response.status(), StatusCode::CONFLICT);
    assert_eq!(body(&replay)["error"]["code"], "idempotency_key_expired");
    assert_eq!(queue.sent().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn a_store_outage_is_a_503_for_submit_and_status_and_sends_nothing() {
    let (store, queue) = fakes();
    store.set_failing(true);
    let api = api(&store, &queue, None);
    let reply = api.handle(submit(None)).await;
    assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.metrics.total(Metric::JobsAccepted), 0.0);
    assert!(
        body(&reply)["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the job store is unavailable; nothing was accepted")
    );
    assert!(queue.sent().is_empty(), "no message without its record");
    let reply = api.handle(get(JobId::random())).await;
    assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_replay_of_a_started_job_sends_nothing() {
    let (store, queue) = fakes();
    let mut api = api(&store, &queue, None);
    api.clock = Clock::at(1_000);
    let first = api.handle(submit(Some("k"))).await;
    let id: JobId = body(&first)["jobId"].as_str().unwrap().parse().unwrap();
    store
        .claim(id, 1_000, 2_000, 1, "delivery")
        .await
        .expect("claim");
    api.clock = Clock::at(1_001);
    let replay = api.handle(submit(Some("k"))).await;
    assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
    assert_eq!(body(&replay)["jobId"], body(&first)["jobId"]);
    assert_eq!(body(&replay)["status"], "running");
    assert_eq!(replay.metrics.total(Metric::JobsAccepted), 0.0);
    assert_eq!(queue.sent().len(), 1, "one message for one job");
}

#[tokio::test]
async fn a_replay_of_a_job_never_started_sends_its_message_again() {
    let (store, queue) = fakes();
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    // The request that wrote it died before its SendMessage.
    store.insert(record(id, 1_000));
    let mut api = api(&store, &queue, None);
    api.clock = Clock::at(5_000);
    let replay = api.handle(submit(Some("k"))).await;
    assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
    assert_eq!(queue.sent(), [sent(&store, id)]);
}

/// A repeat whose send fails answers 503 and leaves the job as it is: its
/// creator's message may be in the queue, and marking the job failed would
/// have the worker drop it as a duplicate of a failed job.
#[tokio::test]
async fn a_repeat_whose_send_fails_never_fails_the_job() {
    let (store, queue) = fakes();
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    store.insert(record(id, 1_000));
    queue.set_failing(true);
    let mut api = api(&store, &queue, None);
    api.clock = Clock::at(3_600_000);
    let repeat = api.handle(submit(Some("k"))).await;
    assert_eq!(repeat.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let job = store.job(id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert!(!job.enqueue_failed);
    assert_eq!(job.resent_at, Some(3_600_000));
}

/// Request A's send times out while its client's retry B succeeds: A may no
/// longer mark the job enqueue-failed (B's message would then be dropped as
/// a duplicate of a failed job, and the job that got a 202 never run).
#[tokio::test]
async fn a_send_that_times_out_after_a_repeat_resent_it_is_accepted() {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(FaultySend::new(SendFault::FirstTimesOut {
        sends: std::sync::atomic::AtomicU32::new(0),
        second_sent: tokio::sync::Notify::new(),
    }));
    let api_a = Api::new(
        store.clone(),
        queue.clone(),
        jobline_jobs::builtin(),
        &config(None),
    )
    .with_clock(Clock::at(1_000));
    let api_b = Api::new(
        store.clone(),
        queue.clone(),
        jobline_jobs::builtin(),
        &config(None),
    )
    .with_clock(Clock::at(4_000));
    let a = api_a.handle(submit(Some("k")));
    let b = async {
        // B arrives once A's record is written and A is stuck in its send.
        while matches!(&queue.fault, SendFault::FirstTimesOut { sends, .. }
            if sends.load(std::sync::atomic::Ordering::SeqCst) == 0)
        {
            tokio::task::yield_now().await;
        }
        api_b.handle(submit(Some("k"))).await
    };
    let (a, b) = tokio::join!(a, b);
    assert_eq!(b.response.status(), StatusCode::ACCEPTED);
    assert_eq!(a.response.status(), StatusCode::ACCEPTED);
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    let job = store.job(id).unwrap();
    assert_eq!(job.state, JobState::Queued, "the job waits for B's message");
    assert!(!job.enqueue_failed);
    assert_eq!(queue.queue.sent(), [sent(&store, id)]);
}

#[tokio::test]
async fn the_requests_own_retried_write_is_still_sent() {
    let (store, queue) = fakes();
    let id = JobId::from_idempotency_key(ANONYMOUS_OWNER, "k");
    // The PutItem landed but its response was lost; the SDK's retry
    // meets the item this very request wrote (same createdAt).
    store.insert(record(id, 1_000));
    let mut api = api(&store, &queue, None);
    api.clock = Clock::at(1_000);
    let reply = api.handle(submit(Some("k"))).await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    // The item this test wrote stands for the request's own, whose trace
    // context (random) it could not know: the message carries the request's.
    let own = queue.sent()[0].traceparent;
    assert!(own.is_some());
    assert_eq!(queue.sent(), [sent(&store, id).traced(own)]);
    assert_eq!(reply.metrics.total(Metric::JobsAccepted), 1.0);
    // A later request with the key, once a worker has the job, is a replay.
    store
        .claim(id, 1_500, 9_000, 1, "delivery")
        .await
        .expect("claim");
    api.clock = Clock::at(2_000);
    let replay = api.handle(submit(Some("k"))).await;
    assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
    assert_eq!(queue.sent().len(), 1);
}

#[tokio::test]
async fn unfinished_jobs_say_when_to_poll_again() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let id = JobId::random();
    for (state, retry_after) in [
        (JobState::Queued, Some("2")),
        (JobState::Running, Some("2")),
        (JobState::Succeeded, None),
        (JobState::Failed, None),
    ] {
        let mut job = record(id, now_ms());
        job.state = state;
        store.insert(job);
        let reply = api.handle(get(id)).await;
        assert_eq!(reply.response.status(), StatusCode::OK);
        assert_eq!(
            reply
                .response
                .headers()
                .get(RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{state}"
        );
    }
}

#[tokio::test]
async fn a_full_backlog_refuses_new_jobs_but_not_replays() {
    let (store, queue) = fakes();
    let depth = FakeDepth::new(0);
    let mut api = api(&store, &queue, None);
    // Read at every request, so the test need not wait for the cache.
    api.backlog = Some(Backlog::new(depth.clone(), 10, std::time::Duration::ZERO));
    let accepted = api.handle(submit(Some("early"))).await;
    assert_eq!(accepted.response.status(), StatusCode::ACCEPTED);
    depth.depth.store(11, std::sync::atomic::Ordering::SeqCst);
    for key in [None, Some("late")] {
        let refused = api.handle(submit(key)).await;
        assert_eq!(refused.response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.response.headers()[RETRY_AFTER], "30");
        assert_eq!(body(&refused)["error"]["code"], "backlog_full");
        assert_eq!(refused.metrics.total(Metric::JobsRefused), 1.0);
    }
    let replay = api.handle(submit(Some("early"))).await;
    assert_eq!(replay.response.status(), StatusCode::ACCEPTED);
    assert_eq!(body(&replay)["jobId"], body(&accepted)["jobId"]);
    assert_eq!(queue.sent().len(), 1, "only the early job was queued");
    assert_eq!(store.snapshot().len(), 1);
}

#[tokio::test]
async fn no_backlog_bound_when_max_backlog_is_zero() {
    let (store, queue) = fakes();
    let mut config = config(None);
    config.max_backlog = 0;
    let api = Api::new(store, queue, jobline_jobs::builtin(), &config)
        .with_queue_depth(FakeDepth::new(u64::MAX));
    let reply = api.handle(submit(None)).await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn without_an_identity_and_without_anonymous_it_is_401() {
    let (store, queue) = fakes();
    let mut config = config(None);
    config.allow_anonymous = false;
    let api = Api::new(store, queue.clone(), jobline_jobs::builtin(), &config);
    for request in [submit(None), get(JobId::random())] {
        let reply = api.handle(request).await;
        assert_eq!(reply.response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(&reply)["error"]["code"], "unauthenticated");
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn links_never_come_from_the_clients_host() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let mut forged = submit(None);
    let headers = forged.headers_mut();
    headers.insert("host", "evil.example.com".parse().unwrap());
    headers.insert("x-forwarded-proto", "javascript".parse().unwrap());
    let reply = api.handle(forged).await;
    let url = body(&reply)["statusUrl"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/jobs/"), "{url}");

    for (stage, base) in [
        (
            "$default",
            "https://abc123.execute-api.us-east-1.amazonaws.com",
        ),
        (
            "prod",
            "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
        ),
    ] {
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.domain_name = Some("abc123.execute-api.us-east-1.amazonaws.com".into());
        context.stage = Some(stage.into());
        let mut request = submit(None);
        request
            .headers_mut()
            .insert("host", "evil.example.com".parse().unwrap());
        request
            .extensions_mut()
            .insert(RequestContext::ApiGatewayV2(context));
        let reply = api.handle(request).await;
        let url = body(&reply)["statusUrl"].as_str().unwrap().to_owned();
        assert!(url.starts_with(&format!("{base}/jobs/")), "{url}");
        assert_eq!(reply.response.headers()[LOCATION], url.as_str());
    }
}

/// The JSON log lines written while `run` runs, at `info` and above.
async fn logs(run: impl Future<Output = ()>) -> Vec<Value> {
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // Tests run on several threads, and a callsite first reached on one
    // with no subscriber caches "never" for all: a global subscriber
    // that wants everything keeps every callsite live.
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        drop(tracing::subscriber::set_global_default(
            tracing_subscriber::registry(),
        ));
    });
    let guard = tracing::subscriber::set_default(subscriber);
    run.await;
    drop(guard);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn one_log_line_per_request_with_flat_fields_and_the_detail_only_there() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let lines = logs(async {
        let reply = api.handle(submit(None)).await;
        assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
        queue.set_failing(true);
        let reply = api.handle(submit(None)).await;
        assert_eq!(reply.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (accepted, failed) = (&lines[0], &lines[1]);
    assert_eq!(accepted["level"], "INFO");
    assert_eq!(accepted["status"], 202);
    assert_eq!(accepted["jobType"], "primes");
    assert!(accepted["jobId"].as_str().unwrap().parse::<JobId>().is_ok());
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["status"], 503);
    assert_eq!(failed["code"], "unavailable");
    assert!(failed["jobId"].is_string());
    assert!(
        failed["error"].as_str().unwrap().contains("SendMessage"),
        "the logs get the detail: {failed}"
    );
}

#[test]
fn job_view_shows_times_as_rfc3339() {
    let mut job = record(JobId::random(), 0);
    job.started_at = Some(1_500);
    job.run_started_at = Some(86_400_000);
    let view = job_view(&job, 0);
    assert_eq!(view["createdAt"], "1970-01-01T00:00:00.000Z");
    assert_eq!(view["startedAt"], "1970-01-01T00:00:01.500Z");
    assert_eq!(view["runStartedAt"], "1970-01-02T00:00:00.000Z");
    assert_eq!(view["finishedAt"], Value::Null);
    assert_eq!(view["status"], "queued");
    assert_eq!(view["deadLettered"], false);
    assert_eq!(view["discarded"], false);
}

#[tokio::test]
async fn the_status_says_when_an_operator_discarded_the_job() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let id = JobId::random();
    store.insert(record(id, now_ms()));
    let discarded = store.discard(id, now_ms()).await;
    assert_eq!(
        discarded.unwrap(),
        jobline_core::store::DiscardOutcome::Discarded
    );
    let reply = api.handle(get(id)).await;
    assert_eq!(reply.response.status(), StatusCode::OK);
    let view = body(&reply);
    assert_eq!(view["status"], "failed");
    assert_eq!(view["discarded"], true);
    assert_eq!(view["deadLettered"], false);
}

fn cancel(id: JobId) -> Request {
    http::Request::builder()
        .method("POST")
        .uri(format!("/jobs/{id}/cancel"))
        .body(Body::Empty)
        .unwrap()
}

#[tokio::test]
async fn a_cancel_ends_a_queued_job_at_once_and_repeats_harmlessly() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let id = JobId::random();
    store.insert(record(id, now_ms()));
    let first = api.handle(cancel(id)).await;
    assert_eq!(first.response.status(), StatusCode::OK);
    assert_eq!(body(&first)["status"], "cancelled");
    assert!(body(&first)["finishedAt"].is_string());
    assert_eq!(first.metrics.total(Metric::JobsCancelled), 1.0);
    let again = api.handle(cancel(id)).await;
    assert_eq!(again.response.status(), StatusCode::OK);
    assert_eq!(body(&again)["status"], "cancelled");
    assert_eq!(
        again.metrics.total(Metric::JobsCancelled),
        0.0,
        "counted once"
    );
    assert_eq!(store.job(id).unwrap().state, JobState::Cancelled);
}

#[tokio::test]
async fn a_cancel_of_a_running_job_asks_its_worker_and_the_status_shows_it() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let id = JobId::random();
    let mut running = record(id, now_ms());
    running.claim(now_ms(), now_ms() + 60_000, "t");
    running.progress = Some(jobline_core::job::Progress::new(0.5, "half way", 1_000));
    running.checkpoint = Some(json!({"next": 5}));
    running.checkpoint_at = Some(2_000);
    store.insert(running);
    let reply = api.handle(cancel(id)).await;
    assert_eq!(reply.response.status(), StatusCode::OK);
    assert_eq!(reply.response.headers()[RETRY_AFTER], "2");
    let view = body(&reply);
    assert_eq!(view["status"], "running");
    assert_eq!(view["cancelRequested"], true);
    assert_eq!(reply.metrics.total(Metric::JobsCancelled), 0.0, "not yet");
    let status = body(&api.handle(get(id)).await);
    assert_eq!(status["cancelRequested"], true);
    assert_eq!(
        status["progress"],
        json!({"fraction": 0.5, "message": "half way", "updatedAt": "1970-01-01T00:00:01.000Z"})
    );
    assert_eq!(status["checkpointAt"], "1970-01-01T00:00:02.000Z");
    assert_eq!(status["continuations"], 0);
}

#[tokio::test]
async fn a_cancel_of_a_finished_or_anothers_job_is_refused() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let id = JobId::random();
    let mut done = record(id, now_ms());
    done.state = JobState::Succeeded;
    store.insert(done);
    let reply = api.handle(cancel(id)).await;
    assert_eq!(reply.response.status(), StatusCode::CONFLICT);
    assert_eq!(body(&reply)["error"]["status"], "succeeded");
    assert_eq!(store.job(id).unwrap().state, JobState::Succeeded);

    let theirs = JobId::random();
    let mut other = record(theirs, now_ms());
    other.owner = "someone-else".into();
    store.insert(other);
    let reply = api.handle(cancel(theirs)).await;
    assert_eq!(reply.response.status(), StatusCode::NOT_FOUND);
    assert_eq!(store.job(theirs).unwrap().state, JobState::Queued);
    let missing = api.handle(cancel(JobId::random())).await;
    assert_eq!(missing.response.status(), StatusCode::NOT_FOUND);

    let wrong_method = http::Request::builder()
        .uri(format!("/jobs/{id}/cancel"))
        .body(Body::Empty)
        .unwrap();
    let reply = api.handle(wrong_method).await;
    assert_eq!(reply.response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.response.headers()["allow"], "POST");
}

fn list(query: &str) -> Request {
    http::Request::builder()
        .uri(format!("/jobs?{query}"))
        .body(Body::Empty)
        .unwrap()
}

#[tokio::test]
async fn a_listing_pages_through_the_callers_own_jobs_with_filters() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let mut ids = Vec::new();
    let now = now_ms();
    for i in 0..5 {
        let mut job = record(JobId::random(), now + i);
        if i % 2 == 0 {
            job.state = JobState::Succeeded;
            job.result = Some(json!({"count": i}));
        }
        ids.push(job.id);
        store.insert(job);
    }
    let mut other = record(JobId::random(), now + 10);
    other.owner = "someone-else".into();
    store.insert(other);
    let mut expired = record(JobId::random(), now + 20);
    expired.expires_at = 1;
    store.insert(expired);

    let mut listed = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let reply = api.handle(list(&query)).await;
        assert_eq!(reply.response.status(), StatusCode::OK);
        let page = body(&reply);
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        for job in jobs {
            assert!(job.get("result").is_none(), "a listing holds no results");
            listed.push(job["jobId"].as_str().unwrap().parse::<JobId>().unwrap());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(listed, ids, "newest first, own and unexpired only");

    let page = body(&api.handle(list("status=succeeded&limit=100")).await);
    let states: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded"; 3]);
    let bad = api.handle(list("limit=1000")).await;
    assert_eq!(bad.response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(&bad)["error"]["code"], "invalid_query");
}

#[tokio::test]
async fn a_delete_removes_a_finished_job_and_refuses_an_unfinished_one() {
    let (store, queue) = fakes();
    let api = api(&store, &queue, None);
    let delete = |id: JobId| {
        http::Request::builder()
            .method("DELETE")
            .uri(format!("/jobs/{id}"))
            .body(Body::Empty)
            .unwrap()
    };
    let queued = JobId::random();
    store.insert(record(queued, now_ms()));
    let reply = api.handle(delete(queued)).await;
    assert_eq!(reply.response.status(), StatusCode::CONFLICT);
    assert_eq!(body(&reply)["error"]["code"], "job_not_finished");
    assert_eq!(body(&reply)["error"]["status"], "queued");
    assert!(store.job(queued).is_some());

    let done = JobId::random();
    let mut finished = record(done, now_ms());
    finished.state = JobState::Cancelled;
    store.insert(finished);
    let reply = api.handle(delete(done)).await;
    assert_eq!(reply.response.status(), StatusCode::NO_CONTENT);
    assert!(reply.response.body().is_empty());
    assert!(store.job(done).is_none());
    assert_eq!(
        api.handle(get(done)).await.response.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.handle(delete(done)).await.response.status(),
        StatusCode::NOT_FOUND
    );
}

/// `GET /webhook-secret` as the IAM caller `user_arn`.
fn secret_request(user_arn: &str) -> Request {
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    };
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.user_arn = Some(user_arn.to_owned());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    let mut request = http::Request::builder()
        .uri("/webhook-secret")
        .body(Body::Empty)
        .unwrap();
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    request
}

#[tokio::test]
async fn each_caller_gets_its_own_webhook_secret_and_none_where_webhooks_are_off() {
    use jobline_webhooks::{FixedKeys, MasterKeys, caller_secret};
    let master = b"m".repeat(48);
    let (store, queue) = fakes();
    let off = api(&store, &queue, None);
    let reply = off
        .handle(secret_request("arn:aws:iam::1:user/alice"))
        .await;
    assert_eq!(reply.response.status(), 422);
    assert_eq!(body(&reply)["error"]["code"], "webhooks_disabled");
    let hooked = submit(None);
    let (parts, _) = hooked.into_parts();
    let with_hook = Request::from_parts(
        parts,
        Body::from(r#"{"type":"primes","callbackUrl":"https://hooks.example.com/"}"#),
    );
    let reply = off.handle(with_hook).await;
    assert_eq!(body(&reply)["error"]["code"], "webhooks_disabled");
    assert!(store.snapshot().is_empty(), "nothing was written");

    let on = api(&store, &queue, None)
        .with_webhook_keys(Arc::new(FixedKeys(MasterKeys::new(master.clone(), None))));
    let mut secrets = Vec::new();
    for user in ["arn:aws:iam::1:user/alice", "arn:aws:iam::1:user/bob"] {
        let reply = on.handle(secret_request(user)).await;
        assert_eq!(reply.response.status(), 200);
        assert_eq!(reply.response.headers()[CACHE_CONTROL], "no-store");
        let secret = body(&reply)["secret"].as_str().unwrap().to_owned();
        assert_eq!(
            secret,
            caller_secret(&master, &format!("iam:{user}")).to_whsec()
        );
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1], "one caller cannot sign as another");
    let post = http::Request::builder()
        .method("POST")
        .uri("/webhook-secret")
        .body(Body::Empty)
        .unwrap();
    assert_eq!(on.handle(post).await.response.status(), 405);
}

//! The whole pipeline against moto: submit through the API, deliver through
//! the event-source poller, process in the worker, read the status back.

use http::StatusCode;
use jobline_core::{JobId, JobMessage, JobQueue, JobState, JobTypes, Metric, ReadStore};
use jobline_testkit::testing::now_ms;
use jobline_tests::TestEnv;
use jobline_tests::fixtures::Flaky;
use jobline_tests::recording::RecordingQueue;
use jobline_tests::stack::poll_until_received;
use lambda_http::Body;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn submit(api: &jobline_api::Api, body: Value) -> JobId {
    let request = http::Request::builder()
        .method("POST")
        .uri("/jobs")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = api.handle(request).await;
    assert_eq!(reply.response.status(), StatusCode::ACCEPTED);
    let body: Value = serde_json::from_slice(reply.response.body().as_ref()).unwrap();
    body["jobId"].as_str().unwrap().parse().unwrap()
}

async fn status(api: &jobline_api::Api, id: JobId) -> Value {
    let request = http::Request::builder()
        .uri(format!("/jobs/{id}"))
        .body(Body::Empty)
        .unwrap();
    let reply = api.handle(request).await;
    assert_eq!(reply.response.status(), StatusCode::OK);
    serde_json::from_slice(reply.response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn submit_process_succeeded() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let api = env.api(jobline_jobs::builtin());
    let poller = env.poller(env.worker(jobline_jobs::builtin()), Duration::ZERO);
    let id = submit(&api, json!({"type": "primes", "payload": {"upTo": 1000}})).await;
    let outcome = poll_until_received(&poller, 5).await;
    assert_eq!(outcome.received, 1);
    assert!(outcome.failed.is_empty());
    let view = status(&api, id).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        view["result"],
        json!({"upTo": 1000, "count": 168, "largest": 997})
    );
    assert_eq!(view["attempts"], 1);
    assert!(view["startedAt"].is_string() && view["finishedAt"].is_string());
    assert_eq!(view["error"], Value::Null);
    // The successful message was deleted: nothing comes back.
    assert_eq!(poller.poll_once().await.unwrap().received, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_delivery_runs_the_job_once() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let flaky = Flaky::failing(0);
    let types = JobTypes::new().with(flaky.clone());
    let api = env.api(types.clone());
    let worker = env.worker(types);
    let poller = env.poller(worker, Duration::ZERO);
    let id = submit(&api, json!({"type": "flaky", "payload": {"n": 1}})).await;
    poll_until_received(&poller, 5).await;
    // SQS delivers at least once: the same job id arrives again.
    env.queue().send(&JobMessage::new(id)).await.unwrap();
    let duplicate = poll_until_received(&poller, 5).await;
    assert!(duplicate.failed.is_empty(), "a duplicate is acknowledged");
    assert_eq!(flaky.runs.load(Ordering::SeqCst), 1, "ran once");
    let job = env.store().get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_costs_one_failed_write_and_is_counted() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let worker = env.worker(jobline_jobs::builtin());
    let api = env.api(jobline_jobs::builtin());
    let id = submit(&api, json!({"type": "primes", "payload": {"upTo": 10}})).await;
    let record = |message_id: &str| {
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.message_id = Some(message_id.into());
        record.body = Some(JobMessage::new(id).encode());
        record
    };
    let deadline = now_ms() + 30_000;
    let mut first = aws_lambda_events::event::sqs::SqsEvent::default();
    first.records = vec![record("m1")];
    let outcome = worker.process_batch(first, deadline).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.metrics.total(Metric::JobsSucceeded), 1.0);
    let mut again = aws_lambda_events::event::sqs::SqsEvent::default();
    again.records = vec![record("m2")];
    let outcome = worker.process_batch(again, deadline).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.metrics.total(Metric::DuplicateDeliveries), 1.0);
    assert_eq!(outcome.metrics.total(Metric::JobsSucceeded), 0.0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_batch_of_ten_reports_exactly_the_malformed_and_the_failing_record() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let flaky = Flaky::failing(1);
    let types = jobline_jobs::builtin().with(flaky.clone());
    let api = env.api(types.clone());
    let poller = env.poller(env.worker(types), Duration::from_secs(3));
    let mut good = Vec::new();
    for n in 0..8 {
        good.push(
            submit(
                &api,
                json!({"type": "primes", "payload": {"upTo": 100 + n}}),
            )
            .await,
        );
    }
    let failing = submit(&api, json!({"type": "flaky"})).await;
    // A body that is not a job message, sent straight to the queue.
    env.clients
        .sqs
        .send_message()
        .queue_url(&env.queues.queue_url)
        .message_body("not a job message")
        .send()
        .await
        .unwrap();

    let mut received = 0;
    let mut failed = Vec::new();
    while received < 10 {
        let outcome = poll_until_received(&poller, 5).await;
        received += outcome.received;
        failed.extend(outcome.failed);
    }
    assert_eq!(received, 10);
    assert_eq!(failed.len(), 2, "exactly two failures: {failed:?}");
    for id in good {
        assert_eq!(
            env.store().get(id).await.unwrap().unwrap().state,
            JobState::Succeeded
        );
    }
    let retried = env.store().get(failing).await.unwrap().unwrap();
    assert_eq!(retried.state, JobState::Queued, "released for a retry");
    assert_eq!(retried.error.as_deref(), Some("flaky failure on run 1"));
    // The two failed messages come back (after the backoff), nothing else.
    let mut again = 0;
    for _ in 0..10 {
        again += poller.poll_once().await.unwrap().received;
        if again >= 2 {
            break;
        }
    }
    assert_eq!(again, 2);
    assert_eq!(
        env.store().get(failing).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    env.cleanup().await;
}

/// The claims of a batch hide their messages in shared
/// `ChangeMessageVisibilityBatch` requests, through SQS (on the emulator):
/// each message once, and every job runs. (How many requests depends on
/// how far apart the claims' answers come: the emulator answers them one
/// by one, so no count is asserted here; the worker's unit tests count
/// them.)
#[tokio::test]
async fn a_batch_of_ten_hides_each_claimed_message_once_in_batch_requests() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let queue = RecordingQueue::new(env.queue());
    let config = jobline_core::WorkerConfig {
        concurrency: 10,
        ..env.config.worker.clone()
    };
    let worker = jobline_worker::Worker::new(
        std::sync::Arc::new(env.store()),
        std::sync::Arc::new(queue.clone()),
        jobline_jobs::builtin(),
        config,
    );
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(
            env.enqueue("anonymous", "primes", json!({"upTo": 100 + n}))
                .await,
        );
    }
    let receive = jobline_core::queue::Receive {
        max_messages: 10,
        wait_secs: 1,
        visibility_secs: 30,
    };
    let messages = jobline_tests::receive_all(&env.queue(), receive).await;
    assert_eq!(messages.len(), 10);
    let event = jobline_tests::stack::sqs_event(&messages);
    let outcome = worker.process_batch(event, now_ms() + 30_000).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    for id in ids {
        assert_eq!(
            env.store().get(id).await.unwrap().unwrap().state,
            JobState::Succeeded
        );
    }
    let batches = queue.batches();
    eprintln!("the claims' hides, entries per request: {batches:?}");
    assert_eq!(batches.iter().sum::<usize>(), 10, "{batches:?}");
    // Until the lease's end (whole seconds) and one second.
    let period = Duration::from_secs(u64::from(env.config.worker.heartbeat_secs));
    let lease_secs = u32::try_from(jobline_worker::heartbeat::lease_ms(period) / 1000).unwrap();
    assert_eq!(queue.changes(), [lease_secs + 1; 10], "each hidden once");
    env.cleanup().await;
}

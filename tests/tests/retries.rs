//! Retries, dead-lettering, leases and metrics, against moto's SQS redrive.

use jobline_cli::dlq::{DeadLetterQueue, Selection};
use jobline_core::limits::QueueSettings;
use jobline_core::queue::Receive;
use jobline_core::{
    Completion, JobId, JobMessage, JobQueue, JobRecord, JobState, JobTypes, Metric, ReadStore,
    WorkerConfig, WorkerStore,
};
use jobline_local::poller::PollOutcome;
use jobline_testkit::testing::now_ms;
use jobline_tests::fixtures::{Broken, Flaky};
use jobline_tests::recording::RecordingQueue;
use jobline_tests::{TestEnv, test_queue_settings};
use jobline_worker::Worker;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Polls until `done` holds for the job, for at most `polls` polls.
async fn poll_until(
    env: &TestEnv,
    poller: &jobline_local::poller::Poller,
    id: JobId,
    polls: usize,
    done: impl Fn(&JobRecord) -> bool,
) -> (JobRecord, Vec<PollOutcome>) {
    let mut outcomes = Vec::new();
    for _ in 0..polls {
        outcomes.push(poller.poll_once().await.unwrap());
        let job = env.store().get(id).await.unwrap().unwrap();
        if done(&job) {
            return (job, outcomes);
        }
    }
    panic!("job {id} did not get there in {polls} polls: {outcomes:?}");
}

/// The visibility a claim sets at once under `config`: its lease (two
/// heartbeats, the stop grace and a second) and a second.
fn lease_visibility_secs(config: &WorkerConfig) -> u32 {
    let period = Duration::from_secs(u64::from(config.heartbeat_secs));
    let lease_secs = jobline_worker::heartbeat::lease_ms(period) / 1000;
    u32::try_from(lease_secs).unwrap() + 1
}

fn fast_retries(env: &TestEnv) -> WorkerConfig {
    WorkerConfig {
        retry_base_delay_secs: 2,
        retry_max_delay_secs: 2,
        ..env.config.worker.clone()
    }
}

#[tokio::test]
async fn a_job_that_fails_twice_then_succeeds_has_three_attempts() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let queue = RecordingQueue::new(env.queue());
    let types = JobTypes::new().with(Flaky::failing(2));
    let worker = Arc::new(Worker::new(
        Arc::new(env.store()),
        Arc::new(queue.clone()),
        types,
        fast_retries(&env),
    ));
    // The poller receives with a 30 s visibility timeout; only the worker's
    // ChangeMessageVisibility can bring the message back sooner.
    let poller = env.poller(worker, Duration::ZERO);
    let id = env.enqueue("anonymous", "flaky", json!({})).await;
    let started = Instant::now();
    let (job, outcomes) = poll_until(&env, &poller, id, 20, |j| j.state.is_finished()).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.result, Some(json!({"run": 3, "echo": {}})));
    assert_eq!(job.error, None, "a success clears the last error");
    let failures: usize = outcomes.iter().map(|o| o.failed.len()).sum();
    assert_eq!(failures, 2);
    // Each claim hides the message for its lease; each failure then sets
    // the backoff.
    let lease = lease_visibility_secs(&fast_retries(&env));
    let changes = queue.changes();
    assert_eq!(
        changes,
        [lease, changes[1], lease, changes[3], lease],
        "a lease per claim, a backoff per failure"
    );
    assert!(
        [changes[1], changes[3]].iter().all(|s| (1..=2).contains(s)),
        "{changes:?}"
    );
    assert_eq!(
        queue.batches(),
        [1, 1, 1],
        "each claim's lease in a ChangeMessageVisibilityBatch, the backoffs alone"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the retries came back before the 30 s visibility timeout"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_job_that_always_fails_is_dead_lettered_and_its_record_says_so() {
    jobline_tests::require_emulator!();
    let settings = test_queue_settings(QueueSettings::TEMPLATE.visibility_timeout_secs, 3);
    let env = TestEnv::with_settings(settings).await;
    let broken = Broken::new();
    let worker = env.worker_with(JobTypes::new().with(broken.clone()), fast_retries(&env));
    let poller = env.poller(worker, Duration::ZERO);
    let id = env
        .enqueue(
            "anonymous",
            "broken",
            json!({"to": "https://example.com/hook"}),
        )
        .await;
    let (job, _) = poll_until(&env, &poller, id, 20, |j| j.state.is_finished()).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(job.dead_lettered);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error.as_deref(), Some("the downstream service is down"));

    // SQS moves the message on its next receive.
    assert_eq!(poller.poll_once().await.unwrap().received, 0);
    let dead = env
        .dlq()
        .receive(Receive {
            max_messages: 10,
            wait_secs: 1,
            visibility_secs: 0,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(JobMessage::decode(&dead[0].body).unwrap().job_id, id);

    // Once the handler is fixed, `jobline dlq replay` brings the job back.
    broken.fix();
    let (store, queue, dlq) = (env.store(), env.queue(), env.dlq());
    let tools = DeadLetterQueue::new(&dlq, &queue, &store);
    let report = tools.replay(&Selection::default(), false).await.unwrap();
    assert_eq!((report.replayed(), report.failed()), (1, 0));
    let (job, _) = poll_until(&env, &poller, id, 10, |j| j.state.is_finished()).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(json!({"fixed": true})));
    assert_eq!(job.replays, 1);
    assert!(!job.dead_lettered);
    assert!(
        tools.list(None).await.unwrap().is_empty(),
        "the DLQ is empty"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_dlq_redrive_runs_the_dead_lettered_job_again_and_a_stray_copy_does_not() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let poller = env.poller(env.worker(jobline_jobs::builtin()), Duration::ZERO);
    // The original message stays in the queue: a stray copy.
    let id = env
        .enqueue("anonymous", "primes", json!({"upTo": 10}))
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The job's last delivery dead-lettered it.
    let (store, now) = (env.store(), now_ms());
    store
        .claim(id, now, now + 60_000, 1, "last-delivery")
        .await
        .unwrap();
    let dead = Completion::Failed {
        error: "the downstream service is down".into(),
        dead_lettered: true,
    };
    store
        .finish(id, 1, "last-delivery", &dead, now)
        .await
        .unwrap();
    let dead_lettered = store.get(id).await.unwrap().unwrap();

    let outcome = jobline_tests::stack::poll_until_received(&poller, 5).await;
    assert!(outcome.failed.is_empty(), "the stray copy is acknowledged");
    assert_eq!(
        store.get(id).await.unwrap(),
        Some(dead_lettered),
        "and runs nothing"
    );

    // moto has no StartMessageMoveTask ("start DLQ redrive"): its effect is
    // a new message with the same body, sent after the job was dead-lettered.
    tokio::time::sleep(Duration::from_millis(20)).await;
    env.queue().send(&JobMessage::new(id)).await.unwrap();
    let (job, outcomes) = poll_until(&env, &poller, id, 10, |j| j.state.is_finished()).await;
    assert!(outcomes.iter().all(|o| o.failed.is_empty()), "{outcomes:?}");
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!((job.attempts, job.replays), (2, 1));
    assert!(!job.dead_lettered);
    env.cleanup().await;
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let queue = RecordingQueue::new(env.queue());
    let worker = Arc::new(Worker::new(
        Arc::new(env.store()),
        Arc::new(queue.clone()),
        jobline_jobs::builtin(),
        fast_retries(&env),
    ));
    let poller = env.poller(worker, Duration::ZERO);
    let id = env
        .enqueue("anonymous", "csv-stats", json!({"csv": "a,b\n1\n"}))
        .await;
    let (job, outcomes) = poll_until(&env, &poller, id, 5, |j| j.state.is_finished()).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(!job.dead_lettered);
    assert_eq!(job.attempts, 1);
    assert_eq!(
        job.error.as_deref(),
        Some("row 2 has 1 fields, the header has 2")
    );
    assert!(outcomes.iter().all(|o| o.failed.is_empty()), "acknowledged");
    assert_eq!(
        queue.changes(),
        [lease_visibility_secs(&fast_retries(&env))],
        "the claim's lease, no backoff"
    );
    assert_eq!(queue.batches(), [1], "the lease in a batch request");
    for _ in 0..3 {
        assert_eq!(
            poller.poll_once().await.unwrap().received,
            0,
            "never delivered again"
        );
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_crashed_attempts_lease_is_reclaimed_after_it_expires() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let worker = env.worker(jobline_jobs::builtin());
    let poller = env.poller(worker, Duration::ZERO);
    let id = env
        .enqueue("anonymous", "primes", json!({"upTo": 50}))
        .await;
    // A worker claimed the job and died: its lease runs 3 s more.
    let now = now_ms();
    env.store()
        .claim(id, now, now + 3_000, 1, "crashed")
        .await
        .unwrap();
    let (_, outcomes) = poll_until(&env, &poller, id, 1, |j| j.state == JobState::Running).await;
    assert_eq!(
        outcomes[0].failed.len(),
        1,
        "a live lease elsewhere is retried later"
    );
    let (job, _) = poll_until(&env, &poller, id, 15, |j| j.state.is_finished()).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 2);
    assert!(now_ms() >= now + 3_000, "not before the lease ran out");
    env.cleanup().await;
}

/// Checks one EMF document against the specification's rules.
fn assert_valid_emf(document: &Value) {
    let aws = &document["_aws"];
    assert!(aws["Timestamp"].is_i64(), "Timestamp: {document}");
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    for directive in directives {
        assert!(
            directive["Namespace"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        );
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            let set = set.as_array().expect("a dimension set");
            assert!(set.len() <= 30);
            for key in set {
                let key = key.as_str().expect("a dimension name");
                assert!(
                    document[key].is_string(),
                    "dimension {key} has a string value"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(metrics.len() <= 100, "at most 100 metrics");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            let value = &document[name];
            let values = value
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![value.clone()]);
            assert!(!values.is_empty() && values.len() <= 100, "{name}: {value}");
            assert!(values.iter().all(Value::is_number), "{name}: {value}");
            assert!(metric["Unit"].is_string());
        }
    }
}

#[tokio::test]
async fn one_invocations_emf_is_valid_and_counts_what_happened() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let types = jobline_jobs::builtin().with(Flaky::failing(1));
    let worker = env.worker_with(types, fast_retries(&env));
    let mut ids = Vec::new();
    for payload in [json!({"upTo": 10}), json!({"upTo": 20})] {
        ids.push(env.enqueue("anonymous", "primes", payload).await);
    }
    ids.push(
        env.enqueue("anonymous", "csv-stats", json!({"csv": "a\nx\n"}))
            .await,
    );
    ids.push(env.enqueue("anonymous", "flaky", json!({})).await);
    let messages = poller_receive_all(&env, 4).await;
    let event = jobline_tests::stack::sqs_event(&messages);
    let outcome = worker.process_batch(event, now_ms() + 30_000).await;
    assert_eq!(outcome.response.batch_item_failures.len(), 1);
    let metrics = outcome.metrics;
    assert_eq!(metrics.total(Metric::JobsSucceeded), 2.0);
    assert_eq!(metrics.total(Metric::JobsFailed), 1.0);
    assert_eq!(metrics.total(Metric::JobsRetried), 1.0);
    assert_eq!(metrics.total(Metric::JobsDeadLettered), 0.0);
    let documents = metrics.documents(jobline_core::metrics::NAMESPACE, now_ms());
    assert_eq!(documents.len(), 3, "one per job type");
    for document in &documents {
        assert_valid_emf(document);
        let line = document.to_string();
        assert!(!line.contains('\n'), "one line per document");
    }
    let primes = documents.iter().find(|d| d["JobType"] == "primes").unwrap();
    assert_eq!(primes["JobsSucceeded"], 2.0);
    assert_eq!(primes["QueueTimeMs"].as_array().unwrap().len(), 2);
    assert_eq!(primes["JobDurationMs"].as_array().unwrap().len(), 2);
    let csv = documents
        .iter()
        .find(|d| d["JobType"] == "csv-stats")
        .unwrap();
    assert_eq!(csv["JobsFailed"], 1.0);
    let flaky = documents.iter().find(|d| d["JobType"] == "flaky").unwrap();
    assert_eq!(flaky["JobsRetried"], 1.0);

    let duplicates = worker
        .process_batch(
            jobline_tests::stack::sqs_event(&messages[..2]),
            now_ms() + 30_000,
        )
        .await;
    assert_eq!(duplicates.metrics.total(Metric::DuplicateDeliveries), 2.0);
    env.cleanup().await;
}

async fn poller_receive_all(
    env: &TestEnv,
    count: usize,
) -> Vec<jobline_core::queue::ReceivedMessage> {
    let mut messages = Vec::new();
    for _ in 0..10 {
        messages.extend(
            env.queue()
                .receive(Receive {
                    max_messages: 10,
                    wait_secs: 1,
                    visibility_secs: 30,
                })
                .await
                .unwrap(),
        );
        if messages.len() >= count {
            break;
        }
    }
    assert_eq!(messages.len(), count);
    messages
}

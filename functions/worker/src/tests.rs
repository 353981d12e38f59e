//! The worker's unit tests: [`Worker::process_record`] and
//! [`Worker::process_batch`] against the in-memory store and queue, with job
//! types that fail, panic or overrun on purpose.

use super::*;
use jobline_core::JobRequest;
use jobline_core::deadline::Deadlines;
use jobline_core::job_types::JobContext;
use jobline_core::limits::MAX_ITEM_BYTES;
use jobline_core::limits::QueueSettings;
use jobline_core::queue::Receive;
use jobline_core::results::result_key;
use jobline_core::{
    CancelOutcome, CancelStore, Completion, JobError, JobHandler, JobId, JobRecord, JobState,
    Metric, OperatorStore, ReplayStore,
};
use jobline_dynamodb::item::{item_from_record, item_size};
use jobline_testkit::memory::queue::MemoryQueue;
use jobline_testkit::memory::store::MemoryStore;
use jobline_testkit::testing;
use jobline_testkit::testing::now_ms;
use serde_json::{Value, json};
use std::sync::Arc;

/// Fails as its payload says: `{"fail": "retry" | "permanent" | "panic" |
/// "hang" (until cancelled) | "overrun" (ignores cancellation)}`, or
/// returns a 60 KiB result for `{"fail": "big"}`; `{"fail": "steps",
/// "steps": n, "perRun"?: k}` is a long job of `n` steps of 400 ms, each
/// reported and checkpointed, yielding after `k` steps or when cancelled.
struct Scripted;

#[async_trait::async_trait]
impl JobHandler for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        match payload["fail"].as_str() {
            Some("retry") => Err(JobError::Retryable("try later".into())),
            Some("permanent") => Err(JobError::Permanent("bad input".into())),
            Some("panic") => panic!("handler bug"),
            Some("big") => Ok(json!("r".repeat(60 * 1024))),
            Some("huge") => Ok(json!("h".repeat(200 * 1024))),
            Some("steps") => {
                let steps = payload["steps"].as_u64().unwrap_or(1);
                let per_run = payload["perRun"].as_u64().unwrap_or(u64::MAX);
                let mut step = ctx.checkpoint().map_or(0, |c| c["step"].as_u64().unwrap());
                let mut this_run = 0;
                while step < steps {
                    if ctx.is_cancelled() || this_run == per_run {
                        return Err(JobError::Continue);
                    }
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    step += 1;
                    this_run += 1;
                    ctx.save_checkpoint(json!({ "step": step }))?;
                    ctx.progress(step as f64 / steps as f64, &format!("step {step}"));
                }
                Ok(json!({ "steps": steps }))
            }
            Some("hang") => {
                ctx.cancelled().await;
                Err(JobError::Retryable("cancelled".into()))
            }
            Some("overrun") => {
                let ignored = tokio::task::spawn_blocking(|| {
                    std::thread::sleep(Duration::from_secs(3));
                });
                drop(ignored.await);
                Ok(json!("late"))
            }
            _ => Ok(json!({"ok": true, "attempt": ctx.attempt})),
        }
    }
}

/// The visibility a claim sets at once: the fixture's lease (two one-second
/// heartbeats, the stop grace and the margin, 4 s) and one second.
const LEASE_VISIBILITY_SECS: u32 = 5;

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    worker: Worker,
}

fn fixture() -> Fixture {
    fixture_with(4)
}

/// The fixture, running `concurrency` jobs at once.
fn fixture_with(concurrency: usize) -> Fixture {
    let queue = Arc::new(MemoryQueue::new());
    let config = WorkerConfig {
        max_receive_count: 3,
        retry_base_delay_secs: 10,
        retry_max_delay_secs: 100,
        concurrency,
        heartbeat_secs: 1,
        ..WorkerConfig::default()
    };
    let deadlines = Deadlines::new(QueueSettings::TEMPLATE, &config);
    let store = Arc::new(MemoryStore::new().with_deadlines(deadlines));
    let worker = Worker::new(
        store.clone(),
        queue.clone(),
        JobTypes::new().with(Scripted),
        config,
    );
    Fixture {
        store,
        queue,
        worker,
    }
}

impl Fixture {
    fn job(&self, payload: Value) -> JobId {
        let request = JobRequest {
            job_type: "scripted".into(),
            payload,
            callback_url: None,
        };
        let job = JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 1);
        self.store.insert(job.clone());
        job.id
    }

    async fn deliver(&self, body: &str, receive_count: u32) -> (Disposition, Metrics) {
        let mut record = SqsMessage::default();
        record.message_id = Some("m".into());
        record.receipt_handle = Some("r".into());
        record.body = Some(body.into());
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        self.deliver_record(&record, now_ms() + 30_000).await
    }

    async fn deliver_record(
        &self,
        record: &SqsMessage,
        deadline_ms: i64,
    ) -> (Disposition, Metrics) {
        let hides = self.worker.claim_hides();
        let (_, disposition, metrics) = self
            .worker
            .process_record(record, &hides, now_ms(), deadline_ms)
            .await;
        (disposition, metrics)
    }

    async fn deliver_job(&self, id: JobId, receive_count: u32) -> (Disposition, Metrics) {
        self.deliver(&JobMessage::new(id).encode(), receive_count)
            .await
    }
}

#[tokio::test]
async fn a_job_is_claimed_run_and_completed() {
    let f = fixture();
    let id = f.job(json!({}));
    let (disposition, metrics) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(json!({"ok": true, "attempt": 1})));
    assert_eq!(job.attempts, 1);
    assert_eq!(metrics.total(Metric::JobsSucceeded), 1.0);
    assert_eq!(
        f.queue.visibility_changes(),
        [("r".to_owned(), LEASE_VISIBILITY_SECS)],
        "hidden for the short lease at once"
    );
}

#[tokio::test]
async fn an_early_message_of_a_scheduled_job_waits_again_and_never_runs_it_early() {
    let f = fixture();
    let request = JobRequest {
        job_type: "scripted".into(),
        payload: json!({}),
        callback_url: None,
    };
    let run_at = now_ms() + 45_000;
    let job = JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 1)
        .delayed_until(run_at);
    f.store.insert(job.clone());
    let (disposition, _) = f.deliver_job(job.id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let stored = f.store.job(job.id).unwrap();
    assert_eq!((stored.state, stored.attempts), (JobState::Scheduled, 0));
    let delays = f.queue.delays();
    assert_eq!(delays.len(), 1, "sent again, delayed");
    assert_eq!(delays[0].0, JobMessage::new(job.id));
    assert!(
        (44..=45).contains(&delays[0].1),
        "until it is due: {delays:?}"
    );
}

#[tokio::test]
async fn a_retryable_failure_releases_the_job_and_backs_off() {
    let f = fixture();
    let id = f.job(json!({"fail": "retry"}));
    let (disposition, metrics) = f.deliver_job(id, 2).await;
    assert_eq!(disposition, Disposition::Retry);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.error.as_deref(), Some("try later"));
    assert_eq!(metrics.total(Metric::JobsRetried), 1.0);
    let changes = f.queue.visibility_changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].1, LEASE_VISIBILITY_SECS);
    assert!(
        (10..=20).contains(&changes[1].1),
        "backoff for receive 2: {changes:?}"
    );
}

#[tokio::test]
async fn a_claim_before_the_last_delivery_keeps_the_jobs_bound() {
    let f = fixture();
    // The bound set when the job was queued holds every delivery (see
    // jobline_core::deadline), so a claim that is not the last writes no
    // index entry: the retried job is due as it was.
    for receive_count in [1, 2] {
        let id = f.job(json!({"fail": "retry"}));
        let queued = f.store.due_at(id).expect("a queued job is due");
        f.deliver_job(id, receive_count).await;
        assert_eq!(
            f.store.due_at(id),
            Some(queued),
            "receive {receive_count}: a returned job stays due as it was queued"
        );
    }
}

#[tokio::test]
async fn the_last_delivery_fails_the_job_as_dead_lettered() {
    let f = fixture();
    let id = f.job(json!({"fail": "retry"}));
    let (disposition, metrics) = f.deliver_job(id, 3).await;
    assert_eq!(
        disposition,
        Disposition::Retry,
        "left for SQS to dead-letter"
    );
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.dead_lettered);
    assert_eq!(
        f.store.due_at(id),
        None,
        "a failed job leaves the due index"
    );
    assert_eq!(metrics.total(Metric::JobsDeadLettered), 1.0);
    assert_eq!(
        f.queue.visibility_changes(),
        [("r".to_owned(), LEASE_VISIBILITY_SECS), ("r".to_owned(), 0)]
    );
}

/// The last delivery's claim is tried again when the store could not be
/// reached (given up, the message would go to the DLQ with the job
/// unclaimed until the sweeper's bound, days away); an earlier delivery's
/// is left to the next delivery.
#[tokio::test]
async fn a_failed_claim_is_tried_again_on_the_last_delivery_only() {
    let f = fixture();
    let last = f.worker.config.max_receive_count;
    let id = f.job(json!({}));
    f.store.fail_next_writes(1);
    let (disposition, _) = f.deliver_job(id, last - 1).await;
    assert_eq!(disposition, Disposition::Retry, "left to the next delivery");
    assert_eq!(f.store.job(id).unwrap().state, JobState::Queued);

    f.store.fail_next_writes(2);
    let (disposition, _) = f.deliver_job(id, last).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));

    // Three failed tries in all: the delivery gives up, as before.
    let id = f.job(json!({}));
    f.store.fail_next_writes(3);
    let (disposition, _) = f.deliver_job(id, last).await;
    assert_eq!(disposition, Disposition::Retry);
    assert_eq!(f.store.job(id).unwrap().state, JobState::Queued);
}

/// A last-delivery claim that landed with its answer lost is found by the
/// next try: the job runs once, as one attempt.
#[tokio::test]
async fn a_last_delivery_claim_whose_answer_was_lost_runs_the_job_once() {
    let f = fixture();
    let last = f.worker.config.max_receive_count;
    let id = f.job(json!({}));
    f.store.lose_next_answers(1);
    let (disposition, _) = f.deliver_job(id, last).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
}

#[tokio::test]
async fn a_permanent_failure_is_acknowledged() {
    let f = fixture();
    let id = f.job(json!({"fail": "permanent"}));
    let (disposition, metrics) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!((job.state, job.dead_lettered), (JobState::Failed, false));
    assert_eq!(job.error.as_deref(), Some("bad input"));
    assert_eq!(metrics.total(Metric::JobsFailed), 1.0);
}

#[tokio::test]
async fn a_panicking_handler_fails_only_its_job() {
    let f = fixture();
    let id = f.job(json!({"fail": "panic"}));
    let (disposition, _) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Retry);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.error.as_deref(), Some("the job's handler panicked"));
}

#[tokio::test]
async fn an_attempt_is_cut_off_before_the_invocation_deadline() {
    let f = fixture();
    let id = f.job(json!({"fail": "hang"}));
    let mut record = SqsMessage::default();
    record.body = Some(JobMessage::new(id).encode());
    let deadline = now_ms() + 3_300;
    let (disposition, _) = f.deliver_record(&record, deadline).await;
    assert!(now_ms() < deadline, "stopped before the deadline");
    assert_eq!(disposition, Disposition::Retry);
    let job = f.store.job(id).unwrap();
    assert!(job.error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn a_handler_that_ignores_its_deadline_keeps_its_job_and_ends_the_process() {
    let f = fixture();
    let id = f.job(json!({"fail": "overrun"}));
    let deadline = now_ms() + 3_300;
    let mut event = SqsEvent::default();
    let mut record = SqsMessage::default();
    record.message_id = Some("slow".into());
    record.receipt_handle = Some("r".into());
    record.body = Some(JobMessage::new(id).encode());
    event.records.push(record);
    let outcome = f.worker.process_batch(event, deadline).await;
    assert!(now_ms() < deadline, "gave up before the deadline");
    assert!(outcome.must_restart);
    assert_eq!(outcome.response.batch_item_failures.len(), 1);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Running, "not returned to the queue");
    assert_eq!(job.error, None);
    let (_, secs) = f.queue.visibility_changes().pop().unwrap();
    assert!(secs >= 3, "the message waits out the lease: {secs}");
}

#[tokio::test]
async fn an_overrun_on_the_last_delivery_dead_letters_the_job() {
    let f = fixture();
    let id = f.job(json!({"fail": "overrun"}));
    let mut record = SqsMessage::default();
    record.receipt_handle = Some("r".into());
    record.body = Some(JobMessage::new(id).encode());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "3".into());
    let (disposition, _) = f.deliver_record(&record, now_ms() + 3_300).await;
    assert_eq!(disposition, Disposition::Overran);
    let job = f.store.job(id).unwrap();
    assert_eq!((job.state, job.dead_lettered), (JobState::Failed, true));
    assert_eq!(job.error.as_deref(), Some(TIMED_OUT_ERROR));
}

#[tokio::test]
async fn an_unknown_job_type_is_retried() {
    let f = fixture();
    let request = JobRequest {
        job_type: "newer".into(),
        payload: json!({}),
        callback_url: None,
    };
    let job = JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 1);
    f.store.insert(job.clone());
    assert_eq!(f.deliver_job(job.id, 1).await.0, Disposition::Retry);
    let job = f.store.job(job.id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.error.as_deref(), Some(UNKNOWN_TYPE_ERROR));
}

#[tokio::test]
async fn late_records_are_sent_again_and_their_receive_count_does_not_grow() {
    let f = fixture();
    let id = f.job(json!({}));
    // Queued a minute ago: due a minute earlier than a job queued now.
    let old = f.store.job(id).unwrap();
    f.store.insert(JobRecord {
        created_at: old.created_at - 60_000,
        ..old
    });
    let deadlines = Deadlines::new(QueueSettings::TEMPLATE, &f.worker.config);
    let sent_from = now_ms();
    f.queue.push(&JobMessage::new(id).encode());
    let receive = Receive {
        max_messages: 10,
        wait_secs: 0,
        visibility_secs: 30,
    };
    for _ in 0..3 {
        let received = f.queue.receive(receive).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(
            received[0].receive_count(),
            1,
            "never counts toward the DLQ"
        );
        let mut record = SqsMessage::default();
        record.message_id = Some(received[0].message_id.clone());
        record.receipt_handle = Some(received[0].receipt_handle.clone());
        record.body = Some(received[0].body.clone());
        record.attributes = received[0].attributes.clone();
        let mut event = SqsEvent::default();
        event.records.push(record);
        // Too late to start: the reserve and the minimum run time are past.
        let outcome = f.worker.process_batch(event, now_ms() + 2_500).await;
        assert!(outcome.response.batch_item_failures.is_empty());
        // Lambda deletes the acknowledged record.
        let undeleted = f
            .queue
            .delete(&[received[0].receipt_handle.clone()])
            .await
            .unwrap();
        assert!(undeleted.is_empty());
    }
    assert_eq!(f.queue.sent(), vec![JobMessage::new(id); 3]);
    let job = f.store.job(id).unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Queued, 0),
        "never claimed"
    );
    let due = f.store.due_at(id).unwrap();
    assert!(
        due >= deadlines.queued_at(sent_from),
        "sent again, the job is due as a new one: {due}"
    );

    // If the send fails, the record is reported failed instead.
    f.queue.set_failing_sends(true);
    let mut record = SqsMessage::default();
    record.body = Some(JobMessage::new(id).encode());
    assert_eq!(
        f.deliver_record(&record, now_ms() + 2_500).await.0,
        Disposition::Retry
    );
    // So is it if the job's bound cannot be renewed: nothing is sent.
    f.queue.set_failing_sends(false);
    f.store.set_failing(true);
    assert_eq!(
        f.deliver_record(&record, now_ms() + 2_500).await.0,
        Disposition::Retry
    );
    assert_eq!(f.queue.sent().len(), 3);
}

#[test]
fn concurrency_is_bounded_by_the_function_memory() {
    const MIB: u64 = 1024 * 1024;
    assert_eq!(memory_bound_concurrency(8, None, 60 * MIB), 8);
    // 128 MB less 48 MiB for the runtime: one 60 MiB job at a time.
    assert_eq!(memory_bound_concurrency(8, Some(128), 60 * MIB), 1);
    assert_eq!(memory_bound_concurrency(8, Some(48 + 3 * 60), 60 * MIB), 3);
    assert_eq!(memory_bound_concurrency(8, Some(10_240), 60 * MIB), 8);
    assert_eq!(
        memory_bound_concurrency(8, Some(16), 60 * MIB),
        1,
        "at least one"
    );
    assert_eq!(memory_bound_concurrency(2, Some(10_240), 0), 2);
}

#[test]
fn the_builtin_types_fit_the_smallest_function_one_at_a_time() {
    let peak = jobline_jobs::builtin().peak_memory_bytes();
    assert_eq!(memory_bound_concurrency(10, Some(128), peak), 1);
    assert!(RUNTIME_MEMORY_BYTES + peak <= 128 * 1024 * 1024);
    assert_eq!(memory_bound_concurrency(10, Some(512), peak), 8);
}

#[tokio::test]
async fn duplicates_missing_jobs_and_live_leases() {
    let f = fixture();
    let id = f.job(json!({}));
    f.deliver_job(id, 1).await;
    let (duplicate, metrics) = f.deliver_job(id, 1).await;
    assert_eq!(duplicate, Disposition::Acknowledged);
    assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);

    let missing = JobId::random();
    assert_eq!(f.deliver_job(missing, 1).await.0, Disposition::Retry);
    assert_eq!(f.deliver_job(missing, 2).await.0, Disposition::Acknowledged);

    let leased = f.job(json!({}));
    f.store
        .claim(leased, now_ms(), now_ms() + 50_000, 1, "another delivery")
        .await
        .unwrap();
    assert_eq!(f.deliver_job(leased, 1).await.0, Disposition::Retry);
    let (_, secs) = f.queue.visibility_changes().pop().unwrap();
    assert!((49..=51).contains(&secs), "retry after the lease: {secs}");
}

/// A duplicate of a job that a live attempt holds is put off until the
/// lease ends; on its last delivery it goes on as a new message instead of
/// reaching the DLQ, and once the job is finished it is acknowledged.
#[tokio::test]
async fn a_duplicate_of_a_running_job_is_never_dead_lettered() {
    let f = fixture();
    let id = f.job(json!({}));
    let claimed = f
        .store
        .claim(id, now_ms(), now_ms() + 50_000, 1, "the live attempt")
        .await
        .unwrap();
    let last = f.worker.config.max_receive_count;
    assert_eq!(f.deliver_job(id, last - 1).await.0, Disposition::Retry);
    let sent_before = f.queue.sent().len();
    let (disposition, _) = f.deliver_job(id, last).await;
    assert_eq!(
        disposition,
        Disposition::Acknowledged,
        "not left to the DLQ"
    );
    assert_eq!(
        f.queue.sent()[sent_before..],
        [JobMessage::new(id)],
        "carried on as a new message"
    );
    assert_eq!(f.store.job(id).unwrap().state, JobState::Running);
    f.store
        .finish(
            id,
            claimed.attempts,
            "the live attempt",
            &Completion::Succeeded(json!(1)),
            now_ms(),
        )
        .await
        .unwrap();
    let (disposition, metrics) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);
}

/// A record of job `id`'s message, sent at `sent_at_ms`.
fn sent_at(id: JobId, sent_at_ms: i64) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.body = Some(JobMessage::new(id).encode());
    record
        .attributes
        .insert("SentTimestamp".into(), sent_at_ms.to_string());
    record
}

#[tokio::test]
async fn a_message_sent_after_the_dead_letter_is_a_redrive_and_runs_the_job() {
    let f = fixture();
    let finished = now_ms() - 1_000;
    let dead = testing::job("scripted")
        .state(JobState::Failed)
        .attempts(3)
        .finished_at(finished)
        .error("try later")
        .dead_lettered(true)
        .build();
    f.store.insert(dead.clone());
    let deadline = now_ms() + 30_000;

    // A stray copy of the original delivery: a duplicate.
    let (disposition, metrics) = f
        .deliver_record(&sent_at(dead.id, finished - 5_000), deadline)
        .await;
    assert_eq!(disposition, Disposition::Acknowledged);
    assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);
    assert_eq!(f.store.job(dead.id), Some(dead.clone()), "left alone");

    // SQS's DLQ redrive sends the dead letter as a new message.
    let (disposition, metrics) = f
        .deliver_record(&sent_at(dead.id, finished + 500), deadline)
        .await;
    assert_eq!(disposition, Disposition::Acknowledged);
    assert_eq!(metrics.total(Metric::JobsSucceeded), 1.0);
    let job = f.store.job(dead.id).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!((job.attempts, job.replays), (4, 1));
    assert!(!job.dead_lettered);

    // The same redrive delivered again is a duplicate of the finished run.
    let (_, metrics) = f
        .deliver_record(&sent_at(dead.id, finished + 500), deadline)
        .await;
    assert_eq!(metrics.total(Metric::DuplicateDeliveries), 1.0);
    assert_eq!(f.store.job(dead.id).unwrap().replays, 1);

    // A discarded job stays failed.
    let discarded = testing::job("scripted")
        .state(JobState::Failed)
        .finished_at(finished)
        .dead_lettered(true)
        .discarded(true)
        .build();
    f.store.insert(discarded.clone());
    f.deliver_record(&sent_at(discarded.id, finished + 500), deadline)
        .await;
    assert_eq!(f.store.job(discarded.id), Some(discarded));
}

/// A `scripted` job whose claimed item (with a worker's lease and token)
/// is `room` bytes short of DynamoDB's limit, and that returns a 60 KiB
/// result.
fn job_near_the_item_limit(f: &Fixture, room: usize) -> JobId {
    // One id for both: the item's size depends on it (its state index
    // partition's shard has one or two digits).
    let id = JobId::random();
    let sized = |pad: usize| {
        let job = testing::job("scripted")
            .id(id)
            .payload(json!({"fail": "big", "pad": "x".repeat(pad)}))
            .build();
        let mut claimed = job.clone();
        claimed.claim(now_ms(), now_ms() + 30_000, &"0".repeat(32));
        (job, item_size(&item_from_record(&claimed)))
    };
    let (_, empty) = sized(0);
    let (job, size) = sized(MAX_ITEM_BYTES - room - empty);
    assert_eq!(size, MAX_ITEM_BYTES - room);
    f.store.insert(job.clone());
    job.id
}

#[tokio::test]
async fn an_outcome_the_store_refuses_as_invalid_fails_the_job_for_good() {
    let f = fixture();
    let id = job_near_the_item_limit(&f, 30 * 1024);
    let (disposition, metrics) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged, "not retried");
    let job = f.store.job(id).unwrap();
    assert_eq!((job.state, job.dead_lettered), (JobState::Failed, false));
    assert_eq!(job.error.as_deref(), Some(UNSTORABLE_ERROR));
    assert_eq!(metrics.total(Metric::JobsFailed), 1.0);
    assert_eq!(metrics.total(Metric::JobsSucceeded), 0.0);
}

#[tokio::test]
async fn when_even_the_fixed_failure_is_refused_the_message_is_dropped() {
    let f = fixture();
    // Room for the claim, none for an error and a finish time.
    let id = job_near_the_item_limit(&f, 10);
    let (disposition, _) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged, "no endless retry");
    assert_eq!(f.store.job(id).unwrap().state, JobState::Running);
    assert_eq!(f.store.writes(), 3, "a claim and two refused finishes");
}

#[tokio::test]
async fn malformed_bodies_and_store_outages_are_retried() {
    let f = fixture();
    assert_eq!(f.deliver("{}", 1).await.0, Disposition::Retry);
    let id = f.job(json!({}));
    f.store.set_failing(true);
    assert_eq!(f.deliver_job(id, 1).await.0, Disposition::Retry);
    f.store.set_failing(false);
    assert_eq!(f.store.job(id).unwrap().state, JobState::Queued);
}

#[tokio::test]
async fn a_batch_reports_only_its_failures() {
    let f = fixture();
    let ok = f.job(json!({}));
    let retry = f.job(json!({"fail": "retry"}));
    let mut event = SqsEvent::default();
    for (message_id, body) in [
        ("ok", JobMessage::new(ok).encode()),
        ("retry", JobMessage::new(retry).encode()),
        ("junk", "junk".to_owned()),
    ] {
        let mut record = SqsMessage::default();
        record.message_id = Some(message_id.into());
        record.body = Some(body);
        event.records.push(record);
    }
    let outcome = f.worker.process_batch(event, now_ms() + 30_000).await;
    let mut failed: Vec<&str> = outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["junk", "retry"]);
}

/// A batch of one record a job, message ids `m0`, `m1`…, each received
/// under `receipts[i]`.
fn batch(ids: &[JobId], receipts: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (i, (id, receipt)) in ids.iter().zip(receipts).enumerate() {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("m{i}"));
        record.receipt_handle = Some(receipt.clone());
        record.body = Some(JobMessage::new(*id).encode());
        event.records.push(record);
    }
    event
}

fn receipts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

#[tokio::test]
async fn a_batch_claimed_together_hides_its_messages_in_one_request() {
    let f = fixture_with(10);
    let ids: Vec<JobId> = (0..10).map(|_| f.job(json!({}))).collect();
    let outcome = f
        .worker
        .process_batch(batch(&ids, &receipts(10)), now_ms() + 30_000)
        .await;
    assert!(outcome.response.batch_item_failures.is_empty());
    for id in &ids {
        assert_eq!(f.store.job(*id).unwrap().state, JobState::Succeeded);
    }
    let hidden: Vec<(String, u32)> = receipts(10)
        .into_iter()
        .map(|receipt| (receipt, LEASE_VISIBILITY_SECS))
        .collect();
    let batches = f.queue.visibility_batches();
    assert_eq!(batches.len(), 1, "one request: {batches:?}");
    let mut sent = batches[0].clone();
    sent.sort();
    assert_eq!(sent, hidden, "each message hidden for its lease");
    assert_eq!(
        f.queue.visibility_changes().len(),
        10,
        "and no ChangeMessageVisibility of its own"
    );
}

/// A queue that checks, at each batch of visibility changes, that every
/// message it hides is that of a claimed job (its receipt handle is
/// `r-<job id>`), and passes it on.
#[derive(Debug)]
struct ClaimedOnly {
    queue: Arc<MemoryQueue>,
    store: Arc<MemoryStore>,
}

#[async_trait::async_trait]
impl JobQueue for ClaimedOnly {
    async fn send(&self, message: &JobMessage) -> Result<String, jobline_core::QueueError> {
        self.queue.send(message).await
    }

    async fn send_delayed(
        &self,
        message: &JobMessage,
        delay_secs: u32,
    ) -> Result<String, jobline_core::QueueError> {
        self.queue.send_delayed(message, delay_secs).await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        secs: u32,
    ) -> Result<(), jobline_core::QueueError> {
        self.queue.change_visibility(receipt, secs).await
    }

    async fn change_visibility_batch(
        &self,
        changes: &[jobline_core::queue::VisibilityChange],
    ) -> Result<Vec<String>, jobline_core::QueueError> {
        for change in changes {
            let id: JobId = change.receipt_handle["r-".len()..].parse().unwrap();
            let job = self.store.job(id).unwrap();
            assert_eq!(job.state, JobState::Running, "hidden before its claim");
        }
        self.queue.change_visibility_batch(changes).await
    }

    async fn receive(
        &self,
        request: Receive,
    ) -> Result<Vec<jobline_core::queue::ReceivedMessage>, jobline_core::QueueError> {
        self.queue.receive(request).await
    }

    async fn delete(&self, receipts: &[String]) -> Result<Vec<String>, jobline_core::QueueError> {
        self.queue.delete(receipts).await
    }

    async fn counts(&self) -> Result<jobline_core::queue::QueueCounts, jobline_core::QueueError> {
        self.queue.counts().await
    }
}

#[tokio::test]
async fn records_waiting_for_a_slot_are_hidden_only_once_claimed() {
    let f = fixture();
    let worker = Worker::new(
        f.store.clone(),
        Arc::new(ClaimedOnly {
            queue: f.queue.clone(),
            store: f.store.clone(),
        }),
        JobTypes::new().with(Scripted),
        f.worker.config.clone(),
    );
    assert_eq!(worker.concurrency(), 4);
    // Jobs that run for a while, so that the later records wait for a slot.
    let ids: Vec<JobId> = (0..10)
        .map(|_| f.job(json!({"fail": "steps", "steps": 1})))
        .collect();
    let receipts: Vec<String> = ids.iter().map(|id| format!("r-{id}")).collect();
    let outcome = worker
        .process_batch(batch(&ids, &receipts), now_ms() + 30_000)
        .await;
    assert!(outcome.response.batch_item_failures.is_empty());
    let batches = f.queue.visibility_batches();
    assert!(
        batches.iter().all(|b| b.len() <= 4),
        "never more than the claims running at once: {batches:?}"
    );
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 10);
    assert!(
        batches.len() < 10,
        "claims that end together share: {batches:?}"
    );
}

#[tokio::test]
async fn a_failed_batch_entry_is_handled_as_a_failed_visibility_change() {
    let f = fixture();
    // One message's receipt handle names a message since deleted: SQS
    // fails its entry, and the others' hides still land.
    f.queue.push("gone");
    let receive = Receive {
        max_messages: 1,
        wait_secs: 0,
        visibility_secs: 30,
    };
    let gone = f.queue.receive(receive).await.unwrap()[0]
        .receipt_handle
        .clone();
    f.queue.delete(std::slice::from_ref(&gone)).await.unwrap();
    let ids: Vec<JobId> = (0..3).map(|_| f.job(json!({}))).collect();
    let handles = ["r0".to_owned(), gone.clone(), "r2".to_owned()];
    let outcome = f
        .worker
        .process_batch(batch(&ids, &handles), now_ms() + 30_000)
        .await;
    // As when a ChangeMessageVisibility fails: logged, and the job runs.
    assert!(outcome.response.batch_item_failures.is_empty());
    for id in &ids {
        assert_eq!(f.store.job(*id).unwrap().state, JobState::Succeeded);
    }
    assert_eq!(f.queue.visibility_batches().len(), 1);
    let mut changed = f.queue.visibility_changes();
    changed.sort();
    assert_eq!(
        changed,
        [
            ("r0".to_owned(), LEASE_VISIBILITY_SECS),
            ("r2".to_owned(), LEASE_VISIBILITY_SECS)
        ]
    );

    // A request that fails as a whole fails each of its entries alike.
    f.queue.set_failing(true);
    let ids: Vec<JobId> = (0..3).map(|_| f.job(json!({}))).collect();
    let outcome = f
        .worker
        .process_batch(batch(&ids, &receipts(3)), now_ms() + 30_000)
        .await;
    assert!(outcome.response.batch_item_failures.is_empty());
    for id in &ids {
        assert_eq!(f.store.job(*id).unwrap().state, JobState::Succeeded);
    }
    assert_eq!(f.queue.visibility_changes().len(), 2, "nothing changed");
}

#[tokio::test]
async fn a_long_job_renews_its_lease_and_reports_progress_while_it_runs() {
    let f = fixture();
    let id = f.job(json!({"fail": "steps", "steps": 8}));
    let claimed_lease = now_ms() + 3_000;
    let running = async {
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        f.store.job(id).unwrap()
    };
    let ((disposition, _), seen) = tokio::join!(f.deliver_job(id, 1), running);
    assert_eq!(disposition, Disposition::Acknowledged);
    assert_eq!(seen.state, JobState::Running);
    assert!(
        seen.lease_expires_at.unwrap() > claimed_lease,
        "the heartbeats renewed the claim's lease"
    );
    let progress = seen.progress.expect("progress written at a heartbeat");
    assert!(progress.fraction > 0.0 && progress.fraction < 1.0);
    assert!(seen.checkpoint.is_some());
    let done = f.store.job(id).unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 1, "never claimed twice");
    let changes = f.queue.visibility_changes();
    assert!(
        changes.len() >= 3,
        "hidden at the claim and each beat: {changes:?}"
    );
    assert!(changes.iter().all(|(_, secs)| (4..=5).contains(secs)));
}

#[tokio::test]
async fn a_job_yields_and_goes_on_as_new_messages_until_it_is_done() {
    let f = fixture();
    let id = f.job(json!({"fail": "steps", "steps": 3, "perRun": 1}));
    let mut runs = 0;
    while f.store.job(id).unwrap().state != JobState::Succeeded {
        runs += 1;
        assert!(runs <= 3, "three steps, one a run");
        // Every continuation is a new message, received for the first time.
        let (disposition, metrics) = f.deliver_job(id, 1).await;
        assert_eq!(disposition, Disposition::Acknowledged);
        let job = f.store.job(id).unwrap();
        if job.state == JobState::Queued {
            assert_eq!(job.continuations, runs);
            assert_eq!(job.checkpoint, Some(json!({"step": runs})));
            assert_eq!(metrics.total(Metric::JobsContinued), 1.0);
            assert_eq!(f.queue.sent().len(), runs as usize);
        }
    }
    let done = f.store.job(id).unwrap();
    assert_eq!(done.result, Some(json!({"steps": 3})));
    assert_eq!((done.attempts, done.continuations), (3, 2));
}

#[tokio::test]
async fn a_jobs_trace_context_goes_on_with_its_messages() {
    let f = fixture();
    let id = f.job(json!({"fail": "steps", "steps": 2, "perRun": 1}));
    let context = jobline_core::trace_context::TraceContext::new_root();
    let job = f.store.job(id).unwrap();
    f.store.insert(JobRecord {
        traceparent: Some(context),
        ..job
    });
    // A message without the attribute: the claim reads the record's
    // context, and the continuation's message carries it.
    let (disposition, _) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    assert_eq!(f.queue.sent().len(), 1);
    assert_eq!(f.queue.sent()[0].traceparent, Some(context));

    // A late record is sent again with its message's attribute, unclaimed.
    let other = jobline_core::trace_context::TraceContext::new_root();
    let mut record = SqsMessage::default();
    record.message_id = Some("m2".into());
    record.body = Some(JobMessage::new(id).encode());
    let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
    attribute.string_value = Some(other.to_string());
    attribute.data_type = Some("String".into());
    record
        .message_attributes
        .insert("traceparent".into(), attribute);
    let (disposition, _) = f.deliver_record(&record, now_ms() + 2_500).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    assert_eq!(f.queue.sent().len(), 2);
    assert_eq!(f.queue.sent()[1].traceparent, Some(other));
}

#[tokio::test]
async fn a_cancel_request_stops_the_running_job_at_its_next_heartbeat() {
    let f = fixture();
    let id = f.job(json!({"fail": "hang"}));
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.store.cancel(id, now_ms()).await.unwrap()
    };
    let started = Instant::now();
    let ((disposition, metrics), outcome) = tokio::join!(f.deliver_job(id, 1), cancel);
    assert!(matches!(outcome, CancelOutcome::Requested(_)));
    assert_eq!(disposition, Disposition::Acknowledged);
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "stopped at the first beat after the request"
    );
    assert_eq!(f.store.job(id).unwrap().state, JobState::Cancelled);
    assert_eq!(metrics.total(Metric::JobsCancelled), 1.0);
}

#[tokio::test]
async fn a_claim_after_a_dead_attempt_finishes_a_cancel_request() {
    let f = fixture();
    let id = f.job(json!({"fail": "retry"}));
    let queued = f.store.job(id).unwrap();
    f.store.insert(JobRecord {
        state: JobState::Running,
        attempts: 1,
        lease_expires_at: Some(now_ms() - 1),
        cancel_requested: true,
        ..queued
    });
    let (disposition, metrics) = f.deliver_job(id, 2).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.error, None, "not run: its handler would have failed");
    assert_eq!(metrics.total(Metric::JobsCancelled), 1.0);
}

#[tokio::test]
async fn a_job_past_its_run_limit_fails_without_running() {
    let f = fixture();
    let id = f.job(json!({}));
    let queued = f.store.job(id).unwrap();
    let limit_ms = i64::from(f.worker.config.max_run_secs) * 1000;
    f.store.insert(JobRecord {
        started_at: Some(now_ms() - limit_ms - 1),
        run_started_at: Some(now_ms() - limit_ms - 1),
        continuations: 5,
        ..queued
    });
    let (disposition, _) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.error.unwrap().contains("ran longer than its limit"));
    assert_eq!(job.result, None);
}

/// An operator replays yesterday's dead letter: its first run started far
/// past the run limit ago, with a cancel request left over, and the replay
/// runs it again from a new run clock instead of failing or cancelling it.
#[tokio::test]
async fn a_job_replayed_the_next_day_runs_again() {
    let f = fixture();
    let id = f.job(json!({}));
    let queued = f.store.job(id).unwrap();
    let yesterday = now_ms() - 26 * 3_600_000;
    f.store.insert(JobRecord {
        state: JobState::Failed,
        attempts: 3,
        started_at: Some(yesterday),
        run_started_at: Some(yesterday),
        finished_at: Some(yesterday + 60_000),
        dead_lettered: true,
        cancel_requested: true,
        error: Some("boom".into()),
        ..queued
    });
    f.store.replay(id, now_ms()).await.unwrap();
    let (disposition, _) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(job.attempts, 4, "its history goes on");
    assert_eq!(job.started_at, Some(yesterday));
    assert!(job.run_started_at.is_some_and(|at| at > yesterday));
}

#[tokio::test]
async fn an_attempt_that_lost_its_job_stops_and_records_nothing() {
    let f = fixture();
    let id = f.job(json!({"fail": "hang"}));
    let discard = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.store.discard(id, now_ms()).await.unwrap()
    };
    let ((disposition, _), _) = tokio::join!(f.deliver_job(id, 1), discard);
    assert_eq!(disposition, Disposition::Retry);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.discarded, "the operator's write stands");
}

#[tokio::test]
async fn a_result_over_the_items_budget_goes_to_the_result_store() {
    let f = fixture();
    let id = f.job(json!({"fail": "huge"}));
    let (disposition, _) = f.deliver_job(id, 1).await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let refused = f.store.job(id).unwrap();
    assert_eq!(
        refused.state,
        JobState::Failed,
        "no result store: too large"
    );
    assert!(refused.error.unwrap().contains("the limit is 102400"));

    let results = Arc::new(jobline_testkit::memory::results::MemoryResults::new());
    let worker = Worker::new(
        f.store.clone(),
        f.queue.clone(),
        JobTypes::new().with(Scripted),
        f.worker.config.clone(),
    )
    .with_results(results.clone());
    let id = f.job(json!({"fail": "huge"}));
    let mut record = SqsMessage::default();
    record.message_id = Some("m".into());
    record.body = Some(JobMessage::new(id).encode());
    let (_, disposition, _) = worker
        .process_record(&record, &worker.claim_hides(), now_ms(), now_ms() + 30_000)
        .await;
    assert_eq!(disposition, Disposition::Acknowledged);
    let done = f.store.job(id).unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, None);
    let key = done.result_key.expect("the result's key");
    assert_eq!(key, result_key(id, 1));
    let stored: Value = serde_json::from_slice(&results.object(&key).unwrap()).unwrap();
    assert_eq!(stored, json!("h".repeat(200 * 1024)));
}

/// A heartbeat whose `UpdateItem` hangs (no SDK timeout ends it) cannot
/// keep the watchdog from stopping the handler: it is cancelled by
/// `stop_by` of the claim's lease, before the lease ends, and nothing is
/// recorded as done; so no second delivery can run the job at the same time.
#[tokio::test]
async fn a_stalled_heartbeat_stops_the_handler_before_its_lease_ends() {
    let f = fixture();
    let id = f.job(json!({"fail": "hang"}));
    f.store.set_stalling_heartbeats(true);
    let claimed_at = now_ms();
    let (disposition, _) = tokio::time::timeout(Duration::from_secs(10), f.deliver_job(id, 1))
        .await
        .expect("the watchdog stopped the handler");
    let stopped_at = now_ms();
    assert_eq!(disposition, Disposition::Retry);
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Running, "not reported done");
    let lease_until = job.lease_expires_at.expect("the claim's lease");
    assert!(
        lease_until <= claimed_at + heartbeat::lease_ms(Duration::from_secs(1)) + 100,
        "no beat renewed it"
    );
    assert!(
        stopped_at < lease_until,
        "the handler stopped {} ms after its lease ended",
        stopped_at - lease_until
    );
}

/// On the last delivery, an attempt whose heartbeats never landed leaves no
/// delivery to run its job: the job fails, dead-lettered, with a fixed
/// error (fenced: a job another delivery took over would be left alone).
#[tokio::test]
async fn a_last_delivery_that_lost_its_lease_fails_the_job_as_dead_lettered() {
    let f = fixture();
    let id = f.job(json!({"fail": "hang"}));
    f.store.set_stalling_heartbeats(true);
    let last = f.worker.config.max_receive_count;
    let (disposition, metrics) =
        tokio::time::timeout(Duration::from_secs(10), f.deliver_job(id, last))
            .await
            .expect("the watchdog stopped the handler");
    assert_eq!(disposition, Disposition::Retry, "to the DLQ");
    let job = f.store.job(id).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.dead_lettered);
    assert_eq!(job.error.as_deref(), Some(LEASE_LOST_ERROR));
    assert_eq!(metrics.total(Metric::JobsDeadLettered), 1.0);
    assert_eq!(f.queue.visibility_changes().last().map(|c| c.1), Some(0));
}

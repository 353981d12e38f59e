//! The worker: processes one SQS batch and reports which messages failed.
//!
//! Each record is handled on its own, at most `WORKER_CONCURRENCY` at once,
//! and ends in one of two ways: acknowledged (SQS deletes it) or listed in
//! `batchItemFailures` (SQS delivers it again after its visibility timeout).
//! With `ReportBatchItemFailures` on the event source mapping, one bad record
//! never fails or repeats its batch-mates.
//!
//! Per job the worker makes two DynamoDB writes and no reads: a conditional
//! claim (`queued → running`, returning the job with `ALL_NEW`) and a
//! completion fenced by the claim's attempt number. A refused claim returns
//! the current item (`ALL_OLD`), which says whether the delivery was a
//! duplicate (acknowledge), or the job is leased by a live attempt (retry
//! after the lease).

pub mod backoff;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream;
use futures_util::{FutureExt, StreamExt};
use jobline_shared::job::{ClaimRefusal, now_ms};
use jobline_shared::{
    Completion, JobError, JobId, JobMessage, JobQueue, JobRecord, JobStore, JobTypes, Metric,
    Metrics, StoreError, WorkerConfig,
};
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// A result larger than this fails the job: it must fit in the job's
/// DynamoDB item (400 KB) beside a payload of up to 256 KiB.
pub const MAX_RESULT_BYTES: usize = 100 * 1024;

/// Time kept back from the Lambda deadline to record a timed-out attempt.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(2);

/// A lease outlives the invocation's deadline by this much, for clock skew.
pub const LEASE_MARGIN_MS: i64 = 1_000;

/// The answer to one batch, and its metrics.
#[derive(Debug)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    pub metrics: Metrics,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done with (finished, duplicate, or not worth retrying): delete it.
    Acknowledged,
    /// Leave it to SQS to deliver again.
    Retry,
}

/// The worker, with its store, queue, job types and settings.
pub struct Worker {
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    job_types: JobTypes,
    config: WorkerConfig,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("job_types", &self.job_types)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One record's attempt, as far as it got.
struct Attempt<'a> {
    record: &'a SqsMessage,
    receive_count: u32,
    metrics: Metrics,
}

impl Worker {
    pub fn new(
        store: Arc<dyn JobStore>,
        queue: Arc<dyn JobQueue>,
        job_types: JobTypes,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            queue,
            job_types,
            config,
        }
    }

    /// Processes a batch before `deadline_ms` (the Lambda deadline, ms since
    /// the epoch) and lists the records to deliver again.
    pub async fn process_batch(&self, event: SqsEvent, deadline_ms: i64) -> BatchOutcome {
        // The futures are built first: a `map` closure here would make the
        // batch future not `Send` for every lifetime (rust-lang/rust#102211).
        let jobs: Vec<_> = event
            .records
            .iter()
            .map(|record| self.process_in_span(record, deadline_ms))
            .collect();
        let outcomes: Vec<(Option<String>, Disposition, Metrics)> = stream::iter(jobs)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let mut metrics = Metrics::new();
        let mut response = SqsBatchResponse::default();
        for (message_id, disposition, record_metrics) in outcomes {
            metrics.merge(record_metrics);
            if disposition == Disposition::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id.unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        BatchOutcome { response, metrics }
    }

    async fn process_in_span(
        &self,
        record: &SqsMessage,
        deadline_ms: i64,
    ) -> (Option<String>, Disposition, Metrics) {
        let span = tracing::info_span!(
            "record",
            messageId = record.message_id.as_deref().unwrap_or_default()
        );
        let (disposition, metrics) = self
            .process_record(record, deadline_ms)
            .instrument(span)
            .await;
        (record.message_id.clone(), disposition, metrics)
    }

    /// Processes one record: parse, claim, run, complete.
    pub async fn process_record(
        &self,
        record: &SqsMessage,
        deadline_ms: i64,
    ) -> (Disposition, Metrics) {
        let mut attempt = Attempt {
            record,
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            metrics: Metrics::new(),
        };
        let message = match JobMessage::decode(record.body.as_deref().unwrap_or_default()) {
            Ok(message) => message,
            Err(error) => {
                // Left to the redrive policy: after maxReceiveCount deliveries
                // SQS moves it to the DLQ, where an operator can see it.
                tracing::warn!(%error, "malformed message");
                let disposition = self.retry_later(&attempt, None).await;
                return (disposition, attempt.metrics);
            }
        };
        let id = message.job_id;
        let disposition = self
            .run_job(&mut attempt, id, deadline_ms)
            .instrument(tracing::info_span!("job", jobId = %id))
            .await;
        (disposition, attempt.metrics)
    }

    async fn run_job(&self, attempt: &mut Attempt<'_>, id: JobId, deadline_ms: i64) -> Disposition {
        let now = now_ms();
        let job = match self
            .store
            .claim(id, now, deadline_ms.saturating_add(LEASE_MARGIN_MS))
            .await
        {
            Ok(job) => job,
            Err(StoreError::Conflict { current }) => {
                return self.refused(attempt, current.as_deref(), now).await;
            }
            Err(error) => {
                tracing::warn!(%error, "claim failed");
                return self.retry_later(attempt, None).await;
            }
        };
        if job.attempts == 1
            && let Some(started) = job.started_at
        {
            attempt.metrics.record(
                &job.job_type,
                Metric::QueueTimeMs,
                (started - job.created_at) as f64,
            );
        }
        tracing::info!(jobType = %job.job_type, attempt = job.attempts, "job claimed");
        let started = std::time::Instant::now();
        let outcome = self.run_handler(&job, deadline_ms).await;
        attempt.metrics.record(
            &job.job_type,
            Metric::JobDurationMs,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        match outcome {
            Ok(result) => {
                let completion = Completion::Succeeded(result);
                self.complete(attempt, &job, &completion, Metric::JobsSucceeded)
                    .await
            }
            Err(JobError::Permanent(error)) => {
                tracing::warn!(%error, "job failed permanently");
                let completion = Completion::Failed {
                    error,
                    dead_lettered: false,
                };
                self.complete(attempt, &job, &completion, Metric::JobsFailed)
                    .await
            }
            Err(JobError::Retryable(error))
                if attempt.receive_count >= self.config.max_receive_count =>
            {
                tracing::warn!(%error, "job failed on its last delivery; dead-lettering");
                let completion = Completion::Failed {
                    error,
                    dead_lettered: true,
                };
                if self
                    .complete(attempt, &job, &completion, Metric::JobsFailed)
                    .await
                    == Disposition::Acknowledged
                {
                    attempt
                        .metrics
                        .count(&job.job_type, Metric::JobsDeadLettered);
                }
                // Visible again at once, so SQS's next receive moves it to the DLQ.
                self.set_visibility(attempt, 0).await;
                Disposition::Retry
            }
            Err(JobError::Retryable(error)) => {
                tracing::warn!(%error, "job failed; will retry");
                if let Err(release_error) = self
                    .store
                    .return_to_queue(job.id, job.attempts, &error)
                    .await
                {
                    tracing::warn!(%release_error, "could not release the job; its lease will expire");
                }
                attempt.metrics.count(&job.job_type, Metric::JobsRetried);
                self.retry_later(attempt, None).await
            }
        }
    }

    /// Runs the job's handler, bounded by the invocation's deadline.
    async fn run_handler(&self, job: &JobRecord, deadline_ms: i64) -> Result<Value, JobError> {
        let handler = self
            .job_types
            .get(&job.job_type)
            .ok_or_else(|| JobError::Permanent(format!("unknown job type {:?}", job.job_type)))?;
        let reserve = i64::try_from(DEADLINE_RESERVE.as_millis()).unwrap_or(i64::MAX);
        let budget_ms = deadline_ms.saturating_sub(now_ms()).saturating_sub(reserve);
        let budget = Duration::from_millis(u64::try_from(budget_ms).unwrap_or(0));
        // A panicking handler fails its job, not the batch's other jobs.
        let run = AssertUnwindSafe(handler.run(job.payload.clone())).catch_unwind();
        let result = tokio::time::timeout(budget, run)
            .await
            .map_err(|_| {
                JobError::Retryable(format!(
                    "attempt timed out after {} ms (invocation deadline)",
                    budget.as_millis()
                ))
            })?
            .map_err(|_| JobError::Retryable("the job's handler panicked".to_owned()))??;
        let size = result.to_string().len();
        if size > MAX_RESULT_BYTES {
            return Err(JobError::Permanent(format!(
                "result is {size} bytes; the limit is {MAX_RESULT_BYTES}"
            )));
        }
        Ok(result)
    }

    /// Writes the completion, fenced by the attempt; counts `metric` if it landed.
    async fn complete(
        &self,
        attempt: &mut Attempt<'_>,
        job: &JobRecord,
        completion: &Completion,
        metric: Metric,
    ) -> Disposition {
        match self
            .store
            .finish(job.id, job.attempts, completion, now_ms())
            .await
        {
            Ok(()) => {
                attempt.metrics.count(&job.job_type, metric);
                tracing::info!(state = ?completion_state(completion), "job finished");
                Disposition::Acknowledged
            }
            Err(error) => {
                // Fenced out (another attempt took the lease) or DynamoDB
                // failed: keep the message, so a later delivery settles it.
                tracing::warn!(%error, "could not record the job's completion");
                Disposition::Retry
            }
        }
    }

    /// Decides what a refused claim means, from the item DynamoDB returned.
    async fn refused(
        &self,
        attempt: &mut Attempt<'_>,
        current: Option<&JobRecord>,
        now: i64,
    ) -> Disposition {
        match ClaimRefusal::from_current(current, now) {
            ClaimRefusal::Finished(state) => {
                tracing::info!(%state, "duplicate delivery of a finished job");
                let job_type = current.map_or("unknown", |job| job.job_type.as_str());
                attempt.metrics.count(job_type, Metric::DuplicateDeliveries);
                Disposition::Acknowledged
            }
            ClaimRefusal::Leased { until_ms } => {
                tracing::info!(
                    until_ms,
                    "job is leased by a live attempt; retrying after it"
                );
                let secs = u32::try_from((until_ms - now + 999) / 1000).unwrap_or(u32::MAX);
                self.retry_later(attempt, Some(secs)).await
            }
            // The API writes the record and sends the message concurrently,
            // so a first delivery may beat the write. A second delivery that
            // still finds nothing means the write failed: nothing to run.
            ClaimRefusal::Missing if attempt.receive_count >= 2 => {
                tracing::warn!("no job record for this message; dropping it");
                Disposition::Acknowledged
            }
            ClaimRefusal::Missing | ClaimRefusal::Raced => self.retry_later(attempt, None).await,
        }
    }

    /// Hides the message for `secs` (default: the backoff for its receive
    /// count) and reports it failed.
    async fn retry_later(&self, attempt: &Attempt<'_>, secs: Option<u32>) -> Disposition {
        let secs = secs.unwrap_or_else(|| backoff::delay_secs(&self.config, attempt.receive_count));
        self.set_visibility(attempt, secs).await;
        Disposition::Retry
    }

    async fn set_visibility(&self, attempt: &Attempt<'_>, secs: u32) {
        let Some(receipt) = attempt.record.receipt_handle.as_deref() else {
            return;
        };
        let secs = secs.min(jobline_shared::config::SQS_MAX_VISIBILITY_SECS);
        if let Err(error) = self.queue.change_visibility(receipt, secs).await {
            // The queue's own visibility timeout still brings it back.
            tracing::warn!(%error, "could not change the message's visibility");
        }
    }
}

fn completion_state(completion: &Completion) -> &'static str {
    match completion {
        Completion::Succeeded(_) => "succeeded",
        Completion::Failed { .. } => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_shared::JobRequest;
    use jobline_shared::queue::memory::MemoryQueue;
    use jobline_shared::store::memory::MemoryStore;
    use jobline_shared::{JobHandler, JobState};
    use serde_json::json;

    /// Fails as its payload says: `{"fail": "retry" | "permanent" | "panic" | "hang"}`.
    struct Scripted;

    #[async_trait::async_trait]
    impl JobHandler for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        async fn run(&self, payload: Value) -> Result<Value, JobError> {
            match payload["fail"].as_str() {
                Some("retry") => Err(JobError::Retryable("try later".into())),
                Some("permanent") => Err(JobError::Permanent("bad input".into())),
                Some("panic") => panic!("handler bug"),
                Some("hang") => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(json!("late"))
                }
                _ => Ok(json!({"ok": true})),
            }
        }
    }

    struct Fixture {
        store: Arc<MemoryStore>,
        queue: Arc<MemoryQueue>,
        worker: Worker,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let config = WorkerConfig {
            max_receive_count: 3,
            retry_base_delay_secs: 10,
            retry_max_delay_secs: 100,
            concurrency: 4,
        };
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
            self.worker.process_record(&record, now_ms() + 30_000).await
        }

        async fn deliver_job(&self, id: JobId, receive_count: u32) -> (Disposition, Metrics) {
            self.deliver(&JobMessage { job_id: id }.encode(), receive_count)
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
        assert_eq!(job.result, Some(json!({"ok": true})));
        assert_eq!(job.attempts, 1);
        assert_eq!(metrics.total(Metric::JobsSucceeded), 1.0);
        assert!(f.queue.visibility_changes().is_empty());
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
        assert_eq!(changes.len(), 1);
        assert!(
            (10..=20).contains(&changes[0].1),
            "backoff for receive 2: {changes:?}"
        );
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
        assert_eq!(metrics.total(Metric::JobsDeadLettered), 1.0);
        assert_eq!(f.queue.visibility_changes(), [("r".to_owned(), 0)]);
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
        record.body = Some(JobMessage { job_id: id }.encode());
        let deadline = now_ms() + 2_300;
        let (disposition, _) = f.worker.process_record(&record, deadline).await;
        assert!(now_ms() < deadline, "stopped before the deadline");
        assert_eq!(disposition, Disposition::Retry);
        let job = f.store.job(id).unwrap();
        assert!(job.error.unwrap().contains("timed out"));
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
            .claim(leased, now_ms(), now_ms() + 50_000)
            .await
            .unwrap();
        assert_eq!(f.deliver_job(leased, 1).await.0, Disposition::Retry);
        let (_, secs) = f.queue.visibility_changes().pop().unwrap();
        assert!((49..=51).contains(&secs), "retry after the lease: {secs}");
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
            ("ok", JobMessage { job_id: ok }.encode()),
            ("retry", JobMessage { job_id: retry }.encode()),
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
}

//! End-to-end throughput on the local stack, against the emulator's own
//! ceiling for the same calls.
//!
//! Jobline run: `submitters` tasks submit `jobs` jobs through the real
//! [`Api`] (what `jobline-local serve` does, minus HTTP) while `pollers`
//! tasks run the local poller feeding the real [`Worker`](jobline_worker::Worker), all against moto.
//! The clock runs from the first submission to the moment the last job is
//! acknowledged; a scan then checks that every job is `succeeded`.
//!
//! Emulator run: the same calls per job with no Jobline code in the loop,
//! at the same concurrency: each submitter writes the same job item with a
//! conditional `PutItem` (the store's own, index attributes included:
//! `items_to_create`), then sends its message; each consumer receives up
//! to 10 messages, hides them in one `ChangeMessageVisibilityBatch` (the
//! fewest requests the worker's lease hides can take), makes the two
//! conditional `UpdateItem`s of each job (claim with `ALL_NEW`, then
//! completion, with the store's own expressions from
//! `jobline_dynamodb::store`), `WORKER_CONCURRENCY` jobs at once, and
//! deletes the batch. That is what this emulator on this machine
//! can do with Jobline's call pattern, so the ratio of the two runs is what
//! Jobline's own code costs. The emulator run goes first: if moto slows as
//! it fills up, that counts against Jobline, not for it.

use crate::error::{BenchError, within};
use crate::events;
use crate::measure::{self, BATCH_SIZE, Resources, jobline, poller_settings};
use crate::process::usage_of;
use crate::sdk_clients;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
};
use futures_util::StreamExt;
use jobline_api::Api;
use jobline_core::Clock;
use jobline_core::deadline::Deadlines;
use jobline_core::job::RUN_AT_TOLERANCE_MS;
use jobline_core::{JobId, JobMessage, JobRecord, WorkerConfig};
use jobline_dynamodb::item::items_to_create;
use jobline_dynamodb::store as dynamodb;
use jobline_local::Clients;
use jobline_local::poller::Poller;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Attempts per submission: the API answers 503 when the emulator fails a
/// call, and a client retries that.
const SUBMIT_ATTEMPTS: usize = 3;

/// The shape of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub jobs: usize,
    pub submitters: usize,
    pub pollers: usize,
    /// Each run's time limit.
    pub timeout_secs: u64,
}

/// One run's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunFigures {
    pub seconds: f64,
    pub jobs_per_second: f64,
    /// When the last job was submitted.
    pub submit_seconds: f64,
    /// Submissions retried, and job messages left for redelivery.
    pub retries: usize,
    /// The emulator's CPU time over the run's wall time, in % of one core
    /// (when its process id is known): near 100 means it was the bottleneck.
    pub emulator_cpu_percent: Option<f64>,
}

/// Both runs and their ratio.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputFigures {
    pub jobs: usize,
    pub submitters: usize,
    pub pollers: usize,
    pub emulator: RunFigures,
    pub jobline: RunFigures,
    /// Jobline's jobs/s over the emulator's.
    pub ratio: f64,
}

/// Runs both against the emulator at `emulator`, whose process is
/// `emulator_pid` if known.
pub async fn measure(
    emulator: &str,
    emulator_pid: Option<u32>,
    load: Load,
) -> Result<ThroughputFigures, BenchError> {
    let clients = sdk_clients(emulator).await;

    let raw = Resources::create(&clients, "raw").await?;
    let raw_pipeline = Arc::new(RawPipeline {
        clients: clients.clone(),
        table: raw.config.table_name.clone(),
        queue_url: raw.config.queue_url.clone(),
    });
    let emulator_run = within(
        load.timeout_secs,
        "the emulator-only run",
        timed(raw_pipeline, load, emulator_pid),
    )
    .await??;
    raw.delete(&clients).await?;

    let resources = Resources::create(&clients, "e2e").await?;
    let jobline_run = within(
        load.timeout_secs,
        "the Jobline run",
        timed(
            Arc::new(JoblinePipeline::new(&clients, &resources)),
            load,
            emulator_pid,
        ),
    )
    .await??;
    let succeeded = count_succeeded(&clients, &resources.config.table_name).await?;
    resources.delete(&clients).await?;
    if succeeded != load.jobs {
        return Err(BenchError::Unexpected(format!(
            "{succeeded} of {} jobs succeeded",
            load.jobs
        )));
    }
    Ok(ThroughputFigures {
        jobs: load.jobs,
        submitters: load.submitters,
        pollers: load.pollers,
        ratio: jobline_run.jobs_per_second / emulator_run.jobs_per_second,
        emulator: emulator_run,
        jobline: jobline_run,
    })
}

/// A way to submit jobs and to work them off the queue.
trait Pipeline: Send + Sync + 'static {
    /// Submits one job.
    fn submit(&self) -> impl Future<Output = Result<(), BenchError>> + Send;
    /// Takes one batch off the queue and works it.
    fn consume(&self) -> impl Future<Output = Result<Consumed, BenchError>> + Send;
}

/// What one batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Consumed {
    /// Jobs finished and their messages deleted.
    finished: usize,
    /// Messages left on the queue to be delivered again.
    failed: usize,
}

/// Counters shared by the tasks of one run.
#[derive(Debug)]
struct Progress {
    jobs: usize,
    started: Instant,
    next_job: AtomicUsize,
    submitted: AtomicUsize,
    done: AtomicUsize,
    retries: AtomicUsize,
    all_submitted: OnceLock<Duration>,
    all_done: OnceLock<Duration>,
}

impl Progress {
    fn new(jobs: usize) -> Self {
        Self {
            jobs,
            started: Instant::now(),
            next_job: AtomicUsize::new(0),
            submitted: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            all_submitted: OnceLock::new(),
            all_done: OnceLock::new(),
        }
    }

    /// Claims the next job to submit, if any are left.
    fn take_job(&self) -> bool {
        self.next_job.fetch_add(1, Ordering::SeqCst) < self.jobs
    }

    fn submitted_one(&self) {
        if self.submitted.fetch_add(1, Ordering::SeqCst) + 1 == self.jobs {
            // Only one submission is the last, so the cell is still empty.
            let _ = self.all_submitted.set(self.started.elapsed());
        }
    }

    fn finished(&self, count: usize) {
        let before = self.done.fetch_add(count, Ordering::SeqCst);
        if before < self.jobs && before + count >= self.jobs {
            // Only one batch crosses the line, so the cell is still empty.
            let _ = self.all_done.set(self.started.elapsed());
        }
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.jobs
    }

    fn retried(&self) {
        self.retries.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `load.submitters` submitters and `load.pollers` consumers of
/// `pipeline` until every job is done, and times it.
async fn timed<P: Pipeline>(
    pipeline: Arc<P>,
    load: Load,
    emulator_pid: Option<u32>,
) -> Result<RunFigures, BenchError> {
    let emulator_before = emulator_pid.map(usage_of).transpose()?;
    let progress = Arc::new(Progress::new(load.jobs));
    let mut tasks = JoinSet::new();
    for _ in 0..load.submitters {
        let (pipeline, progress) = (Arc::clone(&pipeline), Arc::clone(&progress));
        tasks.spawn(async move {
            while progress.take_job() {
                let mut attempt = 1;
                while let Err(error) = pipeline.submit().await {
                    if attempt == SUBMIT_ATTEMPTS {
                        return Err(error);
                    }
                    attempt += 1;
                    progress.retried();
                }
                progress.submitted_one();
            }
            Ok(())
        });
    }
    for _ in 0..load.pollers {
        let (pipeline, progress) = (Arc::clone(&pipeline), Arc::clone(&progress));
        tasks.spawn(async move {
            while !progress.is_done() {
                let consumed = pipeline.consume().await?;
                progress.finished(consumed.finished);
                for _ in 0..consumed.failed {
                    progress.retried();
                }
            }
            Ok(())
        });
    }
    // The first error ends the run; dropping the set stops the other tasks.
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| BenchError::Unexpected(format!("a load task failed: {e}")))??;
    }
    let seconds = progress
        .all_done
        .get()
        .ok_or_else(|| BenchError::Unexpected("the run ended unfinished".into()))?
        .as_secs_f64();
    let emulator_cpu_percent = match (emulator_pid, emulator_before) {
        (Some(pid), Some(before)) => Some(
            usage_of(pid)?.cpu_ms_since(&before) / 10.0 / progress.started.elapsed().as_secs_f64(),
        ),
        _ => None,
    };
    Ok(RunFigures {
        seconds,
        jobs_per_second: load.jobs as f64 / seconds,
        submit_seconds: progress
            .all_submitted
            .get()
            .map_or(seconds, Duration::as_secs_f64),
        retries: progress.retries.load(Ordering::SeqCst),
        emulator_cpu_percent,
    })
}

/// Jobline's API and worker, the worker fed by the local poller.
struct JoblinePipeline {
    api: Arc<Api>,
    poller: Poller,
}

impl JoblinePipeline {
    fn new(clients: &Clients, resources: &Resources) -> Self {
        let (api, poller) = jobline(clients, resources);
        Self { api, poller }
    }
}

impl Pipeline for JoblinePipeline {
    async fn submit(&self) -> Result<(), BenchError> {
        measure::submit(&self.api).await
    }

    async fn consume(&self) -> Result<Consumed, BenchError> {
        let outcome = self.poller.poll_once().await.map_err(BenchError::aws)?;
        Ok(Consumed {
            finished: outcome.received - outcome.failed.len(),
            failed: outcome.failed.len(),
        })
    }
}

/// The same calls made straight with the SDK.
struct RawPipeline {
    clients: Clients,
    table: String,
    queue_url: String,
}

impl Pipeline for RawPipeline {
    async fn submit(&self) -> Result<(), BenchError> {
        let request = events::job_request();
        let job = JobRecord::new_queued(
            JobId::random(),
            "bench",
            &request,
            Clock::system().now_ms(),
            30,
        );
        // Write, then send, as the API does: a message never precedes its record.
        self.clients
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(items_to_create(&job, &Deadlines::default()).job))
            .condition_expression("attribute_not_exists(jobId)")
            .send()
            .await
            .map_err(BenchError::aws)?;
        self.clients
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(JobMessage::new(job.id).encode())
            .send()
            .await
            .map_err(BenchError::aws)?;
        Ok(())
    }

    async fn consume(&self) -> Result<Consumed, BenchError> {
        let received = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(BATCH_SIZE).unwrap_or(10))
            .wait_time_seconds(poller_settings().wait_secs)
            .visibility_timeout(poller_settings().visibility_secs)
            .send()
            .await
            .map_err(BenchError::aws)?;
        // Jobline hides the claimed messages for their leases, in batch
        // requests: here, the fewest it could make, one for the batch.
        let hides = received
            .messages()
            .iter()
            .enumerate()
            .filter_map(|(i, message)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(message.receipt_handle()?)
                    .visibility_timeout(poller_settings().visibility_secs)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if !hides.is_empty() {
            self.clients
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(hides))
                .send()
                .await
                .map_err(BenchError::aws)?;
        }
        // The futures are built first: a `map` closure in the stream would
        // not be `Send` for every lifetime (rust-lang/rust#102211).
        let work: Vec<_> = received
            .messages()
            .iter()
            .map(|message| self.work(message))
            .collect();
        let worked: Vec<Result<Option<&str>, BenchError>> = futures_util::stream::iter(work)
            .buffer_unordered(WorkerConfig::default().concurrency)
            .collect()
            .await;
        let worked = worked.into_iter().collect::<Result<Vec<_>, _>>()?;
        let failed = worked.iter().filter(|receipt| receipt.is_none()).count();
        let entries = worked
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .map_err(BenchError::aws)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let finished = entries.len();
        if finished > 0 {
            self.clients
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(BenchError::aws)?;
        }
        Ok(Consumed { finished, failed })
    }
}

impl RawPipeline {
    /// Claims and completes the message's job; returns its receipt handle.
    /// A refused claim is what Jobline's worker retries: the message can
    /// arrive before its item is written (`PutItem` and `SendMessage` run
    /// concurrently), so, as Jobline does, it is hidden for the first retry
    /// delay and left for redelivery (`None`). Any other failure fails the
    /// run.
    async fn work<'m>(&self, message: &'m Message) -> Result<Option<&'m str>, BenchError> {
        let malformed = || BenchError::Unexpected(format!("unexpected message {message:?}"));
        let body: serde_json::Value =
            serde_json::from_str(message.body().ok_or_else(malformed)?).map_err(|_| malformed())?;
        let id: JobId = body["jobId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(malformed)?;
        let key = AttributeValue::S(id.to_string());
        let now_at = Clock::system().now_ms();
        let now = AttributeValue::N(now_at.to_string());
        let one = AttributeValue::N("1".to_owned());
        let receipt = message.receipt_handle().ok_or_else(malformed)?;
        let claim = self
            .clients
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("jobId", key.clone())
            .update_expression(dynamodb::CLAIM_UPDATE)
            .condition_expression(dynamodb::CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", AttributeValue::S("running".into()))
            .expression_attribute_values(":queued", AttributeValue::S("queued".into()))
            .expression_attribute_values(":scheduled", AttributeValue::S("scheduled".into()))
            .expression_attribute_values(
                ":dueBy",
                AttributeValue::N((now_at + RUN_AT_TOLERANCE_MS).to_string()),
            )
            .expression_attribute_values(":one", one.clone())
            .expression_attribute_values(
                ":lease",
                AttributeValue::N((Clock::system().now_ms() + 61_000).to_string()),
            )
            .expression_attribute_values(":now", now.clone())
            .expression_attribute_values(
                ":token",
                AttributeValue::S(uuid::Uuid::new_v4().simple().to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        if let Err(error) = claim {
            if !error
                .as_service_error()
                .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
            {
                return Err(BenchError::aws(error));
            }
            self.clients
                .sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(
                    i32::try_from(WorkerConfig::default().retry_base_delay_secs)
                        .unwrap_or(i32::MAX),
                )
                .send()
                .await
                .map_err(BenchError::aws)?;
            return Ok(None);
        }
        self.clients
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("jobId", key)
            .update_expression(dynamodb::FINISH_SUCCEEDED_UPDATE)
            .condition_expression(dynamodb::FINISH_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#result", "result")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":running", AttributeValue::S("running".into()))
            .expression_attribute_values(":done", AttributeValue::S("succeeded".into()))
            .expression_attribute_values(":result", AttributeValue::S(r#"{"count":168}"#.into()))
            .expression_attribute_values(":attempt", one)
            .expression_attribute_values(":now", now)
            .send()
            .await
            .map_err(BenchError::aws)?;
        Ok(Some(receipt))
    }
}

/// Jobs in `table` whose state is `succeeded`.
async fn count_succeeded(clients: &Clients, table: &str) -> Result<usize, BenchError> {
    let mut pages = clients
        .dynamodb
        .scan()
        .table_name(table)
        .select(Select::Count)
        .filter_expression("#state = :succeeded")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":succeeded", AttributeValue::S("succeeded".into()))
        .into_paginator()
        .send();
    let mut succeeded = 0;
    while let Some(page) = pages.next().await {
        succeeded += usize::try_from(page.map_err(BenchError::aws)?.count()).unwrap_or(0);
    }
    Ok(succeeded)
}

//! What a job uses of each billed thing, from the measured calls and
//! invocation times, and its list price per million jobs.
//!
//! Requests are counted, not modelled: one API Gateway request and one API
//! invocation per job, worker invocations as the poller batched them, every
//! SQS request the proxy saw (the mapping's receives and deletes included:
//! AWS bills them to the queue's owner), and DynamoDB's write units as the
//! calls measurement computed them from the table stream's item images: the
//! table's (with the refused conditional writes) and each secondary index's,
//! one line each, at the on-demand price per million write units. Only
//! Lambda's billed duration needs a model, because against the canned
//! endpoint the AWS calls take no time: each invocation is billed its
//! measured handler time plus an assumed round trip per sequential wave of
//! AWS calls (`--aws-round-trip-ms`): one for a submission (its write and
//! send go together), two per job for a batch (claim, then completion), with
//! `WORKER_CONCURRENCY` jobs of a batch at once.
//!
//! A client polls each job's status [`TrafficModel::polls_per_job`] times:
//! each poll is one more API Gateway request, API invocation (billed like a
//! submission: one round trip), consistent `GetItem` (1 RRU: job items are
//! under 4 KB) and set of log lines. Log bytes come from all three sources
//! of [`crate::measure::logs`]: the functions' lines and EMF measured in
//! the CPU run, Lambda's platform records per invocation, and the access
//! log line per request.

use crate::error::BenchError;
use crate::measure::calls::CallFigures;
use crate::measure::cpu::CpuFigures;
use crate::measure::logs::{self, LogSources};
use crate::pricing::{CostPerMillionJobs, PRICES_CHECKED, Prices, UsagePerJob, gb_seconds};
use serde::Serialize;

/// What the duration model assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationModel {
    /// One in-region DynamoDB or SQS request, ms.
    pub aws_round_trip_ms: f64,
    /// `MemorySize` of each function in template.yaml.
    pub api_memory_mb: u32,
    pub worker_memory_mb: u32,
    /// The fire function's (schedules measurement).
    pub fire_memory_mb: u32,
    /// `WORKER_CONCURRENCY`.
    pub worker_concurrency: usize,
}

/// What clients and the logging settings add to each job.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficModel {
    /// `GET /jobs/{id}` requests per job.
    pub polls_per_job: f64,
    /// The functions' `SystemLogLevel`.
    pub system_log_level: String,
}

/// Usage and cost per job.
#[derive(Debug, Clone, Serialize)]
pub struct CostFigures {
    pub usage_per_job: UsagePerJob,
    pub billed_api_invocation_ms: f64,
    pub billed_worker_invocation_ms: f64,
    pub assumed_aws_round_trip_ms: f64,
    pub polls_per_job: f64,
    pub system_log_level: String,
    /// Lambda's platform records per invocation, bytes.
    pub platform_bytes_per_invocation: f64,
    /// One API Gateway access log line, bytes.
    pub access_log_bytes_per_request: f64,
    pub prices: Prices,
    pub prices_checked: &'static str,
    pub per_million_jobs: CostPerMillionJobs,
}

pub fn estimate(
    calls: &CallFigures,
    api: &CpuFigures,
    worker: &CpuFigures,
    model: &DurationModel,
    traffic: &TrafficModel,
) -> Result<CostFigures, BenchError> {
    let waves = worker
        .jobs_per_invocation
        .div_ceil(model.worker_concurrency.max(1));
    let api_ms = (api.invocation_ms.median + model.aws_round_trip_ms).ceil();
    let worker_ms =
        (worker.invocation_ms.median + 2.0 * waves as f64 * model.aws_round_trip_ms).ceil();
    let worker_invocations_per_job = calls.worker_invocations as f64 / calls.jobs.max(1) as f64;
    // Submission and polls: one API Gateway request and API invocation each.
    let api_requests = 1.0 + traffic.polls_per_job;
    let lambda_invocations = api_requests + worker_invocations_per_job;
    let platform = logs::platform_bytes_per_invocation(&traffic.system_log_level)? as f64;
    let access_log = logs::access_log_line_bytes(logs::access_log_format()?)? as f64;
    let usage = UsagePerJob {
        api_gateway_requests: api_requests,
        lambda_invocations,
        lambda_gb_seconds: api_requests * gb_seconds(model.api_memory_mb, api_ms)
            + worker_invocations_per_job * gb_seconds(model.worker_memory_mb, worker_ms),
        dynamodb_wru: calls.write_units.per_job.table,
        dynamodb_index_wru: calls.write_units.per_job.indexes.clone(),
        dynamodb_rru: calls.submit.dynamodb_reads
            + calls.worker.dynamodb_reads
            + traffic.polls_per_job,
        sqs_requests: calls.submit.sqs_requests
            + calls.worker.sqs_requests
            + calls.event_source_mapping.sqs_requests,
        log_bytes: LogSources {
            function_lines: api_requests * api.log_bytes_per_job + worker.log_bytes_per_job,
            emf: api.emf_bytes_per_job + worker.emf_bytes_per_job,
            platform: lambda_invocations * platform,
            access_log: api_requests * access_log,
        },
    };
    let prices = Prices::US_EAST_1;
    Ok(CostFigures {
        per_million_jobs: CostPerMillionJobs::of(&usage, &prices),
        usage_per_job: usage,
        billed_api_invocation_ms: api_ms,
        billed_worker_invocation_ms: worker_ms,
        assumed_aws_round_trip_ms: model.aws_round_trip_ms,
        polls_per_job: traffic.polls_per_job,
        system_log_level: traffic.system_log_level.clone(),
        platform_bytes_per_invocation: platform,
        access_log_bytes_per_request: access_log,
        prices,
        prices_checked: PRICES_CHECKED,
    })
}

//! CPU time and peak memory per invocation of the release binaries, run as
//! Lambda runs them (under the Runtime API stub), against an AWS endpoint
//! that answers at once from canned responses: the emulator takes
//! milliseconds of its own per call, which is not Jobline's cost.
//!
//! After init and one first invocation (timed on its own: it pays for the
//! SDK's lazy set-up) and a few warm-ups, the function is invoked
//! `invocations` times, one after another; CPU time is read from `/proc`
//! before and after and divided by the count. Each answer is checked (202
//! for a submission, no failed records for a batch), so the figures are
//! those of invocations that did their work.

use crate::aws_call::tally;
use crate::endpoint::{AwsEndpoint, Backend};
use crate::error::BenchError;
use crate::events;
use crate::measure::sizes::file_size;
use crate::process::{LambdaFunction, LambdaProcess, emf_log, lambda_environment};
use crate::runtime_api::{Outcome, RuntimeApi};
use crate::stats::Summary;
use jobline_core::JobId;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Invocations before the measured ones, after the first.
const WARM_UPS: usize = 10;
/// How long one invocation may take.
const INVOKE_TIMEOUT_SECS: u64 = 30;

/// What each invocation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One `POST /jobs` API Gateway event.
    Submit,
    /// One SQS batch of this many new jobs.
    Batch(usize),
}

impl Workload {
    fn jobs(self) -> usize {
        match self {
            Self::Submit => 1,
            Self::Batch(jobs) => jobs,
        }
    }

    fn event(self) -> Result<Value, BenchError> {
        let invalid = |e: serde_json::Error| BenchError::Unexpected(format!("event: {e}"));
        match self {
            Self::Submit => events::api_submit_event().map_err(invalid),
            Self::Batch(jobs) => {
                let ids: Vec<JobId> = (0..jobs).map(|_| JobId::random()).collect();
                serde_json::to_value(events::sqs_batch_event(&ids)).map_err(invalid)
            }
        }
    }

    /// Checks that the invocation did its work.
    fn check(self, outcome: &Outcome) -> Result<(), BenchError> {
        let done = !outcome.error
            && match self {
                Self::Submit => outcome.body["statusCode"] == 202,
                Self::Batch(_) => outcome.body["batchItemFailures"]
                    .as_array()
                    .is_some_and(Vec::is_empty),
            };
        if done {
            Ok(())
        } else {
            Err(BenchError::Unexpected(format!(
                "{self:?} invocation did not do its work: {}",
                outcome.body
            )))
        }
    }
}

/// One function's per-invocation figures.
#[derive(Debug, Clone, Serialize)]
pub struct CpuFigures {
    pub function: String,
    pub jobs_per_invocation: usize,
    pub invocations: usize,
    pub cpu_ms_per_invocation: f64,
    pub cpu_ms_per_job: f64,
    /// The first invocation after init, handler time at the stub.
    pub first_invocation_ms: f64,
    /// Warm invocations, handler time at the stub.
    pub invocation_ms: Summary,
    pub rss_after_init_mib: f64,
    pub peak_rss_mib: f64,
    /// Bytes of log lines (stderr) per job: CloudWatch Logs ingestion.
    pub log_bytes_per_job: f64,
    /// Bytes of EMF documents (stdout) per job: also ingested as logs.
    pub emf_bytes_per_job: f64,
    /// AWS calls per invocation seen by the canned endpoint.
    pub aws_calls_per_invocation: BTreeMap<String, f64>,
}

/// Measures `function` over `invocations` invocations of `workload`.
pub async fn measure(
    function: &LambdaFunction,
    workload: Workload,
    invocations: usize,
    logs: &Path,
) -> Result<CpuFigures, BenchError> {
    let mut runtime = RuntimeApi::start(&function.name).await?;
    let endpoint = AwsEndpoint::start(Backend::Canned).await?;
    let environment = lambda_environment(function, runtime.addr(), &endpoint.url());
    let log = logs.join(format!("{}-cpu.log", function.name));
    let emf = emf_log(&log);
    let log_bytes = || Ok::<_, BenchError>((file_size(&log)?, file_size(&emf)?));
    let process = LambdaProcess::spawn(&function.binary, &environment, &log)?;
    runtime.ready(INVOKE_TIMEOUT_SECS).await?;
    let after_init = process.usage()?;

    let invoke = |event: Value| runtime.invoke(event, INVOKE_TIMEOUT_SECS);
    let first = invoke(workload.event()?).await?;
    workload.check(&first)?;
    for _ in 0..WARM_UPS {
        workload.check(&invoke(workload.event()?).await?)?;
    }
    endpoint.take_calls();

    let before = process.usage()?;
    let log_before = log_bytes()?;
    let mut durations = Vec::with_capacity(invocations);
    for _ in 0..invocations {
        // Built here in the harness: not the function's cost.
        let event = workload.event()?;
        let outcome = invoke(event).await?;
        workload.check(&outcome)?;
        durations.push(outcome.duration.as_secs_f64() * 1000.0);
    }
    let after = process.usage()?;
    let logged = log_bytes()?;
    let per_job = |after: u64, before: u64| {
        after.saturating_sub(before) as f64 / (invocations * workload.jobs()) as f64
    };
    let calls = endpoint.take_calls();
    if let Some(failed) = calls.iter().find(|call| call.failed()) {
        return Err(BenchError::Unexpected(format!(
            "{}: the canned endpoint refused {}",
            function.name, failed.operation
        )));
    }
    let cpu_ms_per_invocation = after.cpu_ms_since(&before) / invocations as f64;
    Ok(CpuFigures {
        function: function.name.clone(),
        jobs_per_invocation: workload.jobs(),
        invocations,
        cpu_ms_per_invocation,
        cpu_ms_per_job: cpu_ms_per_invocation / workload.jobs() as f64,
        first_invocation_ms: first.duration.as_secs_f64() * 1000.0,
        invocation_ms: Summary::of(&durations)
            .ok_or_else(|| BenchError::Unexpected("cpu: no invocations".into()))?,
        rss_after_init_mib: after_init.peak_rss_mib(),
        peak_rss_mib: after.peak_rss_mib(),
        log_bytes_per_job: per_job(logged.0, log_before.0),
        emf_bytes_per_job: per_job(logged.1, log_before.1),
        aws_calls_per_invocation: tally(&calls)
            .into_iter()
            .map(|(operation, count)| (operation, count.calls as f64 / invocations as f64))
            .collect(),
    })
}

//! Init time: from starting a function's process to its first
//! `GET /runtime/invocation/next`, which is where Lambda's init phase ends
//! (what CloudWatch reports as "Init Duration", less the sandbox's own
//! start-up, which is the same for every function).
//!
//! Each function starts `runs` times, in turn with the others, so that a
//! burst of load from other work on the machine falls on all of them alike;
//! one extra first round warms the page cache and is not counted. Each start
//! gets its own Runtime API stub and its own recording AWS endpoint: any
//! connection to the endpoint before the first `/next` is a network call
//! during init, which Jobline's functions must not make (credentials and
//! clients resolve lazily, on the first request).

use crate::endpoint::{AwsEndpoint, Backend};
use crate::error::BenchError;
use crate::process::{LambdaFunction, LambdaProcess, lambda_environment};
use crate::runtime_api::RuntimeApi;
use crate::stats::Summary;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// How long a function may take to ask for work.
const READY_TIMEOUT_SECS: u64 = 10;

/// One function's init figures.
#[derive(Debug, Clone, Serialize)]
pub struct InitFigures {
    pub function: String,
    /// The extra environment of a diagnostic variant (`None` as deployed).
    pub variant: Option<String>,
    pub init_ms: Summary,
    /// The most connections to AWS seen before the first `/next`, any run.
    pub connections_during_init: usize,
    /// Median init time over the baseline's median.
    pub median_ratio_to_baseline: f64,
    /// p90 init time over the baseline's p90.
    pub p90_ratio_to_baseline: f64,
}

/// Measures each of `functions` and `baseline` (reported last) `runs` times.
pub async fn measure(
    functions: &[LambdaFunction],
    baseline: &LambdaFunction,
    runs: usize,
    logs: &Path,
) -> Result<Vec<InitFigures>, BenchError> {
    let all: Vec<&LambdaFunction> = functions.iter().chain([baseline]).collect();
    let mut samples = vec![Vec::with_capacity(runs); all.len()];
    let mut connections = vec![0; all.len()];
    for round in 0..=runs {
        for (i, function) in all.iter().enumerate() {
            let (init_ms, seen) = start_once(function, logs).await?;
            if round > 0 {
                samples[i].push(init_ms);
                connections[i] = connections[i].max(seen);
            }
        }
    }
    let summaries = samples
        .iter()
        .map(|s| Summary::of(s))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| BenchError::Unexpected("init: no runs".into()))?;
    let base = summaries[all.len() - 1];
    Ok(all
        .iter()
        .zip(summaries)
        .zip(connections)
        .map(|((function, init_ms), connections)| InitFigures {
            function: function.name.clone(),
            variant: function.variant.clone(),
            init_ms,
            connections_during_init: connections,
            median_ratio_to_baseline: init_ms.median / base.median,
            p90_ratio_to_baseline: init_ms.p90 / base.p90,
        })
        .collect())
}

/// Starts `function` once; returns its init time in ms and the connections
/// its AWS endpoint had accepted by then.
async fn start_once(function: &LambdaFunction, logs: &Path) -> Result<(f64, usize), BenchError> {
    let mut runtime = RuntimeApi::start(&function.name).await?;
    let endpoint = AwsEndpoint::start(Backend::Canned).await?;
    let environment = lambda_environment(function, runtime.addr(), &endpoint.url());
    let log = logs.join(format!("{}-init.log", function.name));
    let started = Instant::now();
    let process = LambdaProcess::spawn(&function.binary, &environment, &log)?;
    let ready = runtime.ready(READY_TIMEOUT_SECS).await.map_err(|e| {
        BenchError::Unexpected(format!(
            "{}: {e} (its log: {})",
            function.name,
            log.display()
        ))
    })?;
    let connections = endpoint.connections();
    drop(process);
    Ok((
        ready.duration_since(started).as_secs_f64() * 1000.0,
        connections,
    ))
}

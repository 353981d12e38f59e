//! Job types: the work Jobline runs, as a registry of [`JobHandler`]s, the
//! [`JobContext`] a handler runs in, and the built-in types.
//!
//! Users add a type by implementing [`JobHandler`] and registering it in
//! `jobline_jobs::registry()`, the one [`JobTypes`] that both the API (to
//! refuse unknown types and bad payloads at submission) and the worker (to run
//! them) are built with.
//!
//! Error messages of the built-in types never quote their input: the error is
//! stored with the job and shown to clients.

mod csv_stats;
mod failing;
mod primes;
mod sleep;

pub use csv_stats::CsvStats;
pub use failing::{AlwaysFail, FailTimes};
pub use primes::Primes;
pub use sleep::Sleep;

use crate::job::JobId;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The peak memory a handler declares when it says nothing: enough for a
/// small JSON payload and result.
pub const DEFAULT_PEAK_MEMORY_BYTES: u64 = 8 * 1024 * 1024;

/// How a job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another try later (a timeout, a throttled dependency): the
    /// message comes back after a backoff, until the queue dead-letters it.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (bad input): the job fails at once.
    #[error("{0}")]
    Permanent(String),
}

/// What a handler knows about the attempt it runs, and its stop signal.
///
/// Room is left (the struct is `non_exhaustive`) for what is to come: a way
/// to report progress, and the job's idempotency key for handlers that call
/// out to other systems.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobContext {
    /// The job being run.
    pub job_id: JobId,
    /// Which claim of the job this is (`job.attempts`): 1 on the first run,
    /// the same across processes and deliveries.
    pub attempt: u32,
    /// When the worker cancels the attempt (ms since the epoch): the
    /// invocation's deadline less the reserve the worker keeps to record it.
    pub deadline_ms: i64,
    /// Fired at `deadline_ms`. A handler must then stop soon (the worker
    /// waits `jobline_worker::STOP_GRACE`); one that does not stop gets its
    /// process ended, since nothing else can stop a blocking thread.
    pub cancel: CancellationToken,
}

impl JobContext {
    pub fn new(job_id: JobId, attempt: u32, deadline_ms: i64, cancel: CancellationToken) -> Self {
        Self {
            job_id,
            attempt,
            deadline_ms,
            cancel,
        }
    }

    /// Whether the attempt has been cancelled (cheap: for polling inside a
    /// loop every N iterations).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the attempt is cancelled (for `tokio::select!`).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}

/// One job type.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The name clients put in `"type"`.
    fn name(&self) -> &str;

    /// Checks a payload's shape at submission, so a bad one gets a 422
    /// instead of a queued job that can only fail. The default accepts all.
    fn validate(&self, _payload: &Value) -> Result<(), String> {
        Ok(())
    }

    /// The most memory one run takes at the largest payload `validate`
    /// accepts. The worker runs at most `function memory / peak` jobs at once.
    fn peak_memory_bytes(&self) -> u64 {
        DEFAULT_PEAK_MEMORY_BYTES
    }

    /// Runs the job. CPU-heavy work belongs in `spawn_blocking`, so the other
    /// jobs of the batch keep running, and must check `ctx.is_cancelled()`
    /// often enough to stop within a second of the signal.
    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError>;
}

/// The registry of job types, by name.
#[derive(Clone, Default)]
pub struct JobTypes {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for JobTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl JobTypes {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The job types Jobline ships: `primes` and `csv-stats`, and for trying
    /// the system out `sleep`, `fail-times` and `always-fail`.
    pub fn builtin() -> Self {
        Self::new()
            .with(Primes)
            .with(CsvStats)
            .with(Sleep)
            .with(FailTimes)
            .with(AlwaysFail)
    }

    /// Adds (or replaces) a job type.
    pub fn with(mut self, handler: impl JobHandler + 'static) -> Self {
        self.handlers
            .insert(handler.name().to_owned(), Arc::new(handler));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(name)
    }

    /// The largest [`JobHandler::peak_memory_bytes`] of the registered types.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.handlers
            .values()
            .map(|handler| handler.peak_memory_bytes())
            .max()
            .unwrap_or(DEFAULT_PEAK_MEMORY_BYTES)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

/// Reads an object field of a payload, for validation messages that name it.
fn field<'a>(payload: &'a Value, name: &str) -> Result<&'a Value, String> {
    payload
        .as_object()
        .ok_or_else(|| "payload must be a JSON object".to_owned())?
        .get(name)
        .ok_or_else(|| format!("payload.{name} is required"))
}

/// Reads `payload.<name>` as an integer from 0 to `max`; the message names
/// the field and the range, never the value sent.
fn bounded_u64(payload: &Value, name: &str, max: u64) -> Result<u64, String> {
    field(payload, name)?
        .as_u64()
        .filter(|n| *n <= max)
        .ok_or_else(|| format!("payload.{name} must be an integer from 0 to {max}"))
}

/// A context for a handler's unit tests: job `attempt`, an hour to run.
#[cfg(test)]
fn test_context(attempt: u32) -> JobContext {
    JobContext::new(
        JobId::random(),
        attempt,
        crate::job::now_ms() + 3_600_000,
        CancellationToken::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_lists_its_types() {
        let types = JobTypes::builtin();
        assert_eq!(
            types.names().collect::<Vec<_>>(),
            ["always-fail", "csv-stats", "fail-times", "primes", "sleep"]
        );
        assert!(types.get("primes").is_some());
        assert!(types.get("nope").is_none());
        assert_eq!(
            format!("{types:?}"),
            r#"["always-fail", "csv-stats", "fail-times", "primes", "sleep"]"#
        );
        assert_eq!(
            types.peak_memory_bytes(),
            Primes.peak_memory_bytes(),
            "the sieve is the largest"
        );
    }

    /// Error text is stored and shown to clients: no built-in type quotes
    /// the payload it was given, in validation or in a run.
    #[tokio::test]
    async fn no_builtin_echoes_its_input() {
        const MARK: &str = "SECRET-7f3a";
        let types = JobTypes::builtin();
        let payloads = [
            serde_json::json!(MARK),
            serde_json::json!({"upTo": MARK, "csv": MARK, "seconds": MARK, "failures": MARK}),
            serde_json::json!({"csv": format!("{MARK}\n{MARK}")}),
            serde_json::json!({"csv": format!("a\n{MARK}")}),
            serde_json::json!({"csv": format!("a\n1,{MARK}")}),
        ];
        for name in types.names() {
            let handler = types.get(name).unwrap();
            for payload in &payloads {
                if let Err(message) = handler.validate(payload) {
                    assert!(!message.contains(MARK), "{name} validate: {message}");
                }
                if let Err(error) = handler.run(&test_context(1), payload.clone()).await {
                    assert!(!error.to_string().contains(MARK), "{name} run: {error}");
                }
            }
        }
    }
}

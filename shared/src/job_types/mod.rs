//! Job types: the work Jobline runs, as a registry of [`JobHandler`]s.
//!
//! Users add a type by implementing [`JobHandler`] and registering it in the
//! [`JobTypes`] that both the API (to refuse unknown types and bad payloads
//! at submission) and the worker (to run them) are built with.

mod csv_stats;
mod primes;

pub use csv_stats::CsvStats;
pub use primes::Primes;

use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

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

    /// Runs the job. CPU-heavy work belongs in `spawn_blocking`, so the other
    /// jobs of the batch keep running.
    async fn run(&self, payload: Value) -> Result<Value, JobError>;
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

    /// The job types Jobline ships: `primes` and `csv-stats`.
    pub fn builtin() -> Self {
        Self::new().with(Primes).with(CsvStats)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_lists_its_types() {
        let types = JobTypes::builtin();
        assert_eq!(types.names().collect::<Vec<_>>(), ["csv-stats", "primes"]);
        assert!(types.get("primes").is_some());
        assert!(types.get("nope").is_none());
        assert_eq!(format!("{types:?}"), r#"["csv-stats", "primes"]"#);
    }
}

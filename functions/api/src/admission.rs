//! The per-caller bound on unfinished jobs: a new job is counted against
//! its caller's bound before it is written (one conditional write to the
//! callers table, so concurrent submissions cannot pass the bound
//! together), and the count is given back if the job is not created after
//! all. The notifier counts each job down at its final state, off the jobs
//! table's stream (`jobline_dynamodb::outbox::counted`).
//!
//! So a caller's count can be off only by a count down that ran twice (a
//! duplicate stream record: the bound then lets one more job in) or by a
//! give-back that failed here (it keeps one job too many counted, until an
//! operator recounts it: `jobline callers recount`); both are logged.

use crate::error::ApiError;
use crate::{Api, BACKLOG_RETRY_AFTER_SECS};
use jobline_core::JobRecord;

/// Whether a new job was counted against its caller's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Counted: give it back if the job is not created.
    Counted,
    /// No bound applies (no callers table, or no bound for this caller).
    Unbounded,
}

impl Api {
    /// Counts new job `job` against its caller's bound; 429
    /// `too_many_jobs` when the caller is at it.
    pub(crate) async fn admit(&self, job: &JobRecord) -> Result<Admission, ApiError> {
        let (Some(counts), Some(limit)) =
            (&self.counts, self.caller_limits.max_unfinished(&job.owner))
        else {
            return Ok(Admission::Unbounded);
        };
        match counts.admit(&job.owner, limit).await {
            Ok(true) => Ok(Admission::Counted),
            Ok(false) => Err(ApiError::TooManyJobs {
                limit,
                retry_after_secs: BACKLOG_RETRY_AFTER_SECS,
            }),
            Err(error) => Err(ApiError::StoreUnavailable(error.to_string())),
        }
    }

    /// Gives back `admission` of a job that was not created (a repeat of
    /// an accepted one, or a write that failed).
    pub(crate) async fn give_back(&self, admission: Admission, job: &JobRecord) {
        if admission == Admission::Unbounded {
            return;
        }
        if let Some(counts) = &self.counts
            && let Err(error) = counts.adjust(&job.owner, -1).await
        {
            tracing::error!(%error, jobId = %job.id, "could not give back a caller's count: it counts one job too many");
        }
    }
}

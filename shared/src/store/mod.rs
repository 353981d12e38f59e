//! The job records: the [`JobStore`] port, and its adapters.
//!
//! - [`dynamodb`]: [`DynamoJobStore`], the production adapter on DynamoDB;
//! - [`item`]: the item codec and size budgets it writes by;
//! - `memory` (tests and feature `memory` only): `memory::MemoryStore`,
//!   the fake other crates' unit tests run against.
//!
//! Every state change is one conditional write, so two workers that get the
//! same message cannot both run or both complete a job. Both adapters obey
//! one behaviour, which `crate::contract` states once and runs against each.

pub mod dynamodb;
pub mod item;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

pub use dynamodb::DynamoJobStore;
pub use item::{KEY_ATTRIBUTE, TTL_ATTRIBUTE, item_from_record, record_from_item};

use crate::error::StoreError;
use crate::job::{JobId, JobRecord, JobState};
use async_trait::async_trait;
use serde_json::Value;

/// How an attempt ended, as written by [`JobStore::finish`].
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Succeeded(Value),
    Failed { error: String, dead_lettered: bool },
}

/// What [`JobStore::replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The job was `failed` and is `queued` again.
    Replayed,
    /// The job is in another state and was left alone.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// What [`JobStore::discard`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    /// The job is `failed` and marked discarded (also when it already was).
    Discarded,
    /// The job is in a state that cannot be discarded (`succeeded`).
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// The error a discarded job gets when it had none.
pub const DISCARDED_ERROR: &str = "discarded by an operator";

/// The job records. Each method is one conditional write or one read.
///
/// Every stored error is cut to [`item::ERROR_BUDGET_BYTES`]; a write that
/// can never succeed (an item over DynamoDB's 400 KB) is
/// [`StoreError::Invalid`].
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Writes a new `queued` job unless its id is taken by a job that was
    /// queued successfully. On a taken id: `Conflict` with the existing job.
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError>;

    /// Marks a job whose message could not be sent as failed (and finished
    /// now), if no worker has claimed it; the same idempotency key may then
    /// submit it again.
    async fn mark_enqueue_failed(&self, job: &JobRecord, error: &str) -> Result<(), StoreError>;

    /// Reads a job, strongly consistent.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Claims a job for one attempt by the delivery with `token` (unique
    /// per delivery): `queued` (or `running` with an expired lease or none)
    /// becomes `running`, `attempts` grows by one, the lease runs until
    /// `lease_until_ms`, and `token` is stored. Returns the claimed job.
    ///
    /// Idempotent for one delivery: when the job is already `running` under
    /// `token` (this claim landed but its answer was lost, and the SDK's
    /// retry was refused), returns that job, with no second attempt.
    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
        token: &str,
    ) -> Result<JobRecord, StoreError>;

    /// Completes attempt number `attempt`, fenced by it: a stale attempt whose
    /// lease was taken over gets `Conflict`. Idempotent: when the job is
    /// already in the completion's state under `attempt` and the claim's
    /// `token` (the write landed, its answer was lost), returns `Ok`.
    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Returns a job to `queued` after a retryable failure of `attempt`,
    /// keeping `error` for the client to see; fenced and idempotent like
    /// [`finish`](Self::finish).
    async fn return_to_queue(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Replays a `failed` job: back to `queued`, `replays` plus one, no
    /// longer dead-lettered, enqueue-failed or discarded, and kept for the
    /// store's whole retention from now (so the TTL cannot delete it while
    /// it runs again).
    async fn replay(&self, id: JobId) -> Result<ReplayOutcome, StoreError>;

    /// An operator gives up on a job: any state but `succeeded` becomes
    /// `failed` with `discarded` set, `finishedAt` set if missing, the lease
    /// removed, and [`DISCARDED_ERROR`] as the error if there was none.
    /// Discarding a discarded job is `Discarded` again.
    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError>;
}

/// The record [`JobStore::mark_enqueue_failed`] writes for `job`.
fn enqueue_failed(job: &JobRecord, error: &str, now_ms: i64) -> JobRecord {
    JobRecord {
        state: JobState::Failed,
        enqueue_failed: true,
        error: Some(error.to_owned()),
        finished_at: Some(now_ms),
        ..job.clone()
    }
}

impl Completion {
    /// The state the completion leaves its job in.
    pub fn state(&self) -> JobState {
        match self {
            Self::Succeeded(_) => JobState::Succeeded,
            Self::Failed { .. } => JobState::Failed,
        }
    }
}

/// A claim's answer, given that the delivery with `token` made it: a
/// refusal because the job is `running` under that token means the claim
/// itself had landed, so its job is the answer.
fn own_claim(claimed: Result<JobRecord, StoreError>, token: &str) -> Result<JobRecord, StoreError> {
    match claimed {
        Err(StoreError::Conflict { current: Some(job) })
            if job.written_by(job.attempts, token, JobState::Running) =>
        {
            Ok(*job)
        }
        other => other,
    }
}

/// A fenced write's answer, given that it meant to leave the job in `state`
/// under `attempt` and `token`: a refusal because the job is already so
/// means the write itself had landed.
fn own_write<T>(
    written: Result<T, StoreError>,
    attempt: u32,
    token: &str,
    state: JobState,
) -> Result<(), StoreError> {
    match written {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { current: Some(job) })
            if job.written_by(attempt, token, state) =>
        {
            Ok(())
        }
        Err(other) => Err(other),
    }
}

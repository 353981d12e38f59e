//! The rules both store adapters apply the same way: when an enqueue
//! failure or a resend may be written, how a refused write's answer is
//! read (a write that had landed, an outcome settled by the job's state),
//! and how a state listing's shards merge. Re-exported by [`crate::store`].

use super::{CancelOutcome, ListKey};
use crate::error::StoreError;
use crate::job::{JobRecord, JobState};

/// Merges the shards' pages of a state listing, each newest first: the
/// newest `limit` of them, and where the next page starts, if there may be
/// one (more entries than `limit`, or a shard cut at its limit:
/// `shard_cut`). A shard's page holds its newest `limit` entries, so the
/// newest `limit` of all are among them.
pub fn merge_shards(
    mut keys: Vec<ListKey>,
    shard_cut: bool,
    limit: usize,
) -> (Vec<ListKey>, Option<ListKey>) {
    keys.sort_by(|a, b| b.cmp(a));
    let more = shard_cut || keys.len() > limit;
    keys.truncate(limit);
    let next = if more { keys.last().copied() } else { None };
    (keys, next)
}

/// Whether `current` may be marked enqueue-failed by the request that
/// created `job`: the rule `jobline_dynamodb`'s `ENQUEUE_FAILED_CONDITION` encodes.
pub fn may_mark_enqueue_failed(current: &JobRecord, job: &JobRecord) -> bool {
    current.state.is_waiting()
        && current.attempts == 0
        && current.created_at == job.created_at
        && current.resent_at.is_none()
}

/// Whether a repeat may send `current`'s message again: the rule
/// `jobline_dynamodb`'s `RESEND_CONDITION` encodes.
pub fn may_resend(current: &JobRecord) -> bool {
    current.state.is_waiting() && current.attempts == 0 && !current.enqueue_failed
}

/// The record [`ApiStore::mark_enqueue_failed`](super::ApiStore::mark_enqueue_failed) writes for `job`.
pub fn enqueue_failed(job: &JobRecord, error: &str, now_ms: i64) -> JobRecord {
    JobRecord {
        state: JobState::Failed,
        enqueue_failed: true,
        error: Some(error.to_owned()),
        finished_at: Some(now_ms),
        ..job.clone()
    }
}

/// What a conditional write that the job's state may refuse came to: `done`
/// of what it returned when it landed, `unchanged` of the job's state when
/// the job is in another one, `missing` when there is no job. The replay,
/// discard and sweep outcomes of both adapters come from here.
pub fn outcome_of<T, O>(
    written: Result<T, StoreError>,
    done: impl FnOnce(T) -> O,
    unchanged: impl FnOnce(JobState) -> O,
    missing: O,
) -> Result<O, StoreError> {
    match written {
        Ok(value) => Ok(done(value)),
        Err(StoreError::Conflict { current: None }) => Ok(missing),
        Err(StoreError::Conflict { current: Some(job) }) => Ok(unchanged(job.state)),
        Err(other) => Err(other),
    }
}

/// The outcome of a cancel that found `job`, if its state settles it (a
/// `scheduled`, `queued` or `running` job must be written).
pub fn cancel_settled(job: JobRecord) -> Option<CancelOutcome> {
    match job.state {
        JobState::Cancelled => Some(CancelOutcome::Cancelled(Box::new(job))),
        JobState::Succeeded | JobState::Failed => Some(CancelOutcome::Finished(job.state)),
        JobState::Scheduled | JobState::Queued | JobState::Running => None,
    }
}

/// How many times a cancel tries its write when the job's state changes
/// under it (`queued` ⇄ `running`); each try is one conditional write.
pub const CANCEL_TRIES: usize = 4;

/// A claim's answer, given that the delivery with `token` made it: a
/// refusal because the job is `running` under that token means the claim
/// itself had landed, so its job is the answer.
pub fn own_claim(
    claimed: Result<JobRecord, StoreError>,
    token: &str,
) -> Result<JobRecord, StoreError> {
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
pub fn own_write<T>(
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

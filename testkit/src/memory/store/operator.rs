//! An operator's role ([`OperatorStore`]) and the replay it shares with
//! the worker ([`ReplayStore`]), on the fake.

use super::{MemoryStore, conflict, lock, summary};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, expires_at};
use jobline_core::store::{
    DISCARDED_ERROR, DiscardOutcome, JobPage, ListKey, MAX_LIST_LIMIT, OperatorStore,
    ReplayOutcome, ReplayStore, StateCount, outcome_of,
};

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn replay(&self, id: JobId, now: i64) -> Result<ReplayOutcome, StoreError> {
        let due = self.deadlines.queued_at(now);
        let replayed = self.write("UpdateItem", id, Some(due), |current| match current {
            Some(job) if job.state == JobState::Failed => Ok(JobRecord {
                state: JobState::Queued,
                replays: job.replays + 1,
                dead_lettered: false,
                enqueue_failed: false,
                discarded: false,
                finished_at: None,
                lease_expires_at: None,
                run_started_at: None,
                cancel_requested: false,
                expires_at: expires_at(now, self.retention_days),
                ..job.clone()
            }),
            current => Err(conflict(current)),
        });
        if replayed.is_ok() {
            self.hook(id, true);
        }
        outcome_of(
            replayed,
            |_| ReplayOutcome::Replayed,
            ReplayOutcome::Unchanged,
            ReplayOutcome::Missing,
        )
    }
}

#[async_trait]
impl OperatorStore for MemoryStore {
    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError> {
        let discarded = self.write("UpdateItem", id, None, |current| match current {
            Some(job) if !matches!(job.state, JobState::Succeeded | JobState::Cancelled) => {
                Ok(JobRecord {
                    state: JobState::Failed,
                    discarded: true,
                    finished_at: job.finished_at.or(Some(now_ms)),
                    error: job
                        .error
                        .clone()
                        .or_else(|| Some(DISCARDED_ERROR.to_owned())),
                    lease_expires_at: None,
                    ..job.clone()
                })
            }
            current => Err(conflict(current)),
        });
        outcome_of(
            discarded,
            |_| DiscardOutcome::Discarded,
            DiscardOutcome::Unchanged,
            DiscardOutcome::Missing,
        )
    }

    async fn list_by_state(
        &self,
        state: JobState,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        self.check("Query")?;
        let jobs = lock(&self.jobs);
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        // As DynamoDB: each of the state's shards read newest first, at
        // most `limit` entries each, then merged.
        let (mut keys, mut cut) = (Vec::new(), false);
        for shard in 0..jobline_core::store::SHARDS {
            let mut entries: Vec<ListKey> = jobs
                .values()
                .filter(|job| {
                    job.state == state && job.id.shard(jobline_core::store::SHARDS) == shard
                })
                .map(|job| ListKey {
                    created_at: job.created_at,
                    id: job.id,
                })
                .filter(|key| after.is_none_or(|after| *key < after))
                .collect();
            entries.sort_by(|a, b| b.cmp(a));
            cut |= entries.len() > limit;
            entries.truncate(limit);
            keys.extend(entries);
        }
        let scanned = keys.len();
        let (keys, next) = jobline_core::store::merge_shards(keys, cut, limit);
        Ok(JobPage {
            scanned,
            jobs: keys.iter().map(|key| summary(&jobs[&key.id])).collect(),
            next,
        })
    }

    async fn count_by_state(
        &self,
        state: JobState,
        per_shard: usize,
    ) -> Result<StateCount, StoreError> {
        self.check("Query")?;
        let jobs = lock(&self.jobs);
        let mut counts = [0; jobline_core::store::SHARDS as usize];
        for job in jobs.values().filter(|job| job.state == state) {
            counts[usize::from(job.id.shard(jobline_core::store::SHARDS))] += 1;
        }
        Ok(StateCount {
            count: counts.iter().map(|&count| count.min(per_shard)).sum(),
            complete: counts.iter().all(|&count| count <= per_shard),
        })
    }

    async fn oldest_in_state(&self, state: JobState) -> Result<Option<ListKey>, StoreError> {
        self.check("Query")?;
        Ok(lock(&self.jobs)
            .values()
            .filter(|job| job.state == state)
            .map(|job| ListKey {
                created_at: job.created_at,
                id: job.id,
            })
            .min())
    }
}

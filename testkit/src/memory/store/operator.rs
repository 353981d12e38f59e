//! An operator's role ([`OperatorStore`]) and the replay it shares with
//! the worker ([`ReplayStore`]), on the fake.

use super::{MemoryStore, conflict, lock, summary};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, expires_at};
use jobline_core::store::{
    DISCARDED_ERROR, DiscardOutcome, JobPage, ListKey, MAX_LIST_LIMIT, OLDEST_SCAN, OperatorStore,
    ReplayOutcome, ReplayStore, SHARDS, StateCount, StateListing, merge_shards, outcome_of,
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
        let entries = self.entries(state)?;
        let jobs = lock(&self.jobs);
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        // As DynamoDB: each shard of the index read newest first, at most
        // `limit` entries each, then merged, then the jobs read.
        let (mut keys, mut cut) = (Vec::new(), false);
        for shard in 0..SHARDS {
            let mut shard_keys: Vec<ListKey> = entries
                .iter()
                .filter(|key| key.id.shard(SHARDS) == shard)
                .filter(|key| after.is_none_or(|after| **key < after))
                .copied()
                .collect();
            shard_keys.sort_by(|a, b| b.cmp(a));
            cut |= shard_keys.len() > limit;
            shard_keys.truncate(limit);
            keys.extend(shard_keys);
        }
        let scanned = keys.len();
        let (keys, next) = merge_shards(keys, cut, limit);
        let (keys, jobs) = keys
            .into_iter()
            .map(|key| (key, summary(&jobs[&key.id])))
            .filter(|(_, job)| job.state == state)
            .unzip();
        Ok(JobPage {
            scanned,
            jobs,
            keys,
            next,
        })
    }

    async fn count_by_state(
        &self,
        state: JobState,
        per_shard: usize,
    ) -> Result<StateCount, StoreError> {
        self.check("Query")?;
        let entries = self.entries(state)?;
        let jobs = lock(&self.jobs);
        let mut shards: Vec<Vec<ListKey>> = vec![Vec::new(); usize::from(SHARDS)];
        for key in entries {
            shards[usize::from(key.id.shard(SHARDS))].push(key);
        }
        let complete = shards.iter().all(|shard| shard.len() <= per_shard);
        // As DynamoDB: the first entries of each shard in the index's order.
        let count = shards
            .iter_mut()
            .map(|shard| {
                shard.sort();
                shard
                    .iter()
                    .take(per_shard)
                    .filter(|key| jobs[&key.id].state == state)
                    .count()
            })
            .sum();
        Ok(StateCount { count, complete })
    }

    async fn oldest_queued(&self) -> Result<Option<JobRecord>, StoreError> {
        self.check("Query")?;
        let mut entries = self.entries(JobState::Queued)?;
        entries.sort();
        let jobs = lock(&self.jobs);
        // As DynamoDB: at most OLDEST_SCAN entries of each shard.
        let mut read = [0; SHARDS as usize];
        Ok(entries
            .into_iter()
            .filter(|key| {
                let shard = &mut read[usize::from(key.id.shard(SHARDS))];
                *shard += 1;
                *shard <= OLDEST_SCAN
            })
            .map(|key| summary(&jobs[&key.id]))
            .find(|job| job.state == JobState::Queued))
    }
}

impl MemoryStore {
    /// The entries a listing of `state` reads, as DynamoDB's would be:
    /// the due index's (every unfinished job) by `dueAt`, or the state
    /// index's partitions of `state` by `createdAt`.
    fn entries(&self, state: JobState) -> Result<Vec<ListKey>, StoreError> {
        let jobs = lock(&self.jobs);
        match StateListing::of(state) {
            StateListing::Unlisted => Err(StoreError::Invalid {
                operation: "Query",
                reason: "succeeded jobs are in no index".to_owned(),
            }),
            StateListing::DueIndex => Ok(lock(&self.due)
                .iter()
                .map(|(&id, &at)| ListKey { at, id })
                .collect()),
            StateListing::StateIndex => Ok(jobs
                .values()
                .filter(|job| job.state == state)
                .map(|job| ListKey {
                    at: job.created_at,
                    id: job.id,
                })
                .collect()),
        }
    }
}

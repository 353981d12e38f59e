//! The sweeper function's role ([`SweeperStore`]) on the fake: the due
//! index's overdue jobs and the sweep, and the webhook index's owed ones.

use super::{MemoryStore, before_page, conflict, lock};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState};
use jobline_core::store::{
    DueKey, OverduePage, SWEPT_ERROR, SweepOutcome, SweeperStore, outcome_of,
};
use std::sync::atomic::Ordering;

#[async_trait]
impl SweeperStore for MemoryStore {
    async fn overdue(
        &self,
        shard: u8,
        now_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError> {
        self.check("Query")?;
        let _jobs = lock(&self.jobs);
        let entries = lock(&self.due)
            .iter()
            .map(|(&id, &due_at_ms)| DueKey { due_at_ms, id })
            .collect();
        Ok(before_page(entries, shard, now_ms, after, limit))
    }

    async fn sweep(&self, id: JobId, now_ms: i64) -> Result<SweepOutcome, StoreError> {
        let swept = self.write("UpdateItem", id, None, |current| match current {
            Some(job)
                if !job.state.is_finished()
                    && lock(&self.due).get(&id).is_some_and(|&due| due < now_ms)
                    && job.lease_expires_at.is_none_or(|until| until < now_ms) =>
            {
                Ok(JobRecord {
                    state: JobState::Failed,
                    dead_lettered: true,
                    error: Some(SWEPT_ERROR.to_owned()),
                    finished_at: Some(now_ms),
                    lease_expires_at: None,
                    ..job.clone()
                })
            }
            current => Err(conflict(current)),
        });
        outcome_of(
            swept,
            |job| SweepOutcome::Swept(Box::new(job)),
            SweepOutcome::Unchanged,
            SweepOutcome::Missing,
        )
    }

    async fn owed_webhooks(
        &self,
        shard: u8,
        finished_before_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError> {
        self.check("Query")?;
        let jobs = lock(&self.jobs);
        let entries = lock(&self.hooked)
            .iter()
            .filter_map(|&id| {
                let due_at_ms = jobs.get(&id)?.finished_at?;
                Some(DueKey { due_at_ms, id })
            })
            .collect();
        Ok(before_page(
            entries,
            shard,
            finished_before_ms,
            after,
            limit,
        ))
    }

    async fn settle_webhook(&self, id: JobId) -> Result<(), StoreError> {
        self.check("UpdateItem")?;
        if self.job(id).is_none() {
            return Err(conflict(None));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.hook(id, false);
        Ok(())
    }
}

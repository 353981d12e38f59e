//! The API function's role ([`ApiStore`]) and the cancel it shares with
//! operators ([`CancelStore`]), on the fake.

use super::{MemoryStore, conflict, lock, summary};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState};
use jobline_core::store::{
    ApiStore, CancelOutcome, CancelStore, DeleteOutcome, JobPage, ListKey, MAX_LIST_LIMIT,
    cancel_settled, enqueue_failed, may_mark_enqueue_failed, may_resend,
};
use std::sync::atomic::Ordering;

#[async_trait]
impl CancelStore for MemoryStore {
    async fn cancel(&self, id: JobId, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        let written = self.write("UpdateItem", id, None, |current| match current {
            Some(job) if job.state.is_waiting() => Ok(JobRecord {
                state: JobState::Cancelled,
                finished_at: Some(now_ms),
                cancel_requested: true,
                lease_expires_at: None,
                ..job.clone()
            }),
            Some(job) if job.state == JobState::Running => Ok(JobRecord {
                cancel_requested: true,
                ..job.clone()
            }),
            current => Err(conflict(current)),
        });
        match written {
            Ok(job) if job.state == JobState::Running => {
                Ok(CancelOutcome::Requested(Box::new(job)))
            }
            Ok(job) => Ok(CancelOutcome::Cancelled(Box::new(job))),
            Err(StoreError::Conflict { current: None }) => Ok(CancelOutcome::Missing),
            Err(StoreError::Conflict { current: Some(job) }) => cancel_settled(*job)
                .ok_or_else(|| StoreError::Malformed("an unfinished job refused a cancel".into())),
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl ApiStore for MemoryStore {
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError> {
        let due = self.deadlines.queued_at(job.due_from());
        self.write("PutItem", job.id, Some(due), |current| match current {
            Some(existing) if !existing.enqueue_failed => Err(conflict(Some(existing))),
            _ => Ok(job.clone()),
        })?;
        if job.callback_url.is_some() {
            self.hook(job.id, true);
        }
        Ok(())
    }

    async fn mark_enqueue_failed(
        &self,
        job: &JobRecord,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write("PutItem", job.id, None, |current| match current {
            Some(current) if may_mark_enqueue_failed(current, job) => {
                Ok(enqueue_failed(job, error, now_ms))
            }
            current => Err(conflict(current)),
        })?;
        Ok(())
    }

    async fn run_now(&self, id: JobId, now_ms: i64) -> Result<JobRecord, StoreError> {
        self.write("UpdateItem", id, None, |current| match current {
            Some(job) if job.state == JobState::Scheduled => Ok(JobRecord {
                state: JobState::Queued,
                run_at: Some(now_ms),
                ..job.clone()
            }),
            current => Err(conflict(current)),
        })
    }

    async fn mark_resending(&self, id: JobId, now_ms: i64) -> Result<(), StoreError> {
        self.write("UpdateItem", id, None, |current| match current {
            Some(current) if may_resend(current) => Ok(JobRecord {
                resent_at: Some(now_ms),
                ..current.clone()
            }),
            current => Err(conflict(current)),
        })?;
        Ok(())
    }

    async fn list(
        &self,
        owner: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        self.check("Query")?;
        let jobs = lock(&self.jobs);
        let mut keys: Vec<ListKey> = jobs
            .values()
            .filter(|job| job.owner == owner)
            .map(|job| ListKey {
                at: job.created_at,
                id: job.id,
            })
            .filter(|key| after.is_none_or(|after| *key < after))
            .collect();
        keys.sort_by(|a, b| b.cmp(a));
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let next = (keys.len() > limit).then(|| keys[limit - 1]);
        keys.truncate(limit);
        Ok(JobPage {
            scanned: keys.len(),
            jobs: keys.iter().map(|key| summary(&jobs[&key.id])).collect(),
            keys,
            next,
        })
    }

    async fn delete(&self, id: JobId) -> Result<DeleteOutcome, StoreError> {
        self.check("DeleteItem")?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut jobs = lock(&self.jobs);
        match jobs.get(&id) {
            None => Ok(DeleteOutcome::Missing),
            Some(job) if !job.state.is_finished() => Ok(DeleteOutcome::Unfinished(job.state)),
            Some(_) => {
                jobs.remove(&id);
                lock(&self.due).remove(&id);
                Ok(DeleteOutcome::Deleted)
            }
        }
    }
}

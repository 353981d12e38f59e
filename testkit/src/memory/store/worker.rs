//! The worker function's role ([`WorkerStore`]) on the fake: the claim,
//! the heartbeat (which it can be told to stall), and the fenced writes
//! that end or hand back an attempt.

use super::{MemoryStore, conflict};
use async_trait::async_trait;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, claimable};
use jobline_core::store::{Completion, Heartbeat, Renewed, WorkerStore, own_claim, own_write};
use serde_json::Value;
use std::sync::atomic::Ordering;

#[async_trait]
impl WorkerStore for MemoryStore {
    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
        receive_count: u32,
        token: &str,
    ) -> Result<JobRecord, StoreError> {
        let due = self.deadlines.claimed(now_ms, receive_count);
        let claimed = self.write("UpdateItem", id, due, |current| match current {
            Some(job) if claimable(job.state, job.lease_expires_at, job.run_at, now_ms) => {
                let mut claimed = job.clone();
                claimed.claim(now_ms, lease_until_ms, token);
                Ok(claimed)
            }
            current => Err(conflict(current)),
        });
        own_claim(claimed, token)
    }

    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.fenced(id, attempt, token, completion.state(), |job| {
            job.finished_at = Some(now_ms);
            job.lease_expires_at = None;
            match completion {
                Completion::Succeeded(result) => {
                    job.state = JobState::Succeeded;
                    job.result = Some(result.clone());
                    job.error = None;
                }
                Completion::Failed {
                    error,
                    dead_lettered,
                } => {
                    job.state = JobState::Failed;
                    job.error = Some(error.clone());
                    job.dead_lettered = *dead_lettered;
                }
                Completion::SucceededLinked(key) => {
                    job.state = JobState::Succeeded;
                    job.result = None;
                    job.result_key = Some(key.clone());
                    job.error = None;
                }
                Completion::Cancelled => job.state = JobState::Cancelled,
            }
        })
    }

    async fn heartbeat(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        beat: &Heartbeat<'_>,
    ) -> Result<Renewed, StoreError> {
        if self.stalling_heartbeats.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let renewed = self.write("UpdateItem", id, None, |current| match current {
            Some(job)
                if job.state == JobState::Running
                    && job.attempts == attempt
                    && job.claim_token.as_deref() == Some(token) =>
            {
                let mut next = job.clone();
                next.lease_expires_at = Some(beat.lease_until_ms);
                if let Some(progress) = beat.progress {
                    next.progress = Some(progress.clone());
                }
                if let Some(checkpoint) = beat.checkpoint {
                    next.checkpoint = Some(checkpoint.clone());
                    next.checkpoint_at = Some(beat.now_ms);
                }
                Ok(next)
            }
            current => Err(conflict(current)),
        })?;
        Ok(Renewed {
            cancel_requested: renewed.cancel_requested,
        })
    }

    async fn suspend(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        checkpoint: Option<&Value>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let due = self.deadlines.queued_at(now_ms);
        let suspended = self.write("UpdateItem", id, Some(due), |current| match current {
            Some(job) if job.state == JobState::Running && job.attempts == attempt => {
                let mut next = job.clone();
                next.state = JobState::Queued;
                next.continuations += 1;
                next.lease_expires_at = None;
                next.error = None;
                if let Some(checkpoint) = checkpoint {
                    next.checkpoint = Some(checkpoint.clone());
                    next.checkpoint_at = Some(now_ms);
                }
                Ok(next)
            }
            current => Err(conflict(current)),
        });
        own_write(suspended, attempt, token, JobState::Queued)
    }

    async fn return_to_queue(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        self.fenced(id, attempt, token, JobState::Queued, |job| {
            job.state = JobState::Queued;
            job.error = Some(error.to_owned());
            job.lease_expires_at = None;
        })
    }

    async fn renew_due(&self, id: JobId, now_ms: i64) -> Result<(), StoreError> {
        let due = self.deadlines.queued_at(now_ms);
        self.write("UpdateItem", id, Some(due), |current| match current {
            Some(job) if !job.state.is_finished() => Ok(job.clone()),
            current => Err(conflict(current)),
        })?;
        Ok(())
    }
}

//! In-memory [`JobStore`] and [`JobQueue`] for unit tests (feature `memory`).
//!
//! The store applies the same rules as the DynamoDB conditions (from
//! [`crate::job`]), so handler logic can be tested without a network; the
//! integration tests run the real thing against the emulator.

use crate::error::{QueueError, StoreError};
use crate::job::{JobId, JobRecord, JobState, claimable};
use crate::queue::{JobMessage, JobQueue, Receive, ReceivedMessage};
use crate::store::{Completion, JobStore, Requeue};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn conflict(current: Option<&JobRecord>) -> StoreError {
    StoreError::Conflict {
        current: current.cloned().map(Box::new),
    }
}

fn unavailable(operation: &'static str) -> StoreError {
    StoreError::Aws {
        operation,
        source: "the in-memory store is set to fail".into(),
    }
}

/// Job records in a map, with DynamoDB's conditional-write behaviour.
#[derive(Debug, Default)]
pub struct MemoryStore {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
    failing: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail as if DynamoDB were unreachable.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Puts a record as it is, unconditionally.
    pub fn insert(&self, job: JobRecord) {
        lock(&self.jobs).insert(job.id, job);
    }

    pub fn job(&self, id: JobId) -> Option<JobRecord> {
        lock(&self.jobs).get(&id).cloned()
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(unavailable(operation));
        }
        Ok(())
    }

    /// Applies `change` to the running attempt `attempt` of job `id`.
    fn fenced(
        &self,
        id: JobId,
        attempt: u32,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<(), StoreError> {
        self.check("UpdateItem")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(&id) {
            Some(job) if job.state == JobState::Running && job.attempts == attempt => {
                change(job);
                Ok(())
            }
            current => Err(conflict(current.as_deref())),
        }
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.check("PutItem")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get(&job.id) {
            Some(existing) if !existing.enqueue_failed => Err(conflict(Some(existing))),
            _ => {
                jobs.insert(job.id, job.clone());
                Ok(())
            }
        }
    }

    async fn mark_enqueue_failed(&self, job: &JobRecord, error: &str) -> Result<(), StoreError> {
        self.check("PutItem")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(&job.id) {
            Some(current) if current.state == JobState::Queued && current.attempts == 0 => {
                current.state = JobState::Failed;
                current.enqueue_failed = true;
                current.error = Some(error.to_owned());
                Ok(())
            }
            current => Err(conflict(current.as_deref())),
        }
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.check("GetItem")?;
        Ok(self.job(id))
    }

    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<JobRecord, StoreError> {
        self.check("UpdateItem")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(&id) {
            Some(job) if claimable(job.state, job.lease_expires_at, now_ms) => {
                job.state = JobState::Running;
                job.attempts += 1;
                job.lease_expires_at = Some(lease_until_ms);
                job.started_at.get_or_insert(now_ms);
                Ok(job.clone())
            }
            current => Err(conflict(current.as_deref())),
        }
    }

    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.fenced(id, attempt, |job| {
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
            }
        })
    }

    async fn release(&self, id: JobId, attempt: u32, error: &str) -> Result<(), StoreError> {
        self.fenced(id, attempt, |job| {
            job.state = JobState::Queued;
            job.error = Some(error.to_owned());
            job.lease_expires_at = None;
        })
    }

    async fn requeue(&self, id: JobId) -> Result<Requeue, StoreError> {
        self.check("UpdateItem")?;
        let mut jobs = lock(&self.jobs);
        Ok(match jobs.get_mut(&id) {
            None => Requeue::Missing,
            Some(job) if job.state == JobState::Failed => {
                job.state = JobState::Queued;
                job.replays += 1;
                job.dead_lettered = false;
                job.finished_at = None;
                job.lease_expires_at = None;
                Requeue::Requeued
            }
            Some(job) => Requeue::Unchanged(job.state),
        })
    }
}

/// A queue that records what was sent and every visibility change.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<JobMessage>>,
    visibility_changes: Mutex<Vec<(String, u32)>>,
    waiting: Mutex<Vec<ReceivedMessage>>,
    deleted: Mutex<Vec<String>>,
    failing: AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail as if SQS were unreachable.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Adds a message for `receive` to return.
    pub fn push(&self, message: ReceivedMessage) {
        lock(&self.waiting).push(message);
    }

    pub fn sent(&self) -> Vec<JobMessage> {
        lock(&self.sent).clone()
    }

    /// `(receipt handle, seconds)` of every visibility change, in order.
    pub fn visibility_changes(&self) -> Vec<(String, u32)> {
        lock(&self.visibility_changes).clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        lock(&self.deleted).clone()
    }

    fn check(&self, operation: &'static str) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError::Aws {
                operation,
                source: "the in-memory queue is set to fail".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
        self.check("SendMessage")?;
        let mut sent = lock(&self.sent);
        sent.push(*message);
        Ok(format!("memory-{}", sent.len()))
    }

    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError> {
        self.check("ChangeMessageVisibility")?;
        lock(&self.visibility_changes).push((receipt_handle.to_owned(), secs));
        Ok(())
    }

    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.check("ReceiveMessage")?;
        let mut waiting = lock(&self.waiting);
        let take = usize::try_from(request.max_messages)
            .unwrap_or(0)
            .min(waiting.len());
        Ok(waiting.drain(..take).collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError> {
        self.check("DeleteMessageBatch")?;
        lock(&self.deleted).extend_from_slice(receipt_handles);
        Ok(Vec::new())
    }
}

//! In-memory [`JobStore`] and [`JobQueue`] for unit tests (feature `memory`).
//!
//! The store applies the same rules as the DynamoDB conditions (from
//! [`crate::job`]), and the queue SQS's visibility rules (a received message
//! is hidden, under a new receipt handle, until it is made visible or
//! deleted), so the worker, the API and the DLQ tools can be tested without
//! a network; the integration tests run the real thing against the emulator.

use crate::error::{QueueError, StoreError};
use crate::job::{JobId, JobRecord, JobState, claimable, now_ms};
use crate::queue::{JobMessage, JobQueue, Receive, ReceivedMessage};
use crate::store::{Completion, DISCARDED_ERROR, DiscardOutcome, JobStore, ReplayOutcome};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// The records of a [`MemoryStore`], by job id.
type Jobs = HashMap<JobId, JobRecord>;

/// Job records in a map, with DynamoDB's conditional-write behaviour.
#[derive(Debug, Default)]
pub struct MemoryStore {
    jobs: Mutex<Jobs>,
    writes: AtomicUsize,
    failing: AtomicBool,
}

impl MemoryStore {
    /// An empty table.
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

    /// The record of job `id`, if there is one.
    pub fn job(&self, id: JobId) -> Option<JobRecord> {
        lock(&self.jobs).get(&id).cloned()
    }

    /// Every record, by job id, as it is now.
    pub fn snapshot(&self) -> Jobs {
        lock(&self.jobs).clone()
    }

    /// How many conditional writes reached the table, refused ones included
    /// (not counting [`insert`](Self::insert)).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(unavailable(operation));
        }
        Ok(())
    }

    /// Starts a conditional write: fails when set to, counts it, and locks
    /// the table.
    fn write(&self, operation: &'static str) -> Result<MutexGuard<'_, Jobs>, StoreError> {
        self.check(operation)?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(lock(&self.jobs))
    }

    /// Applies `change` to the running attempt `attempt` of job `id`.
    fn fenced(
        &self,
        id: JobId,
        attempt: u32,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<(), StoreError> {
        let mut jobs = self.write("UpdateItem")?;
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
        let mut jobs = self.write("PutItem")?;
        match jobs.get(&job.id) {
            Some(existing) if !existing.enqueue_failed => Err(conflict(Some(existing))),
            _ => {
                jobs.insert(job.id, job.clone());
                Ok(())
            }
        }
    }

    async fn mark_enqueue_failed(&self, job: &JobRecord, error: &str) -> Result<(), StoreError> {
        let mut jobs = self.write("PutItem")?;
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
        let mut jobs = self.write("UpdateItem")?;
        match jobs.get_mut(&id) {
            Some(job) if claimable(job.state, job.lease_expires_at, now_ms) => {
                job.claim(now_ms, lease_until_ms);
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

    async fn return_to_queue(
        &self,
        id: JobId,
        attempt: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        self.fenced(id, attempt, |job| {
            job.state = JobState::Queued;
            job.error = Some(error.to_owned());
            job.lease_expires_at = None;
        })
    }

    async fn replay(&self, id: JobId) -> Result<ReplayOutcome, StoreError> {
        let mut jobs = self.write("UpdateItem")?;
        Ok(match jobs.get_mut(&id) {
            None => ReplayOutcome::Missing,
            Some(job) if job.state == JobState::Failed => {
                job.state = JobState::Queued;
                job.replays += 1;
                job.dead_lettered = false;
                job.finished_at = None;
                job.lease_expires_at = None;
                ReplayOutcome::Replayed
            }
            Some(job) => ReplayOutcome::Unchanged(job.state),
        })
    }

    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError> {
        let mut jobs = self.write("UpdateItem")?;
        Ok(match jobs.get_mut(&id) {
            None => DiscardOutcome::Missing,
            Some(job) if job.state == JobState::Succeeded => DiscardOutcome::Unchanged(job.state),
            Some(job) => {
                job.state = JobState::Failed;
                job.discarded = true;
                job.finished_at.get_or_insert(now_ms);
                job.lease_expires_at = None;
                job.error.get_or_insert_with(|| DISCARDED_ERROR.to_owned());
                DiscardOutcome::Discarded
            }
        })
    }
}

/// An SQS queue in memory. Messages wait, visible, in the order they came; a
/// receive hides each message it returns, counts the delivery in
/// `ApproximateReceiveCount` and hands out a new receipt handle, and the
/// message stays hidden until `change_visibility(handle, 0)` or a delete with
/// that handle (the latest one only). There is no clock: a visibility timeout
/// never runs out on its own, unless [`set_redelivering`](Self::set_redelivering)
/// says every one has. Every visibility change is recorded, also for handles
/// the queue never handed out (a test may hand a handler a message directly,
/// as Lambda's event source mapping does).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
    failing: AtomicBool,
    failing_sends: AtomicBool,
    redelivering: AtomicBool,
}

#[derive(Debug, Default)]
struct QueueState {
    messages: Vec<StoredMessage>,
    /// How many messages were ever enqueued, to name them.
    enqueued: u32,
    /// How many receipt handles were ever handed out, to name them.
    receipts: u32,
    sent: Vec<JobMessage>,
    visibility_changes: Vec<(String, u32)>,
    deleted: Vec<String>,
}

#[derive(Debug)]
struct StoredMessage {
    id: String,
    body: String,
    sent_at_ms: i64,
    receives: u32,
    /// The latest receipt handle while the message is hidden; `None` while
    /// it is visible.
    receipt: Option<String>,
}

impl QueueState {
    fn enqueue(&mut self, body: String) -> String {
        self.enqueued += 1;
        let id = format!("m{}", self.enqueued);
        self.messages.push(StoredMessage {
            id: id.clone(),
            body,
            sent_at_ms: now_ms(),
            receives: 0,
            receipt: None,
        });
        id
    }
}

fn queue_error(operation: &'static str, reason: &'static str) -> QueueError {
    QueueError::Aws {
        operation,
        source: reason.into(),
    }
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail as if SQS were unreachable.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes later sends fail (and only sends), as when the queue a message
    /// goes to is unreachable while the one it comes from is not.
    pub fn set_failing_sends(&self, failing: bool) {
        self.failing_sends.store(failing, Ordering::SeqCst);
    }

    /// Makes receives return hidden messages too, as SQS does once their
    /// visibility timeout has run out: each delivery gets a new receipt
    /// handle, and the older ones stop working.
    pub fn set_redelivering(&self, redelivering: bool) {
        self.redelivering.store(redelivering, Ordering::SeqCst);
    }

    /// Puts a visible message with any `body` at the end of the queue, as a
    /// producer (or SQS's redrive to a DLQ) would; returns its message id.
    pub fn push(&self, body: &str) -> String {
        lock(&self.state).enqueue(body.to_owned())
    }

    /// `(message id, visible)` of every message in the queue, in order.
    pub fn contents(&self) -> Vec<(String, bool)> {
        lock(&self.state)
            .messages
            .iter()
            .map(|m| (m.id.clone(), m.receipt.is_none()))
            .collect()
    }

    /// Every message sent through [`JobQueue::send`], in order.
    pub fn sent(&self) -> Vec<JobMessage> {
        lock(&self.state).sent.clone()
    }

    /// `(receipt handle, seconds)` of every visibility change, in order.
    pub fn visibility_changes(&self) -> Vec<(String, u32)> {
        lock(&self.state).visibility_changes.clone()
    }

    /// The message ids of every message deleted, in order.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.state).deleted.clone()
    }

    fn check(&self, operation: &'static str) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(queue_error(operation, "the in-memory queue is set to fail"));
        }
        Ok(())
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    /// Enqueues the message; its message id is the one returned.
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
        self.check("SendMessage")?;
        if self.failing_sends.load(Ordering::SeqCst) {
            return Err(queue_error(
                "SendMessage",
                "the in-memory queue is set to fail sends",
            ));
        }
        let mut state = lock(&self.state);
        state.sent.push(*message);
        Ok(state.enqueue(message.encode()))
    }

    /// Records the change; `secs == 0` makes the message hidden under
    /// `receipt_handle` visible again, any other value leaves it hidden.
    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError> {
        self.check("ChangeMessageVisibility")?;
        let mut state = lock(&self.state);
        state
            .visibility_changes
            .push((receipt_handle.to_owned(), secs));
        if secs == 0 {
            let shown = state
                .messages
                .iter_mut()
                .find(|m| m.receipt.as_deref() == Some(receipt_handle));
            if let Some(message) = shown {
                message.receipt = None;
            }
        }
        Ok(())
    }

    /// Returns the first visible messages (with redelivering, hidden ones
    /// too), hiding each under a new receipt handle. Like SQS, refuses a
    /// `max_messages` outside 1 to 10.
    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.check("ReceiveMessage")?;
        let max = match usize::try_from(request.max_messages) {
            Ok(max @ 1..=10) => max,
            _ => {
                return Err(queue_error(
                    "ReceiveMessage",
                    "MaxNumberOfMessages must be 1 to 10",
                ));
            }
        };
        let redelivering = self.redelivering.load(Ordering::SeqCst);
        let mut state = lock(&self.state);
        let QueueState {
            messages, receipts, ..
        } = &mut *state;
        Ok(messages
            .iter_mut()
            .filter(|m| redelivering || m.receipt.is_none())
            .take(max)
            .map(|m| {
                *receipts += 1;
                m.receives += 1;
                let receipt = format!("{}-r{receipts}", m.id);
                m.receipt = Some(receipt.clone());
                ReceivedMessage {
                    message_id: m.id.clone(),
                    receipt_handle: receipt,
                    body: m.body.clone(),
                    md5_of_body: String::new(),
                    attributes: HashMap::from([
                        ("ApproximateReceiveCount".into(), m.receives.to_string()),
                        ("SentTimestamp".into(), m.sent_at_ms.to_string()),
                    ]),
                }
            })
            .collect())
    }

    /// Deletes the messages hidden under these handles; returns the handles
    /// that name no hidden message (stale, made visible, or never handed out).
    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError> {
        self.check("DeleteMessageBatch")?;
        let mut state = lock(&self.state);
        let mut undeleted = Vec::new();
        for handle in receipt_handles {
            let position = state
                .messages
                .iter()
                .position(|m| m.receipt.as_ref() == Some(handle));
            match position {
                Some(index) => {
                    let message = state.messages.remove(index);
                    state.deleted.push(message.id);
                }
                None => undeleted.push(handle.clone()),
            }
        }
        Ok(undeleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(max_messages: i32) -> Receive {
        Receive {
            max_messages,
            wait_secs: 0,
            visibility_secs: 30,
        }
    }

    #[tokio::test]
    async fn a_received_message_is_hidden_until_made_visible() {
        let queue = MemoryQueue::new();
        let first = queue.push("one");
        let second = queue.push("two");

        let batch = queue.receive(receive(1)).await.unwrap();
        assert_eq!(batch.len(), 1);
        let (message, receipt) = (&batch[0], batch[0].receipt_handle.clone());
        assert_eq!(
            (message.message_id.as_str(), message.body.as_str()),
            (first.as_str(), "one")
        );
        assert_eq!(message.receive_count(), 1);
        assert!(message.sent_at_ms().is_some());
        assert_eq!(
            queue.contents(),
            [(first.clone(), false), (second.clone(), true)]
        );

        let rest = queue.receive(receive(10)).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].message_id, second);
        assert!(
            queue.receive(receive(10)).await.unwrap().is_empty(),
            "all hidden"
        );

        queue.change_visibility(&receipt, 30).await.unwrap();
        assert_eq!(queue.contents()[0], (first.clone(), false), "still hidden");
        queue.change_visibility(&receipt, 0).await.unwrap();
        assert_eq!(queue.contents()[0], (first.clone(), true));
        assert_eq!(
            queue.visibility_changes(),
            [(receipt.clone(), 30), (receipt.clone(), 0)]
        );

        let again = queue.receive(receive(10)).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message_id, first);
        assert_eq!(again[0].receive_count(), 2);
        assert_ne!(again[0].receipt_handle, receipt, "a new receipt handle");
    }

    #[tokio::test]
    async fn only_the_latest_receipt_handle_deletes() {
        let queue = MemoryQueue::new();
        let id = queue.push("body");
        let stale = queue.receive(receive(10)).await.unwrap()[0]
            .receipt_handle
            .clone();
        queue.set_redelivering(true);
        let redelivered = queue.receive(receive(10)).await.unwrap();
        assert_eq!(redelivered.len(), 1, "a hidden message comes back");
        assert_eq!(redelivered[0].receive_count(), 2);
        let latest = redelivered[0].receipt_handle.clone();

        let undeleted = queue
            .delete(&[stale.clone(), latest.clone()])
            .await
            .unwrap();
        assert_eq!(undeleted, [stale]);
        assert_eq!(queue.deleted(), [id]);
        assert!(queue.contents().is_empty());
        assert_eq!(
            queue.delete(std::slice::from_ref(&latest)).await.unwrap(),
            [latest]
        );
    }

    #[tokio::test]
    async fn a_sent_message_is_queued_and_sends_can_fail_alone() {
        let queue = MemoryQueue::new();
        let message = JobMessage {
            job_id: JobId::random(),
        };
        let id = queue.send(&message).await.unwrap();
        assert_eq!(queue.sent(), [message]);
        let received = queue.receive(receive(10)).await.unwrap();
        assert_eq!(received[0].message_id, id);
        assert_eq!(JobMessage::decode(&received[0].body).unwrap(), message);

        queue.set_failing_sends(true);
        assert!(queue.send(&message).await.is_err());
        assert!(queue.receive(receive(10)).await.is_ok(), "only sends fail");
        assert_eq!(queue.sent(), [message]);

        queue.set_failing(true);
        assert!(queue.receive(receive(10)).await.is_err());
    }

    #[tokio::test]
    async fn a_receive_asks_for_1_to_10_messages() {
        let queue = MemoryQueue::new();
        for max_messages in [0, 11] {
            assert!(queue.receive(receive(max_messages)).await.is_err());
        }
    }
}

//! [`MemoryQueue`]: a fake [`JobQueue`] with SQS's visibility rules, for
//! unit tests (compiled for this crate's tests and with feature `memory`).
//!
//! A received message is hidden, under a new receipt handle, until it is
//! made visible or deleted, so the worker, the API and the DLQ tools can be
//! tested without a network. The contract suite ([`crate::contract`]) runs
//! against it and against SQS on the emulator.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::error::QueueError;
use jobline_core::limits::SQS_MAX_BATCH_ENTRIES;
use jobline_core::queue::{
    GROUP_ATTRIBUTE, JobMessage, JobQueue, QueueCounts, Receive, ReceivedMessage, VisibilityChange,
};
use jobline_core::trace_context::MESSAGE_ATTRIBUTE;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// An SQS queue in memory. Messages wait, visible, in the order they came; a
/// receive hides each message it returns, counts the delivery in
/// `ApproximateReceiveCount` and hands out a new receipt handle, and the
/// message stays hidden until `change_visibility(handle, 0)` or a delete with
/// that handle (the latest one only). There is no clock: a visibility timeout
/// never runs out on its own, unless [`set_redelivering`](Self::set_redelivering)
/// says every one has. Every visibility change is recorded, also for handles
/// the queue never handed out (a test may hand a handler a message directly,
/// as Lambda's event source mapping does), and so is every batch request of
/// them ([`visibility_batches`](Self::visibility_batches)). In a batch, as on
/// SQS, an entry fails when its handle is one this queue handed out for a
/// message since deleted; handles it never handed out succeed, as above.
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
    /// The delay of each message sent with one, in order.
    delays: Vec<(JobMessage, u32)>,
    visibility_changes: Vec<(String, u32)>,
    visibility_batches: Vec<Vec<(String, u32)>>,
    /// The message id of every receipt handle ever handed out.
    handed_out: HashMap<String, String>,
    deleted: Vec<String>,
}

#[derive(Debug)]
struct StoredMessage {
    id: String,
    body: String,
    sent_at_ms: i64,
    /// `MessageGroupId`, as SQS keeps it beside the message.
    group: Option<String>,
    /// The `traceparent` message attribute, if it was sent with one.
    traceparent: Option<String>,
    receives: u32,
    /// The latest receipt handle while the message is hidden; `None` while
    /// it is visible.
    receipt: Option<String>,
}

impl QueueState {
    fn enqueue(
        &mut self,
        body: String,
        group: Option<String>,
        traceparent: Option<String>,
    ) -> String {
        self.enqueued += 1;
        let id = format!("m{}", self.enqueued);
        self.messages.push(StoredMessage {
            id: id.clone(),
            body,
            sent_at_ms: crate::testing::now_ms(),
            group,
            traceparent,
            receives: 0,
            receipt: None,
        });
        id
    }

    /// Records the change of `receipt_handle` to `secs`; 0 makes the
    /// message hidden under it visible again.
    fn change_visibility(&mut self, receipt_handle: &str, secs: u32) {
        self.visibility_changes
            .push((receipt_handle.to_owned(), secs));
        if secs == 0 {
            let shown = self
                .messages
                .iter_mut()
                .find(|m| m.receipt.as_deref() == Some(receipt_handle));
            if let Some(message) = shown {
                message.receipt = None;
            }
        }
    }

    /// Whether `receipt_handle` was handed out for a message no longer in
    /// the queue (deleted).
    fn names_a_deleted_message(&self, receipt_handle: &str) -> bool {
        self.handed_out
            .get(receipt_handle)
            .is_some_and(|id| !self.messages.iter().any(|m| &m.id == id))
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
        lock(&self.state).enqueue(body.to_owned(), None, None)
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

    /// Every message sent with a delay, and its delay (seconds), in order.
    pub fn delays(&self) -> Vec<(JobMessage, u32)> {
        lock(&self.state).delays.clone()
    }

    /// `(receipt handle, seconds)` of every visibility change made, alone
    /// or in a batch (not a batch's failed entries), in order.
    pub fn visibility_changes(&self) -> Vec<(String, u32)> {
        lock(&self.state).visibility_changes.clone()
    }

    /// The entries, `(receipt handle, seconds)`, of every
    /// [`change_visibility_batch`](JobQueue::change_visibility_batch)
    /// request, in order (the changes that succeeded are also in
    /// [`visibility_changes`](Self::visibility_changes)).
    pub fn visibility_batches(&self) -> Vec<Vec<(String, u32)>> {
        lock(&self.state).visibility_batches.clone()
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
        Ok(state.enqueue(
            message.encode(),
            message.group.map(|group| group.to_string()),
            message.traceparent.map(|context| context.to_string()),
        ))
    }

    /// As [`send`](Self::send), the delay recorded ([`MemoryQueue::delays`]):
    /// the fake has no timers, so the message is visible at once.
    async fn send_delayed(
        &self,
        message: &JobMessage,
        delay_secs: u32,
    ) -> Result<String, QueueError> {
        let id = self.send(message).await?;
        lock(&self.state).delays.push((*message, delay_secs));
        Ok(id)
    }

    /// Records the change; `secs == 0` makes the message hidden under
    /// `receipt_handle` visible again, any other value leaves it hidden.
    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError> {
        self.check("ChangeMessageVisibility")?;
        lock(&self.state).change_visibility(receipt_handle, secs);
        Ok(())
    }

    /// Records the request, then makes each change as `change_visibility`
    /// does, except for handles of deleted messages, which fail. Like SQS,
    /// refuses more than 10 entries; none is no request.
    async fn change_visibility_batch(
        &self,
        changes: &[VisibilityChange],
    ) -> Result<Vec<String>, QueueError> {
        self.check("ChangeMessageVisibilityBatch")?;
        if changes.len() > SQS_MAX_BATCH_ENTRIES {
            return Err(queue_error(
                "ChangeMessageVisibilityBatch",
                "a batch takes at most 10 entries",
            ));
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = lock(&self.state);
        state.visibility_batches.push(
            changes
                .iter()
                .map(|c| (c.receipt_handle.clone(), c.secs))
                .collect(),
        );
        let mut failed = Vec::new();
        for change in changes {
            if state.names_a_deleted_message(&change.receipt_handle) {
                failed.push(change.receipt_handle.clone());
            } else {
                state.change_visibility(&change.receipt_handle, change.secs);
            }
        }
        Ok(failed)
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
            messages,
            receipts,
            handed_out,
            ..
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
                handed_out.insert(receipt.clone(), m.id.clone());
                ReceivedMessage {
                    message_id: m.id.clone(),
                    receipt_handle: receipt,
                    body: m.body.clone(),
                    md5_of_body: String::new(),
                    attributes: HashMap::from([
                        ("ApproximateReceiveCount".into(), m.receives.to_string()),
                        ("SentTimestamp".into(), m.sent_at_ms.to_string()),
                    ])
                    .into_iter()
                    .chain(m.group.clone().map(|g| (GROUP_ATTRIBUTE.to_owned(), g)))
                    .collect(),
                    message_attributes: m
                        .traceparent
                        .clone()
                        .map(|t| (MESSAGE_ATTRIBUTE.to_owned(), t))
                        .into_iter()
                        .collect(),
                }
            })
            .collect())
    }

    /// Visible and hidden messages (nothing is ever delayed here).
    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        self.check("GetQueueAttributes")?;
        let state = lock(&self.state);
        let hidden = state
            .messages
            .iter()
            .filter(|m| m.receipt.is_some())
            .count();
        Ok(QueueCounts {
            visible: (state.messages.len() - hidden) as u64,
            in_flight: hidden as u64,
            delayed: 0,
        })
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
    use jobline_core::job::JobId;

    /// The contract suite, each check against a fresh MemoryQueue.
    mod contract_suite {
        use super::MemoryQueue;
        use crate::contract::fake_suite;

        crate::for_each_queue_check!(fake_suite, queue, MemoryQueue);
    }

    fn receive(max_messages: i32) -> Receive {
        Receive {
            max_messages,
            wait_secs: 0,
            visibility_secs: 30,
        }
    }

    #[tokio::test]
    async fn contents_and_visibility_changes_show_what_a_receive_hid() {
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
        let message = JobMessage::new(JobId::random());
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
}

//! The queues that carry job ids: the [`JobQueue`] port. Its adapter on SQS
//! is `jobline_sqs::SqsJobQueue` (`adapters/sqs/`), its fake
//! `jobline_testkit::memory::queue::MemoryQueue`; the retry delays a
//! consumer sets as a message's visibility are [`crate::backoff`]'s.
//!
//! A message carries only `{"jobId": …}`: SQS caps a message at 256 KiB and
//! bills per 64 KiB chunk, while the payload already lives in DynamoDB.
//! Retries, backoff and dead-lettering are SQS's: the worker only changes a
//! message's visibility and reports it failed; the redrive policy does the rest.

use crate::caller::CallerKey;
use crate::error::QueueError;
use crate::job::{JobId, JobRecord};
use crate::trace_context::TraceContext;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The body of every Jobline message, and the message group it is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobMessage {
    pub job_id: JobId,
    /// The fair-queue tenant the message is sent as (`MessageGroupId`):
    /// the job's caller, so one caller's burst does not hold back the
    /// others' jobs. Not in the body: SQS carries it beside the message,
    /// keeps it through retries and redrives, and hands it to the consumer
    /// (a received message's [`ReceivedMessage::group`]).
    #[serde(skip)]
    pub group: Option<CallerKey>,
    /// The job's trace context, sent as the message attribute
    /// [`MESSAGE_ATTRIBUTE`](crate::trace_context::MESSAGE_ATTRIBUTE)
    /// (`traceparent`), so the worker's spans are children of the job's
    /// before its claim reads the record. Not in the body either.
    #[serde(skip)]
    pub traceparent: Option<TraceContext>,
}

impl JobMessage {
    /// A message of job `job_id`, in no group (a tenant of its own).
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            group: None,
            traceparent: None,
        }
    }

    /// The message of `job`, in its caller's group, with its trace context.
    pub fn of(job: &JobRecord) -> Self {
        Self::new(job.id)
            .in_group(Some(CallerKey::of(&job.owner)))
            .traced(job.traceparent)
    }

    /// The same message carrying `traceparent`.
    #[must_use]
    pub fn traced(mut self, traceparent: Option<TraceContext>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The same message in `group`.
    #[must_use]
    pub fn in_group(mut self, group: Option<CallerKey>) -> Self {
        self.group = group;
        self
    }

    pub fn encode(&self) -> String {
        serde_json::json!({ "jobId": self.job_id }).to_string()
    }

    pub fn decode(body: &str) -> Result<Self, QueueError> {
        serde_json::from_str(body).map_err(|e| QueueError::Malformed(e.to_string()))
    }
}

/// A message as `ReceiveMessage` returns it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    /// System attributes: `ApproximateReceiveCount`, `SentTimestamp`, …
    pub attributes: HashMap<String, String>,
    /// The message attributes of type `String` its sender set (a job's
    /// message: `traceparent`), by name.
    pub message_attributes: HashMap<String, String>,
}

impl ReceivedMessage {
    /// `ApproximateReceiveCount`, 1 on the first delivery.
    pub fn receive_count(&self) -> u32 {
        self.attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// `SentTimestamp`, in milliseconds since the epoch.
    pub fn sent_at_ms(&self) -> Option<i64> {
        self.attributes.get("SentTimestamp")?.parse().ok()
    }

    /// `MessageGroupId`: the caller it was sent as, if it was sent in a group.
    pub fn group(&self) -> Option<CallerKey> {
        self.attributes.get(GROUP_ATTRIBUTE)?.parse().ok()
    }

    /// The trace context its `traceparent` message attribute carries, if
    /// it is a valid one.
    pub fn traceparent(&self) -> Option<TraceContext> {
        self.message_attributes
            .get(crate::trace_context::MESSAGE_ATTRIBUTE)?
            .parse()
            .ok()
    }
}

/// The system attribute of a received message that holds its group.
pub const GROUP_ATTRIBUTE: &str = "MessageGroupId";

/// What `ReceiveMessage` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receive {
    /// 1 to 10, SQS's cap per request.
    pub max_messages: i32,
    /// Long-poll wait, 0 to 20 seconds.
    pub wait_secs: i32,
    /// How long received messages stay hidden from other consumers.
    pub visibility_secs: i32,
}

/// How many messages a queue holds (SQS's approximate counts, which it
/// updates with a lag of up to a minute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting to be received (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and hidden: being worked on, or backing off before a retry
    /// (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay not yet over (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

impl QueueCounts {
    /// Every message the queue holds: all of them work not yet done.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// One entry of [`JobQueue::change_visibility_batch`]: the message received
/// under `receipt_handle` is to be hidden for `secs` more seconds from now
/// (0 makes it visible again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityChange {
    pub receipt_handle: String,
    pub secs: u32,
}

/// A queue of job messages.
#[async_trait]
pub trait JobQueue: Send + Sync + std::fmt::Debug {
    /// Sends a message for `job_id`; returns the SQS message id.
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError>;

    /// Sends a message for `job_id` that no consumer sees for `delay_secs`
    /// (SQS's `DelaySeconds`, at most
    /// [`SQS_MAX_DELAY_SECS`](crate::limits::SQS_MAX_DELAY_SECS)): a job
    /// delayed that little needs no timer.
    async fn send_delayed(
        &self,
        message: &JobMessage,
        delay_secs: u32,
    ) -> Result<String, QueueError>;

    /// Hides a received message for `secs` more seconds from now.
    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError>;

    /// Makes every change of `changes` in one request (SQS's
    /// `ChangeMessageVisibilityBatch`), each as [`change_visibility`](Self::change_visibility)
    /// would; returns the receipt handles of the entries that failed (a
    /// handle SQS finds no message for, e.g. that of a deleted message),
    /// the others having succeeded. At most
    /// [`SQS_MAX_BATCH_ENTRIES`](crate::limits::SQS_MAX_BATCH_ENTRIES)
    /// entries: more is an error, sent nowhere; none is no request. An
    /// error means the request as a whole failed, and no entry is known to
    /// have changed.
    async fn change_visibility_batch(
        &self,
        changes: &[VisibilityChange],
    ) -> Result<Vec<String>, QueueError>;

    /// Receives up to `request.max_messages` messages with their attributes.
    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes messages by receipt handle (up to 10); returns the handles
    /// SQS failed to delete.
    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError>;

    /// How many messages the queue holds, read without receiving any (so
    /// no message's receive count or visibility changes).
    async fn counts(&self) -> Result<QueueCounts, QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_only_the_job_id() {
        let message = JobMessage::new(JobId::random()).in_group(Some(CallerKey::of("alice")));
        let body = message.encode();
        assert_eq!(body, format!(r#"{{"jobId":"{}"}}"#, message.job_id));
        assert_eq!(JobMessage::decode(&body).unwrap(), message.in_group(None));
        assert!(JobMessage::decode("{}").is_err());
        assert!(JobMessage::decode(r#"{"jobId":"x"}"#).is_err());
        assert!(JobMessage::decode("not json").is_err());
    }

    #[test]
    fn receive_count_defaults_to_first_delivery() {
        let mut message = ReceivedMessage::default();
        assert_eq!(message.receive_count(), 1);
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        message
            .attributes
            .insert("SentTimestamp".into(), "1700000000000".into());
        assert_eq!(message.receive_count(), 4);
        assert_eq!(message.sent_at_ms(), Some(1_700_000_000_000));
    }
}

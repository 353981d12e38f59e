//! `JobQueue`: the SQS queues that carry job ids, and their SQS implementation.
//!
//! A message carries only `{"jobId": …}`: SQS caps a message at 256 KiB and
//! bills per 64 KiB chunk, while the payload already lives in DynamoDB.
//! Retries, backoff and dead-lettering are SQS's: the worker only changes a
//! message's visibility and reports it failed; the redrive policy does the rest.

use crate::error::{BoxError, QueueError, sdk_error};
use crate::job::JobId;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The body of every Jobline message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobMessage {
    pub job_id: JobId,
}

impl JobMessage {
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
}

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

/// A queue of job messages.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends a message for `job_id`; returns the SQS message id.
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError>;

    /// Hides a received message for `secs` more seconds from now.
    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError>;

    /// Receives up to `request.max_messages` messages with their attributes.
    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes messages by receipt handle (up to 10); returns the handles
    /// SQS failed to delete.
    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError>;
}

/// [`JobQueue`] on one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsJobQueue {
    client: Client,
    url: String,
}

impl SqsJobQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

fn aws(operation: &'static str) -> impl FnOnce(BoxError) -> QueueError {
    move |source| QueueError::Aws { operation, source }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.encode())
            .send()
            .await
            .map_err(|e| aws("SendMessage")(sdk_error(e)))?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }

    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(secs).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| aws("ChangeMessageVisibility")(sdk_error(e)))?;
        Ok(())
    }

    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(request.max_messages)
            .wait_time_seconds(request.wait_secs)
            .visibility_timeout(request.visibility_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| aws("ReceiveMessage")(sdk_error(e)))?;
        Ok(output
            .messages()
            .iter()
            .map(|m| ReceivedMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                md5_of_body: m.md5_of_body().unwrap_or_default().to_owned(),
                attributes: m
                    .attributes()
                    .map(|attributes| {
                        attributes
                            .iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError> {
        if receipt_handles.is_empty() {
            return Ok(Vec::new());
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| aws("DeleteMessageBatch")(e.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws("DeleteMessageBatch")(sdk_error(e)))?;
        Ok(output
            .failed()
            .iter()
            .filter_map(|f| receipt_handles.get(f.id().parse::<usize>().ok()?).cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_only_the_job_id() {
        let message = JobMessage {
            job_id: JobId::random(),
        };
        let body = message.encode();
        assert_eq!(body, format!(r#"{{"jobId":"{}"}}"#, message.job_id));
        assert_eq!(JobMessage::decode(&body).unwrap(), message);
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

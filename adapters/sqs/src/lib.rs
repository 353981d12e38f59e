//! [`SqsJobQueue`]: the [`JobQueue`] adapter on one SQS queue.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use jobline_aws::sdk_error;
use jobline_core::error::{BoxError, QueueError};
use jobline_core::limits::{SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECS};
use jobline_core::queue::{
    JobMessage, JobQueue, QueueCounts, Receive, ReceivedMessage, VisibilityChange,
};
use jobline_core::trace_context::MESSAGE_ATTRIBUTE;
use std::collections::HashMap;
use std::time::Duration;

/// A receive's bound beyond its long-poll wait: for each attempt, and twice
/// that for the whole call.
const RECEIVE_MARGIN: Duration = Duration::from_secs(5);

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

    /// The queue at `url`, over a client of `sdk`.
    pub fn from_sdk(sdk: &aws_types::SdkConfig, url: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), url)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The message attributes of `message`: its trace context as
/// `traceparent` (a `String`), when it carries one.
fn trace_attribute(message: &JobMessage) -> Option<HashMap<String, MessageAttributeValue>> {
    let context = message.traceparent?;
    let value = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(context.to_string())
        .build()
        .ok()?;
    Some(HashMap::from([(MESSAGE_ATTRIBUTE.to_owned(), value)]))
}

fn aws(operation: &'static str) -> impl FnOnce(BoxError) -> QueueError {
    move |source| QueueError::Aws { operation, source }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
        self.send_delayed(message, 0).await
    }

    async fn send_delayed(
        &self,
        message: &JobMessage,
        delay_secs: u32,
    ) -> Result<String, QueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.encode())
            .set_message_group_id(message.group.map(|group| group.to_string()))
            .set_message_attributes(trace_attribute(message))
            .set_delay_seconds(
                (delay_secs > 0)
                    .then(|| i32::try_from(delay_secs.min(SQS_MAX_DELAY_SECS)).unwrap_or(i32::MAX)),
            )
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

    /// One `ChangeMessageVisibilityBatch`, its entries' ids their
    /// positions ("0" to "9"), by which its `Failed` entries are mapped
    /// back to their receipt handles.
    async fn change_visibility_batch(
        &self,
        changes: &[VisibilityChange],
    ) -> Result<Vec<String>, QueueError> {
        const OPERATION: &str = "ChangeMessageVisibilityBatch";
        if changes.len() > SQS_MAX_BATCH_ENTRIES {
            let reason = format!(
                "{} entries; SQS takes at most {SQS_MAX_BATCH_ENTRIES} a request",
                changes.len()
            );
            return Err(aws(OPERATION)(reason.into()));
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let entries = changes
            .iter()
            .enumerate()
            .map(|(i, change)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&change.receipt_handle)
                    .visibility_timeout(i32::try_from(change.secs).unwrap_or(i32::MAX))
                    .build()
                    .map_err(|e| aws(OPERATION)(e.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws(OPERATION)(sdk_error(e)))?;
        Ok(output
            .failed()
            .iter()
            .filter_map(|failed| {
                tracing::debug!(
                    id = failed.id(),
                    code = failed.code(),
                    message = failed.message().unwrap_or_default(),
                    "a visibility change of a batch failed"
                );
                let change = changes.get(failed.id().parse::<usize>().ok()?)?;
                Some(change.receipt_handle.clone())
            })
            .collect())
    }

    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
        // A long poll outlasts the short bounds a function's clients may
        // carry (aws::AwsTimeouts): its own bound is its wait and a margin.
        let wait = Duration::from_secs(u64::try_from(request.wait_secs).unwrap_or(0));
        let bounds = TimeoutConfig::builder()
            .operation_timeout(wait + RECEIVE_MARGIN * 2)
            .operation_attempt_timeout(wait + RECEIVE_MARGIN)
            .build();
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(request.max_messages)
            .wait_time_seconds(request.wait_secs)
            .visibility_timeout(request.visibility_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names(MESSAGE_ATTRIBUTE)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(bounds))
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
                message_attributes: m
                    .message_attributes()
                    .map(|attributes| {
                        attributes
                            .iter()
                            .filter_map(|(name, value)| {
                                Some((name.clone(), value.string_value()?.to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        let names = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| aws("GetQueueAttributes")(sdk_error(e)))?;
        let count = |name: &QueueAttributeName| {
            output
                .attributes()
                .and_then(|attributes| attributes.get(name)?.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueCounts {
            visible: count(&names[0]),
            in_flight: count(&names[1]),
            delayed: count(&names[2]),
        })
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

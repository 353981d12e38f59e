//! The local stand-in for Lambda's SQS event source mapping.
//!
//! Like the mapping, it long-polls the queue, gathers up to `batch_size`
//! messages within the batching window, invokes its function (a
//! [`Consumer`]: the worker, or the notifier on its own queue) with an
//! `SqsEvent`, deletes the messages the function did not list in
//! `batchItemFailures`, and leaves the failed ones to their visibility
//! timeout (which the worker may have changed for backoff). SQS's redrive
//! policy then moves a message that keeps failing to the DLQ.
//!
//! On stop, a poller stops receiving at once (an unfinished long poll is
//! dropped), but a batch it already holds is processed and its messages
//! deleted before it returns: cutting it would leave jobs `running` under a
//! lease and their messages hidden for the visibility timeout.

use crate::fair::FairShare;
use crate::shutdown::Shutdown;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use jobline_core::limits::QueueSettings;
use jobline_core::limits::WORKER_TIMEOUT_SECS;
use jobline_core::queue::{Receive, ReceivedMessage};
use jobline_core::{Clock, JobQueue};
use jobline_notifier::Notifier;
use jobline_worker::Worker;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// SQS returns at most 10 messages per `ReceiveMessage` and deletes at most
/// 10 per `DeleteMessageBatch`.
pub const SQS_MAX_BATCH: usize = 10;

/// How the poller batches, as the event source mapping's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerSettings {
    /// `BatchSize`: the most records in one invocation.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`: how long to gather a batch.
    pub batching_window: Duration,
    /// Long-poll wait of each `ReceiveMessage`, at most 20 s.
    pub wait_secs: i32,
    /// The queue's visibility timeout, applied to received messages.
    pub visibility_secs: i32,
    /// The function timeout: each invocation's deadline is this far away.
    pub function_timeout: Duration,
    /// How many received messages the queue's pollers hold to hand out by
    /// the fair-queue rules ([`crate::fair`]); 0: none, each batch is what
    /// its receives returned.
    pub fair_window: usize,
}

impl Default for PollerSettings {
    /// The template's event source mapping: batches of 10 gathered for up
    /// to 1 s, 20 s long polls, the template's visibility and function
    /// timeouts.
    fn default() -> Self {
        Self {
            batch_size: SQS_MAX_BATCH,
            batching_window: Duration::from_secs(1),
            wait_secs: 20,
            visibility_secs: i32::try_from(QueueSettings::TEMPLATE.visibility_timeout_secs)
                .unwrap_or(i32::MAX),
            function_timeout: Duration::from_secs(u64::from(WORKER_TIMEOUT_SECS)),
            fair_window: 0,
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Messages handed to the worker.
    pub received: usize,
    /// Message ids the worker reported failed (left on the queue).
    pub failed: Vec<String>,
    /// Receipt handles SQS failed to delete (they will be delivered again).
    pub undeleted: usize,
}

/// A function an SQS queue triggers.
pub trait Consumer: Send + Sync + std::fmt::Debug {
    /// Handles one batch by `deadline_ms`; the answer lists the failures.
    fn consume(
        &self,
        event: SqsEvent,
        deadline_ms: i64,
    ) -> impl Future<Output = SqsBatchResponse> + Send;
}

impl Consumer for Worker {
    async fn consume(&self, event: SqsEvent, deadline_ms: i64) -> SqsBatchResponse {
        self.process_batch(event, deadline_ms).await.response
    }
}

impl Consumer for Notifier {
    async fn consume(&self, event: SqsEvent, _deadline_ms: i64) -> SqsBatchResponse {
        self.deliver_batch(event).await
    }
}

/// Feeds `consumer` (by default the worker) from `queue`.
#[derive(Debug)]
pub struct Poller<C: Consumer = Worker> {
    queue: Arc<dyn JobQueue>,
    consumer: Arc<C>,
    settings: PollerSettings,
    queue_arn: String,
    clock: Clock,
    /// The fair-queue window this poller shares with the queue's others.
    fair: Option<Arc<FairShare>>,
}

impl<C: Consumer> Poller<C> {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        consumer: Arc<C>,
        settings: PollerSettings,
        queue_arn: impl Into<String>,
    ) -> Self {
        Self {
            queue,
            consumer,
            settings,
            queue_arn: queue_arn.into(),
            clock: Clock::system(),
            fair: None,
        }
    }

    /// Takes its batches from `share`, the fair-queue window of the queue's
    /// pollers ([`crate::fair`]).
    #[must_use]
    pub fn with_fair_share(mut self, share: Arc<FairShare>) -> Self {
        self.fair = Some(share);
        self
    }

    /// Sets each invocation's deadline by `clock` (the stack's), as Lambda
    /// sets it by its own.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Gathers one batch (waiting up to the long-poll time for the first
    /// message), invokes the worker if there is anything, and deletes what
    /// succeeded.
    pub async fn poll_once(&self) -> Result<PollOutcome, jobline_core::QueueError> {
        self.poll(&mut Shutdown::never()).await
    }

    /// Polls until `stop` is requested; errors are logged and retried. A
    /// batch in hand when the stop comes is finished first.
    pub async fn run(&self, mut stop: Shutdown) {
        while !stop.is_requested() {
            match self.poll(&mut stop).await {
                Ok(outcome) if outcome.received > 0 => tracing::info!(
                    received = outcome.received,
                    failed = outcome.failed.len(),
                    "batch processed"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "polling failed; retrying in 1 s");
                    tokio::select! {
                        () = stop.requested() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        // Messages held in the fair window go back to the queue at once.
        if let Some(share) = &self.fair {
            for message in share.drain() {
                if let Err(error) = self
                    .queue
                    .change_visibility(&message.receipt_handle, 0)
                    .await
                {
                    tracing::warn!(%error, "could not give back a held message; it returns after its visibility");
                }
            }
        }
    }

    /// One poll; `stop` cuts only the gathering, never the batch's
    /// processing and deletion.
    async fn poll(&self, stop: &mut Shutdown) -> Result<PollOutcome, jobline_core::QueueError> {
        let messages = match &self.fair {
            Some(share) => self.gather_fair(share, stop).await?,
            None => self.gather(stop).await?,
        };
        if messages.is_empty() {
            return Ok(PollOutcome::default());
        }
        let mut event = sqs_event(&messages, &self.queue_arn);
        on_clock(&mut event, &self.clock);
        let deadline_ms = self.clock.now_ms().saturating_add(
            i64::try_from(self.settings.function_timeout.as_millis()).unwrap_or(i64::MAX),
        );
        let response = self.consumer.consume(event, deadline_ms).await;
        if let Some(share) = &self.fair {
            share.done(&messages);
        }
        let failed: HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let succeeded: Vec<String> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id.as_str()))
            .map(|m| m.receipt_handle.clone())
            .collect();
        let mut undeleted = 0;
        for chunk in succeeded.chunks(SQS_MAX_BATCH) {
            undeleted += self.queue.delete(chunk).await?.len();
        }
        Ok(PollOutcome {
            received: messages.len(),
            failed: failed.into_iter().map(str::to_owned).collect(),
            undeleted,
        })
    }

    /// One batch: the first receive long-polls; later ones wait out the rest
    /// of the batching window, until the batch is full or a receive is empty.
    /// A stop ends the gathering with what has arrived.
    async fn gather(
        &self,
        stop: &mut Shutdown,
    ) -> Result<Vec<ReceivedMessage>, jobline_core::QueueError> {
        let window_ends = tokio::time::Instant::now() + self.settings.batching_window;
        let mut messages: Vec<ReceivedMessage> = Vec::new();
        loop {
            let wait_secs = if messages.is_empty() {
                self.settings.wait_secs
            } else {
                let remaining = window_ends.saturating_duration_since(tokio::time::Instant::now());
                i32::try_from(remaining.as_secs().min(20)).unwrap_or(20)
            };
            if !messages.is_empty() && wait_secs == 0 {
                return Ok(messages);
            }
            let wanted = (self.settings.batch_size - messages.len()).min(SQS_MAX_BATCH);
            let receive = self.queue.receive(Receive {
                max_messages: i32::try_from(wanted).unwrap_or(10),
                wait_secs,
                visibility_secs: self.settings.visibility_secs,
            });
            let received = tokio::select! {
                biased;
                () = stop.requested() => return Ok(messages),
                received = receive => received?,
            };
            let empty = received.is_empty();
            messages.extend(received);
            if empty || messages.len() >= self.settings.batch_size {
                return Ok(messages);
            }
        }
    }
}

impl<C: Consumer> Poller<C> {
    /// One batch from the fair window: the window is topped up first (a
    /// long poll only when it is empty, then as long as receives return
    /// messages and it has room), then the batch is taken from it by the
    /// fair-queue rules. A stop ends the topping up.
    async fn gather_fair(
        &self,
        share: &FairShare,
        stop: &mut Shutdown,
    ) -> Result<Vec<ReceivedMessage>, jobline_core::QueueError> {
        while share.room() > 0 {
            let wait_secs = if share.waiting() == 0 {
                self.settings.wait_secs
            } else {
                0
            };
            let receive = self.queue.receive(Receive {
                max_messages: i32::try_from(share.room().min(SQS_MAX_BATCH)).unwrap_or(10),
                wait_secs,
                visibility_secs: self.settings.visibility_secs,
            });
            let received = tokio::select! {
                biased;
                () = stop.requested() => break,
                received = receive => received?,
            };
            if received.is_empty() {
                break;
            }
            share.arrive(received, std::time::Instant::now());
        }
        Ok(share.take(self.settings.batch_size, std::time::Instant::now()))
    }
}

/// The `SqsEvent` Lambda would build from `messages` of the queue `queue_arn`.
/// SQS stamps its messages' times (`SentTimestamp`, the first receive) on
/// the wall clock; a test's moved clock would take a message sent now for
/// one sent before the job it carries was dead-lettered, hours "ago". So
/// the stand-in for the mapping moves them with the stack's clock, as if
/// SQS ran on it too (no change on the wall clock).
fn on_clock(event: &mut SqsEvent, clock: &Clock) {
    let offset = i64::try_from(clock.offset().as_millis()).unwrap_or(i64::MAX);
    if offset == 0 {
        return;
    }
    for record in &mut event.records {
        for name in ["SentTimestamp", "ApproximateFirstReceiveTimestamp"] {
            if let Some(value) = record.attributes.get_mut(name)
                && let Ok(ms) = value.parse::<i64>()
            {
                *value = ms.saturating_add(offset).to_string();
            }
        }
    }
}

pub fn sqs_event(messages: &[ReceivedMessage], queue_arn: &str) -> SqsEvent {
    let region = queue_arn.split(':').nth(3).map(str::to_owned);
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.md5_of_body = Some(m.md5_of_body.clone());
            record.attributes = m.attributes.clone();
            record.message_attributes = m
                .message_attributes
                .iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = Some(value.clone());
                    attribute.data_type = Some("String".to_owned());
                    (name.clone(), attribute)
                })
                .collect();
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(queue_arn.to_owned());
            record.aws_region = region.clone();
            record
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sqs_times_move_with_the_stacks_clock() {
        let message = ReceivedMessage {
            message_id: "m".into(),
            receipt_handle: "r".into(),
            body: "{}".into(),
            md5_of_body: String::new(),
            attributes: HashMap::from([
                ("SentTimestamp".to_owned(), "1000".to_owned()),
                ("ApproximateReceiveCount".to_owned(), "2".to_owned()),
            ]),
            message_attributes: HashMap::from([(
                "traceparent".to_owned(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            )]),
        };
        let mut event = sqs_event(std::slice::from_ref(&message), "arn:aws:sqs:eu-west-1:1:q");
        on_clock(&mut event, &Clock::system());
        assert_eq!(event.records[0].attributes["SentTimestamp"], "1000");
        let clock = Clock::movable();
        clock.advance(Duration::from_secs(7_200));
        on_clock(&mut event, &clock);
        assert_eq!(event.records[0].attributes["SentTimestamp"], "7201000");
        assert_eq!(event.records[0].attributes["ApproximateReceiveCount"], "2");
        let traceparent = &event.records[0].message_attributes["traceparent"];
        assert_eq!(traceparent.data_type.as_deref(), Some("String"));
        assert_eq!(
            traceparent.string_value.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}

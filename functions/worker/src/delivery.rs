//! One SQS delivery of a record, as the worker sees it: its receive count,
//! when it was received and sent (SQS's 12-hour visibility cap counts from the
//! receive; a console redrive shows as a `SentTimestamp` after the job was
//! dead-lettered), its claim token, and the fields of its one outcome log
//! line. "Attempt" means only `job.attempts`, the claims of the job.

use aws_lambda_events::event::sqs::SqsMessage;
use jobline_core::{JobId, Metrics};
use std::time::Instant;

/// One SQS delivery of a record, as far as it got, and its log line's fields.
pub(crate) struct Delivery<'a> {
    pub(crate) record: &'a SqsMessage,
    pub(crate) receive_count: u32,
    /// When this receive happened, or a time after it: SQS's 12-hour
    /// visibility cap counts from it.
    pub(crate) received_at_ms: i64,
    /// `SentTimestamp`: when the message was sent (a redrive sends anew).
    pub(crate) sent_at_ms: Option<i64>,
    /// This delivery's claim token, random: it names this delivery's writes.
    pub(crate) token: String,
    pub(crate) metrics: Metrics,
    pub(crate) job_id: Option<JobId>,
    pub(crate) job_type: Option<String>,
    pub(crate) attempt: Option<u32>,
    pub(crate) outcome: &'static str,
}

impl<'a> Delivery<'a> {
    pub(crate) fn new(record: &'a SqsMessage, invoked_at_ms: i64) -> Self {
        let receive_count = attribute(record, "ApproximateReceiveCount").unwrap_or(1);
        // The first receive's time is known; a later one's happened before
        // the invocation started.
        let first_receive: Option<i64> = (receive_count == 1)
            .then(|| attribute(record, "ApproximateFirstReceiveTimestamp"))
            .flatten();
        Self {
            record,
            receive_count,
            received_at_ms: first_receive.map_or(invoked_at_ms, |at| at.min(invoked_at_ms)),
            sent_at_ms: attribute(record, "SentTimestamp"),
            token: format!("{:032x}", fastrand::u128(..)),
            metrics: Metrics::new(),
            job_id: None,
            job_type: None,
            attempt: None,
            outcome: "unknown",
        }
    }

    pub(crate) fn message_id(&self) -> &str {
        self.record.message_id.as_deref().unwrap_or_default()
    }

    pub(crate) fn log(&self, started: Instant) {
        tracing::info!(
            jobId = self.job_id.map(|id| id.to_string()).unwrap_or_default(),
            messageId = self.message_id(),
            jobType = self.job_type.as_deref().unwrap_or_default(),
            attempt = self.attempt.unwrap_or_default(),
            outcome = self.outcome,
            durationMs = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "job outcome"
        );
    }
}

fn attribute<T: std::str::FromStr>(record: &SqsMessage, name: &str) -> Option<T> {
    record.attributes.get(name)?.parse().ok()
}

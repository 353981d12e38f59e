//! One SQS delivery of a record, as the worker sees it: its receive count,
//! when it was received and sent (SQS's 12-hour visibility cap counts from the
//! receive; a console redrive shows as a `SentTimestamp` after the job was
//! dead-lettered), its claim token, and the fields of its one outcome log
//! line. "Attempt" means only `job.attempts`, the claims of the job.
//!
//! It also holds the job's trace context: the message's `traceparent`
//! attribute, or the job record's once the claim has read it. The
//! delivery's spans (`claim`, `run`, `finish`) are its children, its log
//! line carries its trace id, and a message sent again carries it on.

use aws_lambda_events::event::sqs::SqsMessage;
use jobline_core::queue::GROUP_ATTRIBUTE;
use jobline_core::spans::{Span, SpanKind};
use jobline_core::trace_context::{MESSAGE_ATTRIBUTE, TraceContext};
use jobline_core::{JobId, JobMessage, Metrics};
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
    /// The job's trace context, the parent of this delivery's spans: the
    /// message's `traceparent` attribute, else the record's (after the
    /// claim), else the claim span's own (a job from before traces).
    pub(crate) trace: Option<TraceContext>,
}

impl<'a> Delivery<'a> {
    /// The message of job `job_id` to send again, in this message's group
    /// (`MessageGroupId`): a job keeps its caller's group through its
    /// retries and continuations.
    pub(crate) fn message(&self, job_id: JobId) -> JobMessage {
        let group = self
            .record
            .attributes
            .get(GROUP_ATTRIBUTE)
            .and_then(|group| group.parse().ok());
        JobMessage::new(job_id).in_group(group).traced(self.trace)
    }

    /// A span of this delivery named `name`, starting now, a child of the
    /// job's trace context (or, until it is known, of none).
    pub(crate) fn span(&self, name: &'static str) -> Span {
        Span::start(name, SpanKind::Internal, self.trace.as_ref())
    }

    /// Takes `traceparent` (the claimed record's) as the job's context when
    /// the message carried none, moving `claim` (started without one) under
    /// it; with neither, the claim span is the root of the delivery's trace.
    pub(crate) fn adopt_trace(&mut self, claim: &mut Span, traceparent: Option<TraceContext>) {
        if self.trace.is_some() {
            return;
        }
        match traceparent {
            Some(context) => {
                claim.reparent(&context);
                self.trace = Some(context);
            }
            None => self.trace = Some(claim.context()),
        }
    }

    /// Ends `span` with the job's id, type and attempt, and `outcome`, as
    /// its attributes.
    pub(crate) fn end_span(&self, mut span: Span, outcome: &str) {
        if let Some(id) = self.job_id {
            span.set_job(id, self.job_type.as_deref().unwrap_or_default());
        }
        if let Some(attempt) = self.attempt {
            span.int("attempt", i64::from(attempt));
        }
        span.text("outcome", outcome);
        span.end();
    }

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
            trace: record
                .message_attributes
                .get(MESSAGE_ATTRIBUTE)
                .and_then(|attribute| attribute.string_value.as_deref()?.parse().ok()),
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
            traceId = self
                .trace
                .map(|context| tracing::field::display(context.trace_id())),
            "job outcome"
        );
    }
}

fn attribute<T: std::str::FromStr>(record: &SqsMessage, name: &str) -> Option<T> {
    record.attributes.get(name)?.parse().ok()
}

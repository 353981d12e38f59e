//! The notifier: what follows a job's final state, hung off the one place
//! every final state goes through, the job's item.
//!
//! Two event sources invoke it (one function, two roles, one response shape,
//! `{"batchItemFailures": [...]}`):
//!
//! 1. **The jobs table's stream** ([`Notifier::relay`]). Every record whose
//!    change is a job with a callback URL entering a final state
//!    ([`outbox::announced`]) becomes one message `{"jobId"}` on the
//!    notifier's own queue; and every final state counts its caller's
//!    unfinished jobs down ([`outbox::counted`], the per-caller bound's
//!    other half: the API counts each admission up). A send that fails fails its record, and Lambda
//!    retries the stream from it; nothing else happens here, so a slow or
//!    failing receiver never holds the stream (or the jobs) back.
//! 2. **The notifier's queue** ([`Notifier::deliver_batch`]). Each message
//!    is one event to deliver: the job is read (its current state is the
//!    truth, whatever the message says), signed with its caller's secret
//!    (Standard Webhooks), and POSTed through the SSRF guard
//!    ([`Deliverer`]). The attempt is recorded on the job
//!    ([`NotifierStore::record_delivery`], conditional on what was read): a 2xx
//!    is `delivered`; a retryable failure stays `pending` and the message
//!    comes back after a backoff (its visibility), until the queue's last
//!    receive, which records `failed`; a refused URL or a 4xx is `failed` at
//!    once, but for a 401 or 403 in a key rotation (below). A message whose
//!    job is already delivered or failed is dropped, so a duplicate (a
//!    stream retry, a replayed message) sends nothing.
//!
//! # A refused signature during a rotation
//!
//! The promise to receivers is that either secret verifies while they
//! switch. A notifier uses keys read up to
//! [`REFRESH_INTERVAL`](jobline_webhooks::keys::REFRESH_INTERVAL)
//! ago, so right after a rotation it may sign with the old key alone while
//! the receiver, already handed its new secret, accepts only that: a 401 or
//! 403 that would be final, though the next read of the keys would have
//! delivered. So the rotation window is, exactly, "the keys read now have a
//! current key other than the one that signed": on a 401 or 403, the
//! notifier reads the keys again ([`KeySource::reread`], a read begun after
//! the refusal, shared by the refusals waiting for it), and
//!
//! - if the current key changed, or the keys cannot be read (no telling),
//!   the delivery stays `pending` and is retried after its backoff. This
//!   notifier now signs with the keys just read, the new key and the
//!   previous one, which the receiver's new secret verifies; another
//!   execution environment that takes the retry with old keys still meets
//!   the same check, and reads them again in turn;
//! - if it did not, the receiver refused a signature by the key that is
//!   current now (and the previous one), so no rotation explains it: the
//!   delivery is `failed` at once, as any other 4xx.
//!
//! A receiver's new secret comes from `GET /webhook-secret`, which derives
//! it from keys read after the rotation; its refusal comes after that, and
//! the re-read after its refusal, so the re-read always sees the rotation
//! that made the receiver refuse. The last receive fails whatever the status.
//!
//! Each attempt is a `webhook` span in the job's trace (its record's
//! `traceparent`, the API's `submit` span), and the POST carries that
//! span's context as its `traceparent` header, so a receiver that traces
//! continues the job's trace; its log line carries the trace id.
//!
//! Every attempt of one event has the same `webhook-id`
//! (`msg_<job id>_<finishedAt>`), so a receiver drops a duplicate (an
//! attempt that was delivered but whose record was lost) by it.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use jobline_core::caller::CallerCounts;
use jobline_core::config::WebhookConfig;
use jobline_core::job::{DeliveryState, WebhookDelivery, format_ms};
use jobline_core::spans::{Span, SpanKind, SpanStatus};
use jobline_core::trace_context::TraceContext;
use jobline_core::view::job_view;
use jobline_core::{Clock, JobId, JobMessage, JobQueue, JobRecord, Metric, Metrics, NotifierStore};
use jobline_dynamodb::outbox;
use jobline_webhooks::{
    CallbackUrl, Deliverer, DeliveryError, KeySource, MasterKeys, WebhookHeaders,
};
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::field::display;

/// How long after its change a stream record whose relay keeps failing is
/// set aside ([`Notifier::relay`]), in ms: long enough to ride out a short
/// SQS outage in order, short of the sweeper's
/// `WEBHOOK_OWED_AFTER_MS` (30 minutes), which picks it up from the job.
pub const SET_ASIDE_AFTER_MS: i64 = 15 * 60_000;

/// How many deliveries of one batch run at once.
pub const DELIVERY_CONCURRENCY: usize = 10;

/// Relays final states and delivers their webhooks.
#[derive(Debug)]
pub struct Notifier {
    store: Arc<dyn NotifierStore>,
    queue: Arc<dyn JobQueue>,
    keys: Arc<dyn KeySource>,
    deliverer: Deliverer,
    config: WebhookConfig,
    /// Each caller's count of unfinished jobs, which every final state
    /// counts down (and a replay up): on with [`Notifier::with_counts`].
    counts: Option<Arc<dyn CallerCounts>>,
    clock: Clock,
}

/// What became of one queued event, for its log line and the batch's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Nothing more to do: delivered, failed for good, or nothing to send.
    Done,
    /// Try again: the message's visibility was set to the backoff.
    Retry,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn NotifierStore>,
        queue: Arc<dyn JobQueue>,
        keys: Arc<dyn KeySource>,
        deliverer: Deliverer,
        config: &WebhookConfig,
    ) -> Self {
        Self {
            store,
            queue,
            keys,
            deliverer,
            config: config.clone(),
            counts: None,
            clock: Clock::system(),
        }
    }

    /// Counts each caller's unfinished jobs down at their final states, and
    /// up at their replays, in `counts` (the callers table).
    #[must_use]
    pub fn with_counts(mut self, counts: Arc<dyn CallerCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    /// Reads the time from `clock` (the tests' movable one).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// One invocation, from either source (told apart by the records'
    /// `eventSource`); the answer lists the records to retry.
    pub async fn handle(&self, event: Value) -> Value {
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        let from_stream = records
            .first()
            .is_some_and(|r| r["eventSource"] == "aws:dynamodb");
        if from_stream {
            let failures = self.relay(&records).await;
            return json!({
                "batchItemFailures": failures
                    .into_iter()
                    .map(|id| json!({"itemIdentifier": id}))
                    .collect::<Vec<_>>()
            });
        }
        match serde_json::from_value::<SqsEvent>(event) {
            Ok(event) => serde_json::to_value(self.deliver_batch(event).await)
                .unwrap_or_else(|_| json!({"batchItemFailures": []})),
            Err(error) => {
                tracing::error!(%error, "an event from neither the stream nor the queue");
                json!({"batchItemFailures": []})
            }
        }
    }

    /// Stream records, in order: each final state of a called-back job
    /// becomes a message on the queue, and each final state (or replay) of
    /// any job counts its caller down (or up) ([`outbox::counted`]). Returns the sequence number of the
    /// first record whose send failed (Lambda retries from it, for as long
    /// as the stream keeps it), if any. A record whose send still fails
    /// [`SET_ASIDE_AFTER_MS`] after its change is set aside instead, so it
    /// cannot hold up its shard's later records: the job's item still owes
    /// the webhook, and the sweeper hands it to the notifier again
    /// (`jobline_sweeper::WEBHOOK_OWED_AFTER_MS`).
    pub async fn relay(&self, records: &[Value]) -> Vec<String> {
        for record in records {
            let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("");
            let changed_ms = record["dynamodb"]["ApproximateCreationDateTime"]
                .as_i64()
                .map(|secs| secs.saturating_mul(1000));
            let set_aside =
                changed_ms.is_some_and(|at| self.clock.now_ms() - at > SET_ASIDE_AFTER_MS);
            if let Some(job_id) = outbox::announced(record) {
                if let Err(error) = self.queue.send(&JobMessage::new(job_id)).await {
                    if set_aside {
                        tracing::error!(jobId = %job_id, %error, "could not queue a webhook for too long; set aside for the sweeper");
                    } else {
                        tracing::warn!(jobId = %job_id, %error, "could not queue a webhook; the stream will retry");
                        return vec![sequence.to_owned()];
                    }
                } else {
                    tracing::debug!(jobId = %job_id, "webhook queued");
                }
            }
            // After the webhook: a retry of this record queues its webhook
            // again (a duplicate the delivery drops) rather than count twice.
            if let (Some(counts), Some((owner, delta))) = (&self.counts, outbox::counted(record))
                && let Err(error) = counts.adjust(&owner, delta).await
            {
                if set_aside {
                    tracing::error!(%error, delta, "could not count a caller's job for too long; its count is off by one");
                } else {
                    tracing::warn!(%error, delta, "could not count a caller's job; the stream will retry");
                    return vec![sequence.to_owned()];
                }
            }
        }
        Vec::new()
    }

    /// One batch of the queue: each event delivered (or not) as the module
    /// says; the ones to retry are reported failed. Emits the batch's metrics.
    pub async fn deliver_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut metrics = Metrics::new();
        let outcomes: Vec<(String, Handled, Metrics)> = futures_util::stream::iter(event.records)
            .map(|record| async move {
                let mut metrics = Metrics::new();
                let handled = self.deliver(&record, &mut metrics).await;
                (record.message_id.unwrap_or_default(), handled, metrics)
            })
            .buffer_unordered(DELIVERY_CONCURRENCY)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for (message_id, handled, delivery_metrics) in outcomes {
            metrics.merge(delivery_metrics);
            if handled == Handled::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
        metrics.emit();
        response
    }

    async fn deliver(&self, record: &SqsMessage, metrics: &mut Metrics) -> Handled {
        let body = record.body.as_deref().unwrap_or_default();
        let Ok(message) = JobMessage::decode(body) else {
            tracing::error!(body, "not a webhook message; dropped");
            return Handled::Done;
        };
        let id = message.job_id;
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let job = match self.store.get(id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                tracing::info!(jobId = %id, outcome = "gone", "webhook");
                return Handled::Done;
            }
            Err(error) => {
                tracing::warn!(jobId = %id, %error, "could not read the job; retrying");
                return self.retry_later(record, receive_count).await;
            }
        };
        let Some(due) = Due::of(&job) else {
            let trace_id = job.traceparent.map(|context| display(context.trace_id()));
            tracing::info!(jobId = %id, outcome = "nothing to send", traceId = trace_id, "webhook");
            return Handled::Done;
        };
        let keys = match self.keys.keys().await {
            Ok(keys) => keys,
            Err(error) => {
                // Not the receiver's doing: no attempt is counted.
                tracing::error!(jobId = %id, %error, "no webhook master key; retrying");
                return self.retry_later(record, receive_count).await;
            }
        };
        let attempt = due.seen.as_ref().map_or(0, |d| d.attempts) + 1;
        // This attempt's span, in the job's trace: its context is the POST's
        // `traceparent` header.
        let mut span = Span::start("webhook", SpanKind::Client, job.traceparent.as_ref())
            .for_job(id, &job.job_type);
        span.int("attempt", i64::from(attempt));
        let trace = span.context();
        let (state, last_status) = match self.attempt(&job, &due, &keys, &trace).await {
            Ok(status) => {
                span.status(SpanStatus::Ok);
                (DeliveryState::Delivered, Some(status))
            }
            Err(error) => {
                span.status(SpanStatus::Error(error.to_string()));
                let status = match &error {
                    DeliveryError::Status(status) => Some(*status),
                    _ => None,
                };
                let last = receive_count >= self.config.max_receive_count;
                let retry = !last
                    && (error.is_retryable() || self.rotation_unseen(id, &error, &keys).await);
                tracing::warn!(
                    jobId = %id, attempt, retry, error = %error, "webhook attempt failed"
                );
                let state = if retry {
                    DeliveryState::Pending
                } else {
                    DeliveryState::Failed
                };
                (state, status)
            }
        };
        if let Some(status) = last_status {
            span.int("http.response.status_code", i64::from(status));
        }
        span.text("outcome", state.as_str());
        span.end();
        let delivery = WebhookDelivery {
            for_finished_at: due.finished_at,
            state,
            attempts: attempt,
            last_status,
            at_ms: self.clock.now_ms(),
        };
        if let Err(error) = self
            .store
            .record_delivery(id, due.seen.as_ref(), &delivery)
            .await
        {
            // Another notifier recorded first, or the store failed: the
            // message comes back and the job, read again, settles it.
            tracing::warn!(jobId = %id, %error, "could not record the delivery; retrying");
            return self.retry_later(record, receive_count).await;
        }
        tracing::info!(
            jobId = %id,
            attempt,
            outcome = state.as_str(),
            status = last_status.unwrap_or_default(),
            traceId = %trace.trace_id(),
            "webhook"
        );
        match state {
            DeliveryState::Delivered => {
                metrics.count(&job.job_type, Metric::WebhooksDelivered);
                Handled::Done
            }
            DeliveryState::Failed => {
                metrics.count(&job.job_type, Metric::WebhooksFailed);
                Handled::Done
            }
            DeliveryState::Pending => self.retry_later(record, receive_count).await,
        }
    }

    /// One POST of `job`'s event, its `traceparent` header `trace`; the
    /// receiver's 2xx status, or why not.
    async fn attempt(
        &self,
        job: &JobRecord,
        due: &Due<'_>,
        keys: &MasterKeys,
        trace: &TraceContext,
    ) -> Result<u16, DeliveryError> {
        let url = CallbackUrl::parse(due.url, self.config.policy())?;
        let body = event_body(job, due.finished_at).to_string();
        let webhook_id = webhook_id(job.id, due.finished_at);
        let timestamp = u64::try_from(self.clock.now_ms() / 1000).unwrap_or(0);
        let headers = WebhookHeaders::signed(
            &keys.signing_secrets(&job.owner),
            &webhook_id,
            timestamp,
            body.as_bytes(),
        );
        Ok(self
            .deliverer
            .deliver_traced(&url, &headers, body.as_bytes(), Some(trace))
            .await?
            .status)
    }

    /// Whether `error` is a refused signature (401, 403) that a rotation
    /// this notifier had not seen may explain: the keys read again now have
    /// another current key than `signed_with`, or cannot be read (the
    /// module's documentation says why this is the rotation window).
    async fn rotation_unseen(
        &self,
        id: JobId,
        error: &DeliveryError,
        signed_with: &MasterKeys,
    ) -> bool {
        if !matches!(error, DeliveryError::Status(401 | 403)) {
            return false;
        }
        match self.keys.reread().await {
            Ok(now) if now.same_current_key(signed_with) => false,
            Ok(_) => {
                tracing::info!(jobId = %id, "signature refused after a key rotation; retrying with the new keys");
                true
            }
            Err(error) => {
                tracing::warn!(jobId = %id, %error, "could not read the master keys again after a refused signature; retrying");
                true
            }
        }
    }

    /// Hides the message for the backoff of its `receive_count`, and
    /// reports it failed so that it comes back then.
    async fn retry_later(&self, record: &SqsMessage, receive_count: u32) -> Handled {
        let secs = self.config.backoff().delay_secs(receive_count);
        if let Some(receipt) = &record.receipt_handle
            && let Err(error) = self.queue.change_visibility(receipt, secs).await
        {
            tracing::warn!(%error, "could not set the retry's delay; the queue's visibility applies");
        }
        Handled::Retry
    }
}

/// A webhook a job is due: its callback URL, the final state's time, and
/// the delivery of that state recorded so far.
struct Due<'a> {
    url: &'a str,
    finished_at: i64,
    seen: Option<WebhookDelivery>,
}

impl<'a> Due<'a> {
    /// The webhook `job` is due, if any: it has a callback URL, it is
    /// finished (and was accepted), and its delivery is not settled.
    fn of(job: &'a JobRecord) -> Option<Self> {
        let url = job.callback_url.as_deref()?;
        let finished_at = job.finished_at.filter(|_| job.state.is_finished())?;
        if job.enqueue_failed {
            return None;
        }
        let seen = job.current_delivery();
        if seen.is_some_and(|d| d.state != DeliveryState::Pending) {
            return None;
        }
        Some(Self {
            url,
            finished_at,
            seen,
        })
    }
}

/// The `webhook-id` of the event of `job`'s final state at `finished_at`:
/// the same on every attempt, new for a replayed job's next final state.
pub fn webhook_id(job: JobId, finished_at: i64) -> String {
    format!("msg_{job}_{finished_at}")
}

/// The event: `{"type": "job.<status>", "timestamp", "data": <the job>}`,
/// the job as `GET /jobs/{id}` shows it (a result stored apart is fetched
/// through that route's `resultUrl`), without the webhook's own state.
pub fn event_body(job: &JobRecord, finished_at: i64) -> Value {
    let mut data = job_view(job, finished_at);
    if let Value::Object(fields) = &mut data {
        fields.remove("webhook");
    }
    json!({
        "type": format!("job.{}", job.state),
        "timestamp": format_ms(finished_at),
        "data": data,
    })
}

#[cfg(test)]
mod tests;

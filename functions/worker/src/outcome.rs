//! One claimed job's run and how it ended: the handler's outcome becomes
//! exactly one fenced write (succeeded, failed, dead-lettered, cancelled, a
//! continuation, or a return to the queue after a retryable failure) and
//! the message's disposition (acknowledged, or left to SQS with a backoff
//! set by its visibility).

use crate::delivery::Delivery;
use crate::handler::{Ran, Run, Stop};
use crate::hides::ClaimHides;
use crate::{
    Disposition, LEASE_LOST_ERROR, MAX_RESULT_BYTES, TIMED_OUT_ERROR, UNSTORABLE_ERROR, Worker,
    heartbeat,
};
use jobline_core::backoff::max_visibility_secs;
use jobline_core::job_types::Reports;
use jobline_core::results::{MAX_LINKED_RESULT_BYTES, result_key};
use jobline_core::spans::SpanStatus;
use jobline_core::{Completion, JobError, JobId, JobMessage, JobRecord, Metric, StoreError};
use serde_json::Value;
use std::time::Instant;

impl Worker {
    pub(crate) async fn run_job(
        &self,
        delivery: &mut Delivery<'_>,
        hides: &ClaimHides,
        id: JobId,
        deadline_ms: i64,
    ) -> Disposition {
        // The claim step's span: the claim and the message's hide.
        let mut claim_span = delivery.span("claim");
        let (job, lease_until_ms, claiming) = match self.claim(delivery, id, hides.claiming()).await
        {
            Ok(claimed) => claimed,
            Err(disposition) => {
                delivery.adopt_trace(&mut claim_span, None);
                delivery.end_span(claim_span, delivery.outcome);
                return disposition;
            }
        };
        delivery.job_type = Some(job.job_type.clone());
        delivery.attempt = Some(job.attempts);
        delivery.adopt_trace(&mut claim_span, job.traceparent);
        if job.cancel_requested {
            // Cancelled while its last attempt ran, which died before it
            // could stop: the claim after the lease ends finishes it. Not
            // run, so not hidden: the claim step ends here.
            drop(claiming);
            delivery.end_span(claim_span, "claimed");
            let finish = delivery.span("finish");
            delivery.outcome = "cancelled";
            let disposition = self
                .complete(
                    delivery,
                    &job,
                    &Completion::Cancelled,
                    Metric::JobsCancelled,
                )
                .await;
            delivery.end_span(finish, delivery.outcome);
            return disposition;
        }
        if self.clock.now_ms() >= self.run_limit_at(&job) {
            drop(claiming);
            delivery.end_span(claim_span, "claimed");
            let finish = delivery.span("finish");
            let disposition = self.fail_at_run_limit(delivery, &job).await;
            delivery.end_span(finish, delivery.outcome);
            return disposition;
        }
        // Short at once (with the claims that end close to this one): a
        // crash now brings the message back within the lease.
        self.hide_for_lease(delivery, claiming, lease_until_ms)
            .await;
        delivery.end_span(claim_span, "claimed");
        if job.attempts == 1
            && let Some(started) = job.started_at
        {
            delivery.metrics.record(
                &job.job_type,
                Metric::QueueTimeMs,
                (started - job.created_at) as f64,
            );
        }
        let started = Instant::now();
        let mut run_span = delivery.span("run");
        let ran = self.run_handler(&job, delivery, deadline_ms).await;
        delivery.metrics.record(
            &job.job_type,
            Metric::JobDurationMs,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        run_span.status(match &ran.run {
            Run::Finished(Ok(_) | Err(JobError::Continue)) => SpanStatus::Ok,
            Run::Finished(Err(error)) => SpanStatus::Error(error.to_string()),
            Run::Overran => SpanStatus::Error(TIMED_OUT_ERROR.to_owned()),
        });
        delivery.end_span(
            run_span,
            match &ran.run {
                Run::Finished(Ok(_)) => "returned",
                Run::Finished(Err(JobError::Continue)) => "yielded",
                Run::Finished(Err(_)) => "failed",
                Run::Overran => "overran",
            },
        );
        // The finish step's span: how the run is recorded.
        let finish = delivery.span("finish");
        let disposition = self.record_run(delivery, &job, ran).await;
        delivery.end_span(finish, delivery.outcome);
        disposition
    }

    /// Records how `job`'s run `ran` ended: one fenced write, and the
    /// message's disposition.
    async fn record_run(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        ran: Ran,
    ) -> Disposition {
        let last_delivery = delivery.receive_count >= self.config.max_receive_count;
        match (ran.run, ran.stop) {
            (Run::Finished(Ok(result)), _) => match self.completion_of(job, result).await {
                Ok(completion) => {
                    delivery.outcome = "succeeded";
                    self.complete(delivery, job, &completion, Metric::JobsSucceeded)
                        .await
                }
                Err(JobError::Permanent(error)) => self.fail(delivery, job, "failed", error).await,
                Err(_) => {
                    // The upload failed: the result is lost with this
                    // attempt, so the job runs again after its backoff.
                    delivery.outcome = "result-unstored";
                    self.retry_later(delivery, None).await
                }
            },
            // On the last delivery, an attempt stopped because its
            // heartbeats did not land (calls that hung) leaves no delivery
            // to run the job: it fails, dead-lettered, fenced by the attempt,
            // so a job another delivery took over is left alone.
            (Run::Finished(_), Some(Stop::LeaseLost)) if last_delivery => {
                self.dead_letter(delivery, job, LEASE_LOST_ERROR.to_owned())
                    .await;
                Disposition::Retry
            }
            // Another delivery may hold the job, or it was finished for it:
            // nothing this attempt writes would be recorded.
            (Run::Finished(_), Some(Stop::LeaseLost)) => {
                delivery.outcome = "lease-lost";
                Disposition::Retry
            }
            (Run::Finished(Err(_)), Some(Stop::CancelRequested)) => {
                delivery.outcome = "cancelled";
                self.complete(delivery, job, &Completion::Cancelled, Metric::JobsCancelled)
                    .await
            }
            (Run::Finished(Err(_)), Some(Stop::RunLimit)) => {
                self.fail_at_run_limit(delivery, job).await
            }
            (Run::Finished(Err(JobError::Continue)), _) => {
                self.continue_later(delivery, job, &ran.reports).await
            }
            (Run::Finished(Err(JobError::Permanent(error))), _) => {
                tracing::debug!(%error, jobId = %job.id, "job failed permanently");
                self.fail(delivery, job, "failed", error).await
            }
            (Run::Finished(Err(JobError::Retryable(error))), _) if last_delivery => {
                self.dead_letter(delivery, job, error).await;
                Disposition::Retry
            }
            (Run::Finished(Err(JobError::Retryable(error))), _) => {
                tracing::debug!(%error, jobId = %job.id, "job failed; will retry");
                delivery.outcome = "retrying";
                match self
                    .store
                    .return_to_queue(job.id, job.attempts, &delivery.token, &error)
                    .await
                {
                    Ok(()) => {}
                    Err(invalid @ StoreError::Invalid { .. }) => {
                        return self.fail_unstorable(delivery, job, false, &invalid).await;
                    }
                    Err(return_error) => {
                        tracing::warn!(%return_error, jobId = %job.id, "could not return the job to the queue; its lease will expire");
                    }
                }
                delivery.metrics.count(&job.job_type, Metric::JobsRetried);
                self.retry_later(delivery, None).await
            }
            // No other delivery will run it: recording the failure cannot
            // overlap with a run.
            (Run::Overran, _) if last_delivery => {
                self.dead_letter(delivery, job, TIMED_OUT_ERROR.to_owned())
                    .await;
                delivery.outcome = "overran";
                Disposition::Overran
            }
            (Run::Overran, _) => {
                // The process ends after the response, so the handler stops
                // with it; the message waits out the lease, then backs off.
                delivery.outcome = "overran";
                let lease_secs = heartbeat::secs_until(&self.clock, ran.lease_until_ms);
                let backoff = self.config.backoff().delay_secs(delivery.receive_count);
                self.retry_later(delivery, Some(lease_secs.saturating_add(backoff)))
                    .await;
                Disposition::Overran
            }
        }
    }

    /// How attempt `job`'s `result` is recorded: inline up to
    /// [`MAX_RESULT_BYTES`]; else, with a result store, uploaded under its
    /// attempt's key, up to [`MAX_LINKED_RESULT_BYTES`] (a failed upload is a
    /// retryable error); else a permanent error that says the limit.
    pub(crate) async fn completion_of(
        &self,
        job: &JobRecord,
        result: Value,
    ) -> Result<Completion, JobError> {
        let text = result.to_string();
        if text.len() <= MAX_RESULT_BYTES {
            return Ok(Completion::Succeeded(result));
        }
        let limit = if self.results.is_some() {
            MAX_LINKED_RESULT_BYTES
        } else {
            MAX_RESULT_BYTES
        };
        let Some(results) = self.results.as_ref().filter(|_| text.len() <= limit) else {
            return Err(JobError::Permanent(format!(
                "result is {} bytes; the limit is {limit}",
                text.len()
            )));
        };
        let key = result_key(job.id, job.attempts);
        match results.put(&key, text.into_bytes()).await {
            Ok(()) => Ok(Completion::SucceededLinked(key)),
            Err(error) => {
                tracing::warn!(%error, jobId = %job.id, "could not store the job's result");
                Err(JobError::Retryable(error.to_string()))
            }
        }
    }

    /// A continuation: the handler yielded, so its job goes back to the
    /// queue with its last checkpoint, as a new message (which counts its
    /// receives afresh), and this one is acknowledged. If the store write
    /// fails, the message comes back after the lease and the job resumes
    /// from the last checkpoint written; if only the send fails, the old
    /// message brings the job back after its backoff.
    pub(crate) async fn continue_later(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        reports: &Reports,
    ) -> Disposition {
        let checkpoint = reports.take().checkpoint;
        match self
            .store
            .suspend(
                job.id,
                job.attempts,
                &delivery.token,
                checkpoint.as_ref(),
                self.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {}
            Err(invalid @ StoreError::Invalid { .. }) => {
                return self.fail_unstorable(delivery, job, false, &invalid).await;
            }
            Err(error) => {
                tracing::warn!(%error, jobId = %job.id, "could not record the job's continuation");
                delivery.outcome = "unsuspended";
                return Disposition::Retry;
            }
        }
        match self.queue.send(&JobMessage::of(job)).await {
            Ok(_) => {
                delivery.outcome = "continued";
                delivery.metrics.count(&job.job_type, Metric::JobsContinued);
                Disposition::Acknowledged
            }
            Err(error) => {
                tracing::warn!(%error, jobId = %job.id, "could not send the job's continuation");
                delivery.outcome = "continuation-unsent";
                self.retry_later(delivery, None).await
            }
        }
    }

    /// Fails `job`, which reached its maximum run time.
    pub(crate) async fn fail_at_run_limit(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
    ) -> Disposition {
        let error = format!(
            "the job ran longer than its limit of {} s",
            self.config.max_run_secs
        );
        self.fail(delivery, job, "run-limit", error).await
    }

    /// Fails `job` for good with `error` (no retry can help), the record's
    /// outcome `outcome`.
    pub(crate) async fn fail(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        outcome: &'static str,
        error: String,
    ) -> Disposition {
        delivery.outcome = outcome;
        let completion = Completion::Failed {
            error,
            dead_lettered: false,
        };
        self.complete(delivery, job, &completion, Metric::JobsFailed)
            .await
    }

    /// Fails the job as dead-lettered on the message's last delivery, and
    /// makes the message visible at once, so SQS's next receive moves it to
    /// the DLQ.
    pub(crate) async fn dead_letter(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        error: String,
    ) {
        tracing::debug!(%error, jobId = %job.id, "job failed on its last delivery; dead-lettering");
        delivery.outcome = "dead-lettered";
        let completion = Completion::Failed {
            error,
            dead_lettered: true,
        };
        if self
            .complete(delivery, job, &completion, Metric::JobsFailed)
            .await
            == Disposition::Acknowledged
        {
            delivery
                .metrics
                .count(&job.job_type, Metric::JobsDeadLettered);
        }
        self.set_visibility(delivery, 0).await;
    }

    /// Writes the completion, fenced by the attempt; counts `metric` if it landed.
    pub(crate) async fn complete(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        completion: &Completion,
        metric: Metric,
    ) -> Disposition {
        match self
            .store
            .finish(
                job.id,
                job.attempts,
                &delivery.token,
                completion,
                self.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {
                delivery.metrics.count(&job.job_type, metric);
                Disposition::Acknowledged
            }
            Err(invalid @ StoreError::Invalid { .. }) => {
                let dead_lettered = matches!(
                    completion,
                    Completion::Failed {
                        dead_lettered: true,
                        ..
                    }
                );
                self.fail_unstorable(delivery, job, dead_lettered, &invalid)
                    .await
            }
            Err(error) => {
                // Fenced out (another attempt took the lease) or DynamoDB
                // failed: keep the message, so a later delivery settles it.
                tracing::warn!(%error, jobId = %job.id, "could not record the job's completion");
                delivery.outcome = "unrecorded";
                Disposition::Retry
            }
        }
    }

    /// The store refused the attempt's outcome as `invalid`: no retry can
    /// store it, so the job fails with the fixed [`UNSTORABLE_ERROR`] and
    /// the message is acknowledged. If even that is refused, the job is left
    /// as it is and the message still acknowledged (logged at `error`); only
    /// an outage (`Aws`) has the message delivered again.
    pub(crate) async fn fail_unstorable(
        &self,
        delivery: &mut Delivery<'_>,
        job: &JobRecord,
        dead_lettered: bool,
        invalid: &StoreError,
    ) -> Disposition {
        tracing::warn!(error = %invalid, jobId = %job.id, "the store refused the job's outcome as invalid; failing the job");
        delivery.outcome = "unstorable";
        let completion = Completion::Failed {
            error: UNSTORABLE_ERROR.to_owned(),
            dead_lettered,
        };
        match self
            .store
            .finish(
                job.id,
                job.attempts,
                &delivery.token,
                &completion,
                self.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {
                delivery.metrics.count(&job.job_type, Metric::JobsFailed);
                Disposition::Acknowledged
            }
            Err(error @ StoreError::Aws { .. }) => {
                tracing::warn!(%error, jobId = %job.id, "could not record the job's failure");
                self.retry_later(delivery, None).await
            }
            Err(error) => {
                tracing::error!(%error, jobId = %job.id, "the store refused even the job's fixed failure; dropping the message");
                Disposition::Acknowledged
            }
        }
    }

    /// Hides the message for `secs` (default: the backoff for its receive
    /// count) and reports it failed.
    pub(crate) async fn retry_later(
        &self,
        delivery: &Delivery<'_>,
        secs: Option<u32>,
    ) -> Disposition {
        let secs = secs.unwrap_or_else(|| self.config.backoff().delay_secs(delivery.receive_count));
        self.set_visibility(delivery, secs).await;
        Disposition::Retry
    }

    pub(crate) async fn set_visibility(&self, delivery: &Delivery<'_>, secs: u32) {
        let Some(receipt) = delivery.record.receipt_handle.as_deref() else {
            return;
        };
        let secs = self.visibility_secs(delivery, secs);
        if let Err(error) = self.queue.change_visibility(receipt, secs).await {
            visibility_unchanged(delivery, &error);
        }
    }

    /// `secs`, within SQS's 12-hour cap from the delivery's receive.
    pub(crate) fn visibility_secs(&self, delivery: &Delivery<'_>, secs: u32) -> u32 {
        secs.min(max_visibility_secs(
            delivery.received_at_ms,
            self.clock.now_ms(),
        ))
    }
}

/// A visibility change of `delivery`'s message that failed (alone, or its
/// entry of a batch): only logged, since the queue's own visibility timeout
/// still brings the message back.
pub(crate) fn visibility_unchanged(delivery: &Delivery<'_>, error: &dyn std::fmt::Display) {
    tracing::warn!(%error, messageId = delivery.message_id(), "could not change the message's visibility");
}

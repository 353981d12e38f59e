//! `POST /jobs`: validate, write, then send (the module doc of the crate
//! says why in that order), and what a repeat of an accepted submission
//! does; answered `202` with the job's link.
//!
//! Each submission is a `submit` span (`jobline_core::spans`): a child of
//! the caller's `traceparent` header when it is a valid one, else the root
//! of a new trace. Its context is the job's (`JobRecord::traceparent`), so
//! the worker's and the webhook's spans are its children, and the 202
//! answers it in a `traceparent` header of its own.

use crate::error::ApiError;
use crate::identity::caller;
use crate::{
    Api, BACKLOG_RETRY_AFTER_SECS, ENQUEUE_FAILED, POLL_AFTER_SECS, Trace, expired, json_response,
    submission,
};
use http::StatusCode;
use http::header::{LOCATION, RETRY_AFTER};
use jobline_core::job::format_ms;
use jobline_core::spans::{Span, SpanKind, SpanStatus};
use jobline_core::trace_context::{self, TraceContext};
use jobline_core::{JobId, JobRecord, Metric, Metrics, StoreError};
use lambda_http::{Body, Request, Response};
use serde_json::json;

impl Api {
    pub(crate) async fn submit(
        &self,
        request: &Request,
        metrics: &mut Metrics,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let mut span = Span::start("submit", SpanKind::Server, caller_context(request).as_ref());
        let result = self
            .submit_in(request, metrics, trace, span.context())
            .await;
        if let (Some(id), Some(job_type)) = (trace.job_id, trace.job_type.as_deref()) {
            span.set_job(id, job_type);
        }
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.status(),
        };
        span.int("http.response.status_code", i64::from(status.as_u16()));
        span.status(match &result {
            Ok(_) => SpanStatus::Ok,
            Err(error) if status.is_server_error() => SpanStatus::Error(error.code().to_owned()),
            // A refusal of the caller's request is no failure of the API's.
            Err(_) => SpanStatus::Unset,
        });
        span.end();
        result
    }

    /// [`submit`](Self::submit) within its span, whose context becomes the
    /// new job's.
    async fn submit_in(
        &self,
        request: &Request,
        metrics: &mut Metrics,
        trace: &mut Trace,
        context: TraceContext,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let key = submission::idempotency_key(request)?;
        let callbacks = self.webhook_keys.is_some().then_some(self.callback_policy);
        let now = self.clock.now_ms();
        let (job_request, when) = submission::job_request(request.body().as_ref(), callbacks, now)?;
        trace.job_type = Some(job_request.job_type.clone());
        let id = key.map_or_else(JobId::random, |key| {
            JobId::from_idempotency_key(&owner, key)
        });
        trace.job_id = Some(id);
        let mut job = JobRecord::new_queued(id, &owner, &job_request, now, self.retention_days);
        job.traceparent = Some(context);
        if let Some(when) = when {
            job = job.delayed_until(when.run_at(now));
        }
        let job = self.accept(job, key.is_some(), metrics).await?;
        self.accepted(request, &job)
    }

    /// Accepts new job `job` (from `POST /jobs`, or a schedule's fire):
    /// validates it, writes it, then sends it (or sets its timer), and
    /// returns the job the caller is answered with: `job`, or the one
    /// already under its id when this is a repeat (`keyed`: its id came
    /// from an idempotency key or a fire, not at random).
    pub(crate) async fn accept(
        &self,
        mut job: JobRecord,
        keyed: bool,
        metrics: &mut Metrics,
    ) -> Result<JobRecord, ApiError> {
        // The job's place in its trace: its `submit` or `fire` span's, as
        // set; a job without one starts a trace of its own.
        job.traceparent.get_or_insert_with(TraceContext::new_root);
        submission::check_sizes(&job)?;
        self.check_departure(&job)?;
        let handler =
            self.job_types
                .get(&job.job_type)
                .ok_or_else(|| ApiError::UnknownJobType {
                    job_type: job.job_type.clone(),
                    known: self.job_types.names().map(str::to_owned).collect(),
                })?;
        handler
            .validate(&job.payload)
            .map_err(ApiError::InvalidPayload)?;
        let job = self.resolve_inputs(job).await?;

        // Over a bound, a repeat of an accepted job still gets its 202: it
        // adds no work.
        let refused = if self.backlog_full().await {
            Some(ApiError::BacklogFull {
                retry_after_secs: BACKLOG_RETRY_AFTER_SECS,
            })
        } else {
            None
        };
        let admission = match refused {
            Some(refusal) => Err(refusal),
            None => self.admit(&job).await,
        };
        let admission = match admission {
            Ok(admission) => admission,
            Err(refusal @ (ApiError::BacklogFull { .. } | ApiError::TooManyJobs { .. })) => {
                if keyed && let Some(existing) = self.accepted_repeat(&job).await? {
                    tracing::debug!("replay of an accepted job over a bound");
                    return Ok(existing);
                }
                metrics.count(&job.job_type, Metric::JobsRefused);
                return Err(refusal);
            }
            Err(error) => return Err(error),
        };

        // Whether this request creates the job (not a replay of an accepted one).
        let (new_job, to_send) = match self.store.create(&job).await {
            Ok(()) => (true, job.clone()),
            Err(StoreError::Conflict {
                current: Some(existing),
            }) if existing.created_at == job.created_at => {
                check_replay(&existing, &job)?;
                tracing::debug!("the store holds this request's own write (a retried PutItem)");
                (true, job.clone())
            }
            Err(StoreError::Conflict {
                current: Some(existing),
            }) => {
                self.give_back(admission, &job).await;
                check_replay(&existing, &job)?;
                if existing.state.is_waiting() && existing.attempts == 0 {
                    // Never claimed: the request that wrote it may have died
                    // between its write and its send, leaving no message. Send
                    // again; a duplicate only costs the worker a refused claim.
                    // First the mark that keeps its creator from failing it.
                    tracing::debug!("replay of a job not yet started: sending its message again");
                    if let Some(current) = self.mark_resending(&existing).await? {
                        return Ok(current);
                    }
                    (false, *existing)
                } else {
                    tracing::debug!("idempotent replay of an accepted job");
                    return Ok(*existing);
                }
            }
            Err(error) => {
                self.give_back(admission, &job).await;
                return Err(ApiError::StoreUnavailable(error.to_string()));
            }
        };

        if let Err(send_error) = self.dispatch(&to_send).await {
            if !new_job {
                // A repeat never marks the job: its creator's message, or
                // an earlier repeat's, may be in the queue. The client's next
                // retry sends again; the time bound ends a job none arrives for.
                return Err(send_error);
            }
            let now = self.clock.now_ms();
            let detail = match self
                .store
                .mark_enqueue_failed(&job, ENQUEUE_FAILED, now)
                .await
            {
                Ok(()) => return Err(send_error),
                // A worker claimed the job (the message arrived after all:
                // only its response was lost), or a repeat of this request
                // sent it again: the job is accepted.
                Err(StoreError::Conflict {
                    current: Some(current),
                }) if current.attempts > 0 || current.resent_at.is_some() => {
                    tracing::warn!(
                        error = %send_error,
                        "the send failed, but the job was claimed or sent again since"
                    );
                    metrics.count(&job.job_type, Metric::JobsAccepted);
                    return Ok(*current);
                }
                Err(mark_error) => {
                    format!(
                        "{}; marking the job enqueue-failed also failed: {mark_error}",
                        send_error.detail().unwrap_or("the send failed")
                    )
                }
            };
            return Err(ApiError::QueueUnavailable(detail));
        }
        if new_job {
            metrics.count(&job.job_type, Metric::JobsAccepted);
        }
        Ok(to_send)
    }

    /// The job already accepted under `job`'s id, if this request repeats
    /// its submission (same caller and body) and it was queued.
    async fn accepted_repeat(&self, job: &JobRecord) -> Result<Option<JobRecord>, ApiError> {
        let existing = self
            .store
            .get(job.id)
            .await
            .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
        match existing {
            Some(existing) => {
                check_replay(&existing, job)?;
                Ok((!existing.enqueue_failed).then_some(existing))
            }
            None => Ok(None),
        }
    }

    /// Marks `existing` (scheduled or queued, never claimed) as about to be
    /// sent again by this repeat. `Some` job when it moved on meanwhile:
    /// claimed (answered as it is), or failed to enqueue (503: the client's
    /// retry creates it again under the same key).
    pub(crate) async fn mark_resending(
        &self,
        existing: &JobRecord,
    ) -> Result<Option<JobRecord>, ApiError> {
        match self
            .store
            .mark_resending(existing.id, self.clock.now_ms())
            .await
        {
            Ok(()) => Ok(None),
            Err(StoreError::Conflict {
                current: Some(current),
            }) if current.enqueue_failed => Err(ApiError::QueueUnavailable(
                "the job's first send failed meanwhile".to_owned(),
            )),
            Err(StoreError::Conflict {
                current: Some(current),
            }) => Ok(Some(*current)),
            Err(StoreError::Conflict { current: None }) => Err(ApiError::StoreUnavailable(
                "the job vanished while it was being sent again".to_owned(),
            )),
            Err(error) => Err(ApiError::StoreUnavailable(error.to_string())),
        }
    }

    pub(crate) async fn backlog_full(&self) -> bool {
        match &self.backlog {
            Some(backlog) => backlog.is_full().await,
            None => false,
        }
    }

    /// The 202 for `job`, with its link and when to poll it.
    pub(crate) fn accepted(
        &self,
        request: &Request,
        job: &JobRecord,
    ) -> Result<Response<Body>, ApiError> {
        let status_url = format!("{}/jobs/{}", self.public_base(request), job.id);
        let mut body = json!({
            "jobId": job.id,
            "status": job.state_at(self.clock.now_ms()),
            "statusUrl": status_url,
        });
        if let Some(run_at) = job.run_at {
            body["runAt"] = json!(format_ms(run_at));
        }
        let mut response = json_response(StatusCode::ACCEPTED)
            .header(LOCATION, status_url)
            .header(RETRY_AFTER, POLL_AFTER_SECS);
        // The job's trace: this submission's span, or a repeat's original one.
        if let Some(context) = job.traceparent {
            response = response.header(trace_context::HEADER, context.to_string());
        }
        response
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }
}

/// The caller's trace context: its `traceparent` header, when there is
/// exactly one and it is valid (the W3C rule: otherwise it is ignored, and
/// the submission starts a trace).
pub(crate) fn caller_context(request: &Request) -> Option<TraceContext> {
    let mut values = request.headers().get_all(trace_context::HEADER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.parse().ok()
}

/// Whether `existing`, the job already under this request's id, may answer
/// `job`'s request as a replay: not if it has expired (its client sees it
/// gone, and the store keeps the id until the TTL deletes it), nor if
/// another caller or body made it.
pub(crate) fn check_replay(existing: &JobRecord, job: &JobRecord) -> Result<(), ApiError> {
    if expired(existing, job.created_at) {
        return Err(ApiError::IdempotencyKeyExpired);
    }
    if existing.owner != job.owner || existing.fingerprint != job.fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(())
}

//! One job of the caller's: `GET /jobs/{id}` (its view, a link to a large
//! result), `POST /jobs/{id}/cancel`, `POST /jobs/{id}/run` (a scheduled
//! job, now) and `DELETE /jobs/{id}`. A job of another caller is the same
//! 404 as a missing one.

use crate::error::ApiError;
use crate::identity::caller;
use crate::{Api, POLL_AFTER_SECS, Trace, expired, fresh_json};
use http::StatusCode;
use http::header::RETRY_AFTER;
use jobline_core::files::{output_prefix, outputs_of};
use jobline_core::job::format_ms;
use jobline_core::results::{LINK_TTL, ResultStore};
use jobline_core::store::DeleteOutcome;
use jobline_core::view::job_view;
use jobline_core::{CancelOutcome, JobId, JobRecord, JobState, Metric, Metrics, StoreError};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::Arc;

impl Api {
    pub(crate) async fn status(
        &self,
        request: &Request,
        id: &str,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let job = self.own_job(request, id, trace).await?;
        let mut view = job_view(&job, self.clock.now_ms());
        if let Some(key) = &job.result_key {
            let link = self.result_store()?.link(key).await?;
            view["resultUrl"] = json!(link);
        }
        if !job.inputs.is_empty() {
            view["inputs"] = json!(
                job.inputs
                    .iter()
                    .map(|input| json!({
                        "uploadId": input.upload_id,
                        "size": input.size,
                        "contentType": input.content_type,
                        "sha256": input.sha256,
                    }))
                    .collect::<Vec<_>>()
            );
        }
        if let Some(outputs) = self.outputs(&job).await? {
            view["outputs"] = outputs;
        }
        job_response(&job, &view)
    }

    /// Deletes every output of `job`'s attempts, if its type writes some
    /// (a `ListObjectsV2` of the job's prefix, a `DeleteObject` each).
    async fn delete_outputs(&self, job: &JobRecord) -> Result<(), ApiError> {
        let writes = self
            .job_types
            .get(&job.job_type)
            .is_some_and(|handler| handler.writes_outputs());
        let Some(files) = self.files.as_ref().filter(|_| writes) else {
            return Ok(());
        };
        for output in files.list(&outputs_of(job.id)).await? {
            self.result_store()?.delete(&output.key).await?;
        }
        Ok(())
    }

    /// The outputs of the attempt that finished `job`, each with a link, if
    /// it succeeded and its type writes outputs (one `ListObjectsV2`).
    async fn outputs(&self, job: &JobRecord) -> Result<Option<Value>, ApiError> {
        let writes = self
            .job_types
            .get(&job.job_type)
            .is_some_and(|handler| handler.writes_outputs());
        let Some(files) = self.files.as_ref().filter(|_| writes) else {
            return Ok(None);
        };
        if job.state != JobState::Succeeded {
            return Ok(None);
        }
        let expires_at = format_ms(
            self.clock.now_ms() + i64::try_from(LINK_TTL.as_millis()).unwrap_or(i64::MAX),
        );
        let mut outputs = Vec::new();
        for output in files.list(&output_prefix(job.id, job.attempts)).await? {
            outputs.push(json!({
                "name": output.name,
                "size": output.size,
                "url": self.result_store()?.link(&output.key).await?,
                "urlExpiresAt": expires_at,
            }));
        }
        Ok(Some(json!(outputs)))
    }

    /// The result store, which a job with a stored result needs.
    pub(crate) fn result_store(&self) -> Result<&Arc<dyn ResultStore>, ApiError> {
        self.results.as_ref().ok_or_else(|| {
            ApiError::internal("a job's result is in the result store, but RESULTS_BUCKET is unset")
        })
    }

    /// `POST /jobs/{id}/cancel`: a queued job is cancelled at once (its
    /// message is acknowledged unrun when it arrives); a running one is
    /// asked to stop, which its worker learns at its next heartbeat. Either
    /// way 200 with the job; a finished one is 409 with its state.
    pub(crate) async fn cancel(
        &self,
        request: &Request,
        id: &str,
        metrics: &mut Metrics,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let job = self.own_job(request, id, trace).await?;
        let outcome = self.store.cancel(job.id, self.clock.now_ms()).await?;
        match outcome {
            CancelOutcome::Cancelled(cancelled) => {
                if job.state != JobState::Cancelled {
                    metrics.count(&job.job_type, Metric::JobsCancelled);
                }
                self.drop_timer(&job).await;
                job_response(&cancelled, &job_view(&cancelled, self.clock.now_ms()))
            }
            CancelOutcome::Requested(running) => {
                job_response(&running, &job_view(&running, self.clock.now_ms()))
            }
            CancelOutcome::Finished(state) => Err(ApiError::JobFinished { state }),
            CancelOutcome::Missing => Err(ApiError::JobNotFound),
        }
    }

    /// `POST /jobs/{id}/run`: a scheduled job becomes queued and is sent
    /// now (200 with it); any other is 409 with its state. Its timer, if it
    /// has one, is deleted (a fire of it would find the job no longer
    /// scheduled and send nothing).
    pub(crate) async fn run_now(
        &self,
        request: &Request,
        id: &str,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let job = self.own_job(request, id, trace).await?;
        let queued = self.run_job_now(&job).await?;
        job_response(&queued, &job_view(&queued, self.clock.now_ms()))
    }

    /// Runs scheduled `job` now (the API's and the console's): it becomes
    /// queued and is sent, and its timer is deleted; 409 when it is not
    /// scheduled. A repeat after a failed send (503) finds it queued, never
    /// started, and sends it again; so does its timer's fire, should the
    /// client never repeat.
    pub async fn run_job_now(&self, job: &JobRecord) -> Result<JobRecord, ApiError> {
        let queued = match self.store.run_now(job.id, self.clock.now_ms()).await {
            Ok(queued) => queued,
            // A repeat of a run-now whose send failed: sent again.
            Err(StoreError::Conflict {
                current: Some(current),
            }) if current.state == JobState::Queued
                && current.attempts == 0
                && current.run_at.is_some()
                && !current.enqueue_failed =>
            {
                *current
            }
            Err(StoreError::Conflict {
                current: Some(current),
            }) => {
                return Err(ApiError::JobNotScheduled {
                    state: current.state,
                });
            }
            Err(StoreError::Conflict { current: None }) => return Err(ApiError::JobNotFound),
            Err(error) => return Err(error.into()),
        };
        self.dispatch(&queued).await?;
        self.drop_timer(job).await;
        Ok(queued)
    }

    /// Deletes the one-time timer of `job`, which no longer waits for it;
    /// a failure leaves a timer whose fire sends nothing.
    async fn drop_timer(&self, job: &JobRecord) {
        if job.state != JobState::Scheduled {
            return;
        }
        if let Some(timers) = &self.timers
            && let Err(error) = timers.delete(&crate::job_timer_name(job.id)).await
        {
            tracing::warn!(%error, "a delayed job's timer is left; its fire sends nothing");
        }
    }

    /// `DELETE /jobs/{id}`: a finished job, its payload and result are
    /// deleted at once (204); an unfinished one is 409 with its state.
    pub(crate) async fn delete(
        &self,
        request: &Request,
        id: &str,
        trace: &mut Trace,
    ) -> Result<Response<Body>, ApiError> {
        let job = self.own_job(request, id, trace).await?;
        if let (Some(key), true) = (&job.result_key, job.state.is_finished()) {
            self.result_store()?.delete(key).await?;
        }
        if job.state.is_finished() {
            self.delete_outputs(&job).await?;
        }
        match self.store.delete(job.id).await? {
            DeleteOutcome::Deleted => Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::Empty)
                .map_err(ApiError::internal),
            DeleteOutcome::Unfinished(state) => Err(ApiError::JobNotFinished { state }),
            DeleteOutcome::Missing => Err(ApiError::JobNotFound),
        }
    }

    /// The caller's job `id`, read strongly consistent: 404 when there is
    /// none, it is another caller's, or it has expired.
    pub(crate) async fn own_job(
        &self,
        request: &Request,
        id: &str,
        trace: &mut Trace,
    ) -> Result<JobRecord, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let id: JobId = id.parse().map_err(|_| ApiError::JobNotFound)?;
        trace.job_id = Some(id);
        let now_ms = self.clock.now_ms();
        let job = self
            .store
            .get(id)
            .await?
            .filter(|job| job.owner == owner && !expired(job, now_ms))
            .ok_or(ApiError::JobNotFound)?;
        trace.job_type = Some(job.job_type.clone());
        Ok(job)
    }
}

/// 200 with `view`, `job`'s view, never cached, and when to poll again
/// while it is unfinished.
pub(crate) fn job_response(job: &JobRecord, view: &Value) -> Result<Response<Body>, ApiError> {
    let mut response = fresh_json(StatusCode::OK);
    if !job.state.is_finished() {
        response = response.header(RETRY_AFTER, POLL_AFTER_SECS);
    }
    response
        .body(Body::from(view.to_string()))
        .map_err(ApiError::internal)
}

//! One job of the caller's: `GET /jobs/{id}` (its view, a link to a large
//! result), `POST /jobs/{id}/cancel` and `DELETE /jobs/{id}`. A job of
//! another caller is the same 404 as a missing one.

use crate::error::ApiError;
use crate::identity::caller;
use crate::{Api, POLL_AFTER_SECS, Trace, expired, fresh_json};
use http::StatusCode;
use http::header::RETRY_AFTER;
use jobline_core::results::ResultStore;
use jobline_core::store::DeleteOutcome;
use jobline_core::view::job_view;
use jobline_core::{CancelOutcome, JobId, JobRecord, JobState, Metric, Metrics};
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
        let mut view = job_view(&job);
        if let Some(key) = &job.result_key {
            let link = self.result_store()?.link(key).await?;
            view["resultUrl"] = json!(link);
        }
        job_response(&job, &view)
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
                job_response(&cancelled, &job_view(&cancelled))
            }
            CancelOutcome::Requested(running) => job_response(&running, &job_view(&running)),
            CancelOutcome::Finished(state) => Err(ApiError::JobFinished { state }),
            CancelOutcome::Missing => Err(ApiError::JobNotFound),
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

//! The calls on jobs: submit (`POST /jobs`, with its idempotency key), a
//! job (`GET /jobs/{id}`), a page of them (`GET /jobs`), cancel, run now,
//! delete, and the caller's webhook secret. Each is a [`Client`] method
//! answering typed values and, where a program may print the answer, a
//! [`RawJson`] method answering the API's JSON. The error answers a caller
//! expects are outcomes, not errors: [`Cancel::Finished`] (409
//! `job_finished`), [`RunNow::NotScheduled`] (409 `job_not_scheduled`) and
//! [`Deleted::NotFinished`] (409 `job_not_finished`).

use crate::client::{
    Client, RawJson, Repeat, decode, empty_answer, error_status, job_status, json_answer,
};
use crate::error::ClientError;
use crate::types::{Accepted, Job, JobPage, ListJobs, Submission};
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use jobline_core::{JobId, JobState};
use serde_json::Value;

/// The longest idempotency key the API takes.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// What `POST /jobs/{id}/cancel` did; `J` is the job ([`Job`], or its JSON
/// from [`RawJson::cancel`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel<J = Job> {
    /// The job is `cancelled`: it was waiting, or had been cancelled before
    /// (the API answers both alike).
    Cancelled { job: J },
    /// The job is running and now `cancelRequested`: it ends `cancelled` at
    /// its next heartbeat, unless it finishes first.
    Requested { job: J },
    /// The job had already finished (409 `job_finished`) with `status`.
    Finished { status: JobState },
}

/// What `POST /jobs/{id}/run` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RunNow<J = Job> {
    /// The job was scheduled and is now queued.
    Queued { job: J },
    /// The job is not scheduled (409 `job_not_scheduled`): it is `status`.
    NotScheduled { status: JobState },
}

/// What `DELETE /jobs/{id}` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The job, its payload and its result are gone.
    Deleted,
    /// The job has not finished (409 `job_not_finished`) and was kept: it is `status`.
    NotFinished { status: JobState },
}

impl Client {
    /// `POST /jobs`: submits a job, to run at once or when the submission
    /// says, with the submission's `Idempotency-Key`, so its retries (and a
    /// new call with the same submission) create the job once.
    pub async fn submit(&self, submission: &Submission) -> Result<Accepted, ClientError> {
        decode(self.json().submit(submission).await?, "202 body")
    }

    /// `GET /jobs/{id}`: the job.
    pub async fn status(&self, id: JobId) -> Result<Job, ClientError> {
        decode(self.json().status(id).await?, "job")
    }

    /// `POST /jobs/{id}/cancel`: cancels a waiting job, or asks a running
    /// one to stop.
    pub async fn cancel(&self, id: JobId) -> Result<Cancel, ClientError> {
        Ok(match self.json().cancel(id).await? {
            Cancel::Cancelled { job } => Cancel::Cancelled {
                job: decode(job, "job")?,
            },
            Cancel::Requested { job } => Cancel::Requested {
                job: decode(job, "job")?,
            },
            Cancel::Finished { status } => Cancel::Finished { status },
        })
    }

    /// `POST /jobs/{id}/run`: a scheduled job runs now.
    pub async fn run_now(&self, id: JobId) -> Result<RunNow, ClientError> {
        Ok(match self.json().run_now(id).await? {
            RunNow::Queued { job } => RunNow::Queued {
                job: decode(job, "job")?,
            },
            RunNow::NotScheduled { status } => RunNow::NotScheduled { status },
        })
    }

    /// `GET /jobs`: one page of the caller's jobs, newest first.
    pub async fn list(&self, query: &ListJobs) -> Result<JobPage, ClientError> {
        decode(self.json().list(query).await?, "page of jobs")
    }

    /// `DELETE /jobs/{id}`: a finished job, its payload and its result, at once.
    pub async fn delete(&self, id: JobId) -> Result<Deleted, ClientError> {
        let answer = self
            .send(
                Method::DELETE,
                &format!("/jobs/{id}"),
                None,
                &[],
                Repeat::Safe,
            )
            .await?;
        if answer.status == StatusCode::CONFLICT
            && let Some(status) = error_status(&answer.body, "job_not_finished")
        {
            return Ok(Deleted::NotFinished { status });
        }
        empty_answer(&answer).map(|()| Deleted::Deleted)
    }

    /// `GET /webhook-secret`: the caller's `whsec_…` signing secret, for
    /// [`webhooks::verify`](crate::webhooks::verify).
    pub async fn webhook_secret(&self) -> Result<String, ClientError> {
        let answer = self
            .call(Method::GET, "/webhook-secret", None, Repeat::Safe)
            .await?;
        answer["secret"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::InvalidRequest(format!("no secret in {answer}")))
    }
}

impl RawJson<'_> {
    /// [`Client::submit`]: the 202 body.
    pub async fn submit(&self, submission: &Submission) -> Result<Value, ClientError> {
        let key = submission.idempotency_key();
        if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
            return Err(ClientError::InvalidRequest(format!(
                "an idempotency key has 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"
            )));
        }
        let key = HeaderValue::from_str(key)
            .ok()
            .filter(|_| key.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ClientError::InvalidRequest("the idempotency key must be visible ASCII".into())
            })?;
        let headers = [(HeaderName::from_static("idempotency-key"), key)];
        let answer = self
            .client
            .send(
                Method::POST,
                "/jobs",
                Some(&submission.body()),
                &headers,
                Repeat::Safe,
            )
            .await?;
        json_answer(answer.status, &answer.body)
    }

    /// [`Client::status`]: the job's JSON.
    pub async fn status(&self, id: JobId) -> Result<Value, ClientError> {
        self.client
            .call(Method::GET, &format!("/jobs/{id}"), None, Repeat::Safe)
            .await
    }

    /// [`Client::cancel`], with the job's JSON.
    pub async fn cancel(&self, id: JobId) -> Result<Cancel<Value>, ClientError> {
        let path = format!("/jobs/{id}/cancel");
        let answer = self
            .client
            .send(Method::POST, &path, None, &[], Repeat::Safe)
            .await?;
        cancel_outcome(answer.status, &answer.body)
    }

    /// [`Client::run_now`], with the job's JSON.
    pub async fn run_now(&self, id: JobId) -> Result<RunNow<Value>, ClientError> {
        let path = format!("/jobs/{id}/run");
        let answer = self
            .client
            .send(Method::POST, &path, None, &[], Repeat::Safe)
            .await?;
        if answer.status == StatusCode::CONFLICT
            && let Some(status) = error_status(&answer.body, "job_not_scheduled")
        {
            return Ok(RunNow::NotScheduled { status });
        }
        json_answer(answer.status, &answer.body).map(|job| RunNow::Queued { job })
    }

    /// [`Client::list`]: the page, `{"jobs": […], "nextCursor"}`.
    pub async fn list(&self, query: &ListJobs) -> Result<Value, ClientError> {
        let query = query.query();
        let path = if query.is_empty() {
            "/jobs".to_owned()
        } else {
            format!("/jobs?{query}")
        };
        self.client
            .call(Method::GET, &path, None, Repeat::Safe)
            .await
    }
}

/// The outcome of a cancel's answer: a 409 `job_finished` names the status
/// the job finished with; a 200 is read from the job JSON; any other answer
/// is an error as for every request.
fn cancel_outcome(status: StatusCode, body: &[u8]) -> Result<Cancel<Value>, ClientError> {
    if status == StatusCode::CONFLICT
        && let Some(status) = error_status(body, "job_finished")
    {
        return Ok(Cancel::Finished { status });
    }
    let job = json_answer(status, body)?;
    match job_status(&job)? {
        JobState::Cancelled => Ok(Cancel::Cancelled { job }),
        status if status.is_finished() => Ok(Cancel::Finished { status }),
        _ if job["cancelRequested"] == true => Ok(Cancel::Requested { job }),
        _ => Err(ClientError::NotCancelled(job.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cancel_answer(status: u16, body: &Value) -> Result<Cancel<Value>, ClientError> {
        cancel_outcome(
            StatusCode::from_u16(status).unwrap(),
            body.to_string().as_bytes(),
        )
    }

    #[test]
    fn a_cancel_answered_200_is_read_from_the_job() {
        let cancelled = json!({"status": "cancelled", "cancelRequested": false});
        assert_eq!(
            cancel_answer(200, &cancelled).unwrap(),
            Cancel::Cancelled { job: cancelled }
        );
        let requested = json!({"status": "running", "cancelRequested": true});
        assert_eq!(
            cancel_answer(200, &requested).unwrap(),
            Cancel::Requested { job: requested }
        );
        // The job finished between the request and the answer.
        assert_eq!(
            cancel_answer(
                200,
                &json!({"status": "succeeded", "cancelRequested": true})
            )
            .unwrap(),
            Cancel::Finished {
                status: JobState::Succeeded
            }
        );
        let ignored = cancel_answer(200, &json!({"status": "running", "cancelRequested": false}));
        assert!(
            matches!(ignored, Err(ClientError::NotCancelled(_))),
            "{ignored:?}"
        );
    }

    #[test]
    fn a_cancel_answered_409_job_finished_names_the_final_status() {
        let finished = json!({"error": {
            "code": "job_finished", "message": "job already finished", "status": "failed"
        }});
        assert_eq!(
            cancel_answer(409, &finished).unwrap(),
            Cancel::Finished {
                status: JobState::Failed
            }
        );
        // Another conflict is an error answer like any other.
        let other = json!({"error": {"code": "idempotency_conflict", "message": "busy"}});
        let err = cancel_answer(409, &other).unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::CONFLICT), "{err:?}");
    }

    #[test]
    fn a_cancel_of_an_unknown_job_is_the_api_error() {
        let missing = json!({"error": {"code": "job_not_found", "message": "no such job"}});
        let err = cancel_answer(404, &missing).unwrap_err();
        assert_eq!(err.code().as_deref(), Some("job_not_found"), "{err:?}");
    }
}

//! The API client's calls for delayed and recurring jobs: `POST
//! /jobs/{id}/run` and the `/schedules` routes. As for every call, an
//! answer outside 2xx is a [`ClientError::Status`] with the API's error
//! body; the two error answers a command expects are outcomes instead:
//! [`RunNow::NotScheduled`] (409 `job_not_scheduled`) and
//! [`Triggered::Skipped`] (409 `schedule_overlap`).

use super::{ApiClient, ClientError, error_status, json_answer};
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use hyper::body::Bytes;
use jobline_core::schedule::ScheduleId;
use jobline_core::{JobId, JobState};
use serde_json::Value;

/// What `POST /jobs/{id}/run` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RunNow {
    /// The job was scheduled and is now queued; `job` is its JSON.
    Queued { job: Value },
    /// The job is not scheduled (409 `job_not_scheduled`): it is `status`.
    NotScheduled { status: JobState },
}

/// What `POST /schedules/{id}/trigger` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Triggered {
    /// The fire created a job: the 202 body (`jobId`, `status`,
    /// `statusUrl`, `runAt`).
    Accepted { job: Value },
    /// The overlap policy skipped it (409 `schedule_overlap`): the API's
    /// message.
    Skipped { message: String },
}

/// The `code` and `message` of an error body.
fn error_of(body: &[u8]) -> Option<(String, String)> {
    let json = serde_json::from_slice::<Value>(body).ok()?;
    let error = json.get("error")?;
    Some((
        error["code"].as_str()?.to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    ))
}

impl ApiClient {
    /// `POST /jobs/{id}/run`: a scheduled job runs now.
    pub async fn run_now(&self, id: JobId) -> Result<RunNow, ClientError> {
        let request = Request::post(self.url(&format!("/jobs/{id}/run")));
        let (status, body) = self.send(request, Bytes::new()).await?;
        if status == StatusCode::CONFLICT
            && let Some(status) = error_status(&body, "job_not_scheduled")
        {
            return Ok(RunNow::NotScheduled { status });
        }
        json_answer(status, &body).map(|job| RunNow::Queued { job })
    }

    /// `POST /schedules` with `body` (the schedule's definition): the
    /// created schedule.
    pub async fn create_schedule(&self, body: &Value) -> Result<Value, ClientError> {
        let request =
            Request::post(self.url("/schedules")).header(CONTENT_TYPE, "application/json");
        self.call(request, Bytes::from(body.to_string())).await
    }

    /// `GET /schedules` with `query` (already encoded): one page,
    /// `{"schedules": […], "nextCursor"}`.
    pub async fn schedules(&self, query: &str) -> Result<Value, ClientError> {
        let request = Request::get(self.url(&format!("/schedules?{query}")));
        self.call(request, Bytes::new()).await
    }

    /// `GET /schedules/{id}`.
    pub async fn schedule(&self, id: ScheduleId) -> Result<Value, ClientError> {
        let request = Request::get(self.url(&format!("/schedules/{id}")));
        self.call(request, Bytes::new()).await
    }

    /// `PATCH /schedules/{id}` with `changes`: the changed schedule.
    pub async fn update_schedule(
        &self,
        id: ScheduleId,
        changes: &Value,
    ) -> Result<Value, ClientError> {
        let request = Request::patch(self.url(&format!("/schedules/{id}")))
            .header(CONTENT_TYPE, "application/json");
        self.call(request, Bytes::from(changes.to_string())).await
    }

    /// `POST /schedules/{id}/pause`, or `/resume` when `paused` is false:
    /// the schedule.
    pub async fn pause_schedule(&self, id: ScheduleId, paused: bool) -> Result<Value, ClientError> {
        let action = if paused { "pause" } else { "resume" };
        let request = Request::post(self.url(&format!("/schedules/{id}/{action}")));
        self.call(request, Bytes::new()).await
    }

    /// `POST /schedules/{id}/trigger`: fires the schedule once now.
    pub async fn trigger_schedule(&self, id: ScheduleId) -> Result<Triggered, ClientError> {
        let request = Request::post(self.url(&format!("/schedules/{id}/trigger")));
        let (status, body) = self.send(request, Bytes::new()).await?;
        if status == StatusCode::CONFLICT
            && let Some((code, message)) = error_of(&body)
            && code == "schedule_overlap"
        {
            return Ok(Triggered::Skipped { message });
        }
        json_answer(status, &body).map(|job| Triggered::Accepted { job })
    }

    /// `DELETE /schedules/{id}`: `Ok` once deleted (204).
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<(), ClientError> {
        let request = Request::delete(self.url(&format!("/schedules/{id}")));
        let (status, body) = self.send(request, Bytes::new()).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(());
        }
        json_answer(status, &body).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_their_code_and_message() {
        let body = br#"{"error":{"code":"schedule_overlap","message":"busy"}}"#;
        assert_eq!(
            error_of(body),
            Some(("schedule_overlap".to_owned(), "busy".to_owned()))
        );
        assert_eq!(error_of(b"<html>"), None);
        assert_eq!(error_of(br#"{"jobId":"x"}"#), None);
    }
}

//! Recurring schedules: `POST /schedules` ([`NewSchedule`]), a page of them
//! ([`ListSchedules`], [`SchedulePage`]), one ([`Schedule`]), `PATCH`
//! ([`ScheduleChanges`]), pause, resume, trigger and delete. As for every
//! call, an answer outside 2xx is a [`ClientError::Status`] with the API's
//! error body; the one error answer a caller expects is an outcome instead:
//! [`Triggered::Skipped`] (409 `schedule_overlap`).

use crate::client::{Client, RawJson, Repeat, decode, empty_answer, error_of, json_answer};
use crate::error::ClientError;
use crate::types::{Accepted, percent_encode, via_str};
use http::{Method, StatusCode};
use jobline_core::JobId;
use jobline_core::schedule::{Overlap, ScheduleId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A schedule as its caller sees it (`GET /schedules/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    #[serde(with = "via_str")]
    pub schedule_id: ScheduleId,
    /// EventBridge Scheduler's `cron(…)` or `rate(…)`, as written.
    pub expression: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// The expression in words.
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub job_type: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub callback_url: Option<String>,
    /// What a fire does while the previous job has not finished.
    #[serde(with = "overlap")]
    pub overlap: Overlap,
    pub paused: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The next five fires (none while paused).
    #[serde(default)]
    pub next_fires: Vec<String>,
    /// The last fire that created a job.
    #[serde(default)]
    pub last_fire: Option<LastFire>,
    /// What its fires did.
    #[serde(default)]
    pub fires: Fires,
    /// Its jobs (`GET /jobs?scheduleId=…`).
    #[serde(default)]
    pub jobs_url: String,
}

/// The last fire of a schedule that created a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastFire {
    pub scheduled_at: String,
    pub job_id: JobId,
    pub status_url: String,
}

/// What a schedule's fires did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fires {
    /// Fires that created a job.
    pub fired: u64,
    /// Fires the overlap policy skipped.
    pub skipped: u64,
    /// Fires that could not create their job (the type is gone, …).
    pub refused: u64,
    #[serde(default)]
    pub last_missed_at: Option<String>,
    #[serde(default)]
    pub last_refusal: Option<String>,
}

/// One page of `GET /schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePage {
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The body of `POST /schedules`: what is not given takes the API's
/// default (the time zone UTC, overlap `allow`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSchedule {
    pub expression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(rename = "type")]
    pub job_type: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", with = "overlap::option")]
    pub overlap: Option<Overlap>,
}

impl NewSchedule {
    /// A schedule of jobs of `job_type` with `payload`, on `expression`
    /// (`cron(…)` or `rate(…)`).
    pub fn new(expression: impl Into<String>, job_type: impl Into<String>, payload: Value) -> Self {
        Self {
            expression: expression.into(),
            timezone: None,
            job_type: job_type.into(),
            payload,
            callback_url: None,
            overlap: None,
        }
    }
}

/// The body of `PATCH /schedules/{id}`: only what is `Some` changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// `Some(None)` removes the callback URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none", with = "overlap::option")]
    pub overlap: Option<Overlap>,
}

/// The page of `GET /schedules`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSchedules {
    pub limit: Option<usize>,
    /// Where an earlier page stopped ([`SchedulePage::next_cursor`]).
    pub cursor: Option<String>,
}

/// What `POST /schedules/{id}/trigger` did; `A` is the 202 body
/// ([`Accepted`], or its JSON from [`RawJson::trigger_schedule`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Triggered<A = Accepted> {
    /// The fire created a job.
    Accepted { job: A },
    /// The overlap policy skipped it (409 `schedule_overlap`): the API's message.
    Skipped { message: String },
}

impl Client {
    /// `POST /schedules`: the created schedule. Not repeated when its answer
    /// is lost (a repeat would create a second schedule).
    pub async fn create_schedule(&self, schedule: &NewSchedule) -> Result<Schedule, ClientError> {
        decode(self.json().create_schedule(schedule).await?, "schedule")
    }

    /// `GET /schedules`: one page of the caller's schedules.
    pub async fn schedules(&self, query: &ListSchedules) -> Result<SchedulePage, ClientError> {
        decode(self.json().schedules(query).await?, "page of schedules")
    }

    /// `GET /schedules/{id}`.
    pub async fn schedule(&self, id: ScheduleId) -> Result<Schedule, ClientError> {
        decode(self.json().schedule(id).await?, "schedule")
    }

    /// `PATCH /schedules/{id}`: the changed schedule.
    pub async fn update_schedule(
        &self,
        id: ScheduleId,
        changes: &ScheduleChanges,
    ) -> Result<Schedule, ClientError> {
        decode(self.json().update_schedule(id, changes).await?, "schedule")
    }

    /// `POST /schedules/{id}/pause`: it fires nothing until resumed.
    pub async fn pause_schedule(&self, id: ScheduleId) -> Result<Schedule, ClientError> {
        decode(self.json().pause_schedule(id).await?, "schedule")
    }

    /// `POST /schedules/{id}/resume`: it fires from now on.
    pub async fn resume_schedule(&self, id: ScheduleId) -> Result<Schedule, ClientError> {
        decode(self.json().resume_schedule(id).await?, "schedule")
    }

    /// `POST /schedules/{id}/trigger`: fires the schedule once now. Not
    /// repeated when its answer is lost (a repeat would fire again).
    pub async fn trigger_schedule(&self, id: ScheduleId) -> Result<Triggered, ClientError> {
        Ok(match self.json().trigger_schedule(id).await? {
            Triggered::Accepted { job } => Triggered::Accepted {
                job: decode(job, "202 body")?,
            },
            Triggered::Skipped { message } => Triggered::Skipped { message },
        })
    }

    /// `DELETE /schedules/{id}`: the schedule and its timer; its jobs stay.
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<(), ClientError> {
        let path = format!("/schedules/{id}");
        let answer = self
            .send(Method::DELETE, &path, None, &[], Repeat::Safe)
            .await?;
        empty_answer(&answer)
    }
}

impl RawJson<'_> {
    /// [`Client::create_schedule`]: the schedule's JSON.
    pub async fn create_schedule(&self, schedule: &NewSchedule) -> Result<Value, ClientError> {
        let body = json!(schedule);
        self.client
            .call(Method::POST, "/schedules", Some(&body), Repeat::Unsafe)
            .await
    }

    /// [`Client::schedules`]: the page, `{"schedules": […], "nextCursor"}`.
    pub async fn schedules(&self, query: &ListSchedules) -> Result<Value, ClientError> {
        let mut parts = Vec::new();
        if let Some(limit) = query.limit {
            parts.push(format!("limit={limit}"));
        }
        if let Some(cursor) = &query.cursor {
            parts.push(format!("cursor={}", percent_encode(cursor)));
        }
        let path = match parts.is_empty() {
            true => "/schedules".to_owned(),
            false => format!("/schedules?{}", parts.join("&")),
        };
        self.client
            .call(Method::GET, &path, None, Repeat::Safe)
            .await
    }

    /// [`Client::schedule`]: the schedule's JSON.
    pub async fn schedule(&self, id: ScheduleId) -> Result<Value, ClientError> {
        let path = format!("/schedules/{id}");
        self.client
            .call(Method::GET, &path, None, Repeat::Safe)
            .await
    }

    /// [`Client::update_schedule`]: the schedule's JSON.
    pub async fn update_schedule(
        &self,
        id: ScheduleId,
        changes: &ScheduleChanges,
    ) -> Result<Value, ClientError> {
        let path = format!("/schedules/{id}");
        let body = json!(changes);
        self.client
            .call(Method::PATCH, &path, Some(&body), Repeat::Safe)
            .await
    }

    /// [`Client::pause_schedule`]: the schedule's JSON.
    pub async fn pause_schedule(&self, id: ScheduleId) -> Result<Value, ClientError> {
        let path = format!("/schedules/{id}/pause");
        self.client
            .call(Method::POST, &path, None, Repeat::Safe)
            .await
    }

    /// [`Client::resume_schedule`]: the schedule's JSON.
    pub async fn resume_schedule(&self, id: ScheduleId) -> Result<Value, ClientError> {
        let path = format!("/schedules/{id}/resume");
        self.client
            .call(Method::POST, &path, None, Repeat::Safe)
            .await
    }

    /// [`Client::trigger_schedule`], with the 202 body's JSON.
    pub async fn trigger_schedule(&self, id: ScheduleId) -> Result<Triggered<Value>, ClientError> {
        let path = format!("/schedules/{id}/trigger");
        let answer = self
            .client
            .send(Method::POST, &path, None, &[], Repeat::Unsafe)
            .await?;
        if answer.status == StatusCode::CONFLICT
            && let Some((code, message)) = error_of(&answer.body)
            && code == "schedule_overlap"
        {
            return Ok(Triggered::Skipped { message });
        }
        json_answer(answer.status, &answer.body).map(|job| Triggered::Accepted { job })
    }
}

/// Serde of the core's [`Overlap`], by its name.
mod overlap {
    use jobline_core::schedule::Overlap;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(overlap: &Overlap, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(overlap.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Overlap, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            overlap: &Option<Overlap>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match overlap {
                Some(overlap) => super::serialize(overlap, serializer),
                None => serializer.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedules_json_reads_into_schedule_and_back() {
        let id = ScheduleId::random();
        let job = JobId::random();
        let view = json!({
            "scheduleId": id.to_string(), "expression": "rate(1 hour)", "timezone": "UTC",
            "description": "every hour", "type": "primes", "payload": {"upTo": 10},
            "callbackUrl": null, "overlap": "skip", "paused": false,
            "createdAt": "2027-03-01T08:00:00.000Z", "updatedAt": "2027-03-01T08:00:00.000Z",
            "nextFires": ["2027-03-01T09:00:00.000Z"],
            "lastFire": {"scheduledAt": "2027-03-01T08:00:00.000Z", "jobId": job,
                         "statusUrl": format!("/jobs/{job}")},
            "fires": {"fired": 3, "skipped": 1, "refused": 0, "lastMissedAt": null,
                      "lastRefusal": null},
            "jobsUrl": format!("/jobs?scheduleId={id}"),
        });
        let schedule: Schedule = serde_json::from_value(view.clone()).unwrap();
        assert_eq!(schedule.schedule_id, id);
        assert_eq!(schedule.overlap, Overlap::Skip);
        assert_eq!(schedule.last_fire.as_ref().unwrap().job_id, job);
        assert_eq!(schedule.fires.fired, 3);
        assert_eq!(serde_json::to_value(&schedule).unwrap(), view);
        let mut bad = view;
        bad["scheduleId"] = json!("../admin");
        assert!(serde_json::from_value::<Schedule>(bad).is_err());
    }

    #[test]
    fn requests_send_only_what_is_given() {
        let new = NewSchedule::new("rate(1 hour)", "primes", json!({}));
        assert_eq!(
            json!(new),
            json!({"expression": "rate(1 hour)", "type": "primes", "payload": {}})
        );
        let new = NewSchedule {
            timezone: Some("Europe/Paris".into()),
            overlap: Some(Overlap::Skip),
            ..new
        };
        assert_eq!(json!(new)["overlap"], "skip");
        assert_eq!(json!(new)["timezone"], "Europe/Paris");
        assert_eq!(json!(ScheduleChanges::default()), json!({}));
        let changes = ScheduleChanges {
            callback_url: Some(None),
            overlap: Some(Overlap::Allow),
            ..ScheduleChanges::default()
        };
        assert_eq!(
            json!(changes),
            json!({"callbackUrl": null, "overlap": "allow"})
        );
    }
}

//! The jobs' requests and answers, typed: what `POST /jobs` takes
//! ([`Submission`]) and answers ([`Accepted`]), a job as `GET /jobs/{id}`
//! shows it ([`Job`], the API's `job_view`; a page of `GET /jobs` holds the
//! same without `result`, [`JobPage`]), and a listing's filters
//! ([`ListJobs`]). Field names are the API's (camelCase); fields this
//! client does not know are ignored, so a newer API does not break it.
//! Times are RFC 3339 strings in UTC with milliseconds, as the API writes them.

use crate::uploads::UploadId;
use jobline_core::schedule::ScheduleId;
use jobline_core::{JobId, JobState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// The `202 Accepted` of `POST /jobs` (and of a schedule's trigger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub job_id: JobId,
    /// `queued`, or `scheduled` for a delayed job.
    pub status: JobState,
    /// Where to follow the job (`GET /jobs/{id}`).
    pub status_url: String,
    /// When a delayed job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
}

/// A job as its caller sees it: what `GET /jobs/{id}` answers, a page of
/// `GET /jobs` lists (without `result`), and a webhook event carries
/// (without `webhook`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: JobId,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: JobState,
    pub created_at: String,
    /// When a worker first took it (kept across replays).
    #[serde(default)]
    pub started_at: Option<String>,
    /// When its current run started (since it was submitted or last replayed).
    #[serde(default)]
    pub run_started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// How many times a worker took it.
    #[serde(default)]
    pub attempts: u32,
    /// The last error: final when `failed`, the last attempt's when `queued`.
    #[serde(default)]
    pub error: Option<String>,
    /// Its deliveries ran out and it went to the dead-letter queue.
    #[serde(default)]
    pub dead_lettered: bool,
    /// An operator gave up on it (`failed` for good unless replayed).
    #[serde(default)]
    pub discarded: bool,
    /// How many times an operator replayed it.
    #[serde(default)]
    pub replays: u32,
    /// What the running job last said of its progress.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// Its caller asked to cancel it while it ran: it stops at its next heartbeat.
    #[serde(default)]
    pub cancel_requested: bool,
    /// When it last saved a checkpoint.
    #[serde(default)]
    pub checkpoint_at: Option<String>,
    /// How many times it yielded and went on in a new invocation.
    #[serde(default)]
    pub continuations: u32,
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Its webhook's delivery (`None` without a `callbackUrl`, and in a
    /// webhook event).
    #[serde(default)]
    pub webhook: Option<WebhookDelivery>,
    /// When a delayed job runs (or the fire that created it was due).
    #[serde(default)]
    pub run_at: Option<String>,
    /// The schedule whose fire created it.
    #[serde(default, with = "via_str::option")]
    pub schedule_id: Option<ScheduleId>,
    /// Its result, when it is inline (`GET /jobs/{id}` only).
    #[serde(default)]
    pub result: Option<Value>,
    /// A link to a result too large to be inline (`GET /jobs/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    /// The uploads its payload names (`GET /jobs/{id}` only, when it names any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<InputFile>>,
    /// The files a succeeded job of a type that writes files wrote, each
    /// with a short-lived link (`GET /jobs/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<OutputFile>>,
}

/// An upload a job names, as it was when the job was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputFile {
    pub upload_id: UploadId,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
}

/// A file a job wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputFile {
    pub name: String,
    pub size: u64,
    /// A link to it, valid until `url_expires_at` (ask for the job again
    /// for a fresh one).
    pub url: String,
    pub url_expires_at: String,
}

/// What a running job last said of its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// How much is done, from 0 to 1.
    pub fraction: f64,
    #[serde(default)]
    pub message: String,
    pub updated_at: String,
}

/// The webhook delivery of a job's final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub state: DeliveryState,
    /// POSTs made so far.
    pub attempts: u32,
    /// The HTTP status of the receiver's last answer.
    #[serde(default)]
    pub last_status: Option<u16>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not delivered yet; the notifier is trying.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// The notifier gave up.
    Failed,
}

/// One page of `GET /jobs`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// The next page's [`ListJobs::cursor`], if there is one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// When a submitted job runs, if not at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// `runAt`: at this RFC 3339 time (with its offset, as written).
    At(String),
    /// `delaySeconds`: this many seconds after the API accepts it.
    After(u64),
}

/// One logical submission: a job's type, payload and options, and the
/// `Idempotency-Key` that makes sending it again safe. The key is drawn
/// (a random UUID) when the submission is made, and every send of it (each
/// retry of [`Client::submit`](crate::Client::submit), and a clone of it
/// submitted again) carries the same key, so the API creates the job once.
///
/// ```
/// use jobline_client::Submission;
/// use serde_json::json;
/// let submission = Submission::new("primes", json!({"upTo": 1000}))
///     .with_delay_seconds(90)
///     .with_idempotency_key("order-42");
/// assert_eq!(submission.idempotency_key(), "order-42");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    job_type: String,
    payload: Value,
    callback_url: Option<String>,
    when: Option<When>,
    idempotency_key: String,
}

impl Submission {
    /// A job of `job_type` with `payload`, to run at once, with a fresh
    /// idempotency key.
    pub fn new(job_type: impl Into<String>, payload: Value) -> Self {
        Self {
            job_type: job_type.into(),
            payload,
            callback_url: None,
            when: None,
            idempotency_key: Uuid::new_v4().to_string(),
        }
    }

    /// POST the job's final state to this https URL, signed with the
    /// caller's webhook secret.
    #[must_use]
    pub fn with_callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }

    /// Run it later, or at once with `None`.
    #[must_use]
    pub fn with_when(mut self, when: Option<When>) -> Self {
        self.when = when;
        self
    }

    /// Run it at this RFC 3339 time (with its offset).
    #[must_use]
    pub fn with_run_at(self, at: impl Into<String>) -> Self {
        self.with_when(Some(When::At(at.into())))
    }

    /// Run it this many seconds after the API accepts it.
    #[must_use]
    pub fn with_delay_seconds(self, seconds: u64) -> Self {
        self.with_when(Some(When::After(seconds)))
    }

    /// Use the caller's own key (1 to 255 visible ASCII characters) instead
    /// of the drawn one: the same key and request name the same job.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = key.into();
        self
    }

    /// The key every send of this submission carries.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    pub fn job_type(&self) -> &str {
        &self.job_type
    }

    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// The body of `POST /jobs`.
    pub(crate) fn body(&self) -> Value {
        let mut body = json!({ "type": self.job_type, "payload": self.payload });
        if let Some(url) = &self.callback_url {
            body["callbackUrl"] = json!(url);
        }
        match &self.when {
            Some(When::At(at)) => body["runAt"] = json!(at),
            Some(When::After(secs)) => body["delaySeconds"] = json!(secs),
            None => {}
        }
        body
    }
}

/// The filters and page of `GET /jobs`; the default is the API's first
/// page of every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobs {
    /// Only jobs in this state.
    pub status: Option<JobState>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only the jobs this schedule's fires created.
    pub schedule_id: Option<ScheduleId>,
    /// At most this many jobs on the page (the API's default otherwise).
    pub limit: Option<usize>,
    /// Where an earlier page stopped ([`JobPage::next_cursor`]).
    pub cursor: Option<String>,
}

impl ListJobs {
    /// The query string (without `?`).
    pub(crate) fn query(&self) -> String {
        let mut query = Vec::new();
        if let Some(limit) = self.limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(status) = self.status {
            query.push(format!("status={status}"));
        }
        if let Some(job_type) = &self.job_type {
            query.push(format!("type={}", percent_encode(job_type)));
        }
        if let Some(schedule) = self.schedule_id {
            query.push(format!("scheduleId={schedule}"));
        }
        if let Some(cursor) = &self.cursor {
            query.push(format!("cursor={}", percent_encode(cursor)));
        }
        query.join("&")
    }
}

/// `text` with every byte but unreserved ones (RFC 3986) percent-encoded.
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Serde through `Display` and `FromStr`, for the core's ids that have no
/// serde of their own.
pub(crate) mod via_str {
    use serde::{Deserialize, Deserializer, Serializer, de};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<T: Display, S: Serializer>(
            value: &Option<T>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => serializer.collect_str(value),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
        where
            T: FromStr,
            T::Err: Display,
            D: Deserializer<'de>,
        {
            Option::<String>::deserialize(deserializer)?
                .map(|text| text.parse().map_err(de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_keeps_its_key_and_sends_only_what_is_given() {
        let submission = Submission::new("primes", json!({"upTo": 10}));
        let key = submission.idempotency_key().to_owned();
        assert!(Uuid::parse_str(&key).is_ok(), "{key}");
        assert_eq!(
            submission.clone().idempotency_key(),
            key,
            "a clone is the same submission"
        );
        assert_ne!(
            Submission::new("primes", json!({})).idempotency_key(),
            key,
            "another submission draws its own"
        );
        assert_eq!(
            submission.body(),
            json!({"type": "primes", "payload": {"upTo": 10}})
        );
        let later = submission
            .with_callback_url("https://example.com/hook")
            .with_run_at("2027-03-01T09:00:00+01:00");
        assert_eq!(
            later.body(),
            json!({"type": "primes", "payload": {"upTo": 10},
                   "callbackUrl": "https://example.com/hook", "runAt": "2027-03-01T09:00:00+01:00"})
        );
        assert_eq!(
            later.with_delay_seconds(90).body()["delaySeconds"],
            json!(90)
        );
    }

    #[test]
    fn list_queries_encode_their_filters_in_order() {
        assert_eq!(ListJobs::default().query(), "");
        let id = ScheduleId::random();
        let query = ListJobs {
            status: Some(JobState::Running),
            job_type: Some("a b".into()),
            schedule_id: Some(id),
            limit: Some(5),
            cursor: Some("c/1=".into()),
        };
        assert_eq!(
            query.query(),
            format!("limit=5&status=running&type=a%20b&scheduleId={id}&cursor=c%2F1%3D")
        );
    }

    #[test]
    fn accepted_reads_and_writes_the_202_body() {
        let id = JobId::random();
        let body = json!({"jobId": id, "status": "scheduled", "statusUrl": format!("/jobs/{id}"),
                          "runAt": "2027-03-01T08:00:00.000Z", "later": true});
        let accepted: Accepted = serde_json::from_value(body).unwrap();
        assert_eq!(accepted.status, JobState::Scheduled);
        assert_eq!(accepted.run_at.as_deref(), Some("2027-03-01T08:00:00.000Z"));
        let now = json!({"jobId": id, "status": "queued", "statusUrl": "u"});
        let accepted: Accepted = serde_json::from_value(now.clone()).unwrap();
        assert_eq!(serde_json::to_value(&accepted).unwrap(), now);
    }
}

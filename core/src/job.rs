//! The job model and its state machine.
//!
//! A job moves `queued → running → succeeded | failed | cancelled`; a
//! delayed one starts `scheduled` and goes to `running` when a worker takes
//! it at or after its `runAt` (never before: [`claimable`]). A
//! retryable failure, and a continuation (the handler saved a checkpoint and
//! yielded), move it back from `running` to `queued`; a replay from the
//! dead-letter queue moves it from `failed` back to `queued`. A cancel makes a
//! `queued` job `cancelled` at once and marks a `running` one
//! `cancelRequested`, which its worker learns at its next heartbeat. Every move is a DynamoDB
//! conditional write (see [`crate::store`]); this module holds the pure rules
//! those writes encode, so they can be tested without AWS.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

mod delivery;
mod progress;

pub use delivery::{DeliveryState, WebhookDelivery};
pub use progress::{PROGRESS_MESSAGE_BYTES, Progress};

/// Namespace for job ids derived from an idempotency key (UUID v5), so the
/// same caller and key always name the same job without a second table item.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6a0b_1c2e_9f3d_4e5a_8b7c_1d2e_3f4a_5b6c);

/// A job's id: a UUID, random (v7, time-ordered) or derived from an
/// idempotency key (v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// The least id (all zeros): a listing key of a time and this id comes
    /// before every job created at that time.
    pub const MIN: Self = Self(Uuid::nil());

    /// A fresh, time-ordered id.
    pub fn random() -> Self {
        Self(Uuid::now_v7())
    }

    /// The partition of the due index (`pending-due`) this
    /// job is listed in while unfinished, below `shards`: from the id's last
    /// byte, random in both kinds of id, so jobs spread evenly, and the same
    /// on every write, so no write needs to read it first.
    pub fn shard(self, shards: u8) -> u8 {
        self.0.as_bytes()[15] % shards.max(1)
    }

    /// The job id a UUID names (a schedule's fire derives one).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The id that `owner` submitting with `idempotency_key` always gets.
    pub fn from_idempotency_key(owner: &str, idempotency_key: &str) -> Self {
        let name = format!("{owner}\n{idempotency_key}");
        Self(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Why a string is not a job id.
#[derive(Debug, thiserror::Error)]
#[error("not a job id: expected a hyphenated UUID")]
pub struct InvalidJobId;

impl FromStr for JobId {
    type Err = InvalidJobId;

    /// Accepts only the canonical hyphenated form, so one job has one URL.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 36 {
            return Err(InvalidJobId);
        }
        Uuid::parse_str(s).map(Self).map_err(|_| InvalidJobId)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Delayed: waiting for its `runAt` (its message is delayed in SQS, or
    /// a one-time timer will send it); cancelled at once like `queued`.
    Scheduled,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [Self; 6] = [
        Self::Scheduled,
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name stored in DynamoDB and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// `succeeded`, `failed` and `cancelled` are final (an operator may
    /// replay a `failed` job).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// `scheduled` and `queued`: no worker has taken the job (since it was
    /// submitted, retried or continued); a cancel ends it at once.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Scheduled | Self::Queued)
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scheduled" => Ok(Self::Scheduled),
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(format!("unknown job state {other:?}")),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client asked for: a job type, its payload, and where to POST the
/// job's final state, if anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    pub job_type: String,
    pub payload: Value,
    /// `callbackUrl`, checked against the deployment's
    /// [`CallbackPolicy`](crate::config::CallbackPolicy).
    pub callback_url: Option<String>,
}

impl JobRequest {
    /// A digest of the request, stored with the job so that a replayed
    /// idempotency key can be told apart from a reused one. `serde_json`
    /// keeps object keys sorted, so equal JSON gives equal digests.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.job_type.as_bytes());
        hasher.update([0]);
        hasher.update(self.payload.to_string().as_bytes());
        // Absent, it adds nothing: requests without one keep their digests.
        if let Some(url) = &self.callback_url {
            hasher.update([0]);
            hasher.update(url.as_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// A job as stored in the table. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub owner: String,
    pub job_type: String,
    pub payload: Value,
    pub fingerprint: String,
    pub state: JobState,
    pub created_at: i64,
    /// When a worker first claimed the job: kept across replays, as history.
    pub started_at: Option<i64>,
    /// When the current run first started: the first claim since the job
    /// was submitted or last replayed (across its continuations). The run
    /// limit (`MAX_JOB_RUN_SECS`) counts from it, so a replay the next
    /// morning starts a new run instead of failing at once.
    pub run_started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// How many times a worker has claimed the job; the fence for completion.
    pub attempts: u32,
    /// Until when the current attempt owns the job.
    pub lease_expires_at: Option<i64>,
    /// The token the last claim wrote: it names the one delivery that made
    /// the attempt, so that delivery recognises its own write when the
    /// answer was lost and the SDK's retry is refused (see
    /// [`crate::store::WorkerStore::claim`]).
    pub claim_token: Option<String>,
    pub result: Option<Value>,
    /// The object key of a result too large for the item
    /// ([`crate::results`]), instead of `result`.
    pub result_key: Option<String>,
    /// The last error: final when `failed`, the last attempt's when `queued`.
    pub error: Option<String>,
    pub dead_lettered: bool,
    /// The job record was written but its message could not be sent; the
    /// same idempotency key may submit it again.
    pub enqueue_failed: bool,
    /// When a repeat of the submission sent the job's message again
    /// ([`crate::store::ApiStore::mark_resending`]): from then on only a
    /// worker or the time bound may finish it, not its creator's failed send.
    pub resent_at: Option<i64>,
    /// An operator gave up on the job (`jobline dlq discard`): it is
    /// `failed` for good unless replayed.
    pub discarded: bool,
    pub replays: u32,
    /// The handler's last progress report, written at a heartbeat.
    pub progress: Option<Progress>,
    /// Where the handler resumes: the checkpoint it last saved (bounded
    /// JSON), written at a heartbeat or when it yielded. Stored apart from
    /// the record and read only by the claim
    /// ([`WorkerStore::claim`](crate::store::WorkerStore::claim)): `None`
    /// in every other read, where `checkpoint_at` says whether there is one.
    pub checkpoint: Option<Value>,
    /// When `checkpoint` was written (ms since the epoch).
    pub checkpoint_at: Option<i64>,
    /// A client asked to cancel the job while it ran; its worker stops it
    /// at its next heartbeat, and a claim after its lease ends cancels it.
    pub cancel_requested: bool,
    /// How many times the handler yielded and the job went on in a new
    /// invocation (continuations do not count toward the DLQ).
    pub continuations: u32,
    /// Where to POST the job's final state (`callbackUrl` of its
    /// submission), checked against SSRF when it was accepted.
    pub callback_url: Option<String>,
    /// The delivery of the webhook of the job's last final state, as the
    /// notifier last recorded it.
    pub webhook: Option<WebhookDelivery>,
    /// When DynamoDB's TTL may delete the item, in seconds since the epoch.
    pub expires_at: i64,
    /// When a delayed job becomes due (ms since the epoch): no worker runs
    /// it before, and its time bound, TTL and idempotency key count from it
    /// ([`JobRecord::delayed_until`]).
    pub run_at: Option<i64>,
    /// The schedule whose fire created the job, if one did.
    pub schedule_id: Option<String>,
    /// The uploads the job's payload names, as the API found them when it
    /// accepted the job ([`crate::files`]): the worker reads each with its
    /// ETag. At most [`MAX_INPUTS`](crate::files::MAX_INPUTS).
    pub inputs: Vec<crate::files::InputFile>,
    /// The job's place in its trace (W3C `traceparent`,
    /// [`crate::trace_context`]): the context of the API's `submit` span,
    /// whose children every later span of the job is (the worker's, the
    /// webhook's). Set when the job is accepted; `None` on a job accepted
    /// before traces, whose spans each start a trace of their own.
    pub traceparent: Option<crate::trace_context::TraceContext>,
}

impl JobRecord {
    /// The webhook delivery of the job's current final state, as the
    /// notifier last recorded it: one recorded for an earlier final state
    /// (before a replay) is not it.
    pub fn current_delivery(&self) -> Option<WebhookDelivery> {
        self.webhook
            .filter(|delivery| Some(delivery.for_finished_at) == self.finished_at)
    }

    /// A new `queued` job.
    pub fn new_queued(
        id: JobId,
        owner: &str,
        request: &JobRequest,
        now_ms: i64,
        retention_days: u32,
    ) -> Self {
        Self {
            id,
            owner: owner.to_owned(),
            job_type: request.job_type.clone(),
            payload: request.payload.clone(),
            fingerprint: request.fingerprint(),
            state: JobState::Queued,
            created_at: now_ms,
            started_at: None,
            run_started_at: None,
            finished_at: None,
            attempts: 0,
            lease_expires_at: None,
            claim_token: None,
            result: None,
            result_key: None,
            error: None,
            dead_lettered: false,
            enqueue_failed: false,
            resent_at: None,
            discarded: false,
            replays: 0,
            progress: None,
            checkpoint: None,
            checkpoint_at: None,
            cancel_requested: false,
            continuations: 0,
            callback_url: request.callback_url.clone(),
            webhook: None,
            expires_at: expires_at(now_ms, retention_days),
            run_at: None,
            schedule_id: None,
            inputs: Vec::new(),
            traceparent: None,
        }
    }

    /// The job delayed until `run_at_ms`: `scheduled`, and kept its whole
    /// retention from then (so a job delayed past the retention is not
    /// deleted before it runs). A time not after its creation leaves it
    /// `queued`, with its `runAt` recorded.
    #[must_use]
    pub fn delayed_until(mut self, run_at_ms: i64) -> Self {
        self.run_at = Some(run_at_ms);
        if run_at_ms > self.created_at {
            self.state = JobState::Scheduled;
            self.expires_at += (run_at_ms - self.created_at + 999) / 1000;
        }
        self
    }

    /// The state its client is shown at `now_ms`: a `scheduled` job whose
    /// time has come is `queued`, waiting for a worker as any queued job.
    /// That move is not written (the record says `scheduled` until a worker
    /// takes it, `scheduled → running`): time alone makes it, and a
    /// delayed job costs no more writes than another.
    pub fn state_at(&self, now_ms: i64) -> JobState {
        match (self.state, self.run_at) {
            (JobState::Scheduled, Some(at)) if at <= now_ms => JobState::Queued,
            (state, _) => state,
        }
    }

    /// When the job was first due: its `runAt`, or its creation. Its time
    /// bound counts from here ([`crate::deadline::Deadlines::queued_at`]).
    pub fn due_from(&self) -> i64 {
        self.run_at
            .map_or(self.created_at, |at| at.max(self.created_at))
    }

    /// Applies a claim at `now_ms` leasing the job until `lease_until_ms`
    /// for the delivery with `token`: what the store's claim update writes
    /// (`running`, one more attempt, the lease, the token, and the start
    /// time of the first attempt).
    pub fn claim(&mut self, now_ms: i64, lease_until_ms: i64, token: &str) {
        self.state = JobState::Running;
        self.attempts += 1;
        self.lease_expires_at = Some(lease_until_ms);
        self.claim_token = Some(token.to_owned());
        self.started_at.get_or_insert(now_ms);
        self.run_started_at.get_or_insert(now_ms);
    }

    /// Whether this record is what attempt `attempt` of the delivery with
    /// `token` left in `state`: so a write of that attempt that the store
    /// refused had already landed (its answer was lost). A discarded job
    /// was finished by an operator, not by the attempt.
    pub fn written_by(&self, attempt: u32, token: &str, state: JobState) -> bool {
        self.state == state
            && self.attempts == attempt
            && self.claim_token.as_deref() == Some(token)
            && !self.discarded
    }

    /// Whether a message sent at `sent_at_ms` is a redrive of this job's
    /// dead letter (SQS's `StartMessageMoveTask` sends it as a new message):
    /// the job was dead-lettered, not discarded, and finished before the
    /// message was sent. The original delivery and its stray copies were
    /// sent before the job finished.
    pub fn redriven_by(&self, sent_at_ms: i64) -> bool {
        self.state == JobState::Failed
            && self.dead_lettered
            && !self.discarded
            && self
                .finished_at
                .is_some_and(|finished| sent_at_ms > finished)
    }
}

/// Why a worker could not claim a job, read from the item DynamoDB returned
/// with the failed conditional write (so no extra read is needed).
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimRefusal {
    /// No such job: its record was never written, or expired.
    Missing,
    /// The job already finished: this delivery is a duplicate.
    Finished(JobState),
    /// Another attempt holds a live lease until this time (ms).
    Leased { until_ms: i64 },
    /// The job is scheduled for later (ms): its message came early (a
    /// timer fires up to a minute early or late), so it waits again.
    NotYetDue { run_at: i64 },
    /// The record changed between the write and this check; try again.
    Raced,
}

impl ClaimRefusal {
    /// Classifies the record that failed the claim condition at `now_ms`.
    pub fn from_current(current: Option<&JobRecord>, now_ms: i64) -> Self {
        match current {
            None => Self::Missing,
            Some(job) if job.state.is_finished() => Self::Finished(job.state),
            Some(JobRecord {
                state: JobState::Running,
                lease_expires_at: Some(until_ms),
                ..
            }) if *until_ms >= now_ms => Self::Leased {
                until_ms: *until_ms,
            },
            Some(JobRecord {
                state: JobState::Scheduled,
                run_at: Some(run_at),
                ..
            }) if !claimable(JobState::Scheduled, None, Some(*run_at), now_ms) => {
                Self::NotYetDue { run_at: *run_at }
            }
            Some(_) => Self::Raced,
        }
    }
}

/// Whether a claim at `now_ms` may take the job in `state` with `lease`:
/// the rule the claim's condition expression encodes.
pub fn claimable(
    state: JobState,
    lease_expires_at: Option<i64>,
    run_at: Option<i64>,
    now_ms: i64,
) -> bool {
    match state {
        JobState::Scheduled => run_at.is_none_or(|at| at <= now_ms + RUN_AT_TOLERANCE_MS),
        JobState::Queued => true,
        JobState::Running => lease_expires_at.is_none_or(|until| until < now_ms),
        JobState::Succeeded | JobState::Failed | JobState::Cancelled => false,
    }
}

/// How early a worker may take a scheduled job: SQS's delays count whole
/// seconds and clocks of different hosts differ by a few milliseconds.
pub const RUN_AT_TOLERANCE_MS: i64 = 1_000;

/// When DynamoDB's TTL may delete a job written or replayed at `now_ms` and
/// kept for `retention_days`, in seconds since the epoch.
pub fn expires_at(now_ms: i64, retention_days: u32) -> i64 {
    now_ms / 1000 + i64::from(retention_days) * 86_400
}

/// An epoch-milliseconds time as RFC 3339 in UTC with milliseconds, for the
/// API and the CLI: the one timestamp format, also the logs' ([`rfc3339_millis`]).
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or_else(|_| ms.to_string(), rfc3339_millis)
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-11-29T17:09:54.123Z`.
pub fn rfc3339_millis(time: time::OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(state: JobState, lease: Option<i64>) -> JobRecord {
        let request = JobRequest {
            job_type: "primes".into(),
            payload: json!({"upTo": 10}),
            callback_url: None,
        };
        let mut job = JobRecord::new_queued(JobId::random(), "alice", &request, 1_000, 1);
        job.state = state;
        job.lease_expires_at = lease;
        job
    }

    #[test]
    fn job_ids_round_trip_and_reject_other_forms() {
        let id = JobId::random();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("not-a-uuid".parse::<JobId>().is_err());
        let simple = id.to_string().replace('-', "");
        assert!(simple.parse::<JobId>().is_err(), "only the hyphenated form");
    }

    #[test]
    fn idempotency_ids_depend_on_owner_and_key() {
        let a = JobId::from_idempotency_key("alice", "k1");
        assert_eq!(a, JobId::from_idempotency_key("alice", "k1"));
        assert_ne!(a, JobId::from_idempotency_key("bob", "k1"));
        assert_ne!(a, JobId::from_idempotency_key("alice", "k2"));
    }

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let a = JobRequest {
            job_type: "t".into(),
            payload: json!({"a": 1, "b": 2}),
            callback_url: None,
        };
        let b = JobRequest {
            job_type: "t".into(),
            payload: serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap(),
            callback_url: None,
        };
        let c = JobRequest {
            job_type: "t".into(),
            payload: json!({"a": 1, "b": 3}),
            callback_url: None,
        };
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        let called_back = JobRequest {
            callback_url: Some("https://hooks.example.com/a".into()),
            ..a.clone()
        };
        let elsewhere = JobRequest {
            callback_url: Some("https://hooks.example.com/b".into()),
            ..a.clone()
        };
        assert_ne!(a.fingerprint(), called_back.fingerprint());
        assert_ne!(called_back.fingerprint(), elsewhere.fingerprint());
    }

    #[test]
    fn claim_rules() {
        assert!(claimable(JobState::Queued, None, None, 5));
        assert!(
            claimable(JobState::Running, Some(4), None, 5),
            "expired lease"
        );
        assert!(claimable(JobState::Running, None, None, 5), "no lease");
        assert!(
            !claimable(JobState::Running, Some(5), None, 5),
            "live lease"
        );
        assert!(!claimable(JobState::Succeeded, None, None, 5));
        assert!(!claimable(JobState::Failed, None, None, 5));
        assert!(!claimable(JobState::Cancelled, None, None, 5));
        let due = 10_000;
        assert!(claimable(JobState::Scheduled, None, Some(due), due));
        assert!(
            claimable(
                JobState::Scheduled,
                None,
                Some(due),
                due - RUN_AT_TOLERANCE_MS
            ),
            "within the tolerance"
        );
        assert!(
            !claimable(
                JobState::Scheduled,
                None,
                Some(due),
                due - RUN_AT_TOLERANCE_MS - 1
            ),
            "never early"
        );
    }

    #[test]
    fn claim_refusals_are_classified_from_the_current_item() {
        assert_eq!(ClaimRefusal::from_current(None, 5), ClaimRefusal::Missing);
        assert_eq!(
            ClaimRefusal::from_current(Some(&record(JobState::Succeeded, None)), 5),
            ClaimRefusal::Finished(JobState::Succeeded)
        );
        assert_eq!(
            ClaimRefusal::from_current(Some(&record(JobState::Running, Some(9))), 5),
            ClaimRefusal::Leased { until_ms: 9 }
        );
        assert_eq!(
            ClaimRefusal::from_current(Some(&record(JobState::Running, Some(4))), 5),
            ClaimRefusal::Raced
        );
    }

    #[test]
    fn a_write_is_recognised_by_its_attempt_token_and_state() {
        let mut job = record(JobState::Queued, None);
        job.claim(5, 9, "a");
        assert!(job.written_by(1, "a", JobState::Running));
        assert!(
            !job.written_by(1, "b", JobState::Running),
            "another delivery"
        );
        assert!(
            !job.written_by(2, "a", JobState::Running),
            "another attempt"
        );
        assert!(
            !job.written_by(1, "a", JobState::Succeeded),
            "another state"
        );
        job.state = JobState::Failed;
        job.discarded = true;
        assert!(!job.written_by(1, "a", JobState::Failed), "an operator's");
    }

    #[test]
    fn only_a_message_sent_after_the_dead_letter_is_a_redrive() {
        let mut job = record(JobState::Failed, None);
        job.finished_at = Some(100);
        job.dead_lettered = true;
        assert!(job.redriven_by(101));
        assert!(!job.redriven_by(100), "the original delivery");
        job.discarded = true;
        assert!(!job.redriven_by(101), "discarded for good");
        job.discarded = false;
        job.dead_lettered = false;
        assert!(!job.redriven_by(101), "failed, not dead-lettered");
    }

    #[test]
    fn progress_is_clamped_and_its_message_cut_on_a_char_boundary() {
        assert_eq!(Progress::new(1.5, "", 0).fraction, 1.0);
        assert_eq!(Progress::new(-1.0, "", 0).fraction, 0.0);
        assert_eq!(Progress::new(f64::NAN, "", 0).fraction, 0.0);
        let long = "é".repeat(PROGRESS_MESSAGE_BYTES);
        let cut = Progress::new(0.5, &long, 0).message;
        assert!(cut.len() <= PROGRESS_MESSAGE_BYTES && cut.len() >= PROGRESS_MESSAGE_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!("cancelled".parse::<JobState>(), Ok(JobState::Cancelled));
        assert!(JobState::Cancelled.is_finished());
    }

    #[test]
    fn a_delayed_job_is_scheduled_and_kept_from_its_time() {
        let now = 1_000_000;
        let day = 86_400_000;
        let job = record(JobState::Queued, None);
        let queued_ttl = job.expires_at;
        let later = JobRecord {
            created_at: now,
            ..job.clone()
        }
        .delayed_until(now + 40 * day);
        assert_eq!(later.state, JobState::Scheduled);
        assert_eq!(later.state_at(now + 40 * day - 1), JobState::Scheduled);
        assert_eq!(
            later.state_at(now + 40 * day),
            JobState::Queued,
            "due: shown queued"
        );
        assert_eq!(later.expires_at, queued_ttl + 40 * 86_400);
        assert_eq!(later.due_from(), now + 40 * day);
        let past = JobRecord {
            created_at: now,
            ..job
        }
        .delayed_until(now - 5);
        assert_eq!((past.state, past.due_from()), (JobState::Queued, now));
        let mut early = later.clone();
        early.state = JobState::Scheduled;
        assert_eq!(
            ClaimRefusal::from_current(Some(&early), now),
            ClaimRefusal::NotYetDue {
                run_at: now + 40 * day
            }
        );
    }

    #[test]
    fn new_jobs_are_queued_with_a_ttl() {
        let job = record(JobState::Queued, None);
        assert_eq!(job.attempts, 0);
        assert_eq!(job.expires_at, 1 + 86_400);
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }
}

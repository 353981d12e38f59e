//! A caller's recurring schedule: its record, the job each fire creates,
//! and the port of the schedules table ([`ScheduleStore`]).
//!
//! The timing itself (`cron(…)`, `rate(…)` in an IANA zone) is parsed and
//! computed by `jobline_schedule::Recurrence`; deployed, EventBridge
//! Scheduler fires it (a recurring [`Timer`](crate::timers::Timer) named
//! [`ScheduleRecord::timer_name`]), locally `jobline-local` does. This record is what the API
//! lists, counts per caller and shows: the definition, whether it is
//! paused, and what its fires did (the last job, fires skipped and refused).
//!
//! Exactly one job per fire: EventBridge Scheduler delivers at least once,
//! so a fire's job id is derived from the schedule and the fire's scheduled
//! time ([`fire_job_id`]), and a duplicate fire finds its job instead of
//! creating another.
//!
//! The table is keyed by owner (partition) and schedule id (sort): a
//! caller reaches only its own partition, a listing is one query of it,
//! and the per-caller bound is a count of it. Every change of a schedule
//! is one conditional write on its `version`, so two edits cannot undo
//! each other; a fire's record only moves the last fire forward.

use crate::job::JobId;
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Namespace of the job ids of fires (UUID v5 of schedule and time).
const FIRE_NAMESPACE: Uuid = Uuid::from_u128(0x1f9e_7c3a_5b2d_4e6f_9a8b_7c6d_5e4f_3a2b);

/// The most bytes of a schedule's payload (its JSON): each fire rewrites
/// the schedule's item, billed per started KB, so a schedule's payload is
/// smaller than a job's (a larger input belongs in S3, named in it).
pub const SCHEDULE_PAYLOAD_BYTES: usize = 8 * 1024;

/// The most characters of a fire refusal kept on the record.
pub const REFUSAL_BYTES: usize = 200;

/// A schedule's id: a random UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScheduleId(Uuid);

impl ScheduleId {
    /// A fresh id.
    pub fn random() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Why a string is not a schedule id.
#[derive(Debug, thiserror::Error)]
#[error("not a schedule id: expected a hyphenated UUID")]
pub struct InvalidScheduleId;

impl FromStr for ScheduleId {
    type Err = InvalidScheduleId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 36 {
            return Err(InvalidScheduleId);
        }
        Uuid::parse_str(s).map(Self).map_err(|_| InvalidScheduleId)
    }
}

/// The job id of schedule `id`'s fire scheduled at `scheduled_ms`: the
/// same for every delivery of that fire.
pub fn fire_job_id(id: ScheduleId, scheduled_ms: i64) -> JobId {
    let name = format!("{id}\n{scheduled_ms}");
    JobId::from_uuid(Uuid::new_v5(&FIRE_NAMESPACE, name.as_bytes()))
}

/// What a fire does while the schedule's previous job has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Create the job anyway.
    #[default]
    Allow,
    /// Skip the fire (recorded as skipped), like Hangfire's
    /// `DisableConcurrentExecution`.
    Skip,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Skip => "skip",
        }
    }
}

impl FromStr for Overlap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "skip" => Ok(Self::Skip),
            other => Err(format!("unknown overlap policy {other:?}: allow or skip")),
        }
    }
}

/// What a schedule runs and when: what `POST /schedules` takes and
/// `PATCH` changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// EventBridge Scheduler's `cron(…)` or `rate(…)`, as written.
    pub expression: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    pub job_type: String,
    pub payload: Value,
    pub callback_url: Option<String>,
    pub overlap: Overlap,
}

/// The last fire that created a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastFire {
    /// The fire's scheduled time (ms).
    pub scheduled_at: i64,
    pub job_id: JobId,
}

/// How many fires did what, and the last one that did not create a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireCounts {
    pub fired: u64,
    /// Skipped by the overlap policy.
    pub skipped: u64,
    /// Refused (backlog full, the job type gone, a store error).
    pub refused: u64,
    /// When the last skipped or refused fire was scheduled (ms).
    pub last_missed_at: Option<i64>,
    /// Why the last refused fire was refused, at most [`REFUSAL_BYTES`].
    pub last_refusal: Option<String>,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: ScheduleId,
    pub owner: String,
    pub spec: ScheduleSpec,
    pub paused: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Fires scheduled before this are not run: the schedule was created,
    /// resumed or given a new expression then (no catch-up, as EventBridge
    /// Scheduler does). A `rate(…)` counts its period from it.
    pub active_from: i64,
    /// Grows by one with each change of the definition or state; a change
    /// is conditional on the version it read.
    pub version: u32,
    pub last_fire: Option<LastFire>,
    pub counts: FireCounts,
}

impl ScheduleRecord {
    /// A new, active schedule.
    pub fn new(owner: &str, spec: ScheduleSpec, now_ms: i64) -> Self {
        Self {
            id: ScheduleId::random(),
            owner: owner.to_owned(),
            spec,
            paused: false,
            created_at: now_ms,
            updated_at: now_ms,
            active_from: now_ms,
            version: 1,
            last_fire: None,
            counts: FireCounts::default(),
        }
    }

    /// The name of its recurring timer in the engine.
    pub fn timer_name(&self) -> String {
        timer_name(self.id)
    }
}

/// The engine timer of schedule `id`.
pub fn timer_name(id: ScheduleId) -> String {
    format!("schedule-{id}")
}

/// What one fire of a schedule came to, recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// It created (or found, on a duplicate fire) this job.
    Fired(LastFire),
    /// The overlap policy skipped it: the previous job is still unfinished.
    Skipped { scheduled_at: i64 },
    /// It could not create its job, for `reason` (shown to the caller).
    Refused { scheduled_at: i64, reason: String },
}

/// Errors of a [`ScheduleStore`].
#[derive(Debug, thiserror::Error)]
pub enum ScheduleStoreError {
    /// A conditional write was refused; `current` is the schedule as it is
    /// now (`None`: there is none).
    #[error("conditional write refused: the schedule changed or does not exist")]
    Conflict {
        current: Option<Box<ScheduleRecord>>,
    },
    /// An item does not have the shape Jobline writes.
    #[error("schedule item is malformed: {0}")]
    Malformed(String),
    /// The table could not be reached or refused the request.
    #[error("DynamoDB {operation} failed on the schedules table: {source}")]
    Aws {
        operation: &'static str,
        #[source]
        source: crate::error::BoxError,
    },
}

/// A page of schedules, by id, and where the next starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulePage {
    pub schedules: Vec<ScheduleRecord>,
    /// The last id of this page when more may follow.
    pub next: Option<ScheduleId>,
}

/// The schedules table: the API's and the fire function's port.
#[async_trait]
pub trait ScheduleStore: Send + Sync + fmt::Debug {
    /// Writes a new schedule; an existing id is `Conflict`.
    async fn create(&self, schedule: &ScheduleRecord) -> Result<(), ScheduleStoreError>;

    /// `owner`'s schedule `id` (strongly consistent).
    async fn get(
        &self,
        owner: &str,
        id: ScheduleId,
    ) -> Result<Option<ScheduleRecord>, ScheduleStoreError>;

    /// Up to `limit` of `owner`'s schedules by id, after `after`: one query
    /// of the owner's partition.
    async fn list(
        &self,
        owner: &str,
        after: Option<ScheduleId>,
        limit: usize,
    ) -> Result<SchedulePage, ScheduleStoreError>;

    /// How many schedules `owner` has, counting at most `up_to` (a count
    /// of keys: the per-caller bound).
    async fn count(&self, owner: &str, up_to: usize) -> Result<usize, ScheduleStoreError>;

    /// Replaces the definition and state of `schedule` (its `spec`,
    /// `paused`, `updated_at`, `active_from`) if the stored one is still at
    /// `schedule.version - 1`; the fire record is left as stored.
    /// Anything else is `Conflict` with the current one.
    async fn update(&self, schedule: &ScheduleRecord) -> Result<(), ScheduleStoreError>;

    /// Deletes `owner`'s schedule `id`: whether there was one.
    async fn delete(&self, owner: &str, id: ScheduleId) -> Result<bool, ScheduleStoreError>;

    /// Records what a fire came to: a fired one becomes the last fire
    /// unless a later one already is (fires may arrive out of order); a
    /// skipped or refused one counts. A schedule deleted meanwhile is
    /// `Conflict { current: None }`.
    async fn record_fire(
        &self,
        owner: &str,
        id: ScheduleId,
        outcome: &FireOutcome,
    ) -> Result<(), ScheduleStoreError>;

    /// Every caller's schedules, a page of at most `limit` at a time after
    /// `after` (the operators' console): a scan, bounded per page.
    async fn list_all(
        &self,
        after: Option<(String, ScheduleId)>,
        limit: usize,
    ) -> Result<(Vec<ScheduleRecord>, Option<(String, ScheduleId)>), ScheduleStoreError>;
}

//! The values the store's roles exchange: how an attempt ended, what a
//! write did, the index keys and pages the listings return, and the
//! constants both adapters share. Re-exported by [`crate::store`].

use crate::job::{JobId, JobRecord, JobState, Progress};
use serde_json::Value;

/// How an attempt ended, as written by [`WorkerStore::finish`](super::WorkerStore::finish).
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Succeeded(Value),
    /// Succeeded with a result too large for the item, stored at this key
    /// of the [`ResultStore`](crate::results::ResultStore).
    SucceededLinked(String),
    Failed {
        error: String,
        dead_lettered: bool,
    },
    /// The attempt stopped because a client cancelled the job.
    Cancelled,
}

/// What a running attempt writes at a heartbeat ([`WorkerStore::heartbeat`](super::WorkerStore::heartbeat)).
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat<'a> {
    /// When the beat is written (ms since the epoch).
    pub now_ms: i64,
    /// The renewed lease's end.
    pub lease_until_ms: i64,
    /// The handler's progress, if it changed since the last beat.
    pub progress: Option<&'a Progress>,
    /// The handler's checkpoint, if it saved a new one since the last beat.
    pub checkpoint: Option<&'a Value>,
}

/// What a heartbeat learnt from the job's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// A client asked to cancel the job: its handler must stop.
    pub cancel_requested: bool,
}

/// What [`CancelStore::cancel`](super::CancelStore::cancel) did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job is `cancelled`: it was queued, or was already cancelled.
    Cancelled(Box<JobRecord>),
    /// The job is running and now `cancelRequested`: its worker stops it at
    /// its next heartbeat (or it finishes first).
    Requested(Box<JobRecord>),
    /// The job had already finished (`succeeded` or `failed`).
    Finished(JobState),
    /// There is no such job.
    Missing,
}

/// What [`ReplayStore::replay`](super::ReplayStore::replay) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The job was `failed` and is `queued` again.
    Replayed,
    /// The job is in another state and was left alone.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// What [`OperatorStore::discard`](super::OperatorStore::discard) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    /// The job is `failed` and marked discarded (also when it already was).
    Discarded,
    /// The job is in a state that cannot be discarded (`succeeded`).
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// The error a discarded job gets when it had none.
pub const DISCARDED_ERROR: &str = "discarded by an operator";

/// The error of a job the sweeper failed ([`SweeperStore::sweep`](super::SweeperStore::sweep)).
pub const SWEPT_ERROR: &str =
    "the job did not finish within its time bound; its last delivery was lost or dead-lettered";

/// How many partitions of the due index (`pending-due`) the unfinished jobs are
/// spread over (by [`JobId::shard`]).
pub const SHARDS: u8 = 16;

/// A job's place in the due index (`pending-due`): its `dueAt` and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DueKey {
    pub due_at_ms: i64,
    pub id: JobId,
}

/// One page of [`SweeperStore::overdue`](super::SweeperStore::overdue).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverduePage {
    /// The overdue jobs, earliest `dueAt` first.
    pub jobs: Vec<DueKey>,
    /// The index entries the query read (DynamoDB's `ScannedCount`), which
    /// its read units grow with.
    pub scanned: usize,
    /// Where the next page starts, if there may be one.
    pub next: Option<DueKey>,
}

/// A job's place in a listing, newest first (a greater key is listed
/// earlier): the listing's sort time and the job's id. The time is the
/// job's `createdAt` in the owner index (`owner-created`) and the state
/// index (`state-created`), its `dueAt` in the due index (`pending-due`),
/// which lists the unfinished states ([`StateListing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListKey {
    /// The sort time, ms since the epoch.
    pub at: i64,
    pub id: JobId,
}

/// Where an operator's listing of a state reads from
/// ([`OperatorStore::list_by_state`](super::OperatorStore::list_by_state)),
/// chosen so that a job that succeeds writes no index entry for it: each
/// state index entry costs a write unit when it appears and two when it
/// moves, and `succeeded` is most jobs' last state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateListing {
    /// `failed` and `cancelled`, the final states an operator looks into:
    /// the state index, newest first by creation. A job enters it in its
    /// final write and leaves it when replayed.
    StateIndex,
    /// `queued` and `running`: the due index, which holds every unfinished
    /// job anyway, newest first by due time (creation time plus a fixed
    /// bound for most), each job read to see which of the two it is in.
    DueIndex,
    /// `succeeded`: in no index. Counted from the published metrics
    /// (`JobsSucceeded`), listed per caller (the owner index).
    Unlisted,
}

impl StateListing {
    /// Where the jobs in `state` are listed.
    pub fn of(state: JobState) -> Self {
        match state {
            JobState::Failed | JobState::Cancelled => Self::StateIndex,
            JobState::Scheduled | JobState::Queued | JobState::Running => Self::DueIndex,
            JobState::Succeeded => Self::Unlisted,
        }
    }
}

/// The most jobs one [`ApiStore::list`](super::ApiStore::list) page holds: `BatchGetItem` reads
/// at most 100 items.
pub const MAX_LIST_LIMIT: usize = 100;

/// One page of [`ApiStore::list`](super::ApiStore::list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPage {
    /// The jobs, newest first, without their payloads (`null`), results
    /// and checkpoints.
    pub jobs: Vec<JobRecord>,
    /// Each job's place in the listing, in the order of `jobs`: where a
    /// listing that stops after one of them resumes.
    pub keys: Vec<ListKey>,
    /// The index entries the page read: at most the page's limit, whatever
    /// the table holds.
    pub scanned: usize,
    /// Where the next page starts, if there may be one.
    pub next: Option<ListKey>,
}

/// How many jobs [`OperatorStore::count_by_state`](super::OperatorStore::count_by_state) found in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCount {
    /// The jobs counted: all of them when `complete`, else a lower bound.
    pub count: usize,
    /// Whether every job in the state was counted: false when a shard held
    /// more than the count's bound, which then counts only the bound.
    pub complete: bool,
}

/// What [`ApiStore::delete`](super::ApiStore::delete) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The job and its payload are gone.
    Deleted,
    /// The job is not finished, and was left alone.
    Unfinished(JobState),
    /// There is no such job.
    Missing,
}

/// What [`SweeperStore::sweep`](super::SweeperStore::sweep) did.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepOutcome {
    /// The job was overdue and is now `failed` and dead-lettered.
    Swept(Box<JobRecord>),
    /// The job finished or moved on (a claim, a replay) since it was listed.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

impl Completion {
    /// The state the completion leaves its job in.
    pub fn state(&self) -> JobState {
        match self {
            Self::Succeeded(_) | Self::SucceededLinked(_) => JobState::Succeeded,
            Self::Failed { .. } => JobState::Failed,
            Self::Cancelled => JobState::Cancelled,
        }
    }
}

//! The job records: the [`JobStore`] port, and its adapters.
//!
//! - [`dynamodb`]: [`DynamoJobStore`], the production adapter on DynamoDB;
//! - [`item`]: the item codec and size budgets it writes by;
//! - `memory` (tests and feature `memory` only): `memory::MemoryStore`,
//!   the fake other crates' unit tests run against.
//!
//! Every state change is one conditional write, so two workers that get the
//! same message cannot both run or both complete a job. Both adapters obey
//! one behaviour, which `jobline_testkit::contract` states once and runs against each.
//!
//! The time bound: every job that is not finished is listed, by its `dueAt`
//! ([`crate::deadline`]), in the sparse index the due index (`pending-due`), spread
//! over [`SHARDS`] partitions so that no partition takes every write. Each
//! write to a non-final state sets `dueAt`; each final one removes it, so
//! the index holds only unfinished jobs and the sweeper
//! ([`jobline_sweeper`]) reads only those: [`JobStore::overdue`] lists them,
//! [`JobStore::sweep`] fails one that is still overdue.
//!
//! The listings: the owner index (`owner-created`) holds each caller's jobs by creation
//! time ([`JobStore::list`]); the state index (`state-created`) holds every caller's jobs
//! by state, over the same [`SHARDS`], its partition rewritten by each write
//! that changes the state ([`JobStore::list_by_state`], for operators).
//!
//! The webhooks owed: the webhook index (`hooks-finished`) holds each finished job with
//! a callback URL whose delivery the notifier has not yet recorded
//! `delivered` or `failed` ([`JobStore::owed_webhooks`]), so the sweeper can
//! hand one the stream never relayed to the notifier again.

use crate::error::StoreError;
use crate::job::{JobId, JobRecord, JobState, Progress, WebhookDelivery};
use async_trait::async_trait;
use serde_json::Value;

/// How an attempt ended, as written by [`JobStore::finish`].
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

/// What a running attempt writes at a heartbeat ([`JobStore::heartbeat`]).
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

/// What [`JobStore::cancel`] did.
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

/// What [`JobStore::replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The job was `failed` and is `queued` again.
    Replayed,
    /// The job is in another state and was left alone.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// What [`JobStore::discard`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    /// The job is `failed` and marked discarded (also when it already was).
    Discarded,
    /// The job is in a state that cannot be discarded (`succeeded`).
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// Merges the shards' pages of a state listing, each newest first: the
/// newest `limit` of them, and where the next page starts, if there may be
/// one (more entries than `limit`, or a shard cut at its limit:
/// `shard_cut`). A shard's page holds its newest `limit` entries, so the
/// newest `limit` of all are among them.
pub fn merge_shards(
    mut keys: Vec<ListKey>,
    shard_cut: bool,
    limit: usize,
) -> (Vec<ListKey>, Option<ListKey>) {
    keys.sort_by(|a, b| b.cmp(a));
    let more = shard_cut || keys.len() > limit;
    keys.truncate(limit);
    let next = if more { keys.last().copied() } else { None };
    (keys, next)
}

/// The error a discarded job gets when it had none.
pub const DISCARDED_ERROR: &str = "discarded by an operator";

/// The error of a job the sweeper failed ([`JobStore::sweep`]).
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

/// One page of [`JobStore::overdue`].
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

/// A job's place in the owner index (`owner-created`) and the state index (`state-created`): its
/// creation time and id (newest first: a greater key is listed earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListKey {
    pub created_at: i64,
    pub id: JobId,
}

/// The most jobs one [`JobStore::list`] page holds: `BatchGetItem` reads
/// at most 100 items.
pub const MAX_LIST_LIMIT: usize = 100;

/// One page of [`JobStore::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPage {
    /// The jobs, newest first, without their payloads (`null`), results
    /// and checkpoints.
    pub jobs: Vec<JobRecord>,
    /// The index entries the page read: at most the page's limit, whatever
    /// the table holds.
    pub scanned: usize,
    /// Where the next page starts, if there may be one.
    pub next: Option<ListKey>,
}

/// How many jobs [`JobStore::count_by_state`] found in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCount {
    /// The jobs counted: all of them when `complete`, else a lower bound.
    pub count: usize,
    /// Whether every job in the state was counted: false when a shard held
    /// more than the count's bound, which then counts only the bound.
    pub complete: bool,
}

/// What [`JobStore::delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The job and its payload are gone.
    Deleted,
    /// The job is not finished, and was left alone.
    Unfinished(JobState),
    /// There is no such job.
    Missing,
}

/// What [`JobStore::sweep`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepOutcome {
    /// The job was overdue and is now `failed` and dead-lettered.
    Swept(Box<JobRecord>),
    /// The job finished or moved on (a claim, a replay) since it was listed.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// The job records. Each method is one conditional write or one read (the
/// DynamoDB adapter adds a read of a large payload's own item where a
/// record is returned, and `replay` reads and extends it: see
/// [`dynamodb`]).
///
/// Every stored error is cut to [`ERROR_BUDGET_BYTES`](crate::limits::ERROR_BUDGET_BYTES); a write that
/// can never succeed (an item over DynamoDB's 400 KB) is
/// [`StoreError::Invalid`].
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Writes a new `queued` job unless its id is taken by a job that was
    /// queued successfully. On a taken id: `Conflict` with the existing job.
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError>;

    /// Marks a job whose message could not be sent as failed (and finished
    /// at `now_ms`), if `job` is the very record this request created (its
    /// `createdAt`), no worker has claimed it, and no repeat of the request
    /// has sent its message again since ([`mark_resending`](Self::mark_resending)):
    /// only then can no message of it be in the queue. The same idempotency
    /// key may then submit it again. Anything else is `Conflict`.
    async fn mark_enqueue_failed(
        &self,
        job: &JobRecord,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// A repeat of a submission is about to send job `id`'s message again
    /// (its creator may have died between its write and its send): records
    /// `resentAt` if the job is still `queued`, never claimed and not
    /// enqueue-failed, so that the creator can no longer mark it failed
    /// while this message may be in the queue. Anything else is `Conflict`
    /// with the job.
    async fn mark_resending(&self, id: JobId, now_ms: i64) -> Result<(), StoreError>;

    /// Reads a job, strongly consistent.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Claims a job for one attempt by the delivery with `token` (unique
    /// per delivery), on the message's delivery number `receive_count`:
    /// `queued` (or `running` with an expired lease or none) becomes
    /// `running`, `attempts` grows by one, the lease runs until
    /// `lease_until_ms`, `token` is stored, and `dueAt` becomes
    /// [`Deadlines::claimed`](crate::deadline::Deadlines::claimed). Returns
    /// the claimed job.
    ///
    /// Idempotent for one delivery: when the job is already `running` under
    /// `token` (this claim landed but its answer was lost, and the SDK's
    /// retry was refused), returns that job, with no second attempt.
    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
        receive_count: u32,
        token: &str,
    ) -> Result<JobRecord, StoreError>;

    /// Completes attempt number `attempt`, fenced by it: a stale attempt whose
    /// lease was taken over gets `Conflict`. Idempotent: when the job is
    /// already in the completion's state under `attempt` and the claim's
    /// `token` (the write landed, its answer was lost), returns `Ok`.
    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Renews the lease of running attempt `attempt` under `token` (its
    /// `dueAt` stays as the claim set it: see
    /// [`Deadlines::claimed`](crate::deadline::Deadlines::claimed)), and stores the handler's new progress and
    /// checkpoint, if any. Returns whether a client asked to cancel the job.
    /// A job no longer running under this attempt and token (taken over
    /// after the lease ran out, cancelled, discarded, swept) is `Conflict`:
    /// the attempt must stop, and its outcome will not be recorded.
    async fn heartbeat(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        beat: &Heartbeat<'_>,
    ) -> Result<Renewed, StoreError>;

    /// A continuation: running attempt `attempt` yielded, so the job goes
    /// back to `queued` with `checkpoint` (if given; else the last one
    /// stays), `continuations` plus one, no lease and no error, and due as a
    /// newly queued job (its next message is a new one). Fenced and
    /// idempotent like [`finish`](Self::finish).
    async fn suspend(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        checkpoint: Option<&Value>,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// A client cancels job `id`: a `queued` one becomes `cancelled` (and
    /// finished) at once; a `running` one gets `cancelRequested`; a
    /// cancelled one stays so. At most two conditional writes.
    async fn cancel(&self, id: JobId, now_ms: i64) -> Result<CancelOutcome, StoreError>;

    /// Returns a job to `queued` after a retryable failure of `attempt`,
    /// keeping `error` for the client to see; fenced and idempotent like
    /// [`finish`](Self::finish).
    async fn return_to_queue(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Replays a `failed` job at `now_ms`: back to `queued`, `replays` plus
    /// one, no longer dead-lettered, enqueue-failed or discarded, and kept
    /// for the store's whole retention from now (so the TTL cannot delete it
    /// while it runs again). The replay starts a new run: its run clock
    /// (`runStartedAt`, which the run limit counts from) and any old cancel
    /// request are cleared, while its history (`attempts`, `replays`,
    /// `startedAt`, the last `error`) is kept.
    async fn replay(&self, id: JobId, now_ms: i64) -> Result<ReplayOutcome, StoreError>;

    /// An operator gives up on a job: any state but `succeeded` and
    /// `cancelled` becomes
    /// `failed` with `discarded` set, `finishedAt` set if missing, the lease
    /// removed, and [`DISCARDED_ERROR`] as the error if there was none.
    /// Discarding a discarded job is `Discarded` again.
    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError>;

    /// Job `id`'s message was sent again at `now_ms` as a new one (its
    /// receive count starts over, and it may wait a whole retention): an
    /// unfinished job becomes due as a newly queued one
    /// ([`Deadlines::queued_at`](crate::deadline::Deadlines::queued_at)).
    /// A finished or missing job is `Conflict`.
    async fn renew_due(&self, id: JobId, now_ms: i64) -> Result<(), StoreError>;

    /// Up to `limit` of `owner`'s jobs, newest first, starting after
    /// `after`: one query of the owner index (`owner-created`) that reads at most
    /// `limit` entries, however many jobs other callers have, and one read
    /// of those jobs (strongly consistent), without payloads, results and
    /// checkpoints, which may be hundreds of KiB each.
    async fn list(
        &self,
        owner: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError>;

    /// Up to `limit` jobs in `state`, of every caller, newest first
    /// (by `createdAt`, then id), starting after `after`: one query of each
    /// of the [`SHARDS`] partitions of that state in the state index (`state-created`),
    /// each reading at most `limit` entries, merged newest first, then one
    /// read of the page's jobs (strongly consistent) without payloads,
    /// results and checkpoints. `scanned` is at most `SHARDS × limit`
    /// whatever the table holds; `next` is set when more may follow.
    async fn list_by_state(
        &self,
        state: JobState,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError>;

    /// How many jobs are in `state`, of every caller, counted on
    /// the state index (`state-created`) up to `per_shard` in each of its [`SHARDS`]
    /// partitions: the entries read (and so the read units) are at most
    /// `SHARDS × (per_shard + 1)` whatever the table holds, and a state with
    /// more is a lower bound ([`StateCount::complete`] false).
    async fn count_by_state(
        &self,
        state: JobState,
        per_shard: usize,
    ) -> Result<StateCount, StoreError>;

    /// The oldest job in `state` (least `createdAt`), of every caller: one
    /// query of one entry in each partition of `state` in
    /// the state index (`state-created`).
    async fn oldest_in_state(&self, state: JobState) -> Result<Option<ListKey>, StoreError>;

    /// Deletes finished job `id` and its payload, at once (for data that
    /// must not wait for the TTL); an unfinished job is left alone.
    async fn delete(&self, id: JobId) -> Result<DeleteOutcome, StoreError>;

    /// Up to `limit` jobs of index partition `shard` (below [`SHARDS`])
    /// whose `dueAt` is before `now_ms`, earliest first, starting after
    /// `after`. One query of the index; finished jobs are not in it.
    async fn overdue(
        &self,
        shard: u8,
        now_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError>;

    /// Records the notifier's `delivery` of the webhook of finished job `id`,
    /// if the job still is in the final state it announces (its
    /// `finishedAt` is `delivery.for_finished_at`) and its delivery is still
    /// `seen`, as the notifier read it: two notifiers on one job cannot
    /// overwrite each other's record, and a replayed job's new run is not
    /// taken for the old one. Anything else is `Conflict` with the job. A
    /// delivery `delivered` or `failed` takes the job out of
    /// the webhook index (`hooks-finished`).
    async fn record_delivery(
        &self,
        id: JobId,
        seen: Option<&WebhookDelivery>,
        delivery: &WebhookDelivery,
    ) -> Result<(), StoreError>;

    /// Up to `limit` finished jobs of partition `shard` whose webhook is
    /// still owed (a callback URL, and no delivery recorded `delivered` or
    /// `failed`) and that finished before `finished_before_ms`, earliest
    /// first, starting after `after`: one query of
    /// the webhook index (`hooks-finished`). (A [`DueKey`]'s time is the `finishedAt`.)
    async fn owed_webhooks(
        &self,
        shard: u8,
        finished_before_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError>;

    /// Takes job `id` out of the webhook index (`hooks-finished`): it owes no webhook
    /// (it has no callback URL, or no client was told of it).
    async fn settle_webhook(&self, id: JobId) -> Result<(), StoreError>;

    /// Fails job `id` if it is still unfinished, overdue at `now_ms`, and
    /// holds no live lease: `failed`, dead-lettered, [`SWEPT_ERROR`],
    /// finished now, out of the index. One conditional write, so a job
    /// claimed or replayed since it was listed is left alone.
    async fn sweep(&self, id: JobId, now_ms: i64) -> Result<SweepOutcome, StoreError>;
}

/// Whether `current` may be marked enqueue-failed by the request that
/// created `job`: the rule `jobline_dynamodb`'s `ENQUEUE_FAILED_CONDITION` encodes.
pub fn may_mark_enqueue_failed(current: &JobRecord, job: &JobRecord) -> bool {
    current.state == JobState::Queued
        && current.attempts == 0
        && current.created_at == job.created_at
        && current.resent_at.is_none()
}

/// Whether a repeat may send `current`'s message again: the rule
/// `jobline_dynamodb`'s `RESEND_CONDITION` encodes.
pub fn may_resend(current: &JobRecord) -> bool {
    current.state == JobState::Queued && current.attempts == 0 && !current.enqueue_failed
}

/// The record [`JobStore::mark_enqueue_failed`] writes for `job`.
pub fn enqueue_failed(job: &JobRecord, error: &str, now_ms: i64) -> JobRecord {
    JobRecord {
        state: JobState::Failed,
        enqueue_failed: true,
        error: Some(error.to_owned()),
        finished_at: Some(now_ms),
        ..job.clone()
    }
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

/// What a conditional write that the job's state may refuse came to: `done`
/// of what it returned when it landed, `unchanged` of the job's state when
/// the job is in another one, `missing` when there is no job. The replay,
/// discard and sweep outcomes of both adapters come from here.
pub fn outcome_of<T, O>(
    written: Result<T, StoreError>,
    done: impl FnOnce(T) -> O,
    unchanged: impl FnOnce(JobState) -> O,
    missing: O,
) -> Result<O, StoreError> {
    match written {
        Ok(value) => Ok(done(value)),
        Err(StoreError::Conflict { current: None }) => Ok(missing),
        Err(StoreError::Conflict { current: Some(job) }) => Ok(unchanged(job.state)),
        Err(other) => Err(other),
    }
}

/// The outcome of a cancel that found `job`, if its state settles it (a
/// `queued` or `running` job must be written).
pub fn cancel_settled(job: JobRecord) -> Option<CancelOutcome> {
    match job.state {
        JobState::Cancelled => Some(CancelOutcome::Cancelled(Box::new(job))),
        JobState::Succeeded | JobState::Failed => Some(CancelOutcome::Finished(job.state)),
        JobState::Queued | JobState::Running => None,
    }
}

/// How many times a cancel tries its write when the job's state changes
/// under it (`queued` ⇄ `running`); each try is one conditional write.
pub const CANCEL_TRIES: usize = 4;

/// A claim's answer, given that the delivery with `token` made it: a
/// refusal because the job is `running` under that token means the claim
/// itself had landed, so its job is the answer.
pub fn own_claim(
    claimed: Result<JobRecord, StoreError>,
    token: &str,
) -> Result<JobRecord, StoreError> {
    match claimed {
        Err(StoreError::Conflict { current: Some(job) })
            if job.written_by(job.attempts, token, JobState::Running) =>
        {
            Ok(*job)
        }
        other => other,
    }
}

/// A fenced write's answer, given that it meant to leave the job in `state`
/// under `attempt` and `token`: a refusal because the job is already so
/// means the write itself had landed.
pub fn own_write<T>(
    written: Result<T, StoreError>,
    attempt: u32,
    token: &str,
    state: JobState,
) -> Result<(), StoreError> {
    match written {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { current: Some(job) })
            if job.written_by(attempt, token, state) =>
        {
            Ok(())
        }
        Err(other) => Err(other),
    }
}

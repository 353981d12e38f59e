//! The job records: the store port, split by role, and the values its
//! roles exchange.
//!
//! Each function of the stack reaches the jobs table through its own role,
//! the methods its IAM role in `template.yaml` allows and no more, so a
//! function's code cannot call what its role could not do:
//!
//! | trait | who | methods |
//! |---|---|---|
//! | [`ReadStore`] | every role | `get` |
//! | [`CancelStore`] | API, operator | `cancel` |
//! | [`ReplayStore`] | worker (a redriven message), operator | `replay` |
//! | [`ApiStore`] | the API function (and the fire function) | `create`, `mark_enqueue_failed`, `mark_resending`, `run_now`, `list`, `delete` |
//! | [`WorkerStore`] | the worker function | `claim`, `finish`, `heartbeat`, `suspend`, `return_to_queue`, `renew_due` |
//! | [`OperatorStore`] | the CLI's DLQ tools, job listings and console | `discard`, `list_by_state`, `count_by_state`, `oldest_queued` |
//! | [`SweeperStore`] | the sweeper function | `overdue`, `sweep`, `owed_webhooks`, `settle_webhook` |
//! | [`NotifierStore`] | the notifier function | `record_delivery` |
//!
//! A method more than one role calls lives in one small trait the roles
//! extend ([`ReadStore`], [`CancelStore`], [`ReplayStore`]), so each is
//! written once and never ambiguous. [`JobStore`] is every role at once
//! (implemented for anything that implements them all): what the adapters
//! are held to by the contract suite, and what the wiring that hands one
//! store to every function holds (an `Arc<dyn JobStore>` coerces to any
//! role's `Arc<dyn …>`).
//!
//! The adapters: `jobline_dynamodb::DynamoJobStore` in production, and
//! `jobline_testkit::memory::store::MemoryStore`, the fake other crates'
//! unit tests run against. Every state change is one conditional write, so
//! two workers that get the same message cannot both run or both complete a
//! job. Both adapters obey one behaviour, which `jobline_testkit::contract`
//! states once and runs against each.
//!
//! The time bound: every job that is not finished is listed, by its `dueAt`
//! ([`crate::deadline`]), in the sparse due index (`pending-due`), spread
//! over [`SHARDS`] partitions so that no partition takes every write. A job
//! enters it when queued and leaves it in its final write; `dueAt` is fixed
//! when the job is queued and moved only by its last delivery's claim, so a
//! job that succeeds costs the index two writes, whatever its claims,
//! retries and heartbeats. The sweeper (`jobline_sweeper`) reads only
//! unfinished jobs: [`SweeperStore::overdue`] lists them,
//! [`SweeperStore::sweep`] fails one that is still overdue.
//!
//! The listings: the owner index (`owner-created`) holds each caller's jobs
//! by creation time ([`ApiStore::list`]), one write per job. Operators list
//! every caller's jobs by state ([`OperatorStore::list_by_state`]) from where
//! [`StateListing`] says: the unfinished ones from the due index, the failed
//! and cancelled ones from the state index (`state-created`, which only
//! they enter), and the succeeded ones from nowhere (they are counted from
//! the published metrics). So a job that succeeds makes six write units in
//! all: three on the table, two on the due index, one on the owner index.
//!
//! The webhooks owed: the webhook index (`hooks-finished`) holds each finished job with
//! a callback URL whose delivery the notifier has not yet recorded
//! `delivered` or `failed` ([`SweeperStore::owed_webhooks`]), so the sweeper can
//! hand one the stream never relayed to the notifier again.
//!
//! Every method is one conditional write or one read (the DynamoDB adapter
//! adds a read of a large payload's own item where a record is returned,
//! and `replay` reads and extends it). Every stored error is cut to
//! [`ERROR_BUDGET_BYTES`](crate::limits::ERROR_BUDGET_BYTES); a write that
//! can never succeed (an item over DynamoDB's 400 KB) is
//! [`StoreError::Invalid`].

mod rules;
mod types;

pub use rules::{
    CANCEL_TRIES, cancel_settled, enqueue_failed, may_mark_enqueue_failed, may_resend,
    merge_shards, outcome_of, own_claim, own_write,
};
pub use types::{
    CancelOutcome, Completion, DISCARDED_ERROR, DeleteOutcome, DiscardOutcome, DueKey, Heartbeat,
    JobPage, ListKey, MAX_LIST_LIMIT, OverduePage, Renewed, ReplayOutcome, SHARDS, SWEPT_ERROR,
    StateCount, StateListing, SweepOutcome,
};

use crate::error::StoreError;
use crate::job::{JobId, JobRecord, JobState, WebhookDelivery};
use async_trait::async_trait;
use serde_json::Value;

/// The read every role shares: a job by its id. The base of every role.
#[async_trait]
pub trait ReadStore: Send + Sync + std::fmt::Debug {
    /// Reads a job, strongly consistent.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;
}

/// A client's cancel: the API's `POST /jobs/{id}/cancel`, and an
/// operator's (the console's Cancel).
#[async_trait]
pub trait CancelStore: ReadStore {
    /// A client cancels job `id`: a `scheduled` or `queued` one becomes `cancelled` (and
    /// finished) at once; a `running` one gets `cancelRequested`; a
    /// cancelled one stays so. At most two conditional writes.
    async fn cancel(&self, id: JobId, now_ms: i64) -> Result<CancelOutcome, StoreError>;
}

/// A replay of a failed job: an operator's (`jobline dlq replay`, the
/// console's Retry), and the worker's when a message redriven from the DLQ
/// finds its job dead-lettered.
#[async_trait]
pub trait ReplayStore: ReadStore {
    /// Replays a `failed` job at `now_ms`: back to `queued`, `replays` plus
    /// one, no longer dead-lettered, enqueue-failed or discarded, and kept
    /// for the store's whole retention from now (so the TTL cannot delete it
    /// while it runs again). The replay starts a new run: its run clock
    /// (`runStartedAt`, which the run limit counts from) and any old cancel
    /// request are cleared, while its history (`attempts`, `replays`,
    /// `startedAt`, the last `error`) is kept.
    async fn replay(&self, id: JobId, now_ms: i64) -> Result<ReplayOutcome, StoreError>;
}

/// The API function's role (`ApiFunctionRole`): submits jobs (and marks
/// what their enqueue did), and lists, cancels and deletes a caller's jobs.
#[async_trait]
pub trait ApiStore: CancelStore {
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

    /// A client runs scheduled job `id` now (`POST /jobs/{id}/run`): it
    /// becomes `queued` with `runAt` now, and is returned. Its `dueAt`
    /// stays (a bound counted from the later time it was delayed to).
    /// Anything but `scheduled` is `Conflict` with the job.
    async fn run_now(&self, id: JobId, now_ms: i64) -> Result<JobRecord, StoreError>;

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

    /// Deletes finished job `id` and its payload, at once (for data that
    /// must not wait for the TTL); an unfinished job is left alone.
    async fn delete(&self, id: JobId) -> Result<DeleteOutcome, StoreError>;
}

/// The worker function's role (`WorkerFunctionRole`): claims a job for a
/// delivery, keeps its lease, and records how the attempt ended; replays a
/// redriven dead letter's job ([`ReplayStore`]).
#[async_trait]
pub trait WorkerStore: ReplayStore {
    /// Claims a job for one attempt by the delivery with `token` (unique
    /// per delivery), on the message's delivery number `receive_count`:
    /// `queued` (or `running` with an expired lease or none) becomes
    /// `running`, `attempts` grows by one, the lease runs until
    /// `lease_until_ms`, `token` is stored, and, on the last delivery only,
    /// `dueAt` becomes [`Deadlines::claimed`](crate::deadline::Deadlines::claimed).
    /// Returns the claimed job, with its checkpoint: the one read that
    /// returns it (every other read leaves [`JobRecord::checkpoint`] `None`
    /// and says when one was saved, [`JobRecord::checkpoint_at`]).
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
    /// `dueAt` stays: see [`crate::deadline`]), and stores the handler's new
    /// progress and checkpoint, if any. The checkpoint is kept apart from the
    /// job's record, so a beat rewrites only the small record whatever the
    /// checkpoint's size, and the checkpoint is written only when it changed;
    /// a checkpoint of an older attempt never replaces a newer one's. Returns whether a client asked to cancel the job.
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

    /// Job `id`'s message was sent again at `now_ms` as a new one (its
    /// receive count starts over, and it may wait a whole retention): an
    /// unfinished job becomes due as a newly queued one
    /// ([`Deadlines::queued_at`](crate::deadline::Deadlines::queued_at)).
    /// A finished or missing job is `Conflict`.
    async fn renew_due(&self, id: JobId, now_ms: i64) -> Result<(), StoreError>;
}

/// An operator's role (the CLI's DLQ tools, job listings and console):
/// replays ([`ReplayStore`]), cancels ([`CancelStore`]) and discards jobs,
/// and lists and counts every caller's jobs by state.
#[async_trait]
pub trait OperatorStore: CancelStore + ReplayStore {
    /// An operator gives up on a job: any state but `succeeded` and
    /// `cancelled` becomes
    /// `failed` with `discarded` set, `finishedAt` set if missing, the lease
    /// removed, and [`DISCARDED_ERROR`] as the error if there was none.
    /// Discarding a discarded job is `Discarded` again.
    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError>;

    /// Up to `limit` jobs in `state`, of every caller, newest first,
    /// starting after `after`, from where [`StateListing::of`] `state` says:
    ///
    /// - `failed`, `cancelled`: one query of each of the [`SHARDS`]
    ///   partitions of that state in the state index (`state-created`), each
    ///   reading at most `limit` entries, merged newest first by creation
    ///   ([`ListKey::at`] is `createdAt`), then one read of the page's jobs;
    /// - `queued`, `running`: one query of each partition of the due index,
    ///   at most `limit` entries each, merged newest first by due time
    ///   ([`ListKey::at`] is `dueAt`), then one read of those jobs, keeping
    ///   the ones in `state` (a page may hold fewer than `limit` jobs, and
    ///   still have a `next`);
    /// - `succeeded`: [`StoreError::Invalid`], as no index holds it.
    ///
    /// Reads are strongly consistent, without payloads, results and
    /// checkpoints. `scanned` is at most `SHARDS × limit` whatever the table
    /// holds; `next` is set when more may follow.
    async fn list_by_state(
        &self,
        state: JobState,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError>;

    /// How many jobs are in `state`, of every caller, reading at most
    /// `per_shard + 1` index entries in each of the [`SHARDS`] partitions:
    /// of that state in the state index (`failed`, `cancelled`: a count of
    /// keys), or of the due index (`queued`, `running`: each entry's job is
    /// read, so the count is of the unfinished jobs read that are in
    /// `state`). Either way the reads are bounded whatever the table holds,
    /// and a count that stopped at the bound is a lower bound
    /// ([`StateCount::complete`] false). `succeeded` is
    /// [`StoreError::Invalid`].
    async fn count_by_state(
        &self,
        state: JobState,
        per_shard: usize,
    ) -> Result<StateCount, StoreError>;

    /// The oldest queued job (least `dueAt`, which for a job never replayed
    /// or continued is its creation time plus a fixed bound), of every
    /// caller, without payload, result and checkpoint: the first entries of
    /// each partition of the due index, read until a queued job is found, at
    /// most [`OLDEST_SCAN`] entries a partition. `None` when none of those
    /// is queued.
    async fn oldest_queued(&self) -> Result<Option<JobRecord>, StoreError>;
}

/// The due index entries a partition [`OperatorStore::oldest_queued`]
/// reads at most: past them, the running jobs ahead are taken to hide no
/// queued one the console needs to name.
pub const OLDEST_SCAN: usize = 25;

/// The sweeper function's role (`SweeperFunctionRole`): lists overdue jobs
/// and fails them, and finds the webhooks still owed.
#[async_trait]
pub trait SweeperStore: ReadStore {
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

    /// Fails job `id` if it is still unfinished, overdue at `now_ms`, and
    /// holds no live lease: `failed`, dead-lettered, [`SWEPT_ERROR`],
    /// finished now, out of the index. One conditional write, so a job
    /// claimed or replayed since it was listed is left alone.
    async fn sweep(&self, id: JobId, now_ms: i64) -> Result<SweepOutcome, StoreError>;

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
}

/// The notifier function's role (`NotifierFunctionRole`): records each
/// webhook delivery, conditional on what it read ([`ReadStore::get`]).
#[async_trait]
pub trait NotifierStore: ReadStore {
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
}

/// Every role at once: what an adapter implements (the contract suite
/// checks it whole), and what the wiring that hands one store to every
/// function holds. Implemented for every type that implements each role.
pub trait JobStore: ApiStore + WorkerStore + OperatorStore + SweeperStore + NotifierStore {}

impl<T> JobStore for T where
    T: ApiStore + WorkerStore + OperatorStore + SweeperStore + NotifierStore + ?Sized
{
}

//! [`MemoryStore`]: a fake of the store port, every role of it
//! ([`JobStore`](jobline_core::store::JobStore)), in a map, for unit tests.
//! One file per role of [`jobline_core::store`] (`api`, `worker`,
//! `operator`, `sweeper`, `notifier`); the map, its locks and the write
//! every role's changes go through are here.
//!
//! It applies the rules the DynamoDB conditions encode (the claim rule from
//! [`jobline_core::job::claimable`]) and refuses what DynamoDB refuses where that is
//! cheap to check: an item over 400 KB is [`StoreError::Invalid`]. The same
//! contract suite ([`crate::contract`]) runs against it and against
//! DynamoDB on the emulator, so the two cannot drift apart.
//!
//! The due index is a second map, of `dueAt` by job id, kept under the
//! records' lock: set on every write to an unfinished state, removed on
//! every final one, as the DynamoDB adapter's attributes are.

use async_trait::async_trait;
use jobline_core::config::DEFAULT_RETENTION_DAYS;
use jobline_core::deadline::Deadlines;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState};
use jobline_core::limits::MAX_ITEM_BYTES;
use jobline_core::store::{DueKey, OverduePage, ReadStore, own_write};
use jobline_dynamodb::item::{bound_error, item_from_record, item_size};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

mod api;
mod notifier;
mod operator;
mod sweeper;
mod worker;

/// Locks `mutex`, also after a panicking test poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A refusal, with the current record as a read returns it: without its
/// checkpoint, which only the claim reads.
fn conflict(current: Option<&JobRecord>) -> StoreError {
    StoreError::Conflict {
        current: current.map(|job| Box::new(read(job))),
    }
}

/// `job` as a read returns it: its checkpoint is kept apart, and only the
/// claim reads it (as in DynamoDB, where it is an item of its own).
fn read(job: &JobRecord) -> JobRecord {
    JobRecord {
        checkpoint: None,
        ..job.clone()
    }
}

/// The records of a [`MemoryStore`], by job id.
type Jobs = HashMap<JobId, JobRecord>;

/// Job records in a map, with DynamoDB's conditional-write behaviour.
#[derive(Debug)]
pub struct MemoryStore {
    jobs: Mutex<Jobs>,
    /// The due index: `dueAt` of each unfinished job. Locked only while
    /// `jobs` is.
    due: Mutex<HashMap<JobId, i64>>,
    /// The jobs that carry a hook shard ([`jobline_dynamodb::item::WEBHOOK_INDEX`]'s
    /// partition); a finished one is in that index. Locked only while
    /// `jobs` is.
    hooked: Mutex<HashSet<JobId>>,
    writes: AtomicUsize,
    failing: AtomicBool,
    /// A job every write of which fails.
    failing_job: Mutex<Option<JobId>>,
    /// How many of the next writes fail before reaching the table.
    failing_writes: AtomicUsize,
    /// How many of the next writes land with their answer lost.
    lost_answers: AtomicUsize,
    stalling_heartbeats: AtomicBool,
    retention_days: u32,
    deadlines: Deadlines,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            jobs: Mutex::default(),
            due: Mutex::default(),
            hooked: Mutex::default(),
            writes: AtomicUsize::default(),
            failing: AtomicBool::default(),
            failing_job: Mutex::default(),
            failing_writes: AtomicUsize::default(),
            lost_answers: AtomicUsize::default(),
            stalling_heartbeats: AtomicBool::default(),
            retention_days: DEFAULT_RETENTION_DAYS,
            deadlines: Deadlines::default(),
        }
    }
}

impl MemoryStore {
    /// An empty table, keeping replayed jobs for [`DEFAULT_RETENTION_DAYS`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps a replayed job for `days` from its replay.
    #[must_use]
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    /// Bounds jobs' times by `deadlines` (`dueAt`).
    #[must_use]
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Job `id`'s `dueAt`, if it is in the due index.
    pub fn due_at(&self, id: JobId) -> Option<i64> {
        let _jobs = lock(&self.jobs);
        lock(&self.due).get(&id).copied()
    }

    /// Makes every later heartbeat hang, never answering: a stalled
    /// `UpdateItem` that no SDK timeout ends.
    pub fn set_stalling_heartbeats(&self, stalling: bool) {
        self.stalling_heartbeats.store(stalling, Ordering::SeqCst);
    }

    /// Makes every later write of job `id` fail (`None`: no job's).
    pub fn set_failing_job(&self, id: Option<JobId>) {
        *lock(&self.failing_job) = id;
    }

    /// Makes the next `count` writes fail before they reach the table, as
    /// a call that timed out unsent does.
    pub fn fail_next_writes(&self, count: usize) {
        self.failing_writes.store(count, Ordering::SeqCst);
    }

    /// Makes the next `count` writes land and then fail, as a call whose
    /// answer was lost does (the SDK's retry not yet made).
    pub fn lose_next_answers(&self, count: usize) {
        self.lost_answers.store(count, Ordering::SeqCst);
    }

    /// Makes every later call fail as if DynamoDB were unreachable.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Puts a record as it is, unconditionally; an unfinished one is due
    /// as if it had been created.
    pub fn insert(&self, job: JobRecord) {
        let mut jobs = lock(&self.jobs);
        let due = (!job.state.is_finished()).then(|| self.deadlines.queued_at(job.due_from()));
        set_due(&mut lock(&self.due), &job, due);
        if job.callback_url.is_some() {
            lock(&self.hooked).insert(job.id);
        }
        jobs.insert(job.id, job);
    }

    /// Sets or clears job `id`'s hook shard, as a write of it does.
    fn hook(&self, id: JobId, hooked: bool) {
        let _jobs = lock(&self.jobs);
        let mut set = lock(&self.hooked);
        if hooked {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    /// The record of job `id`, if there is one.
    pub fn job(&self, id: JobId) -> Option<JobRecord> {
        lock(&self.jobs).get(&id).cloned()
    }

    /// Every record, by job id, as it is now.
    pub fn snapshot(&self) -> Jobs {
        lock(&self.jobs).clone()
    }

    /// How many conditional writes reached the table, refused ones included
    /// (not counting [`insert`](Self::insert)).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Aws {
                operation,
                source: "the in-memory store is set to fail".into(),
            });
        }
        Ok(())
    }

    /// One conditional write of job `id`: fails when set to, counts it, and
    /// under the lock asks `change` for the new record given the current one
    /// (`Err` refuses the write). The new record is stored as DynamoDB would
    /// store it: its error bounded, and refused if it is too large. It is
    /// due at `due` (or as before, if `None`) while unfinished, and leaves
    /// the due index when finished.
    fn write(
        &self,
        operation: &'static str,
        id: JobId,
        due: Option<i64>,
        change: impl FnOnce(Option<&JobRecord>) -> Result<JobRecord, StoreError>,
    ) -> Result<JobRecord, StoreError> {
        self.check(operation)?;
        if *lock(&self.failing_job) == Some(id) {
            return Err(StoreError::Aws {
                operation,
                source: "the in-memory store is set to fail this job's writes".into(),
            });
        }
        if take_one(&self.failing_writes) {
            return Err(StoreError::Aws {
                operation,
                source: "the in-memory store failed this write before it landed".into(),
            });
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut jobs = lock(&self.jobs);
        let mut next = change(jobs.get(&id))?;
        if let Some(error) = &next.error {
            next.error = Some(bound_error(error).into_owned());
        }
        let size = item_size(&item_from_record(&next));
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::Invalid {
                operation,
                reason: format!("the item is {size} bytes; DynamoDB allows {MAX_ITEM_BYTES}"),
            });
        }
        set_due(&mut lock(&self.due), &next, due);
        jobs.insert(id, next.clone());
        if take_one(&self.lost_answers) {
            return Err(StoreError::Aws {
                operation,
                source: "the in-memory store lost this write's answer".into(),
            });
        }
        Ok(next)
    }

    /// Applies `change` to the running attempt `attempt` of job `id`, which
    /// leaves it in `state`; a refusal because it already is there under
    /// `token` is `Ok` (see [`WorkerStore::finish`](jobline_core::store::WorkerStore::finish)).
    fn fenced(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        state: JobState,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<(), StoreError> {
        let written = self.write("UpdateItem", id, None, |current| match current {
            Some(job) if job.state == JobState::Running && job.attempts == attempt => {
                let mut next = job.clone();
                change(&mut next);
                Ok(next)
            }
            current => Err(conflict(current)),
        });
        own_write(written, attempt, token, state)
    }
}

/// Takes one from `counter` if it is above zero: whether it was.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// One page of a sharded time index holding `entries`: those of partition
/// `shard` before `before_ms`, earliest first, after `after`, as a query of
/// the DynamoDB index returns them.
fn before_page(
    mut entries: Vec<DueKey>,
    shard: u8,
    before_ms: i64,
    after: Option<DueKey>,
    limit: usize,
) -> OverduePage {
    entries.retain(|key| {
        key.id.shard(jobline_core::store::SHARDS) == shard
            && key.due_at_ms < before_ms
            && after.is_none_or(|after| *key > after)
    });
    entries.sort();
    let limit = limit.max(1);
    let next = (entries.len() > limit).then(|| entries[limit - 1]);
    entries.truncate(limit);
    OverduePage {
        scanned: entries.len(),
        jobs: entries,
        next,
    }
}

#[async_trait]
impl ReadStore for MemoryStore {
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.check("GetItem")?;
        Ok(self.job(id).as_ref().map(read))
    }
}

/// Puts `job` in the due index at `due` (or where it was) while it is
/// unfinished, and takes it out when it is finished.
fn set_due(index: &mut HashMap<JobId, i64>, job: &JobRecord, due: Option<i64>) {
    if job.state.is_finished() {
        index.remove(&job.id);
    } else if let Some(due) = due {
        index.insert(job.id, due);
    }
}

/// A job as a listing holds it: without its payload, result, checkpoint
/// and trace context.
fn summary(job: &JobRecord) -> JobRecord {
    JobRecord {
        payload: Value::Null,
        result: None,
        checkpoint: None,
        traceparent: None,
        ..job.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::job;
    use jobline_core::store::{ApiStore, Completion, ReplayOutcome, ReplayStore, WorkerStore};
    use serde_json::json;

    /// The contract suite, each check against a fresh MemoryStore.
    mod contract_suite {
        use super::MemoryStore;
        use crate::contract::fake_suite;

        crate::for_each_store_check!(fake_suite, store, MemoryStore);
    }

    #[tokio::test]
    async fn a_failing_store_fails_every_call_and_counts_writes() {
        let store = MemoryStore::new();
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        assert_eq!(store.writes(), 1);
        store.set_failing(true);
        assert!(matches!(
            store.get(queued.id).await,
            Err(StoreError::Aws {
                operation: "GetItem",
                ..
            })
        ));
        assert!(store.claim(queued.id, 0, 1, 1, "t").await.is_err());
        assert_eq!(store.writes(), 1, "a failed call never reaches the table");
        store.set_failing(false);
        assert!(store.claim(queued.id, 0, 1, 1, "t").await.is_ok());
    }

    #[tokio::test]
    async fn a_refused_oversized_update_changes_nothing() {
        let store = MemoryStore::new();
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        let running = store.claim(queued.id, 0, 1, 1, "t").await.unwrap();
        let huge = Completion::Succeeded(json!("x".repeat(MAX_ITEM_BYTES)));
        assert!(matches!(
            store.finish(queued.id, 1, "t", &huge, 2).await,
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.job(queued.id), Some(running));
    }

    #[tokio::test]
    async fn replay_keeps_the_job_for_the_configured_retention() {
        let store = MemoryStore::new().with_retention_days(2);
        let failed = job("primes")
            .state(JobState::Failed)
            .payload(json!({"upTo": 5}))
            .expires_at(1)
            .build();
        store.insert(failed.clone());
        let before = crate::testing::now_ms() / 1000;
        assert_eq!(
            store
                .replay(failed.id, crate::testing::now_ms())
                .await
                .unwrap(),
            ReplayOutcome::Replayed
        );
        let expires = store.job(failed.id).unwrap().expires_at;
        let after = crate::testing::now_ms() / 1000;
        assert!(
            (before + 2 * 86_400..=after + 2 * 86_400).contains(&expires),
            "{expires}"
        );
    }
}

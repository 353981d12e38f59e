//! The [`Sweeper`]: finishes the jobs that nothing else will, so that every
//! accepted job reaches a final state within its time bound
//! ([`jobline_core::deadline`]).
//!
//! A job can be left `queued` or `running` for good while its message sits
//! in the DLQ: the claim of its last delivery hit a DynamoDB error, its
//! completion failed, or its worker crashed, ran out of memory or timed out;
//! or its message expired unseen at the end of the queue's retention. The
//! DLQ's messages stay where they are (for `jobline dlq`, its alarm and
//! replays): the sweeper never reads a queue. It runs on a timer (deployed:
//! an EventBridge schedule; locally: `jobline_local::serve`) and, per run,
//! queries each of the [`SHARDS`] partitions of the due index for jobs
//! whose `dueAt` has passed, in pages of at most [`PAGE_SIZE`], and fails
//! each with one conditional write ([`SweeperStore::sweep`]), which leaves alone
//! a job claimed or replayed since the query. Finished jobs are not in the
//! index, so a run reads only unfinished jobs, however large the table.
//!
//! With webhooks on, a second pass reads the webhook index
//! ([`SweeperStore::owed_webhooks`]): each called-back job finished more than
//! [`WEBHOOK_OWED_AFTER_MS`] ago whose delivery was never tried (the stream
//! relay set its record aside, or the stream no longer holds it) or was
//! last tried more than [`WEBHOOK_STALE_AFTER_MS`] ago (its message was
//! lost) goes to the notifier's queue again; one that owes nothing leaves
//! the index. So "every final state is announced" rests on the job's item,
//! not on the stream's 24 hours.
//!
//! A failed query or write is counted and the run goes on; each run starts
//! at another partition, so one that keeps failing holds up no other.
//!
//! A global secondary index is eventually consistent: a query may still
//! list a job that has just finished or been claimed, under its old
//! `dueAt`. The sweep's condition reads the table itself, so such a job is
//! only counted as skipped.

use jobline_core::error::{QueueError, StoreError};
use jobline_core::job::{JobId, JobRecord};
use jobline_core::metrics::{Metric, Metrics};
use jobline_core::queue::{JobMessage, JobQueue};
use jobline_core::store::{DueKey, OverduePage, SHARDS, SweepOutcome, SweeperStore};
use serde_json::{Value, json};
use std::sync::Arc;

/// Index entries read per `Query` (one page).
pub const PAGE_SIZE: usize = 100;

/// Pages read per partition per run and pass: a run fails at most
/// `16 × 10 × 100` jobs and leaves the rest (reported in
/// [`SweepReport::more`]) to the next.
pub const MAX_PAGES_PER_SHARD: usize = 10;

/// How long after its final state a called-back job whose webhook the
/// notifier has not yet tried is handed to it again: past the relay's own
/// bound for setting a failing stream record aside
/// (`jobline_notifier::SET_ASIDE_AFTER_MS`, 15 minutes), so the sweep
/// picks up what the stream could not relay, or no longer holds (its
/// records expire after 24 hours).
pub const WEBHOOK_OWED_AFTER_MS: i64 = 30 * 60_000;

/// How long after its last attempt a delivery still `pending` is taken for
/// lost (its message expired or was dead-lettered by a crash): well past
/// the notifier's longest backoff (15 minutes) and its function's timeout.
pub const WEBHOOK_STALE_AFTER_MS: i64 = 60 * 60_000;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepReport {
    /// Jobs failed by this run.
    pub swept: usize,
    /// Overdue jobs a claim or replay moved on before their sweep.
    pub skipped: usize,
    /// Owed webhooks handed to the notifier again.
    pub requeued: usize,
    /// Queries and writes that failed; the run went on past each, and the
    /// next run tries them again.
    pub failed: usize,
    /// Index entries the queries read, over every partition.
    pub scanned: usize,
    /// `Query` calls made.
    pub queries: usize,
    /// Whether work may be left for the next run (a partition had more
    /// than [`MAX_PAGES_PER_SHARD`] pages).
    pub more: bool,
    /// `JobsSwept` by job type.
    pub metrics: Metrics,
}

/// A run in which some queries or writes failed: the invocation's error,
/// so the function's errors alarm sees it. The run went past each failure,
/// and the next one tries them again.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of the run's queries and writes failed (see the warnings above)")]
pub struct RunFailed {
    pub failed: usize,
}

impl SweepReport {
    /// What the invocation answers: the run's figures, or [`RunFailed`]
    /// when any query or write failed.
    pub fn outcome(&self) -> Result<Value, RunFailed> {
        if self.failed > 0 {
            return Err(RunFailed {
                failed: self.failed,
            });
        }
        Ok(json!({
            "swept": self.swept,
            "skipped": self.skipped,
            "requeued": self.requeued,
            "scanned": self.scanned,
            "queries": self.queries,
            "more": self.more,
        }))
    }
}

/// Why one job's sweep failed (the run goes on).
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Fails overdue jobs and hands owed webhooks back; see the module.
#[derive(Debug, Clone)]
pub struct Sweeper {
    store: Arc<dyn SweeperStore>,
    /// The notifier's queue, with webhooks on.
    notify: Option<Arc<dyn JobQueue>>,
}

/// Which index a pass reads, and what it does with each job.
#[derive(Debug, Clone, Copy)]
enum Pass<'a> {
    /// Unfinished jobs past their `dueAt`: failed.
    Overdue,
    /// Finished jobs whose webhook is owed, past [`WEBHOOK_OWED_AFTER_MS`]:
    /// handed to the notifier's queue.
    Owed(&'a dyn JobQueue),
}

impl Sweeper {
    pub fn new(store: Arc<dyn SweeperStore>) -> Self {
        Self {
            store,
            notify: None,
        }
    }

    /// Hands owed webhooks to the notifier's queue `notify`.
    #[must_use]
    pub fn with_webhooks(mut self, notify: Arc<dyn JobQueue>) -> Self {
        self.notify = Some(notify);
        self
    }

    /// One scheduled invocation at `now_ms`: a run ([`Self::sweep_once`]),
    /// its metrics emitted and its figures logged, and its
    /// [`outcome`](SweepReport::outcome).
    pub async fn invoke(&self, now_ms: i64) -> Result<Value, RunFailed> {
        let report = self.sweep_once(now_ms).await;
        report.metrics.emit();
        tracing::info!(
            swept = report.swept,
            skipped = report.skipped,
            requeued = report.requeued,
            failed = report.failed,
            scanned = report.scanned,
            queries = report.queries,
            more = report.more,
            "sweep done"
        );
        report.outcome()
    }

    /// One run at `now_ms`: each partition of the due index (and, with
    /// webhooks, of the webhook index), starting at one that moves on every
    /// minute, so no partition is always last. A query or write that fails
    /// is counted in [`SweepReport::failed`] and the run goes on; the next
    /// run tries again (sweeping is idempotent).
    pub async fn sweep_once(&self, now_ms: i64) -> SweepReport {
        let mut report = SweepReport::default();
        let first = first_shard(now_ms);
        let owed = self.notify.as_deref().map(Pass::Owed);
        for pass in std::iter::once(Pass::Overdue).chain(owed) {
            for offset in 0..SHARDS {
                let shard = (first + offset) % SHARDS;
                self.sweep_shard(pass, shard, now_ms, &mut report).await;
            }
        }
        report
    }

    async fn sweep_shard(&self, pass: Pass<'_>, shard: u8, now_ms: i64, report: &mut SweepReport) {
        let mut after = None;
        for page_number in 0.. {
            if page_number == MAX_PAGES_PER_SHARD {
                report.more = true;
                return;
            }
            let page = match self.page(pass, shard, now_ms, after).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, shard, ?pass, "sweep query failed; the next run tries again");
                    report.failed += 1;
                    return;
                }
            };
            report.queries += 1;
            report.scanned += page.scanned;
            for due in &page.jobs {
                let done = match pass {
                    Pass::Overdue => self.sweep_job(due, now_ms, report).await,
                    Pass::Owed(notify) => self.requeue_owed(notify, due.id, now_ms, report).await,
                };
                if let Err(error) = done {
                    tracing::warn!(%error, jobId = %due.id, ?pass, "sweep of a job failed; going on");
                    report.failed += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    }

    async fn page(
        &self,
        pass: Pass<'_>,
        shard: u8,
        now_ms: i64,
        after: Option<DueKey>,
    ) -> Result<OverduePage, StoreError> {
        match pass {
            Pass::Overdue => self.store.overdue(shard, now_ms, after, PAGE_SIZE).await,
            Pass::Owed(_) => {
                let before = now_ms.saturating_sub(WEBHOOK_OWED_AFTER_MS);
                self.store
                    .owed_webhooks(shard, before, after, PAGE_SIZE)
                    .await
            }
        }
    }

    async fn sweep_job(
        &self,
        due: &DueKey,
        now_ms: i64,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        match self.store.sweep(due.id, now_ms).await? {
            SweepOutcome::Swept(job) => {
                tracing::warn!(
                    jobId = %job.id,
                    jobType = job.job_type.as_str(),
                    dueAt = due.due_at_ms,
                    "job swept: it did not finish within its time bound"
                );
                report.swept += 1;
                report.metrics.count(&job.job_type, Metric::JobsSwept);
            }
            SweepOutcome::Unchanged(_) | SweepOutcome::Missing => report.skipped += 1,
        }
        Ok(())
    }

    /// Hands job `id`'s owed webhook to the notifier's queue `notify` again, if
    /// it is owed and not being tried; takes a job that owes none out of the
    /// index.
    async fn requeue_owed(
        &self,
        notify: &dyn JobQueue,
        id: JobId,
        now_ms: i64,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let Some(job) = self.store.get(id).await? else {
            return Ok(());
        };
        match owed(&job, now_ms) {
            Owed::Nothing => Ok(self.store.settle_webhook(id).await?),
            Owed::BeingTried => Ok(()),
            Owed::Again => {
                notify.send(&JobMessage::new(id)).await?;
                tracing::warn!(jobId = %id, "an owed webhook was handed to the notifier again");
                report.requeued += 1;
                Ok(())
            }
        }
    }
}

/// The partition a run at `now_ms` starts at: the next one each minute.
fn first_shard(now_ms: i64) -> u8 {
    u8::try_from(now_ms.div_euclid(60_000).rem_euclid(i64::from(SHARDS))).unwrap_or(0)
}

/// What a job listed as owing a webhook owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    /// No webhook: no callback URL, a submission whose client got an error,
    /// or a delivery already `delivered` or `failed`.
    Nothing,
    /// Unfinished (replayed since it was listed), or a delivery tried
    /// within [`WEBHOOK_STALE_AFTER_MS`].
    BeingTried,
    /// Never tried, or tried long ago: hand it to the notifier again.
    Again,
}

fn owed(job: &JobRecord, now_ms: i64) -> Owed {
    if !job.state.is_finished() {
        return Owed::BeingTried;
    }
    if job.callback_url.is_none() || job.enqueue_failed {
        return Owed::Nothing;
    }
    match job.current_delivery() {
        Some(delivery) if delivery.state.is_final() => Owed::Nothing,
        Some(delivery) if now_ms - delivery.at_ms < WEBHOOK_STALE_AFTER_MS => Owed::BeingTried,
        _ => Owed::Again,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::deadline::Deadlines;
    use jobline_core::job::JobState;
    use jobline_core::store::{ApiStore, Completion, SWEPT_ERROR, WorkerStore};
    use jobline_testkit::memory::store::MemoryStore;
    use jobline_testkit::testing::job;
    use jobline_testkit::testing::now_ms;
    use serde_json::json;

    /// Deadlines of a second per part, two deliveries, runs of 100 ms.
    fn short() -> Deadlines {
        Deadlines {
            retention_ms: 1_000,
            visibility_timeout_ms: 1_000,
            retry_max_delay_ms: 1_000,
            max_receive_count: 2,
            max_run_ms: 100,
            margin_ms: 1_000,
        }
    }

    fn sweeper(store: &Arc<MemoryStore>) -> Sweeper {
        Sweeper::new(Arc::clone(store) as Arc<dyn SweeperStore>)
    }

    #[tokio::test]
    async fn a_job_whose_every_delivery_died_is_failed_once_overdue() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        let now = now_ms();
        // Delivery 1 claims and dies (the bound it was queued with stays);
        // delivery 2, the last, claims and dies.
        let queued_due = store.due_at(queued.id);
        assert_eq!(queued_due, Some(queued.created_at + 1_000 + 100 + 1_000));
        store
            .claim(queued.id, now, now + 100, 1, "t")
            .await
            .unwrap();
        assert_eq!(store.due_at(queued.id), queued_due);
        store
            .claim(queued.id, now + 200, now + 300, 2, "t")
            .await
            .unwrap();
        let due = now + 300 + 1_000;
        assert_eq!(store.due_at(queued.id), Some(due));

        let early = sweeper(&store).sweep_once(due).await;
        assert_eq!((early.swept, early.scanned), (0, 0), "not yet overdue");
        let report = sweeper(&store).sweep_once(due + 1).await;
        assert_eq!((report.swept, report.skipped), (1, 0));
        assert_eq!(report.queries, usize::from(SHARDS));
        let swept = store.job(queued.id).unwrap();
        assert_eq!(swept.state, JobState::Failed);
        assert!(swept.dead_lettered);
        assert_eq!(swept.error.as_deref(), Some(SWEPT_ERROR));
        assert_eq!(swept.finished_at, Some(due + 1));
        assert_eq!(swept.lease_expires_at, None);
        assert_eq!(store.due_at(queued.id), None, "out of the index");
        let again = sweeper(&store).sweep_once(due + 2).await;
        assert_eq!((again.swept, again.scanned), (0, 0));
    }

    #[tokio::test]
    async fn finished_jobs_leave_the_index_and_cost_no_reads() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let now = now_ms();
        for _ in 0..50 {
            let done = job("primes").build();
            store.create(&done).await.unwrap();
            store.claim(done.id, now, now + 10, 1, "t").await.unwrap();
            let result = Completion::Succeeded(json!(1));
            store.finish(done.id, 1, "t", &result, now).await.unwrap();
            assert_eq!(store.due_at(done.id), None);
        }
        let late = job("primes").build();
        store.create(&late).await.unwrap();
        let report = sweeper(&store).sweep_once(now + 1_000_000).await;
        assert_eq!((report.swept, report.scanned), (1, 1));
    }

    #[tokio::test]
    async fn a_job_claimed_after_the_query_is_left_alone() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        let now = now_ms() + 10_000;
        let shard = queued.id.shard(SHARDS);
        let page = store.overdue(shard, now, None, 10).await.unwrap();
        assert_eq!(page.jobs.len(), 1);
        // A worker claims it between the query and the sweep.
        store
            .claim(queued.id, now, now + 60_000, 1, "t")
            .await
            .unwrap();
        assert_eq!(
            store.sweep(queued.id, now).await.unwrap(),
            SweepOutcome::Unchanged(JobState::Running)
        );
        assert_eq!(store.job(queued.id).unwrap().state, JobState::Running);
    }

    #[tokio::test]
    async fn a_failing_store_is_counted_query_by_query() {
        let store = Arc::new(MemoryStore::new());
        store.set_failing(true);
        let report = sweeper(&store).sweep_once(now_ms()).await;
        assert_eq!(report.failed, usize::from(SHARDS), "each partition tried");
        assert_eq!(report.queries, 0);
    }

    /// One job whose sweep keeps failing holds up neither its partition's
    /// other jobs nor the other partitions.
    #[tokio::test]
    async fn the_run_goes_on_past_a_job_whose_sweep_fails() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let mut jobs = Vec::new();
        while jobs.len() < 3 {
            let queued = job("primes").build();
            if queued.id.shard(SHARDS) == 3 {
                store.create(&queued).await.unwrap();
                jobs.push(queued.id);
            }
        }
        let elsewhere = loop {
            let queued = job("primes").build();
            if queued.id.shard(SHARDS) == 4 {
                store.create(&queued).await.unwrap();
                break queued.id;
            }
        };
        store.set_failing_job(Some(jobs[0]));
        let report = sweeper(&store).sweep_once(now_ms() + 60_000).await;
        assert_eq!((report.swept, report.failed), (3, 1));
        for id in jobs[1..].iter().chain([&elsewhere]) {
            assert_eq!(store.job(*id).unwrap().state, JobState::Failed);
        }
        assert_eq!(store.job(jobs[0]).unwrap().state, JobState::Queued);
        store.set_failing_job(None);
        let next = sweeper(&store).sweep_once(now_ms() + 60_000).await;
        assert_eq!(
            (next.swept, next.failed),
            (1, 0),
            "the next run tries it again"
        );
    }

    #[test]
    fn each_minutes_run_starts_at_another_partition() {
        let firsts: std::collections::HashSet<u8> = (0..16)
            .map(|minute| first_shard(minute * 60_000 + 1_234))
            .collect();
        assert_eq!(firsts.len(), usize::from(SHARDS));
    }

    /// A called-back job finished long ago with no delivery tried (the
    /// stream relay set it aside, or the stream expired) goes to the
    /// notifier again; one being tried is left alone; one that owes nothing
    /// leaves the index.
    #[tokio::test]
    async fn owed_webhooks_go_back_to_the_notifier() {
        use jobline_core::job::{DeliveryState, WebhookDelivery};
        use jobline_testkit::memory::queue::MemoryQueue;
        let store = Arc::new(MemoryStore::new());
        let notify = Arc::new(MemoryQueue::new());
        let sweeper = Sweeper::new(Arc::clone(&store) as Arc<dyn SweeperStore>)
            .with_webhooks(Arc::clone(&notify) as Arc<dyn JobQueue>);
        let now = now_ms();
        let finished = now - WEBHOOK_OWED_AFTER_MS - 1;
        let called_back = |delivery: Option<WebhookDelivery>| {
            let mut job = job("primes")
                .callback_url("https://hooks.example.com/x")
                .state(JobState::Succeeded)
                .attempts(1)
                .finished_at(finished)
                .build();
            job.webhook = delivery;
            job
        };
        let tried = |at_ms| WebhookDelivery {
            for_finished_at: finished,
            state: DeliveryState::Pending,
            attempts: 2,
            last_status: Some(503),
            at_ms,
        };
        let never_tried = called_back(None);
        let lost = called_back(Some(tried(now - WEBHOOK_STALE_AFTER_MS - 1)));
        let trying = called_back(Some(tried(now - 60_000)));
        let recent = JobRecord {
            finished_at: Some(now - 60_000),
            ..called_back(None)
        };
        let unsent = JobRecord {
            enqueue_failed: true,
            state: JobState::Failed,
            ..called_back(None)
        };
        for job in [&never_tried, &lost, &trying, &recent, &unsent] {
            store.insert(job.clone());
        }
        let report = sweeper.sweep_once(now).await;
        assert_eq!((report.requeued, report.failed), (2, 0));
        let mut sent: Vec<JobId> = notify.sent().iter().map(|m| m.job_id).collect();
        sent.sort();
        let mut expected = vec![never_tried.id, lost.id];
        expected.sort();
        assert_eq!(sent, expected);
        let owed: Vec<JobId> = {
            let mut owed = Vec::new();
            for shard in 0..SHARDS {
                let page = store.owed_webhooks(shard, i64::MAX, None, 100).await;
                owed.extend(page.unwrap().jobs.iter().map(|due| due.id));
            }
            owed
        };
        assert!(!owed.contains(&unsent.id), "owes nothing: settled");
        assert!(owed.contains(&trying.id) && owed.contains(&recent.id));
    }

    #[tokio::test]
    async fn a_run_reads_pages_and_stops_at_its_bound() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let now = now_ms();
        // Enough overdue jobs in one partition to need every page and more.
        let mut planted = 0;
        while planted <= PAGE_SIZE * MAX_PAGES_PER_SHARD {
            let queued = job("primes").build();
            if queued.id.shard(SHARDS) == 0 {
                store.insert(queued);
                planted += 1;
            }
        }
        let report = sweeper(&store).sweep_once(now + 10_000).await;
        assert_eq!(report.swept, PAGE_SIZE * MAX_PAGES_PER_SHARD);
        assert!(report.more);
        let rest = sweeper(&store).sweep_once(now + 10_000).await;
        assert_eq!((rest.swept, rest.more), (1, false));
    }

    /// An invocation answers the run's counts, or, when a write failed, an
    /// error (for the errors alarm) after sweeping all the rest.
    #[tokio::test]
    async fn an_invocation_with_a_failed_write_is_an_error_after_the_rest() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let mut jobs = Vec::new();
        for _ in 0..2 {
            let queued = job("primes").build();
            store.create(&queued).await.unwrap();
            jobs.push(queued.id);
        }
        store.set_failing_job(Some(jobs[0]));
        let failed = sweeper(&store).invoke(now_ms() + 60_000).await.unwrap_err();
        assert_eq!(failed.failed, 1);
        assert_eq!(store.job(jobs[1]).unwrap().state, JobState::Failed);
        store.set_failing_job(None);
        let answer = sweeper(&store).invoke(now_ms() + 60_000).await.unwrap();
        assert_eq!(answer["swept"], 1);
        assert_eq!(answer["more"], false);
    }
}

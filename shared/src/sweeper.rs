//! The [`Sweeper`]: finishes the jobs that nothing else will, so that every
//! accepted job reaches a final state within its time bound
//! ([`crate::deadline`]).
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
//! each with one conditional write ([`JobStore::sweep`]), which leaves alone
//! a job claimed or replayed since the query. Finished jobs are not in the
//! index, so a run reads only unfinished jobs, however large the table.
//!
//! A global secondary index is eventually consistent: a query may still
//! list a job that has just finished or been claimed, under its old
//! `dueAt`. The sweep's condition reads the table itself, so such a job is
//! only counted as skipped.

use crate::error::StoreError;
use crate::metrics::{Metric, Metrics};
use crate::store::{JobStore, SHARDS, SweepOutcome};
use std::sync::Arc;

/// Index entries read per `Query` (one page).
pub const PAGE_SIZE: usize = 100;

/// Pages read per partition per run: a run fails at most `16 × 10 × 100`
/// jobs and leaves the rest (reported in [`SweepReport::more`]) to the next.
pub const MAX_PAGES_PER_SHARD: usize = 10;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepReport {
    /// Jobs failed by this run.
    pub swept: usize,
    /// Overdue jobs a claim or replay moved on before their sweep.
    pub skipped: usize,
    /// Index entries the queries read, over every partition.
    pub scanned: usize,
    /// `Query` calls made.
    pub queries: usize,
    /// Whether overdue jobs may be left for the next run (a partition had
    /// more than [`MAX_PAGES_PER_SHARD`] pages).
    pub more: bool,
    /// `JobsSwept` by job type.
    pub metrics: Metrics,
}

/// Fails overdue jobs; see the module.
#[derive(Debug, Clone)]
pub struct Sweeper {
    store: Arc<dyn JobStore>,
}

impl Sweeper {
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        Self { store }
    }

    /// One run at `now_ms`. A query or write that fails ends the run with
    /// that error (the next run starts over; sweeping is idempotent).
    pub async fn sweep_once(&self, now_ms: i64) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        for shard in 0..SHARDS {
            let mut after = None;
            for page_number in 0.. {
                if page_number == MAX_PAGES_PER_SHARD {
                    report.more = true;
                    break;
                }
                let page = self.store.overdue(shard, now_ms, after, PAGE_SIZE).await?;
                report.queries += 1;
                report.scanned += page.scanned;
                for due in &page.jobs {
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
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::Deadlines;
    use crate::job::JobState;
    use crate::store::memory::MemoryStore;
    use crate::store::{Completion, SWEPT_ERROR};
    use crate::testing::job;
    use crate::testing::now_ms;
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
        Sweeper::new(Arc::clone(store) as Arc<dyn JobStore>)
    }

    #[tokio::test]
    async fn a_job_whose_every_delivery_died_is_failed_once_overdue() {
        let store = Arc::new(MemoryStore::new().with_deadlines(short()));
        let queued = job("primes").build();
        store.create(&queued).await.unwrap();
        let now = now_ms();
        // Delivery 1 claims and dies; delivery 2 claims and dies.
        store
            .claim(queued.id, now, now + 100, 1, "t")
            .await
            .unwrap();
        assert_eq!(store.due_at(queued.id), Some(now + 100 + 2_000 + 1_000));
        store
            .claim(queued.id, now + 200, now + 300, 2, "t")
            .await
            .unwrap();
        let due = now + 300 + 1_000;
        assert_eq!(store.due_at(queued.id), Some(due));

        let early = sweeper(&store).sweep_once(due).await.unwrap();
        assert_eq!((early.swept, early.scanned), (0, 0), "not yet overdue");
        let report = sweeper(&store).sweep_once(due + 1).await.unwrap();
        assert_eq!((report.swept, report.skipped), (1, 0));
        assert_eq!(report.queries, usize::from(SHARDS));
        let swept = store.job(queued.id).unwrap();
        assert_eq!(swept.state, JobState::Failed);
        assert!(swept.dead_lettered);
        assert_eq!(swept.error.as_deref(), Some(SWEPT_ERROR));
        assert_eq!(swept.finished_at, Some(due + 1));
        assert_eq!(swept.lease_expires_at, None);
        assert_eq!(store.due_at(queued.id), None, "out of the index");
        let again = sweeper(&store).sweep_once(due + 2).await.unwrap();
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
        let report = sweeper(&store).sweep_once(now + 1_000_000).await.unwrap();
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
    async fn a_failing_store_ends_the_run_with_its_error() {
        let store = Arc::new(MemoryStore::new());
        store.set_failing(true);
        assert!(matches!(
            sweeper(&store).sweep_once(now_ms()).await,
            Err(StoreError::Aws {
                operation: "Query",
                ..
            })
        ));
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
        let report = sweeper(&store).sweep_once(now + 10_000).await.unwrap();
        assert_eq!(report.swept, PAGE_SIZE * MAX_PAGES_PER_SHARD);
        assert!(report.more);
        let rest = sweeper(&store).sweep_once(now + 10_000).await.unwrap();
        assert_eq!((rest.swept, rest.more), (1, false));
    }
}

//! [`Deadlines`]: when a job that is not finished must have moved on, so
//! that the sweeper (`jobline_sweeper`) can finish it when nothing else will.
//!
//! Every non-final job item carries `dueAt` (ms since the epoch): the time
//! after which only the sweeper moves the job on. It is the sort key of the
//! due index, where a change costs two index write units (a delete and a
//! put), so it is fixed when the job is queued and moved only where a
//! tighter bound is worth that price:
//!
//! - at creation, replay, continuation and re-send ([`Deadlines::queued_at`]),
//!   `now + retention + run limit + margin`: a message lives at most the
//!   queue's `MessageRetentionPeriod` from its send, in the queue or in
//!   flight, so every delivery of it starts before `now + retention`; no
//!   attempt runs past the job's run limit (`MAX_JOB_RUN_SECS`, counted from
//!   the job's first start, which is no later); after the last, the message
//!   is gone (expired, or in the DLQ, where no worker sees it). So this one
//!   bound holds whatever happens to the job's deliveries, and a claim, a
//!   retry or a heartbeat need not touch it: a job that succeeds on a
//!   delivery before its last pays no index write at its claim.
//! - at the claim of the last delivery (`MAX_RECEIVE_COUNT`, `N`)
//!   ([`Deadlines::claimed`]), `now + run limit + margin`: after it no
//!   delivery can come, so a job whose last attempt dies (a crash, a
//!   timeout, a failed completion) is failed about an hour after it started
//!   instead of four days after it was queued. That claim costs the two
//!   index write units, on the one delivery in `N` where they buy something.
//!
//! A heartbeat leaves `dueAt` alone (the sweeper never fails a job whose
//! lease is live). A return to the queue keeps it. A continuation (the
//! handler yielded) is due as a newly queued job: its next message is a new
//! one. A record the worker had no time to start is sent again as a new
//! message, whose deliveries count afresh and which may wait a whole
//! retention: the worker renews the job's `dueAt` as at creation first
//! ([`WorkerStore::renew_due`](crate::store::WorkerStore::renew_due)). The
//! values are those of `template.yaml`'s queue ([`QueueSettings::TEMPLATE`])
//! and the worker's settings, so the API, the worker and the sweeper agree
//! without a variable of their own.
//!
//! The stated bound of "202 means it will finish": a job reaches a final
//! state by `queued_at` of its last queueing (4 days, 1 hour and 1 minute
//! with the template's defaults), and by `claimed` of its last delivery's
//! claim when that claim was recorded (1 hour and 1 minute after it).

use crate::config::WorkerConfig;
use crate::limits::QueueSettings;

/// What a job's time bound is made of. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The queue's `MessageRetentionPeriod`.
    pub retention_ms: i64,
    /// The queue's `VisibilityTimeout`: how long a delivery whose worker
    /// died hides the message.
    pub visibility_timeout_ms: i64,
    /// `RETRY_MAX_DELAY_SECONDS`: the longest backoff between deliveries.
    pub retry_max_delay_ms: i64,
    /// `MAX_RECEIVE_COUNT`: deliveries before the DLQ.
    pub max_receive_count: u32,
    /// `MAX_JOB_RUN_SECS`: the longest a job runs from its first start; no
    /// attempt's handler runs past it, however its lease is renewed.
    pub max_run_ms: i64,
    /// Added to every bound, for clock skew between the functions.
    pub margin_ms: i64,
}

/// The margin of [`Deadlines::new`]: one minute.
pub const MARGIN_MS: i64 = 60_000;

impl Deadlines {
    /// The bounds of a queue with `queue`'s settings fed to a worker with
    /// `worker`'s (whose `max_receive_count` wins over the queue's default).
    pub fn new(queue: QueueSettings, worker: &WorkerConfig) -> Self {
        Self {
            retention_ms: i64::from(queue.retention_secs) * 1000,
            visibility_timeout_ms: i64::from(queue.visibility_timeout_secs) * 1000,
            retry_max_delay_ms: i64::from(worker.retry_max_delay_secs) * 1000,
            max_receive_count: worker.max_receive_count,
            max_run_ms: i64::from(worker.max_run_secs) * 1000,
            margin_ms: MARGIN_MS,
        }
    }

    /// `dueAt` of a job queued (created, replayed, continued or sent
    /// again) at `now_ms`: its message's retention, then the run limit.
    pub fn queued_at(&self, now_ms: i64) -> i64 {
        now_ms
            .saturating_add(self.retention_ms)
            .saturating_add(self.max_run_ms)
            .saturating_add(self.margin_ms)
    }

    /// The new `dueAt` of a job claimed at `now_ms` on delivery
    /// `receive_count`: on the last delivery (`max_receive_count` or later),
    /// the run limit from now; on any other, `None`, for the job's
    /// [`queued_at`](Self::queued_at) bound stands and moving it would cost
    /// two index writes a claim.
    pub fn claimed(&self, now_ms: i64, receive_count: u32) -> Option<i64> {
        (receive_count >= self.max_receive_count).then(|| {
            now_ms
                .saturating_add(self.max_run_ms)
                .saturating_add(self.margin_ms)
        })
    }
}

impl Default for Deadlines {
    /// The template's queue and the worker's default settings.
    fn default() -> Self {
        Self::new(QueueSettings::TEMPLATE, &WorkerConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_defaults_give_the_documented_bounds() {
        let d = Deadlines::default();
        // Four days of retention, an hour of run limit, a minute of margin.
        assert_eq!(d.queued_at(0), 345_600_000 + 3_600_000 + 60_000);
        // Before the last of five deliveries, the queued bound stands.
        for delivery in 0..5 {
            assert_eq!(d.claimed(1_000, delivery), None, "delivery {delivery}");
        }
        // The last: only the run limit and the margin.
        assert_eq!(d.claimed(1_000, 5), Some(3_661_000));
        assert_eq!(
            d.claimed(1_000, 9),
            Some(3_661_000),
            "past the last is the last"
        );
    }

    #[test]
    fn the_last_claim_only_ever_tightens_the_bound() {
        let d = Deadlines::default();
        // However late in its retention the last delivery comes, its bound
        // is within the one set when the job was queued.
        let queued = 7_000;
        for claim in [queued, queued + d.retention_ms / 2, queued + d.retention_ms] {
            assert!(d.claimed(claim, 5).unwrap() <= d.queued_at(queued));
        }
    }
}

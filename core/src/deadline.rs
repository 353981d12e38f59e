//! [`Deadlines`]: when a job that is not finished must have moved on, so
//! that the sweeper (`jobline_sweeper`) can finish it when nothing else will.
//!
//! Every non-final job item carries `dueAt` (ms since the epoch): the time
//! after which only the sweeper moves the job on. The store writes it on
//! every move to a non-final state and removes it on every final one:
//!
//! - at creation and replay, `now + retention + margin`: a message nobody
//!   receives expires at the end of the queue's `MessageRetentionPeriod`;
//! - at a claim at `now` on delivery `n` of `MAX_RECEIVE_COUNT` (`N`),
//!   `now + MAX_JOB_RUN_SECS + (N − n) × (visibility timeout + retry max
//!   delay) + margin`: no attempt runs past the job's run limit (its lease,
//!   short and renewed by heartbeats, ends with the handler), each later
//!   delivery comes at most one visibility timeout (a crashed or silent
//!   attempt) plus one backoff after the previous one, and after the `N`-th
//!   SQS moves the message to the DLQ, where no worker sees it. A claim on
//!   delivery `N` leaves only the margin after the run limit.
//!
//! A heartbeat leaves `dueAt` as the claim set it (the sweeper never fails a
//! job whose lease is live). A return to the queue keeps the claim's `dueAt`: it still bounds the deliveries
//! that are left. A continuation (the handler yielded) is due as a newly
//! queued job: its next message is a new one. A record the worker had no time to start is
//! sent again as a new message, whose deliveries count afresh and which may
//! wait a whole retention: the worker renews the job's `dueAt` as at
//! creation first ([`WorkerStore::renew_due`](crate::store::WorkerStore::renew_due)). The values are those of `template.yaml`'s
//! queue ([`QueueSettings::TEMPLATE`]) and the worker's settings, so the
//! API, the worker and the sweeper agree without a variable of their own.

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

    /// `dueAt` of a job queued (created or replayed) at `now_ms`.
    pub fn queued_at(&self, now_ms: i64) -> i64 {
        now_ms
            .saturating_add(self.retention_ms)
            .saturating_add(self.margin_ms)
    }

    /// `dueAt` of a job claimed at `now_ms` on delivery `receive_count`:
    /// its attempt runs at most [`max_run_ms`](Self::max_run_ms) from now
    /// (the run limit counts from the job's first start, which is no later),
    /// however often heartbeats renew its short lease; then come the
    /// deliveries left. So heartbeats need not move `dueAt`, which, as the
    /// due index's sort key, would cost two index writes a beat.
    pub fn claimed(&self, now_ms: i64, receive_count: u32) -> i64 {
        let run_ends = now_ms.saturating_add(self.max_run_ms);
        let left = i64::from(self.max_receive_count.saturating_sub(receive_count.max(1)));
        let per_delivery = self
            .visibility_timeout_ms
            .saturating_add(self.retry_max_delay_ms);
        run_ends
            .saturating_add(left.saturating_mul(per_delivery))
            .saturating_add(self.margin_ms)
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
        // Four days of retention and a minute of margin.
        assert_eq!(d.queued_at(0), 345_600_000 + 60_000);
        // The first of five deliveries: an hour of run limit, then four
        // more, each at most 360 s of visibility timeout plus 300 s of
        // backoff.
        assert_eq!(
            d.claimed(1_000, 1),
            1_000 + 3_600_000 + 4 * 660_000 + 60_000
        );
        // The last: only the run limit and the margin.
        assert_eq!(d.claimed(1_000, 5), 3_661_000);
        assert_eq!(d.claimed(1_000, 9), 3_661_000, "past the last is the last");
        assert_eq!(
            d.claimed(1_000, 0),
            d.claimed(1_000, 1),
            "no count is the first"
        );
    }
}

//! The heartbeat of a running attempt, as a task of its own: every beat it
//! renews the attempt's short lease and its message's visibility, and
//! writes the handler's progress and checkpoint.
//!
//! It runs apart from the watchdog that stops the handler, so that a stalled
//! call (an `UpdateItem` that hangs, a throttled `ChangeMessageVisibility`)
//! can never keep the watchdog from acting: the watchdog only reads the
//! lease the last *confirmed* beat renewed, and stops the handler by
//! [`stop_by`] of it whatever the beat in flight is doing. Each call is
//! bounded by a beat's period on top of the SDK's own timeouts, and a failed
//! beat is tried again a second later, while the lease still allows.

use crate::STOP_GRACE;
use jobline_core::backoff::max_visibility_secs;
use jobline_core::job_types::Reports;
use jobline_core::{Clock, Heartbeat, JobId, JobQueue, StoreError, WorkerStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long after a failed beat the next is tried.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A lease outlives the point where its handler is stopped
/// ([`stop_by`]) by this much, for clock skew between workers.
pub const LEASE_MARGIN_MS: i64 = 1_000;

/// How long a claim or a beat leases its job for, with beats every
/// `period`: two beats, then [`STOP_GRACE`] for the handler to stop and
/// [`LEASE_MARGIN_MS`] for clock skew. So one late or lost beat costs
/// nothing, and a handler stopped at [`stop_by`] has stopped before another
/// delivery may claim the job.
pub fn lease_ms(period: Duration) -> i64 {
    let beats = i64::try_from(period.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
    let grace = i64::try_from(STOP_GRACE.as_millis()).unwrap_or(i64::MAX);
    beats.saturating_add(grace).saturating_add(LEASE_MARGIN_MS)
}

/// When a handler whose lease ends at `lease_until_ms` must be stopped, if
/// no beat renews it first: [`STOP_GRACE`] and [`LEASE_MARGIN_MS`] before.
/// "Never run twice at once" rests on it for handlers that observe their
/// cancellation within [`STOP_GRACE`] (the built-in ones do); one that does
/// not is ended with its process ([`crate::restart`]).
pub fn stop_by(lease_until_ms: i64) -> i64 {
    let grace = i64::try_from(STOP_GRACE.as_millis()).unwrap_or(i64::MAX);
    lease_until_ms
        .saturating_sub(grace)
        .saturating_sub(LEASE_MARGIN_MS)
}

/// Whole seconds on `clock` from now until `at_ms` (rounded up; 0 if past).
pub(crate) fn secs_until(clock: &Clock, at_ms: i64) -> u32 {
    let ms = u64::try_from(clock.until(at_ms).as_millis()).unwrap_or(u64::MAX);
    u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)
}

/// How long a message is hidden for a lease ending at `lease_until_ms`:
/// until just after it (its whole seconds, rounded up, and one), so that a
/// message whose worker died comes back once another delivery may claim
/// the job. The claim and every beat hide it so.
pub(crate) fn lease_visibility_secs(clock: &Clock, lease_until_ms: i64) -> u32 {
    secs_until(clock, lease_until_ms).saturating_add(1)
}

/// What one attempt's heartbeat needs, owned, so it can run as a task.
pub(crate) struct Beater {
    pub(crate) store: Arc<dyn WorkerStore>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) clock: Clock,
    pub(crate) job_id: JobId,
    pub(crate) attempt: u32,
    pub(crate) token: String,
    /// The message's receipt handle, whose visibility follows the lease.
    pub(crate) receipt: Option<String>,
    /// When the message was received: SQS's 12-hour visibility cap counts
    /// from it.
    pub(crate) received_at_ms: i64,
    pub(crate) period: Duration,
    pub(crate) reports: Reports,
}

/// The heartbeat task's reports to the watchdog.
pub(crate) struct Pulse {
    /// The end of the lease the last confirmed beat renewed.
    pub(crate) lease_until_ms: watch::Receiver<i64>,
    /// Why the handler must stop, once a beat learnt it must.
    pub(crate) stop: watch::Receiver<Option<Halt>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Beater {
    /// Starts beating, with the lease the claim took ending at
    /// `lease_until_ms`; the task ends with the returned [`Pulse`].
    pub(crate) fn start(self, lease_until_ms: i64) -> Pulse {
        let (lease_tx, lease_rx) = watch::channel(lease_until_ms);
        let (stop_tx, stop_rx) = watch::channel(None);
        let task = tokio::spawn(self.run(lease_until_ms, lease_tx, stop_tx));
        Pulse {
            lease_until_ms: lease_rx,
            stop: stop_rx,
            task,
        }
    }

    async fn run(
        self,
        mut lease_until_ms: i64,
        lease: watch::Sender<i64>,
        stop: watch::Sender<Option<Halt>>,
    ) {
        let mut wait = self.period;
        loop {
            tokio::time::sleep(wait).await;
            match self.beat().await {
                Beat::Renewed { until_ms, cancel } => {
                    lease_until_ms = until_ms;
                    let _ = lease.send(until_ms);
                    self.hide_until(until_ms).await;
                    if cancel {
                        let _ = stop.send(Some(Halt::CancelRequested));
                        return;
                    }
                    wait = self.period;
                }
                Beat::Refused => {
                    let _ = stop.send(Some(Halt::LeaseLost));
                    return;
                }
                Beat::Failed => {
                    // The watchdog stops the handler by `stop_by` of the
                    // lease it has; until then, keep trying.
                    if self.clock.now_ms() >= stop_by(lease_until_ms) {
                        return;
                    }
                    wait = RETRY_AFTER.min(self.period);
                }
            }
        }
    }

    /// One beat: the lease renewed from now, with the reports not yet
    /// written (put back if the write fails).
    async fn beat(&self) -> Beat {
        let now = self.clock.now_ms();
        let until_ms = now.saturating_add(lease_ms(self.period));
        let unwritten = self.reports.take();
        let beat = Heartbeat {
            now_ms: now,
            lease_until_ms: until_ms,
            progress: unwritten.progress.as_ref(),
            checkpoint: unwritten.checkpoint.as_ref(),
        };
        let written = tokio::time::timeout(
            self.period,
            self.store
                .heartbeat(self.job_id, self.attempt, &self.token, &beat),
        )
        .await;
        match written {
            Ok(Ok(renewed)) => Beat::Renewed {
                until_ms,
                cancel: renewed.cancel_requested,
            },
            Ok(Err(StoreError::Conflict { .. })) => Beat::Refused,
            Ok(Err(error)) => {
                tracing::warn!(%error, jobId = %self.job_id, "heartbeat failed");
                self.reports.restore(unwritten);
                Beat::Failed
            }
            Err(_) => {
                tracing::warn!(jobId = %self.job_id, "heartbeat timed out");
                self.reports.restore(unwritten);
                Beat::Failed
            }
        }
    }

    /// Hides the message until just after the lease ending at `until_ms`,
    /// within SQS's 12-hour cap; a failure is only logged (the lease, not
    /// the visibility, decides who may run the job).
    async fn hide_until(&self, until_ms: i64) {
        let Some(receipt) = self.receipt.as_deref() else {
            return;
        };
        let secs = lease_visibility_secs(&self.clock, until_ms).min(max_visibility_secs(
            self.received_at_ms,
            self.clock.now_ms(),
        ));
        match tokio::time::timeout(self.period, self.queue.change_visibility(receipt, secs)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, jobId = %self.job_id, "could not extend the message's visibility");
            }
            Err(_) => {
                tracing::warn!(jobId = %self.job_id, "extending the message's visibility timed out");
            }
        }
    }
}

/// Why a beat says the handler must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// A client asked to cancel the job.
    CancelRequested,
    /// The beat was refused: the attempt no longer holds the job.
    LeaseLost,
}

/// What one beat came to.
enum Beat {
    Renewed {
        until_ms: i64,
        cancel: bool,
    },
    /// The attempt no longer holds the job.
    Refused,
    /// The write failed or timed out: the lease stands as it was.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_handler_has_stopped_before_its_lease_can_be_taken() {
        let period = Duration::from_secs(10);
        let lease = lease_ms(period);
        assert_eq!(lease, 20_000 + 1_000 + LEASE_MARGIN_MS);
        let renewed_at = 1_000_000;
        let stop = stop_by(renewed_at + lease);
        assert_eq!(
            stop,
            renewed_at + 20_000,
            "two beats after the last renewal"
        );
        let grace = i64::try_from(STOP_GRACE.as_millis()).unwrap();
        assert!(stop + grace + LEASE_MARGIN_MS <= renewed_at + lease);
    }
}

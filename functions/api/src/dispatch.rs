//! An accepted job sent on its way, after its record is written: at once
//! (a message), later by up to 15 minutes (the message's `DelaySeconds`,
//! SQS's most), or later still by a one-time timer (EventBridge Scheduler,
//! deleted after it fires): a message never waits in SQS for longer than
//! its delay, since SQS keeps messages at most 14 days and a job may be
//! delayed a year. The timer invokes the fire function ([`crate::fire`]),
//! which sends the message then.

use crate::{Api, ApiError};
use jobline_core::limits::SQS_MAX_DELAY_SECS;
use jobline_core::timers::{Timer, TimerTiming};
use jobline_core::{JobId, JobMessage, JobRecord, JobState};

/// How a job waiting for its time is sent, at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Now: it is due.
    Now,
    /// As a message delayed this many seconds (at most 15 minutes).
    Delayed(u32),
    /// By a one-time timer at this time (ms).
    Timer(i64),
}

impl Departure {
    pub(crate) fn of(job: &JobRecord, now_ms: i64) -> Self {
        let wait_ms = match job.run_at {
            Some(at) if job.state == JobState::Scheduled => at - now_ms,
            _ => 0,
        };
        if wait_ms <= 0 {
            return Self::Now;
        }
        match u32::try_from((wait_ms + 999) / 1000) {
            Ok(secs) if secs <= SQS_MAX_DELAY_SECS => Self::Delayed(secs),
            _ => Self::Timer(job.run_at.unwrap_or(now_ms)),
        }
    }
}

/// The name of job `id`'s one-time timer.
pub fn job_timer_name(id: JobId) -> String {
    format!("job-{id}")
}

/// The one-time timer that sends job `id` at `at_ms` (rounded up to the
/// second: `at()` has no finer unit, and a job never runs early).
pub(crate) fn job_timer(id: JobId, at_ms: i64) -> Timer {
    Timer {
        name: job_timer_name(id),
        timing: TimerTiming::Once {
            at_ms: (at_ms + 999) / 1000 * 1000,
        },
        input: crate::fire::FireInput::Job { job_id: id }.to_json(),
        enabled: true,
    }
}

impl Api {
    /// Whether this deployment can send `job` when it is due: a delay past
    /// SQS's needs the scheduler.
    pub(crate) fn check_departure(&self, job: &JobRecord) -> Result<(), ApiError> {
        match Departure::of(job, self.clock.now_ms()) {
            Departure::Timer(_) if self.timers.is_none() => Err(ApiError::LongDelaysDisabled),
            _ => Ok(()),
        }
    }

    /// Sends `job` (written) on its way, as [`Departure::of`] says.
    pub(crate) async fn dispatch(&self, job: &JobRecord) -> Result<(), ApiError> {
        let message = JobMessage::of(job);
        let queue_error = |e: jobline_core::QueueError| ApiError::QueueUnavailable(e.to_string());
        match Departure::of(job, self.clock.now_ms()) {
            Departure::Now => self.queue.send(&message).await.map_err(queue_error)?,
            Departure::Delayed(secs) => self
                .queue
                .send_delayed(&message, secs)
                .await
                .map_err(queue_error)?,
            Departure::Timer(at_ms) => {
                let timers = self.timers.as_ref().ok_or(ApiError::LongDelaysDisabled)?;
                timers.put(&job_timer(job.id, at_ms)).await?;
                return Ok(());
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::JobRequest;
    use serde_json::json;

    #[test]
    fn a_job_departs_now_delayed_or_by_a_timer() {
        let request = JobRequest {
            job_type: "t".into(),
            payload: json!({}),
            callback_url: None,
        };
        let now = 1_000_000;
        let job = |delay_ms: i64| {
            JobRecord::new_queued(JobId::random(), "a", &request, now, 1)
                .delayed_until(now + delay_ms)
        };
        assert_eq!(Departure::of(&job(0), now), Departure::Now);
        assert_eq!(Departure::of(&job(1), now), Departure::Delayed(1));
        assert_eq!(Departure::of(&job(900_000), now), Departure::Delayed(900));
        assert_eq!(
            Departure::of(&job(900_001), now),
            Departure::Timer(now + 900_001)
        );
        assert_eq!(
            Departure::of(&job(900_001), now + 1),
            Departure::Delayed(900),
            "it comes due as time passes"
        );
        let timer = job_timer(JobId::random(), 1_500);
        assert_eq!(timer.timing, TimerTiming::Once { at_ms: 2_000 });
    }
}

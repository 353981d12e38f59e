//! Waiting for a job to finish: [`Client::wait`] polls `GET /jobs/{id}`
//! with backoff ([`WaitOptions`]: from 0.5 s, ×1.5 a poll, at most 5 s
//! apart) until the job is `succeeded`, `failed` or `cancelled`, or the
//! overall timeout passes, handing each poll's job to a callback (a
//! progress bar, a log line). Each poll is an ordinary call, retried as the
//! client's [`RetryPolicy`](crate::RetryPolicy) says.

use crate::client::{Client, RawJson, job_status};
use crate::error::ClientError;
use crate::types::Job;
use jobline_core::{JobId, JobState};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// How [`Client::wait`] polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitOptions {
    /// How long to wait in all (one poll is always made): 5 minutes by default.
    pub timeout: Duration,
    /// The interval after the first poll: 0.5 s by default.
    pub first_interval: Duration,
    /// Each interval is the last one times this: 1.5 by default.
    pub factor: f64,
    /// The longest interval (or `first_interval`, if longer): 5 s by default.
    pub max_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5 * 60),
            first_interval: Duration::from_millis(500),
            factor: 1.5,
            max_interval: Duration::from_secs(5),
        }
    }
}

impl WaitOptions {
    /// The default polling, giving up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// The interval after `interval`.
    fn next(&self, interval: Duration) -> Duration {
        let cap = self.max_interval.max(self.first_interval);
        interval.mul_f64(self.factor.max(1.0)).min(cap)
    }
}

/// How a wait ended; `J` is the job ([`Job`], or its JSON from
/// [`RawJson::wait`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Waited<J = Job> {
    /// The job reached a final status; `job` is its last poll.
    Finished { job: J, status: JobState },
    /// The timeout passed first; `job` is the last poll.
    TimedOut { job: J, status: JobState },
}

impl<J> Waited<J> {
    /// The job as last polled.
    pub fn job(&self) -> &J {
        match self {
            Self::Finished { job, .. } | Self::TimedOut { job, .. } => job,
        }
    }

    /// The job as last polled.
    pub fn into_job(self) -> J {
        match self {
            Self::Finished { job, .. } | Self::TimedOut { job, .. } => job,
        }
    }

    /// The job's status at the last poll.
    pub fn status(&self) -> JobState {
        match self {
            Self::Finished { status, .. } | Self::TimedOut { status, .. } => *status,
        }
    }
}

impl Client {
    /// Polls the job until it is `succeeded`, `failed` or `cancelled`, or
    /// `options.timeout` passes; `polled` sees each poll's job first. An
    /// error (after the call's retries) ends the wait.
    ///
    /// ```no_run
    /// # async fn example(client: &jobline_client::Client, id: jobline_client::JobId)
    /// # -> Result<(), jobline_client::ClientError> {
    /// use jobline_client::{WaitOptions, Waited};
    /// use std::time::Duration;
    /// let options = WaitOptions::with_timeout(Duration::from_secs(60));
    /// let waited = client
    ///     .wait(id, &options, |job| {
    ///         if let Some(progress) = &job.progress {
    ///             eprintln!("{:>3.0}% {}", progress.fraction * 100.0, progress.message);
    ///         }
    ///     })
    ///     .await?;
    /// match waited {
    ///     Waited::Finished { job, .. } => println!("{}: {:?}", job.status, job.result),
    ///     Waited::TimedOut { status, .. } => println!("still {status}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait(
        &self,
        id: JobId,
        options: &WaitOptions,
        polled: impl FnMut(&Job),
    ) -> Result<Waited, ClientError> {
        let poll = async || {
            let job = self.status(id).await?;
            let status = job.status;
            Ok((job, status))
        };
        poll_until_finished(options, poll, polled).await
    }
}

impl RawJson<'_> {
    /// [`Client::wait`], with the job's JSON.
    pub async fn wait(
        &self,
        id: JobId,
        options: &WaitOptions,
        polled: impl FnMut(&Value),
    ) -> Result<Waited<Value>, ClientError> {
        let poll = async || {
            let job = self.status(id).await?;
            let status = job_status(&job)?;
            Ok((job, status))
        };
        poll_until_finished(options, poll, polled).await
    }
}

/// Polls with `poll` (the job and its status) until the status is final or
/// the timeout passes.
async fn poll_until_finished<J>(
    options: &WaitOptions,
    mut poll: impl AsyncFnMut() -> Result<(J, JobState), ClientError>,
    mut polled: impl FnMut(&J),
) -> Result<Waited<J>, ClientError> {
    let deadline = Instant::now() + options.timeout;
    let mut interval = options.first_interval;
    loop {
        let (job, status) = poll().await?;
        polled(&job);
        if status.is_finished() {
            return Ok(Waited::Finished { job, status });
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Waited::TimedOut { job, status });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = options.next(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_grow_by_half_up_to_five_seconds() {
        let options = WaitOptions::default();
        let mut interval = options.first_interval;
        let mut intervals = vec![interval.as_millis()];
        for _ in 0..8 {
            interval = options.next(interval);
            intervals.push(interval.as_millis());
        }
        assert_eq!(
            intervals,
            [500, 750, 1125, 1687, 2531, 3796, 5000, 5000, 5000]
        );
        let slow = WaitOptions {
            first_interval: Duration::from_secs(10),
            ..WaitOptions::default()
        };
        assert_eq!(slow.next(slow.first_interval), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_polls_until_a_final_status_or_its_timeout() {
        let statuses = [JobState::Queued, JobState::Running, JobState::Succeeded];
        let mut polls = 0;
        let mut seen = Vec::new();
        let started = Instant::now();
        let waited = poll_until_finished(
            &WaitOptions::default(),
            async || {
                polls += 1;
                Ok((polls, statuses[polls - 1]))
            },
            |job| seen.push(*job),
        )
        .await
        .unwrap();
        assert_eq!(
            waited,
            Waited::Finished {
                job: 3,
                status: JobState::Succeeded
            }
        );
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(started.elapsed(), Duration::from_millis(500 + 750));

        let started = Instant::now();
        let waited = poll_until_finished(
            &WaitOptions::with_timeout(Duration::from_secs(2)),
            async || Ok(((), JobState::Running)),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(waited.status(), JobState::Running);
        assert!(matches!(waited, Waited::TimedOut { .. }));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}

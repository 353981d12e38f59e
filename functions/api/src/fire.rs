//! The fire function's work: what a timer's fire does. EventBridge
//! Scheduler (deployed) or `jobline-local` (locally) invokes it with the
//! timer's input ([`FireInput`]), at least once per fire.
//!
//! - A delayed job's timer sends its message, if the job is still
//!   `scheduled` (a cancelled job, or one a worker took, sends nothing; one
//!   queued by a run-now whose send failed is sent). A fire up to a minute
//!   early, as `at()` schedules may be, sends the message delayed until the
//!   job is due: never early (the worker delays it again, 15 minutes at a
//!   time, should a fire ever come earlier still). It is not refused by the
//!   backlog bound: the job was accepted with its 202. So the fire function
//!   writes no timer, and needs no right to.
//! - A schedule's fire creates one job through the same path as `POST
//!   /jobs` (validation, budgets, the backlog bound, write then send), with
//!   an id derived from the schedule and the fire's scheduled time
//!   ([`fire_job_id`]), so a duplicate fire finds its job and creates
//!   nothing. What the fire came to is recorded on the schedule: fired,
//!   skipped by its overlap policy, or refused (with the reason). A fire
//!   whose schedule record is gone deletes its timer (an orphan, left by a
//!   create whose record write failed). A fire before the schedule's
//!   `activeFrom` (it was resumed or re-timed since) does nothing.
//!
//! A fire that could not reach the store or the queue is an error, so Lambda
//! retries it (twice) and then hands it to the on-failure destination,
//! whose alarm an operator sees; a job it wrote meanwhile is bounded by the
//! sweeper like any other.

use crate::dispatch::Departure;
use crate::{Api, ApiError};
use jobline_core::limits::SQS_MAX_DELAY_SECS;
use jobline_core::schedule::{
    FireOutcome, LastFire, Overlap, ScheduleId, ScheduleRecord, fire_job_id, timer_name,
};
use jobline_core::spans::{Span, SpanKind, SpanStatus};
use jobline_core::timers::SCHEDULED_TIME;
use jobline_core::trace_context::TraceContext;
use jobline_core::{JobId, JobMessage, JobRecord, JobRequest, JobState, Metric, Metrics};
use serde::{Deserialize, Serialize};

/// A timer's input: what the fire function is invoked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FireInput {
    /// A delayed job's timer.
    #[serde(rename_all = "camelCase")]
    Job { job_id: JobId },
    /// A schedule's fire, at `scheduled_time` (RFC 3339, from
    /// [`SCHEDULED_TIME`]).
    #[serde(rename_all = "camelCase")]
    Schedule {
        owner: String,
        schedule_id: String,
        scheduled_time: String,
    },
}

impl FireInput {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The input of `schedule`'s recurring timer, with the scheduled time
    /// left for the engine to fill in.
    pub fn of_schedule(schedule: &ScheduleRecord) -> Self {
        Self::Schedule {
            owner: schedule.owner.clone(),
            schedule_id: schedule.id.to_string(),
            scheduled_time: SCHEDULED_TIME.to_owned(),
        }
    }
}

/// What one fire did, for the logs and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// A delayed job's message was sent (delayed this many seconds).
    Sent { job_id: JobId, delay_secs: u32 },
    /// A delayed job no longer waits (cancelled, run now, gone): nothing sent.
    NotWaiting { job_id: JobId },
    /// A schedule's fire created, or found, its job.
    Created { job_id: JobId },
    /// A schedule's fire was skipped by its overlap policy.
    Skipped,
    /// A schedule's fire created no job, for this reason (recorded).
    Refused { reason: String },
    /// A fire from before the schedule's `activeFrom`, or of a paused one.
    Inactive,
    /// The schedule is gone; its timer was deleted.
    Orphan,
}

/// Why a fire failed and should be tried again.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error("not a fire input: {0}")]
    Input(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for FireError {
    fn from(error: ApiError) -> Self {
        Self::Unavailable(
            error
                .detail()
                .map_or_else(|| error.to_string(), str::to_owned),
        )
    }
}

impl Api {
    /// Handles one fire of a timer whose input is `input`.
    pub async fn fire(&self, input: &str, metrics: &mut Metrics) -> Result<Fired, FireError> {
        let input: FireInput =
            serde_json::from_str(input).map_err(|e| FireError::Input(e.to_string()))?;
        let fired = match input {
            FireInput::Job { job_id } => self.fire_job(job_id).await?,
            FireInput::Schedule {
                owner,
                schedule_id,
                scheduled_time,
            } => {
                let id: ScheduleId = schedule_id
                    .parse()
                    .map_err(|_| FireError::Input("not a schedule id".into()))?;
                let at = scheduled_time
                    .parse::<jiff::Timestamp>()
                    .map_err(|_| FireError::Input(format!("scheduledTime {scheduled_time:?}")))?
                    .as_millisecond();
                self.fire_schedule(&owner, id, at, metrics).await?
            }
        };
        tracing::info!(fired = ?fired, "fire");
        Ok(fired)
    }

    async fn fire_job(&self, job_id: JobId) -> Result<Fired, FireError> {
        let Some(job) = self.store.get(job_id).await.map_err(ApiError::from)? else {
            return Ok(Fired::NotWaiting { job_id });
        };
        let mut span = Span::start("fire", SpanKind::Consumer, job.traceparent.as_ref())
            .for_job(job.id, &job.job_type);
        let fired = self.send_fired(&job).await;
        span.status(match &fired {
            Ok(_) => SpanStatus::Ok,
            Err(_) => SpanStatus::Error("unavailable".to_owned()),
        });
        span.end();
        fired
    }

    /// Sends delayed job `job` to the queue when its timer fires, if it
    /// is still waiting for it.
    async fn send_fired(&self, job: &JobRecord) -> Result<Fired, FireError> {
        let job_id = job.id;
        // Scheduled; or queued by a run-now whose own send failed (its
        // client may never retry): a duplicate of a job not yet started
        // only costs the worker a refused claim.
        let waiting = job.state == JobState::Scheduled
            || (job.state == JobState::Queued && job.attempts == 0 && !job.enqueue_failed);
        if !waiting {
            return Ok(Fired::NotWaiting { job_id });
        }
        let message = JobMessage::of(job);
        let queue_error = |e: jobline_core::QueueError| FireError::Unavailable(e.to_string());
        let delay_secs = match Departure::of(job, self.clock.now_ms()) {
            Departure::Now => {
                self.queue.send(&message).await.map_err(queue_error)?;
                0
            }
            Departure::Delayed(secs) => {
                self.queue
                    .send_delayed(&message, secs)
                    .await
                    .map_err(queue_error)?;
                secs
            }
            // Far too early (the service fires within a minute): the
            // longest delay, and the worker delays it again until it is due.
            Departure::Timer(_) => {
                self.queue
                    .send_delayed(&message, SQS_MAX_DELAY_SECS)
                    .await
                    .map_err(queue_error)?;
                SQS_MAX_DELAY_SECS
            }
        };
        Ok(Fired::Sent { job_id, delay_secs })
    }

    async fn fire_schedule(
        &self,
        owner: &str,
        id: ScheduleId,
        scheduled_at: i64,
        metrics: &mut Metrics,
    ) -> Result<Fired, FireError> {
        let schedules = self.schedules()?;
        let Some(schedule) = schedules
            .store
            .get(owner, id)
            .await
            .map_err(ApiError::from)?
        else {
            if let Some(timers) = &self.timers {
                timers
                    .delete(&timer_name(id))
                    .await
                    .map_err(ApiError::from)?;
            }
            return Ok(Fired::Orphan);
        };
        // Scheduled times are whole seconds: compared at that grain.
        if schedule.paused || scheduled_at < schedule.active_from.div_euclid(1000) * 1000 {
            return Ok(Fired::Inactive);
        }
        let job_id = fire_job_id(id, scheduled_at);
        let job_type = schedule.spec.job_type.clone();
        if schedule.spec.overlap == Overlap::Skip
            && self.previous_unfinished(&schedule, job_id).await?
        {
            metrics.count(&job_type, Metric::ScheduleFiresSkipped);
            self.record_fire(&schedule, FireOutcome::Skipped { scheduled_at })
                .await?;
            return Ok(Fired::Skipped);
        }
        match self
            .fire_into_job(&schedule, scheduled_at, None, metrics)
            .await
        {
            Ok(job) => {
                let fire = LastFire {
                    scheduled_at,
                    job_id: job.id,
                };
                self.record_fire(&schedule, FireOutcome::Fired(fire))
                    .await?;
                Ok(Fired::Created { job_id: job.id })
            }
            // The schedule's payload changed between two deliveries of one
            // fire: the job is there, made by the first.
            Err(ApiError::IdempotencyKeyReused) => Ok(Fired::Created { job_id }),
            Err(error) => {
                metrics.count(&job_type, Metric::ScheduleFireFailures);
                let reason = error.to_string();
                // Recorded either way, so the caller sees it; retried only
                // when another try may succeed.
                let recorded = self
                    .record_fire(
                        &schedule,
                        FireOutcome::Refused {
                            scheduled_at,
                            reason: reason.clone(),
                        },
                    )
                    .await;
                if error.status().is_server_error() {
                    return Err(error.into());
                }
                recorded?;
                Ok(Fired::Refused { reason })
            }
        }
    }

    /// Whether the job of `schedule`'s last fire (not this one's) is
    /// still unfinished.
    pub(crate) async fn previous_unfinished(
        &self,
        schedule: &ScheduleRecord,
        this_fire: JobId,
    ) -> Result<bool, ApiError> {
        let Some(last) = schedule.last_fire.filter(|last| last.job_id != this_fire) else {
            return Ok(false);
        };
        let previous = self.store.get(last.job_id).await?;
        Ok(previous.is_some_and(|job| !job.state.is_finished()))
    }

    /// Creates (or finds) the one job of `schedule`'s fire at
    /// `scheduled_at` through `POST /jobs`'s path, and counts the fire: a
    /// scheduled fire's and a trigger's. Its `fire` span is the job's
    /// `submit`: a child of `caller` (a trigger's `traceparent`), or the
    /// root of a trace of the job's own (a timer's fire carries none).
    pub(crate) async fn fire_into_job(
        &self,
        schedule: &ScheduleRecord,
        scheduled_at: i64,
        caller: Option<&TraceContext>,
        metrics: &mut Metrics,
    ) -> Result<JobRecord, ApiError> {
        let mut job = self.fire_job_record(
            schedule,
            fire_job_id(schedule.id, scheduled_at),
            scheduled_at,
        );
        let mut span =
            Span::start("fire", SpanKind::Consumer, caller).for_job(job.id, &job.job_type);
        span.text("scheduleId", schedule.id.to_string());
        job.traceparent = Some(span.context());
        let accepted = self.accept(job, true, metrics).await;
        span.status(match &accepted {
            Ok(_) => SpanStatus::Ok,
            Err(error) if error.status().is_server_error() => {
                SpanStatus::Error(error.code().to_owned())
            }
            Err(_) => SpanStatus::Unset,
        });
        span.end();
        let job = accepted?;
        metrics.count(&schedule.spec.job_type, Metric::ScheduleFires);
        Ok(job)
    }

    /// The job `schedule`'s fire at `scheduled_at` creates.
    fn fire_job_record(
        &self,
        schedule: &ScheduleRecord,
        id: JobId,
        scheduled_at: i64,
    ) -> JobRecord {
        let request = JobRequest {
            job_type: schedule.spec.job_type.clone(),
            payload: schedule.spec.payload.clone(),
            callback_url: schedule.spec.callback_url.clone(),
        };
        let mut job = JobRecord::new_queued(
            id,
            &schedule.owner,
            &request,
            self.clock.now_ms(),
            self.retention_days,
        );
        job.schedule_id = Some(schedule.id.to_string());
        job.run_at = Some(scheduled_at);
        job
    }

    pub(crate) async fn record_fire(
        &self,
        schedule: &ScheduleRecord,
        outcome: FireOutcome,
    ) -> Result<(), ApiError> {
        match self
            .schedules()?
            .store
            .record_fire(&schedule.owner, schedule.id, &outcome)
            .await
        {
            // Deleted since it was read: nothing to record on.
            Ok(()) | Err(jobline_core::schedule::ScheduleStoreError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

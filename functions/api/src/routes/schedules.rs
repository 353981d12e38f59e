//! The caller's schedules: `POST /schedules`, `GET /schedules`,
//! `GET`, `PATCH` and `DELETE /schedules/{id}`, and `POST
//! /schedules/{id}/pause`, `/resume` and `/trigger`. Another caller's
//! schedule is the same 404 as a missing one (the table is keyed by owner).
//!
//! Each schedule is two things kept in step: its record (the schedules
//! table) and its recurring timer (EventBridge Scheduler). The order of the
//! two writes is chosen so that a half-failed change heals:
//!
//! - **Create**: the timer first, then the record. If the record's write
//!   fails, the timer is deleted; if that fails too, the timer is an
//!   orphan, which deletes itself at its first fire (the fire finds no
//!   record). Either way the caller got an error and no job is created.
//! - **Change** (PATCH, pause, resume): the record first (conditional on
//!   its version), then the timer, when the timing or the state changed. If
//!   the timer's write fails, the caller gets a 503 and retries the same
//!   request, which writes both again.
//! - **Delete**: the record first, then the timer; a timer left behind is
//!   an orphan as above.
//!
//! The per-caller bound is a count of the caller's partition before the
//! create; two creates at once may pass it by one each (say so rather than
//! pay a transaction on every create).

use crate::error::ApiError;
use crate::fire::FireInput;
use crate::identity::caller;
use crate::routes::submit::caller_context;
use crate::schedule_request::{check_spec, schedule_patch, schedule_spec, schedule_view};
use crate::{Api, fresh_json, listing};
use http::StatusCode;
use http::header::LOCATION;
use jobline_core::schedule::{
    FireOutcome, LastFire, Overlap, ScheduleId, ScheduleRecord, ScheduleStoreError, fire_job_id,
    timer_name,
};
use jobline_core::timers::{Timer, TimerTiming};
use jobline_core::trace_context::TraceContext;
use jobline_core::{JobRecord, Metrics};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

/// The recurring timer of `schedule`.
pub(crate) fn schedule_timer(schedule: &ScheduleRecord) -> Timer {
    Timer {
        name: schedule.timer_name(),
        timing: TimerTiming::Recurring {
            expression: schedule.spec.expression.clone(),
            timezone: schedule.spec.timezone.clone(),
        },
        input: FireInput::of_schedule(schedule).to_json(),
        enabled: !schedule.paused,
    }
}

impl Api {
    /// The caller's schedule `id`: 404 when it is missing or another's.
    async fn own_schedule(&self, request: &Request, id: &str) -> Result<ScheduleRecord, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let id: ScheduleId = id.parse().map_err(|_| ApiError::ScheduleNotFound)?;
        self.schedule_of(&owner, id).await
    }

    /// `owner`'s schedule `id` (the API's and the console's): 404 when
    /// there is none.
    pub async fn schedule_of(
        &self,
        owner: &str,
        id: ScheduleId,
    ) -> Result<ScheduleRecord, ApiError> {
        self.schedules()?
            .store
            .get(owner, id)
            .await?
            .ok_or(ApiError::ScheduleNotFound)
    }

    fn schedule_answer(
        &self,
        request: &Request,
        status: StatusCode,
        schedule: &ScheduleRecord,
    ) -> Result<Response<Body>, ApiError> {
        let base = self.public_base(request);
        let view = schedule_view(schedule, self.clock.now_ms(), &base);
        let mut response = fresh_json(status);
        if status == StatusCode::CREATED {
            response = response.header(LOCATION, format!("{base}/schedules/{}", schedule.id));
        }
        response
            .body(Body::from(view.to_string()))
            .map_err(ApiError::internal)
    }

    /// `POST /schedules`: 201 with the schedule.
    pub(crate) async fn create_schedule(
        &self,
        request: &Request,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let schedules = self.schedules()?;
        let timers = self.timers()?;
        let callbacks = self.webhook_keys.is_some().then_some(self.callback_policy);
        let spec = schedule_spec(request.body().as_ref(), callbacks)?;
        check_spec(&spec, &self.job_types)?;
        let limit = self
            .caller_limits
            .max_schedules(&owner, schedules.max_per_caller);
        if schedules.store.count(&owner, limit).await? >= limit {
            return Err(ApiError::TooManySchedules { limit });
        }
        let schedule = ScheduleRecord::new(&owner, spec, self.clock.now_ms());
        timers.put(&schedule_timer(&schedule)).await?;
        if let Err(error) = schedules.store.create(&schedule).await {
            if let Err(undo) = timers.delete(&schedule.timer_name()).await {
                tracing::warn!(%undo, "an orphan timer is left; its first fire deletes it");
            }
            return Err(error.into());
        }
        self.schedule_answer(request, StatusCode::CREATED, &schedule)
    }

    /// `GET /schedules?limit=&cursor=`: a page of the caller's schedules,
    /// by id; `cursor` is the `nextCursor` of the page before.
    pub(crate) async fn list_schedules(
        &self,
        request: &Request,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let (limit, after) = list_query(request.uri().query().unwrap_or_default())?;
        let page = self.schedules()?.store.list(&owner, after, limit).await?;
        let base = self.public_base(request);
        let now = self.clock.now_ms();
        let body = json!({
            "schedules": page.schedules.iter().map(|s| schedule_view(s, now, &base)).collect::<Vec<Value>>(),
            "nextCursor": page.next.map(|id| id.to_string()),
        });
        fresh_json(StatusCode::OK)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }

    /// `GET /schedules/{id}`: the schedule, its next five fires and its last.
    pub(crate) async fn show_schedule(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let schedule = self.own_schedule(request, id).await?;
        self.schedule_answer(request, StatusCode::OK, &schedule)
    }

    /// Writes `next` (the record, then the timer) over `current`.
    async fn change_schedule(
        &self,
        current: &ScheduleRecord,
        next: ScheduleRecord,
    ) -> Result<ScheduleRecord, ApiError> {
        let next = ScheduleRecord {
            version: current.version + 1,
            updated_at: self.clock.now_ms(),
            ..next
        };
        match self.schedules()?.store.update(&next).await {
            Ok(()) => {}
            Err(ScheduleStoreError::Conflict { current: None }) => {
                return Err(ApiError::ScheduleNotFound);
            }
            Err(ScheduleStoreError::Conflict { .. }) => return Err(ApiError::ScheduleChanged),
            Err(error) => return Err(error.into()),
        }
        // The timer holds the timing and the state only (its input names
        // the schedule): a new payload, callback or overlap leaves it be, and
        // a `rate(…)` keeps counting from when it was last timed.
        let retimed = next.spec.expression != current.spec.expression
            || next.spec.timezone != current.spec.timezone
            || next.paused != current.paused;
        if retimed {
            self.timers()?.put(&schedule_timer(&next)).await?;
        }
        Ok(next)
    }

    /// `PATCH /schedules/{id}`: changes the fields given; a new expression
    /// or zone counts from now (no catch-up).
    pub(crate) async fn patch_schedule(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let current = self.own_schedule(request, id).await?;
        let callbacks = self.webhook_keys.is_some().then_some(self.callback_policy);
        let patch = schedule_patch(request.body().as_ref(), callbacks)?;
        let (spec, retimed) = patch.apply(&current.spec);
        check_spec(&spec, &self.job_types)?;
        let active_from = if retimed {
            self.clock.now_ms()
        } else {
            current.active_from
        };
        let next = ScheduleRecord {
            spec,
            active_from,
            ..current.clone()
        };
        let changed = self.change_schedule(&current, next).await?;
        self.schedule_answer(request, StatusCode::OK, &changed)
    }

    /// `POST /schedules/{id}/pause` and `/resume`.
    pub(crate) async fn pause_schedule(
        &self,
        request: &Request,
        id: &str,
        paused: bool,
    ) -> Result<Response<Body>, ApiError> {
        let current = self.own_schedule(request, id).await?;
        let changed = self.set_paused(&current, paused).await?;
        self.schedule_answer(request, StatusCode::OK, &changed)
    }

    /// Pauses or resumes `current` (the API's and the console's): a paused
    /// schedule fires nothing; a resumed one fires from now on, with no
    /// catch-up.
    pub async fn set_paused(
        &self,
        current: &ScheduleRecord,
        paused: bool,
    ) -> Result<ScheduleRecord, ApiError> {
        let active_from = if !paused && current.paused {
            self.clock.now_ms()
        } else {
            current.active_from
        };
        let next = ScheduleRecord {
            paused,
            active_from,
            ..current.clone()
        };
        self.change_schedule(current, next).await
    }

    /// `DELETE /schedules/{id}`: 204; its jobs stay.
    pub(crate) async fn delete_schedule(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let schedule = self.own_schedule(request, id).await?;
        self.remove_schedule(&schedule).await?;
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Body::Empty)
            .map_err(ApiError::internal)
    }

    /// Deletes `schedule`, the record and then its timer (the API's and the
    /// console's); its jobs stay.
    pub async fn remove_schedule(&self, schedule: &ScheduleRecord) -> Result<(), ApiError> {
        if !self
            .schedules()?
            .store
            .delete(&schedule.owner, schedule.id)
            .await?
        {
            return Err(ApiError::ScheduleNotFound);
        }
        if let Err(error) = self.timers()?.delete(&timer_name(schedule.id)).await {
            tracing::warn!(%error, "the timer is left; its first fire deletes it");
        }
        Ok(())
    }

    /// `POST /schedules/{id}/trigger`: 202 with the job, as `POST /jobs`
    /// answers.
    pub(crate) async fn trigger_schedule(
        &self,
        request: &Request,
        id: &str,
        metrics: &mut Metrics,
    ) -> Result<Response<Body>, ApiError> {
        let schedule = self.own_schedule(request, id).await?;
        let caller = caller_context(request);
        let job = self.trigger(&schedule, caller.as_ref(), metrics).await?;
        self.accepted(request, &job)
    }

    /// Fires `schedule` once now, paused or not (the API's and the
    /// console's): its job, in `caller`'s trace if given, else in one of its
    /// own; 409 when its overlap policy skips it.
    pub async fn trigger(
        &self,
        schedule: &ScheduleRecord,
        caller: Option<&TraceContext>,
        metrics: &mut Metrics,
    ) -> Result<JobRecord, ApiError> {
        let at = self.clock.now_ms() / 1000 * 1000;
        if schedule.spec.overlap == Overlap::Skip
            && self
                .previous_unfinished(schedule, fire_job_id(schedule.id, at))
                .await?
        {
            return Err(ApiError::ScheduleOverlap);
        }
        let job = self.fire_into_job(schedule, at, caller, metrics).await?;
        let fire = FireOutcome::Fired(LastFire {
            scheduled_at: at,
            job_id: job.id,
        });
        if let Err(error) = self.record_fire(schedule, fire).await {
            tracing::warn!(?error, "the trigger's job was created; recording it failed");
        }
        Ok(job)
    }
}

/// `GET /schedules`' `limit` (1 to 100, default 20) and `cursor`.
fn list_query(query: &str) -> Result<(usize, Option<ScheduleId>), ApiError> {
    let mut limit = 20;
    let mut after = None;
    let mut seen = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if seen.contains(&name) {
            return Err(ApiError::InvalidQuery(format!(
                "{name} is given more than once"
            )));
        }
        seen.push(name);
        match name {
            "limit" => limit = listing::limit(value)?,
            "cursor" => after = Some(value.parse().map_err(|_| ApiError::InvalidCursor)?),
            _ => {
                return Err(ApiError::InvalidQuery(
                    "unknown parameter; GET /schedules takes limit and cursor".to_owned(),
                ));
            }
        }
    }
    Ok((limit, after))
}

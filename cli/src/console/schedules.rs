//! The console's schedules: every caller's schedules, a page at a time
//! ([`ScheduleStore::list_all`]), and one schedule with its next five
//! fires, its last fire, its counts and its last refusal, with pause,
//! resume, trigger and delete (`schedule_actions.rs`).
//!
//! Those actions, and a scheduled job's Run now, go through the API's own
//! code ([`Scheduling::api`]: `Api::set_paused`, `trigger`,
//! `remove_schedule`, `run_job_now`), so the console does exactly what the
//! API does: the record first, then the timer, each write conditional on
//! the version it read. A schedule is shown as `GET /schedules/{id}` shows
//! it ([`schedule_view`]): the same next fires, the same words.
//!
//! The schedule parts exist only when the configuration has schedules
//! (`SCHEDULES_TABLE` and `SCHEDULE_GROUP`); without them the Schedules
//! page says so.

use super::html::{self, Section, encode, job_link, json_block, time};
use super::pages::source;
use super::{ConsoleError, Reply};
use aws_config::SdkConfig;
use http::StatusCode;
use jobline_api::{Api, ApiError, schedule_view};
use jobline_core::Config;
use jobline_core::schedule::{ScheduleId, ScheduleRecord, ScheduleStore};
use jobline_core::timers::Timers;
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::schedules::DynamoScheduleStore;
use jobline_scheduler::{EventBridgeTimers, TimerTarget};
use jobline_sqs::SqsJobQueue;
use maud::{Markup, html};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The schedules a page of the Schedules page shows.
pub const SCHEDULE_ROWS: usize = 25;

/// What the console's schedule pages and its Run now act through.
#[derive(Debug, Clone)]
pub struct Scheduling {
    /// The API's code, on the operator's credentials: with the timers and
    /// the schedules where they are configured.
    pub api: Arc<Api>,
    /// Every caller's schedules (the operators' listing); `None`:
    /// schedules are not enabled.
    pub schedules: Option<Arc<dyn ScheduleStore>>,
    /// The timers, to delete a cancelled delayed job's one-time timer as
    /// the API's cancel does; `None` without a scheduler.
    pub timers: Option<Arc<dyn Timers>>,
}

impl Scheduling {
    /// The parts `config` names, over clients of `sdk` (the operator's
    /// own): the API as its function builds it (the jobs table, the queue
    /// and its depth) and, with schedules, their timers on EventBridge
    /// Scheduler and their table.
    ///
    /// Its job types are every type the deployment's code has, demonstration
    /// ones included: a trigger creates a job of a type the API checked when
    /// the schedule was created, and the operator's shell need not repeat
    /// the stack's `DEMO_JOB_TYPES` for the console to fire it.
    pub fn from_sdk(sdk: &SdkConfig, config: &Config) -> Self {
        let queue = Arc::new(SqsJobQueue::from_sdk(sdk, &config.queue_url));
        let mut api = Api::new(
            Arc::new(DynamoJobStore::from_sdk(sdk, config)),
            queue.clone(),
            jobline_jobs::registry(true),
            config,
        )
        .with_queue_depth(queue);
        let (mut schedules, mut timers) = (None, None);
        if let Some(settings) = &config.schedules {
            let engine: Arc<dyn Timers> =
                Arc::new(EventBridgeTimers::from_sdk(sdk, TimerTarget::of(settings)));
            let store: Arc<dyn ScheduleStore> = Arc::new(DynamoScheduleStore::from_sdk(
                sdk,
                settings.table_name.clone(),
            ));
            api = api
                .with_timers(engine.clone())
                .with_schedules(store.clone(), settings.max_per_caller);
            (schedules, timers) = (Some(store), Some(engine));
        }
        Self {
            api: Arc::new(api),
            schedules,
            timers,
        }
    }
}

/// The schedule parts and the store, or the page that says schedules are
/// not enabled.
pub(super) fn enabled(
    scheduling: Option<&Scheduling>,
) -> Result<(&Scheduling, &Arc<dyn ScheduleStore>), Reply> {
    match scheduling.and_then(|s| s.schedules.as_ref().map(|store| (s, store))) {
        Some(enabled) => Ok(enabled),
        None => Err(Reply::ok(html::page(
            "Schedules",
            Section::Schedules,
            html! {
                p.notice data-schedules-disabled {
                    "Schedules are not enabled: the configuration has no schedules table and \
                     schedule group (SCHEDULES_TABLE and SCHEDULE_GROUP, the stack outputs \
                     SchedulesTableName and ScheduleGroupName). Set them and start the console again."
                }
            },
        ))),
    }
}

/// The page of `owner`'s schedule `id`.
pub(super) fn schedule_href(owner: &str, id: ScheduleId) -> String {
    format!("/schedules/{id}?owner={}", encode(owner))
}

/// The confirmation of `action` on `schedule`.
fn action_href(action: &str, schedule: &ScheduleRecord) -> String {
    format!(
        "/confirm?action={action}&schedule={}&owner={}",
        schedule.id,
        encode(&schedule.owner)
    )
}

/// An RFC 3339 time of a schedule's view, in ms.
fn ms(at: &Value) -> Option<i64> {
    at.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|at| at.as_millisecond())
}

/// A time as read in the schedule's `zone` (`2027-03-01 09:00 CET`), then
/// relative to now; or relative only when the zone is unknown.
fn zoned(ms: Option<i64>, zone: &str, now: i64) -> Markup {
    let local = ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .and_then(|at| at.in_tz(zone).ok())
        .map(|at| at.strftime("%Y-%m-%d %H:%M %Z").to_string());
    html! {
        @if let Some(local) = local { (local) " (" (time(ms, now)) ")" } @else { (time(ms, now)) }
    }
}

/// Whether a schedule is paused, as a badge.
pub(super) fn paused_badge(schedule: &ScheduleRecord) -> Markup {
    let name = if schedule.paused { "paused" } else { "active" };
    html! { span class={ "state " (name) } data-paused=(schedule.paused) { (name) } }
}

/// The Schedules page: every caller's schedules, by caller and id, a page
/// at a time.
pub async fn list(
    scheduling: Option<&Scheduling>,
    query: &HashMap<String, String>,
    now: i64,
) -> Result<Reply, ConsoleError> {
    let store = match enabled(scheduling) {
        Ok((_, store)) => store,
        Err(reply) => return Ok(reply),
    };
    let after = match (query.get("after_owner"), query.get("after_id")) {
        (Some(owner), Some(id)) => match id.parse::<ScheduleId>() {
            Ok(id) => Some((owner.clone(), id)),
            Err(_) => {
                return Ok(Reply::error(
                    StatusCode::BAD_REQUEST,
                    "Not a schedule id",
                    "The page's cursor is not a schedule id: start again from the first page.",
                ));
            }
        },
        _ => None,
    };
    let (schedules, next) = store.list_all(after, SCHEDULE_ROWS).await?;
    let next =
        next.map(|(owner, id)| format!("/schedules?after_owner={}&after_id={id}", encode(&owner)));
    let body = html! {
        @if schedules.is_empty() {
            p.empty { "No schedule." }
        } @else {
            table.jobs {
                thead {
                    tr {
                        th scope="col" { "Schedule" }
                        th scope="col" { "Caller" }
                        th scope="col" { "Expression" }
                        th scope="col" { "Zone" }
                        th scope="col" { "Type" }
                        th scope="col" { "Next fire" }
                        th scope="col" { "Last fire" }
                        th scope="col" { "State" }
                        th scope="col" class="num" { "Fired / skipped / refused" }
                    }
                }
                tbody {
                    @for schedule in &schedules {
                        @let view = schedule_view(schedule, now, "");
                        tr data-schedule=(schedule.id) {
                            td { a href=(schedule_href(&schedule.owner, schedule.id)) { code { (schedule.id) } } }
                            td { (schedule.owner) }
                            td {
                                code { (schedule.spec.expression) } br;
                                span data-description { (view["description"].as_str().unwrap_or("")) }
                            }
                            td { (schedule.spec.timezone) }
                            td { (schedule.spec.job_type) }
                            td data-next-fire { (time(ms(&view["nextFires"][0]), now)) }
                            td data-last-fire {
                                @if let Some(fire) = schedule.last_fire {
                                    (time(Some(fire.scheduled_at), now)) " " (job_link(fire.job_id))
                                } @else { "–" }
                            }
                            td { (paused_badge(schedule)) }
                            td.num {
                                (schedule.counts.fired) " / " (schedule.counts.skipped) " / "
                                (schedule.counts.refused)
                            }
                        }
                    }
                }
            }
        }
        @if let Some(link) = next {
            p { a href=(link) rel="next" { "More schedules →" } }
        }
        (source(html! {
            "the schedules table, every caller's, read " (SCHEDULE_ROWS)
            " schedules a page (a scan, bounded per page); the next fires as "
            code { "GET /schedules/{id}" } " computes them."
        }))
    };
    Ok(Reply::ok(html::page("Schedules", Section::Schedules, body)))
}

/// The actions a schedule allows, as links to their confirmation.
fn schedule_actions(schedule: &ScheduleRecord) -> Markup {
    html! {
        p.actions {
            @if schedule.paused {
                a.button href=(action_href("resume", schedule)) { "Resume…" }
            } @else {
                a.button href=(action_href("pause", schedule)) { "Pause…" }
            }
            " "
            a.button href=(action_href("trigger", schedule)) { "Trigger now…" }
            " "
            a class="button danger" href=(action_href("delete", schedule)) { "Delete…" }
        }
    }
}

/// `owner`'s schedule `id` through the API's code, or the page that says
/// there is none.
pub(super) async fn schedule_of(
    scheduling: &Scheduling,
    owner: &str,
    id: &str,
) -> Result<Result<ScheduleRecord, Reply>, ConsoleError> {
    let missing = || {
        Reply::error(
            StatusCode::NOT_FOUND,
            "No such schedule",
            "No schedule of this caller has this id: it was never created, or was deleted.",
        )
    };
    let Ok(id) = id.parse::<ScheduleId>() else {
        return Ok(Err(missing()));
    };
    match scheduling.api.schedule_of(owner, id).await {
        Ok(schedule) => Ok(Ok(schedule)),
        Err(ApiError::ScheduleNotFound) => Ok(Err(missing())),
        Err(error) => Err(error.into()),
    }
}

/// One schedule: its definition, its next five fires, its last fire, what
/// its fires did, and its actions.
pub async fn show(
    scheduling: Option<&Scheduling>,
    id: &str,
    query: &HashMap<String, String>,
    now: i64,
) -> Result<Reply, ConsoleError> {
    let scheduling = match enabled(scheduling) {
        Ok((scheduling, _)) => scheduling,
        Err(reply) => return Ok(reply),
    };
    let Some(owner) = query.get("owner").filter(|owner| !owner.is_empty()) else {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            "Whose schedule?",
            "A schedule is its caller's: open it from the Schedules page.",
        ));
    };
    let schedule = match schedule_of(scheduling, owner, id).await? {
        Ok(schedule) => schedule,
        Err(reply) => return Ok(reply),
    };
    let view = schedule_view(&schedule, now, "");
    let fires = &view["fires"];
    let counts = &schedule.counts;
    let body = html! {
        (schedule_actions(&schedule))
        dl.fields {
            dt { "State" } dd { (paused_badge(&schedule)) }
            dt { "Caller" } dd { (schedule.owner) }
            dt { "Job type" } dd { (schedule.spec.job_type) }
            dt { "Expression" } dd { code data-expression { (schedule.spec.expression) } }
            dt { "In words" } dd data-description { (view["description"].as_str().unwrap_or("")) }
            dt { "Time zone" } dd { (schedule.spec.timezone) }
            dt { "Overlap" } dd { (schedule.spec.overlap.as_str()) }
            @if let Some(url) = &schedule.spec.callback_url {
                dt { "Webhook" } dd { (url) }
            }
            dt { "Created" } dd { (time(Some(schedule.created_at), now)) }
            dt { "Changed" } dd { (time(Some(schedule.updated_at), now)) }
            dt { "Next fires" }
            dd {
                @let next: Vec<Option<i64>> = view["nextFires"].as_array().into_iter().flatten().map(ms).collect();
                @if next.is_empty() {
                    "none while paused"
                } @else {
                    ol.fires data-next-fires {
                        @for at in next { li { (zoned(at, &schedule.spec.timezone, now)) } }
                    }
                }
            }
            dt { "Last fire" }
            dd data-last-fire {
                @if let Some(fire) = schedule.last_fire {
                    (zoned(Some(fire.scheduled_at), &schedule.spec.timezone, now)) ": job "
                    (job_link(fire.job_id))
                } @else { "none yet" }
            }
            dt { "Fires" }
            dd {
                span data-fired { (counts.fired) } " fired, "
                span data-skipped { (counts.skipped) } " skipped (overlap), "
                span data-refused { (counts.refused) } " refused"
            }
            dt { "Last missed" } dd { (time(counts.last_missed_at, now)) }
            dt { "Last refusal" }
            dd data-last-refusal {
                (fires["lastRefusal"].as_str().unwrap_or("–"))
            }
        }
        h2 { "Payload of each job" }
        (json_block(&schedule.spec.payload))
        (source(html! {
            "the schedule's item in the schedules table (a strongly consistent read); the next fires \
             computed from its expression in its zone, as "
            code { "GET /schedules/{id}" } " does."
        }))
    };
    Ok(Reply::ok(html::page(
        &format!("Schedule {}", schedule.id),
        Section::Schedules,
        body,
    )))
}

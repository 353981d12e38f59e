//! The console's schedule actions: pause, resume, trigger and delete, each
//! a link to a confirmation page that says what will happen and holds the
//! form that does it (with the CSRF token), as the job actions
//! (`actions.rs`). The action goes through the API's own code
//! ([`Scheduling::api`]), and is logged with its outcome.

use super::html::{self, Section, action_form, job_link};
use super::schedules::{Scheduling, enabled, paused_badge, schedule_href, schedule_of};
use super::{Console, ConsoleError, Reply};
use http::StatusCode;
use jobline_api::ApiError;
use jobline_core::Metrics;
use jobline_core::schedule::ScheduleRecord;
use maud::{Markup, html};
use std::collections::HashMap;

/// What an operator can do to a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScheduleAction {
    Pause,
    Resume,
    Trigger,
    Delete,
}

impl ScheduleAction {
    /// The action named `name`, if it is a schedule's.
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name {
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "trigger" => Some(Self::Trigger),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Trigger => "trigger",
            Self::Delete => "delete",
        }
    }
}

/// The schedule a request names (`schedule` and `owner`), read through the
/// API, or the page that says what is wrong.
async fn target<'a>(
    scheduling: Option<&'a Scheduling>,
    fields: &HashMap<String, String>,
) -> Result<Result<(&'a Scheduling, ScheduleRecord), Reply>, ConsoleError> {
    let scheduling = match enabled(scheduling) {
        Ok((scheduling, _)) => scheduling,
        Err(reply) => return Ok(Err(reply)),
    };
    let field = |name: &str| fields.get(name).filter(|value| !value.is_empty());
    let (Some(id), Some(owner)) = (field("schedule"), field("owner")) else {
        return Ok(Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "Which schedule?",
            "A schedule action names the schedule and its caller: open the schedule first.",
        )));
    };
    Ok(schedule_of(scheduling, owner, id)
        .await?
        .map(|schedule| (scheduling, schedule)))
}

/// The schedule in a sentence.
fn subject(schedule: &ScheduleRecord) -> Markup {
    html! {
        "Schedule " a href=(schedule_href(&schedule.owner, schedule.id)) { code { (schedule.id) } }
        " of " strong { (schedule.owner) } " (" code { (schedule.spec.expression) } " in "
        (schedule.spec.timezone) ", " (schedule.spec.job_type) " jobs) is " (paused_badge(schedule)) "."
    }
}

/// The confirmation page of a schedule action.
pub(super) async fn confirm(
    console: &Console,
    scheduling: Option<&Scheduling>,
    action: ScheduleAction,
    query: &HashMap<String, String>,
) -> Result<Reply, ConsoleError> {
    let schedule = match target(scheduling, query).await? {
        Ok((_, schedule)) => schedule,
        Err(reply) => return Ok(reply),
    };
    let (title, button, what, can) = match action {
        ScheduleAction::Pause => (
            "Pause this schedule?",
            "Pause the schedule",
            "Pausing disables its timer: it fires nothing until it is resumed.",
            !schedule.paused,
        ),
        ScheduleAction::Resume => (
            "Resume this schedule?",
            "Resume the schedule",
            "Resuming enables its timer: it fires from now on; the fires it missed while paused are not run.",
            schedule.paused,
        ),
        ScheduleAction::Trigger => (
            "Trigger this schedule now?",
            "Trigger it now",
            "It fires once now, paused or not: a job of its type with its payload is created for its caller and queued. With overlap skip, nothing is created while its last job has not finished.",
            true,
        ),
        ScheduleAction::Delete => (
            "Delete this schedule?",
            "Delete the schedule",
            "Its record and its timer are deleted: it never fires again. The jobs it created stay.",
            true,
        ),
    };
    let id = schedule.id.to_string();
    let fields = [
        ("action", action.name()),
        ("schedule", id.as_str()),
        ("owner", schedule.owner.as_str()),
    ];
    let class = if action == ScheduleAction::Delete {
        "danger"
    } else {
        "primary"
    };
    let body = html! {
        p { (subject(&schedule)) }
        p { (what) }
        @if can {
            p.actions { (action_form(console.guard.csrf(), &fields, button, class)) }
        } @else {
            p.empty { "Nothing to do: it is already " (if schedule.paused { "paused" } else { "active" }) "." }
        }
        p { a href=(schedule_href(&schedule.owner, schedule.id)) { "Back without doing anything" } }
    };
    Ok(Reply::ok(html::page(title, Section::Schedules, body)))
}

/// Does a confirmed schedule action, logs it, and says how it went.
pub(super) async fn act(
    scheduling: Option<&Scheduling>,
    action: ScheduleAction,
    form: &HashMap<String, String>,
) -> Result<Reply, ConsoleError> {
    let (scheduling, schedule) = match target(scheduling, form).await? {
        Ok(target) => target,
        Err(reply) => return Ok(reply),
    };
    let api = &scheduling.api;
    let mut job = None;
    let outcome = match action {
        ScheduleAction::Pause | ScheduleAction::Resume => {
            let paused = action == ScheduleAction::Pause;
            match api.set_paused(&schedule, paused).await {
                Ok(_) if paused => "The schedule is paused: its timer is disabled.".to_owned(),
                Ok(_) => "The schedule is resumed: it fires from now on.".to_owned(),
                Err(error) => refusal(error)?,
            }
        }
        ScheduleAction::Trigger => match api.trigger(&schedule, None, &mut Metrics::new()).await {
            Ok(fired) => {
                job = Some(fired.id);
                format!("The schedule fired: job {} is {}.", fired.id, fired.state)
            }
            Err(ApiError::ScheduleOverlap) => "Not fired: its last job has not finished and its \
                 overlap policy is skip."
                .to_owned(),
            Err(error) => refusal(error)?,
        },
        ScheduleAction::Delete => match api.remove_schedule(&schedule).await {
            Ok(()) => "The schedule and its timer are deleted; its jobs stay.".to_owned(),
            Err(error) => refusal(error)?,
        },
    };
    tracing::info!(
        action = action.name(),
        schedule = %schedule.id,
        owner = %schedule.owner,
        job = ?job,
        %outcome,
        "console action"
    );
    let body = html! {
        p data-outcome { (outcome) }
        p {
            @if let Some(id) = job {
                "See the job " (job_link(id)) " · "
            }
            @if action != ScheduleAction::Delete {
                a href=(schedule_href(&schedule.owner, schedule.id)) { "See the schedule" } " · "
            }
            a href="/schedules" { "Schedules" }
        }
    };
    Ok(Reply::ok(html::page("Done", Section::Schedules, body)))
}

/// The outcome of an action the API refused for a reason an operator reads
/// (the schedule is gone, or changed meanwhile); any other failure is the
/// page's error.
fn refusal(error: ApiError) -> Result<String, ConsoleError> {
    match error {
        ApiError::ScheduleNotFound => Ok("There is no such schedule any more.".to_owned()),
        ApiError::ScheduleChanged => Ok(
            "The schedule was changed meanwhile: nothing was done; look at it again.".to_owned(),
        ),
        error => Err(error.into()),
    }
}

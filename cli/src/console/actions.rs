//! The console's actions: cancel a job, run a scheduled one now, retry a
//! failed one, replay or discard dead letters (and, in
//! `schedule_actions.rs`, pause, resume, trigger or delete a schedule).
//! Each is a link to a confirmation page, which says
//! what will happen (for the dead-letter tools, a dry run of the very code
//! `jobline dlq replay|discard --dry-run` runs) and holds the form that does
//! it; the action goes through the same library code as the CLI, and is
//! logged with its outcome. Its pages are maud templates, like the rest
//! of the console's (see [`mod@html`]).

use super::html::{self, Section, action_form};
use super::schedule_actions::{self, ScheduleAction};
use super::schedules::Scheduling;
use super::{Console, ConsoleError, Reply};
use crate::dlq::Selection;
use crate::jobs::{Retried, retry};
use http::StatusCode;
use jobline_api::ApiError;
use jobline_core::store::CancelOutcome;
use jobline_core::{JobId, JobState};
use maud::{Markup, html};
use std::collections::HashMap;

/// What an operator can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Cancel,
    /// A scheduled job, now.
    RunNow,
    Retry,
    Replay,
    Discard,
}

impl Action {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "cancel" => Some(Self::Cancel),
            "run" => Some(Self::RunNow),
            "retry" => Some(Self::Retry),
            "replay" => Some(Self::Replay),
            "discard" => Some(Self::Discard),
            _ => None,
        }
    }

    /// The part of the console the action belongs to.
    fn section(self) -> Section {
        match self {
            Self::Cancel | Self::RunNow | Self::Retry => Section::Jobs,
            Self::Replay | Self::Discard => Section::DeadLetters,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::RunNow => "run",
            Self::Retry => "retry",
            Self::Replay => "replay",
            Self::Discard => "discard",
        }
    }
}

/// The action and job of a request, or the page that says what is wrong.
fn target(fields: &HashMap<String, String>) -> Result<(Action, Option<JobId>), Reply> {
    let action = fields
        .get("action")
        .and_then(|name| Action::parse(name))
        .ok_or_else(|| {
            Reply::error(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The action must be cancel, run, retry, replay or discard, or pause, resume, \
                 trigger or delete for a schedule.",
            )
        })?;
    let job = match fields.get("job").filter(|id| !id.is_empty()) {
        None => None,
        Some(id) => Some(id.parse::<JobId>().map_err(|_| {
            Reply::error(
                StatusCode::BAD_REQUEST,
                "Not a job id",
                "The job id is not a job id.",
            )
        })?),
    };
    if job.is_none() && matches!(action, Action::Cancel | Action::RunNow | Action::Retry) {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "Which job?",
            "Cancel, run now and retry act on one job: open it first.",
        ));
    }
    Ok((action, job))
}

fn selection(job: Option<JobId>) -> Selection {
    Selection {
        job_ids: job.into_iter().collect(),
        ..Selection::default()
    }
}

fn subject(job: Option<JobId>) -> Markup {
    html! {
        @match job {
            Some(id) => { "job " (html::job_link(id)) }
            None => { "every dead letter" }
        }
    }
}

/// A DLQ tool's report, as `jobline dlq` prints it.
fn rendered(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Markup {
    let mut out = Vec::new();
    let _ = render(&mut out);
    html! { pre.report { (String::from_utf8_lossy(&out)) } }
}

/// A schedule's action, if the request names one.
fn schedule_action(fields: &HashMap<String, String>) -> Option<ScheduleAction> {
    fields
        .get("action")
        .and_then(|name| ScheduleAction::parse(name))
}

/// The confirmation page of an action: what it will do, and its button.
pub async fn confirm(
    console: &Console,
    scheduling: Option<&Scheduling>,
    query: &HashMap<String, String>,
) -> Result<Reply, ConsoleError> {
    if let Some(action) = schedule_action(query) {
        return schedule_actions::confirm(console, scheduling, action, query).await;
    }
    let (action, job) = match target(query) {
        Ok(target) => target,
        Err(reply) => return Ok(reply),
    };
    let id_text = job.map(|id| id.to_string()).unwrap_or_default();
    let fields = [("action", action.name()), ("job", id_text.as_str())];
    let csrf = console.guard.csrf();
    let (title, button, can, what) = match action {
        Action::Cancel | Action::RunNow | Action::Retry => {
            let id = job.expect("checked by target");
            let Some(record) = console.store.get(id).await? else {
                return Ok(Reply::error(
                    StatusCode::NOT_FOUND,
                    "No such job",
                    "No job has this id.",
                ));
            };
            let (what, can) = match (action, record.state) {
                (Action::Cancel, JobState::Scheduled) => (
                    "It is scheduled: it becomes cancelled at once and never runs; its timer, if it has one, is deleted.",
                    true,
                ),
                (Action::RunNow, JobState::Scheduled) if scheduling.is_some() => (
                    "It is scheduled: it becomes queued and is sent to the jobs queue now, instead of at its time (as POST /jobs/{id}/run does); its timer, if it has one, is deleted.",
                    true,
                ),
                (Action::RunNow, JobState::Scheduled) => (
                    "Run now goes through the API's code, which this console was started without.",
                    false,
                ),
                (Action::Cancel, JobState::Queued) => (
                    "It is queued: it becomes cancelled at once, and its message is acknowledged unrun.",
                    true,
                ),
                (Action::Cancel, JobState::Running) => (
                    "It is running: it is marked cancel-requested, and its worker stops it at its next heartbeat (or it finishes first).",
                    true,
                ),
                (Action::Retry, JobState::Failed) => (
                    "It failed: it goes back to queued (one more replay) and a new message is sent to the jobs queue.",
                    true,
                ),
                _ => ("Its state does not allow this action.", false),
            };
            let body = html! {
                p {
                    (subject(job)) " (" (record.job_type) ") is "
                    (html::state_badge(record.state))
                    @if let (JobState::Scheduled, Some(run_at)) = (record.state, record.run_at) {
                        " to run " (html::time(Some(run_at), console.clock.now_ms()))
                    }
                    "."
                }
                p { (what) }
            };
            let (title, button) = match action {
                Action::Cancel => ("Cancel this job?", "Cancel the job"),
                Action::RunNow => ("Run this job now?", "Run the job now"),
                _ => ("Retry this job?", "Retry the job"),
            };
            (title, button.to_owned(), can, body)
        }
        Action::Replay => {
            let report = console.tools().replay(&selection(job), true).await?;
            let body = html! {
                p {
                    "Dry run for " (subject(job)) ": " strong data-dry-run { (report.replayed()) }
                    " would be replayed, " (report.skipped()) " skipped."
                }
                (rendered(|out| report.render(out)))
                @for id in &report.not_in_dlq {
                    p data-not-in-dlq=(id) {
                        "Job " (id) " has no dead letter left to replay (the DLQ keeps messages 14 days). If it is still failed, "
                        a href={ "/confirm?action=retry&job=" (id) } { "Retry…" }
                        " runs it again from its record."
                    }
                }
            };
            (
                "Replay dead letters?",
                format!("Replay {}", report.replayed()),
                report.replayed() > 0,
                body,
            )
        }
        Action::Discard => {
            let report = console.tools().discard(&selection(job), true).await?;
            let body = html! {
                p {
                    "Dry run for " (subject(job)) ": " strong data-dry-run { (report.discarded()) }
                    " jobs would be discarded (failed for good), their messages deleted."
                }
                (rendered(|out| report.render(out)))
            };
            (
                "Discard dead letters?",
                format!("Discard {}", report.discarded()),
                report.discarded() > 0,
                body,
            )
        }
    };
    let class = if action == Action::Discard {
        "danger"
    } else {
        "primary"
    };
    let back = match job {
        Some(id) => format!("/jobs/{id}"),
        None => "/dlq".to_owned(),
    };
    let body = html! {
        (what)
        @if can {
            p.actions { (action_form(csrf, &fields, &button, class)) }
        } @else {
            p.empty { "Nothing to do." }
        }
        p { a href=(back) { "Back without doing anything" } }
    };
    Ok(Reply::ok(html::page(title, action.section(), body)))
}

/// Does a confirmed action, logs it, and says how it went.
pub async fn act(
    console: &Console,
    scheduling: Option<&Scheduling>,
    form: &HashMap<String, String>,
) -> Result<Reply, ConsoleError> {
    if let Some(action) = schedule_action(form) {
        return schedule_actions::act(scheduling, action, form).await;
    }
    let (action, job) = match target(form) {
        Ok(target) => target,
        Err(reply) => return Ok(reply),
    };
    // What happened in a sentence (shown and logged), and the DLQ tools'
    // report, line by line.
    let (outcome, report) = match action {
        Action::Cancel => {
            let id = job.expect("checked by target");
            let was = console.store.get(id).await?.map(|job| job.state);
            let text = match console.store.cancel(id, console.clock.now_ms()).await? {
                CancelOutcome::Cancelled(_) => {
                    if was == Some(JobState::Scheduled) {
                        drop_timer(scheduling, id).await;
                    }
                    "The job is cancelled.".to_owned()
                }
                CancelOutcome::Requested(_) => {
                    "The job is running: cancel requested; it stops at its next heartbeat."
                        .to_owned()
                }
                CancelOutcome::Finished(state) => {
                    format!("The job had already finished ({state}): nothing to cancel.")
                }
                CancelOutcome::Missing => "There is no such job.".to_owned(),
            };
            (text, None)
        }
        Action::RunNow => {
            let id = job.expect("checked by target");
            (run_now(console, scheduling, id).await?, None)
        }
        Action::Retry => {
            let id = job.expect("checked by target");
            let text =
                match retry(&*console.store, &*console.queue, id, console.clock.now_ms()).await? {
                    Retried::Requeued { message_id } => {
                        format!("The job is queued again, sent as message {message_id}.")
                    }
                    Retried::SentAgain { message_id } => format!(
                        "The job was already queued; its message was sent again as {message_id}."
                    ),
                    Retried::Unchanged(state) => format!("The job is {state}: nothing to retry."),
                    Retried::Missing => "There is no such job.".to_owned(),
                };
            (text, None)
        }
        Action::Replay => {
            let report = console.tools().replay(&selection(job), false).await?;
            let text = format!(
                "{} replayed, {} skipped, {} failed.",
                report.replayed(),
                report.skipped(),
                report.failed()
            );
            (text, Some(rendered(|out| report.render(out))))
        }
        Action::Discard => {
            let report = console.tools().discard(&selection(job), false).await?;
            let text = format!(
                "{} discarded, {} failed.",
                report.discarded(),
                report.failed()
            );
            (text, Some(rendered(|out| report.render(out))))
        }
    };
    tracing::info!(action = action.name(), job = ?job, %outcome, "console action");
    let body = html! {
        p data-outcome { (outcome) }
        @if let Some(report) = report { (report) }
        p {
            @match job {
                Some(id) => {
                    a href={ "/jobs/" (id) } { "See the job" } " · " a href="/dlq" { "Dead letters" }
                }
                None => { a href="/dlq" { "Back to the dead letters" } }
            }
        }
    };
    Ok(Reply::ok(html::page("Done", action.section(), body)))
}

/// Deletes a cancelled delayed job's one-time timer, as the API's cancel
/// does; one left behind fires and sends nothing.
async fn drop_timer(scheduling: Option<&Scheduling>, id: JobId) {
    if let Some(timers) = scheduling.and_then(|s| s.timers.as_ref())
        && let Err(error) = timers.delete(&jobline_api::job_timer_name(id)).await
    {
        tracing::warn!(%error, job = %id, "a cancelled job's timer is left; its fire sends nothing");
    }
}

/// Runs scheduled job `id` now through the API's code: what happened.
async fn run_now(
    console: &Console,
    scheduling: Option<&Scheduling>,
    id: JobId,
) -> Result<String, ConsoleError> {
    let Some(scheduling) = scheduling else {
        return Ok(
            "Run now goes through the API's code, which this console was started without: \
                   nothing was done."
                .to_owned(),
        );
    };
    let Some(job) = console.store.get(id).await? else {
        return Ok("There is no such job.".to_owned());
    };
    Ok(match scheduling.api.run_job_now(&job).await {
        Ok(queued) => format!(
            "The job is {} and sent to the jobs queue now.",
            queued.state
        ),
        Err(ApiError::JobNotScheduled { state }) => {
            format!("The job is {state}: only a scheduled job can be run now.")
        }
        Err(ApiError::JobNotFound) => "There is no such job.".to_owned(),
        Err(error) => return Err(error.into()),
    })
}

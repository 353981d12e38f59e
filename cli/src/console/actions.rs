//! The console's actions: cancel a job, retry a failed one, replay or
//! discard dead letters. Each is a link to a confirmation page, which says
//! what will happen (for the dead-letter tools, a dry run of the very code
//! `jobline dlq replay|discard --dry-run` runs) and holds the form that does
//! it; the action goes through the same library code as the CLI, and is
//! logged with its outcome.

use super::html::{self, Section, action_form, escape};
use super::{Console, ConsoleError, Reply};
use crate::dlq::Selection;
use crate::jobs::{Retried, retry};
use http::StatusCode;
use jobline_core::store::CancelOutcome;
use jobline_core::{JobId, JobState};
use std::collections::HashMap;
use std::fmt::Write as _;

/// What an operator can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Cancel,
    Retry,
    Replay,
    Discard,
}

impl Action {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "cancel" => Some(Self::Cancel),
            "retry" => Some(Self::Retry),
            "replay" => Some(Self::Replay),
            "discard" => Some(Self::Discard),
            _ => None,
        }
    }

    /// The part of the console the action belongs to.
    fn section(self) -> Section {
        match self {
            Self::Cancel | Self::Retry => Section::Jobs,
            Self::Replay | Self::Discard => Section::DeadLetters,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
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
                "The action must be cancel, retry, replay or discard.",
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
    if job.is_none() && matches!(action, Action::Cancel | Action::Retry) {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "Which job?",
            "Cancel and retry act on one job: open it first.",
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

fn subject(job: Option<JobId>) -> String {
    match job {
        Some(id) => format!(r#"job <a href="/jobs/{id}"><code>{id}</code></a>"#),
        None => "every dead letter".to_owned(),
    }
}

fn rendered(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    let _ = render(&mut out);
    format!(
        r#"<pre class="report">{}</pre>"#,
        escape(&String::from_utf8_lossy(&out))
    )
}

/// The confirmation page of an action: what it will do, and its button.
pub async fn confirm(
    console: &Console,
    query: &HashMap<String, String>,
) -> Result<Reply, ConsoleError> {
    let (action, job) = match target(query) {
        Ok(target) => target,
        Err(reply) => return Ok(reply),
    };
    let id_text = job.map(|id| id.to_string()).unwrap_or_default();
    let fields = [("action", action.name()), ("job", id_text.as_str())];
    let csrf = console.guard.csrf();
    let mut body = String::new();
    let (title, button, can) = match action {
        Action::Cancel | Action::Retry => {
            let id = job.expect("checked by target");
            let Some(record) = console.store.get(id).await? else {
                return Ok(Reply::error(
                    StatusCode::NOT_FOUND,
                    "No such job",
                    "No job has this id.",
                ));
            };
            let (what, can) = match (action, record.state) {
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
            let _ = write!(
                body,
                r#"<p>{} ({}) is <span class="state {state}">{state}</span>.</p><p>{what}</p>"#,
                subject(job),
                escape(&record.job_type),
                state = record.state.as_str(),
            );
            let title = if action == Action::Cancel {
                "Cancel this job?"
            } else {
                "Retry this job?"
            };
            let button = if action == Action::Cancel {
                "Cancel the job"
            } else {
                "Retry the job"
            };
            (title, button.to_owned(), can)
        }
        Action::Replay => {
            let report = console.tools().replay(&selection(job), true).await?;
            let _ = write!(
                body,
                r#"<p>Dry run for {}: <strong data-dry-run>{}</strong> would be replayed, {} skipped.</p>"#,
                subject(job),
                report.replayed(),
                report.skipped()
            );
            body.push_str(&rendered(|out| report.render(out)));
            for id in &report.not_in_dlq {
                let _ = write!(
                    body,
                    r#"<p data-not-in-dlq="{id}">Job {id} has no dead letter left to replay (the DLQ keeps messages 14 days). If it is still failed, <a href="/confirm?action=retry&amp;job={id}">Retry…</a> runs it again from its record.</p>"#
                );
            }
            (
                "Replay dead letters?",
                format!("Replay {}", report.replayed()),
                report.replayed() > 0,
            )
        }
        Action::Discard => {
            let report = console.tools().discard(&selection(job), true).await?;
            let _ = write!(
                body,
                r#"<p>Dry run for {}: <strong data-dry-run>{}</strong> jobs would be discarded (failed for good), their messages deleted.</p>"#,
                subject(job),
                report.discarded()
            );
            body.push_str(&rendered(|out| report.render(out)));
            (
                "Discard dead letters?",
                format!("Discard {}", report.discarded()),
                report.discarded() > 0,
            )
        }
    };
    if can {
        let class = if action == Action::Discard {
            "danger"
        } else {
            "primary"
        };
        body.push_str(&format!(
            r#"<p class="actions">{}</p>"#,
            action_form(csrf, &fields, &button, class)
        ));
    } else {
        body.push_str(r#"<p class="empty">Nothing to do.</p>"#);
    }
    let back = match job {
        Some(id) => format!("/jobs/{id}"),
        None => "/dlq".to_owned(),
    };
    let _ = write!(
        body,
        r#"<p><a href="{back}">Back without doing anything</a></p>"#
    );
    Ok(Reply::ok(html::page(title, action.section(), &body)))
}

/// Does a confirmed action, logs it, and says how it went.
pub async fn act(console: &Console, form: &HashMap<String, String>) -> Result<Reply, ConsoleError> {
    let (action, job) = match target(form) {
        Ok(target) => target,
        Err(reply) => return Ok(reply),
    };
    // What happened in a sentence (shown and logged), and the DLQ tools'
    // report, line by line.
    let (outcome, report) = match action {
        Action::Cancel => {
            let id = job.expect("checked by target");
            let text = match console.store.cancel(id, console.clock.now_ms()).await? {
                CancelOutcome::Cancelled(_) => "The job is cancelled.".to_owned(),
                CancelOutcome::Requested(_) => {
                    "The job is running: cancel requested; it stops at its next heartbeat."
                        .to_owned()
                }
                CancelOutcome::Finished(state) => {
                    format!("The job had already finished ({state}): nothing to cancel.")
                }
                CancelOutcome::Missing => "There is no such job.".to_owned(),
            };
            (text, String::new())
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
            (text, String::new())
        }
        Action::Replay => {
            let report = console.tools().replay(&selection(job), false).await?;
            let text = format!(
                "{} replayed, {} skipped, {} failed.",
                report.replayed(),
                report.skipped(),
                report.failed()
            );
            (text, rendered(|out| report.render(out)))
        }
        Action::Discard => {
            let report = console.tools().discard(&selection(job), false).await?;
            let text = format!(
                "{} discarded, {} failed.",
                report.discarded(),
                report.failed()
            );
            (text, rendered(|out| report.render(out)))
        }
    };
    let body = format!("<p data-outcome>{}</p>{report}", escape(&outcome));
    tracing::info!(action = action.name(), job = ?job, %outcome, "console action");
    let back = match job {
        Some(id) => format!(
            r#"<p><a href="/jobs/{id}">See the job</a> · <a href="/dlq">Dead letters</a></p>"#
        ),
        None => r#"<p><a href="/dlq">Back to the dead letters</a></p>"#.to_owned(),
    };
    Ok(Reply::ok(html::page(
        "Done",
        action.section(),
        &format!("{body}{back}"),
    )))
}

//! The console's pages: the overview, the job list, one job, and the dead
//! letters. Each says where its numbers come from.

use super::html::{self, Section, encode, escape, time};
use super::{Console, ConsoleError, Reply};
use crate::jobs::{StateQuery, find_jobs, parse_utc_minute};
use http::StatusCode;
use jobline_core::activity::Window;
use jobline_core::limits::DLQ_RETENTION_SECS;
use jobline_core::store::ListKey;
use jobline_core::{JobId, JobRecord, JobState, Metric};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Each state is counted exactly up to this many jobs a shard (1,024 in
/// all), then shown as a lower bound: an overview reads at most 16 × 65
/// index entries a state, however many jobs the table holds.
pub const COUNT_PER_SHARD: usize = 64;
/// The jobs a page of the job list shows.
pub const PAGE_SIZE: usize = 25;
/// The dead-lettered jobs the dead-letter page shows.
pub const DEAD_LETTER_ROWS: usize = 50;
/// The minutes the activity chart covers.
pub const CHART_MINUTES: usize = 60;
/// The metrics charted.
const CHARTED: [Metric; 3] = [
    Metric::JobsSucceeded,
    Metric::JobsFailed,
    Metric::JobsRetried,
];

fn source(text: &str) -> String {
    format!(r#"<p class="source">Source: {text}</p>"#)
}

fn state_badge(state: JobState) -> String {
    let name = state.as_str();
    format!(r#"<span class="state {name}">{name}</span>"#)
}

fn job_link(id: JobId) -> String {
    format!(r#"<a href="/jobs/{id}"><code>{id}</code></a>"#)
}

/// The overview: jobs by state, queue depths, the oldest queued job, and
/// the last hour's activity.
pub async fn overview(console: &Console, now: i64) -> Result<Reply, ConsoleError> {
    let window = Window::last(CHART_MINUTES, now);
    let counts = futures_util::future::try_join_all(
        JobState::ALL.map(|state| console.store.count_by_state(state, COUNT_PER_SHARD)),
    );
    let (counts, queue, dlq, oldest, history) = tokio::join!(
        counts,
        console.queue.counts(),
        console.dlq.counts(),
        console.store.oldest_in_state(JobState::Queued),
        console.history.per_minute(&CHARTED, window),
    );
    let (counts, queue, dlq, oldest, history) = (counts?, queue?, dlq?, oldest?, history?);

    let mut body = String::from(
        r#"<div class="grid"><section aria-labelledby="states"><h2 id="states">Jobs by state</h2><table class="counts"><thead><tr><th scope="col">State</th><th scope="col" class="num">Jobs</th></tr></thead><tbody>"#,
    );
    for (state, count) in JobState::ALL.iter().zip(&counts) {
        let shown = if count.complete {
            count.count.to_string()
        } else {
            format!("{}+", count.count)
        };
        let _ = write!(
            body,
            r#"<tr><th scope="row"><a href="/jobs?state={name}">{badge}</a></th><td class="num" data-count="{name}">{shown}</td></tr>"#,
            name = state.as_str(),
            badge = state_badge(*state),
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&source(&format!(
        "the jobs table's state index (<code>state-created</code>), counted exactly up to {} jobs a state.",
        COUNT_PER_SHARD * usize::from(jobline_core::store::SHARDS)
    )));
    body.push_str("</section>");

    let _ = write!(
        body,
        r#"<section aria-labelledby="queues"><h2 id="queues">Queues</h2><table><thead><tr><th scope="col">Queue</th><th scope="col" class="num">Waiting</th><th scope="col" class="num">In flight</th><th scope="col" class="num">Delayed</th></tr></thead><tbody>
<tr><th scope="row">Jobs</th><td class="num" data-queue="jobs">{}</td><td class="num">{}</td><td class="num">{}</td></tr>
<tr><th scope="row"><a href="/dlq">Dead letters</a></th><td class="num" data-queue="dlq">{}</td><td class="num">{}</td><td class="num">{}</td></tr>
</tbody></table>"#,
        queue.visible, queue.in_flight, queue.delayed, dlq.visible, dlq.in_flight, dlq.delayed
    );
    let oldest = match oldest {
        Some(ListKey { created_at, id }) => format!(
            "{} old (job {})",
            crate::dlq::format_age((now - created_at).max(0) / 1_000),
            job_link(id)
        ),
        None => "no job is queued".to_owned(),
    };
    let _ = write!(
        body,
        r#"<p>Oldest queued job: <strong data-oldest>{oldest}</strong></p>"#
    );
    body.push_str(&source(
        "SQS queue attributes (approximate, updated by SQS within a minute; reading them receives nothing); the oldest queued job from the state index, by creation time.",
    ));
    body.push_str("</section></div>");

    body.push_str(r#"<section aria-labelledby="activity"><h2 id="activity">Activity, per minute over the last hour</h2>"#);
    body.push_str(&html::chart(&history, window));
    let mut note = String::from(
        "CloudWatch (<code>GetMetricData</code>, namespace <code>Jobline</code>, the functions' EMF metrics summed over every job type).",
    );
    if console.emulated {
        note.push_str(
            " Locally nothing ingests EMF lines: the emulator's CloudWatch holds what <code>jobline-local serve --ingest-metrics</code> put there (<code>scripts/dev</code> turns it on).",
        );
    }
    body.push_str(&source(&note));
    body.push_str("</section>");
    Ok(Reply::ok(html::page("Overview", Section::Overview, &body)))
}

/// `created_at.id`, the job list's cursor.
fn parse_cursor(text: &str) -> Option<ListKey> {
    let (created_at, id) = text.split_once('.')?;
    Some(ListKey {
        created_at: created_at.parse().ok()?,
        id: id.parse().ok()?,
    })
}

/// The job list: one state at a time, filtered by type, caller and
/// creation time, a page at a time.
pub async fn jobs(
    console: &Console,
    query: &HashMap<String, String>,
    now: i64,
) -> Result<Reply, ConsoleError> {
    let field = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let state = match field("state").map(str::parse::<JobState>) {
        None => JobState::Running,
        Some(Ok(state)) => state,
        Some(Err(_)) => {
            return Ok(Reply::error(
                StatusCode::BAD_REQUEST,
                "Unknown state",
                "The state must be queued, running, succeeded, failed or cancelled.",
            ));
        }
    };
    let time_filter = |name: &str| match field(name) {
        None => Ok(None),
        Some(text) => parse_utc_minute(text).map(Some).ok_or(name.to_owned()),
    };
    let (since, before) = match (time_filter("since"), time_filter("before")) {
        (Ok(since), Ok(before)) => (since, before),
        (Err(name), _) | (_, Err(name)) => {
            return Ok(Reply::error(
                StatusCode::BAD_REQUEST,
                "Unreadable time",
                &format!("The {name} filter must be a UTC time such as 2026-11-30T10:15."),
            ));
        }
    };
    let search = StateQuery {
        job_type: field("type").map(str::to_owned),
        owner: field("owner").map(str::to_owned),
        created_since: since,
        created_before: before,
        ..StateQuery::new(state, PAGE_SIZE)
    };
    let after = field("after").and_then(parse_cursor);
    let found = find_jobs(&*console.store, &search, after).await?;

    let mut body = String::from(
        r#"<form method="get" action="/jobs" class="filters" role="search"><label>State <select name="state">"#,
    );
    for option in JobState::ALL {
        let selected = if option == state { " selected" } else { "" };
        let _ = write!(
            body,
            r#"<option value="{0}"{selected}>{0}</option>"#,
            option.as_str()
        );
    }
    let value = |name: &str| escape(field(name).unwrap_or(""));
    let _ = write!(
        body,
        r#"</select></label>
<label>Type <input name="type" value="{}" size="12"></label>
<label>Caller <input name="owner" value="{}" size="16"></label>
<label>Created since <input name="since" value="{}" placeholder="2026-11-30T10:15" size="16"></label>
<label>Created before <input name="before" value="{}" placeholder="UTC" size="16"></label>
<button type="submit">Show</button></form>"#,
        value("type"),
        value("owner"),
        value("since"),
        value("before")
    );
    if found.jobs.is_empty() {
        let _ = write!(
            body,
            r#"<p class="empty">No {} jobs match.</p>"#,
            state.as_str()
        );
    } else {
        body.push_str(r#"<table class="jobs"><thead><tr><th scope="col">Job</th><th scope="col">Type</th><th scope="col">Caller</th><th scope="col">State</th><th scope="col">Created</th><th scope="col" class="num">Attempts</th><th scope="col">Progress or error</th></tr></thead><tbody>"#);
        for job in &found.jobs {
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                job_link(job.id),
                escape(&job.job_type),
                escape(&job.owner),
                state_badge(job.state),
                time(Some(job.created_at), now),
                job.attempts,
                detail(job),
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(next) = found.next {
        let mut link = format!("/jobs?state={}", state.as_str());
        for name in ["type", "owner", "since", "before"] {
            if let Some(value) = field(name) {
                let _ = write!(link, "&{name}={}", encode(value));
            }
        }
        let _ = write!(link, "&after={}.{}", next.created_at, next.id);
        let _ = write!(
            body,
            r#"<p><a href="{}" rel="next">Older jobs →</a></p>"#,
            escape(&link)
        );
    }
    if found.listed.stopped_early {
        let _ = write!(
            body,
            r#"<p class="notice">Stopped after {} pages of the index: {} jobs passed over by the filters. Follow “Older jobs” to read on.</p>"#,
            found.listed.pages, found.listed.passed_over
        );
    }
    body.push_str(&source(&format!(
        "the jobs table's state index, newest first; this page read <span data-scanned>{}</span> index entries ({} pages of at most 16 × {} entries), whatever the table holds.",
        found.scanned, found.listed.pages, jobline_core::store::MAX_LIST_LIMIT
    )));
    Ok(Reply::ok(html::page(
        &format!("Jobs: {}", state.as_str()),
        Section::Jobs,
        &body,
    )))
}

/// A job's progress, or its last error, in a table cell.
fn detail(job: &JobRecord) -> String {
    if let Some(error) = &job.error {
        let short: String = error.chars().take(120).collect();
        return format!(r#"<span class="error-text">{}</span>"#, escape(&short));
    }
    match &job.progress {
        Some(progress) => format!(
            r#"<progress max="1" value="{f}">{p:.0}%</progress> {p:.0}% {m}"#,
            f = progress.fraction,
            p = progress.fraction * 100.0,
            m = escape(&progress.message)
        ),
        None => String::new(),
    }
}

/// JSON for a `<pre>`, cut at 64 KiB.
fn json_block(value: &serde_json::Value) -> String {
    const SHOWN: usize = 64 * 1024;
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if text.len() <= SHOWN {
        return format!("<pre>{}</pre>", escape(&text));
    }
    let mut cut = SHOWN;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        r#"<pre>{}</pre><p class="notice">Cut at 64 KiB of {} bytes.</p>"#,
        escape(&text[..cut]),
        text.len()
    )
}

/// The actions a job's state allows, as links to their confirmation.
fn job_actions(job: &JobRecord) -> String {
    let link = |action: &str, label: &str| {
        format!(
            r#"<a class="button" href="/confirm?action={action}&amp;job={}">{label}</a>"#,
            job.id
        )
    };
    let mut actions = Vec::new();
    if !job.state.is_finished() {
        actions.push(link("cancel", "Cancel…"));
    }
    if job.state == JobState::Failed {
        if job.dead_lettered && !job.discarded {
            actions.push(link("replay", "Replay dead letter…"));
            actions.push(link("discard", "Discard dead letter…"));
        } else {
            actions.push(link("retry", "Retry…"));
        }
    }
    if actions.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="actions">{}</p>"#, actions.join(" "))
    }
}

/// One job: everything its record holds, and the actions it allows.
pub async fn job(console: &Console, id: &str, now: i64) -> Result<Reply, ConsoleError> {
    let Some(job) = (match id.parse::<JobId>() {
        Ok(id) => console.store.get(id).await?,
        Err(_) => None,
    }) else {
        return Ok(Reply::error(
            StatusCode::NOT_FOUND,
            "No such job",
            "No job has this id: it was never submitted, or was deleted or expired.",
        ));
    };
    let mut body = job_actions(&job);
    let row = |name: &str, value: String| format!("<dt>{name}</dt><dd>{value}</dd>");
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
    body.push_str(r#"<dl class="fields">"#);
    body.push_str(&row(
        "State",
        format!(r#"<span data-state>{}</span>"#, state_badge(job.state)),
    ));
    body.push_str(&row("Type", escape(&job.job_type)));
    body.push_str(&row("Caller", escape(&job.owner)));
    body.push_str(&row("Created", time(Some(job.created_at), now)));
    body.push_str(&row("First started", time(job.started_at, now)));
    body.push_str(&row("This run started", time(job.run_started_at, now)));
    body.push_str(&row("Finished", time(job.finished_at, now)));
    body.push_str(&row("Attempts", job.attempts.to_string()));
    body.push_str(&row("Lease until", time(job.lease_expires_at, now)));
    body.push_str(&row("Continuations", job.continuations.to_string()));
    body.push_str(&row("Checkpoint saved", time(job.checkpoint_at, now)));
    if let Some(progress) = &job.progress {
        body.push_str(&row(
            "Progress",
            format!(
                r#"<progress max="1" value="{f}">{p:.0}%</progress> {p:.0}% {m} ({at})"#,
                f = progress.fraction,
                p = progress.fraction * 100.0,
                m = escape(&progress.message),
                at = time(Some(progress.at_ms), now)
            ),
        ));
    }
    body.push_str(&row("Cancel requested", yes_no(job.cancel_requested)));
    body.push_str(&row("Dead-lettered", yes_no(job.dead_lettered)));
    body.push_str(&row("Discarded", yes_no(job.discarded)));
    body.push_str(&row("Replays", job.replays.to_string()));
    if let Some(url) = &job.callback_url {
        let webhook = jobline_core::view::webhook_view(&job);
        body.push_str(&row(
            "Webhook",
            format!(
                "{} — {}",
                escape(url),
                escape(webhook["state"].as_str().unwrap_or("pending"))
            ),
        ));
    }
    body.push_str(&row(
        "Kept until (TTL)",
        jobline_core::job::format_ms(job.expires_at * 1_000),
    ));
    body.push_str("</dl>");
    if let Some(error) = &job.error {
        let heading = if job.state == JobState::Failed {
            "Error"
        } else {
            "The last attempt's error"
        };
        let _ = write!(
            body,
            r#"<h2>{heading}</h2><pre class="error-text" data-error>{}</pre>"#,
            escape(error)
        );
    }
    body.push_str("<h2>Payload</h2>");
    body.push_str(&json_block(&job.payload));
    if let Some(result) = &job.result {
        body.push_str("<h2>Result</h2>");
        body.push_str(&json_block(result));
    } else if let Some(key) = &job.result_key {
        let _ = write!(
            body,
            "<h2>Result</h2><p>Stored apart in the results bucket under <code>{}</code> (the API hands clients a presigned link).</p>",
            escape(key)
        );
    }
    body.push_str(&source(
        "the job's item in the jobs table (a strongly consistent read).",
    ));
    Ok(Reply::ok(html::page(
        &format!("Job {}", job.id),
        Section::Jobs,
        &body,
    )))
}

/// The dead letters: the DLQ's depth, and the dead-lettered jobs from the
/// job records (reading messages would hide them and bump their receive
/// counts), with replay and discard.
pub async fn dead_letters(console: &Console, now: i64) -> Result<Reply, ConsoleError> {
    let search = StateQuery::new(JobState::Failed, jobline_core::store::MAX_LIST_LIMIT);
    let (counts, found) = tokio::join!(
        console.dlq.counts(),
        find_jobs(&*console.store, &search, None)
    );
    let (counts, found) = (counts?, found?);
    let dead: Vec<&JobRecord> = found
        .jobs
        .iter()
        .filter(|job| job.dead_lettered && !job.discarded)
        .take(DEAD_LETTER_ROWS)
        .collect();
    let mut body = format!(
        r#"<p>The dead-letter queue holds <strong data-dlq-depth>{}</strong> messages ({} being handled).</p>"#,
        counts.visible, counts.in_flight
    );
    body.push_str(r#"<p class="actions"><a class="button" href="/confirm?action=replay">Replay all…</a> <a class="button danger" href="/confirm?action=discard">Discard all…</a></p>"#);
    // SQS expires a dead letter by its original send, which came before its
    // job failed: past this, no message of the job can be left.
    let expired_before = now - i64::from(DLQ_RETENTION_SECS) * 1000;
    let letter_expired = |job: &JobRecord| job.finished_at.is_some_and(|at| at < expired_before);
    let expired = dead.iter().filter(|job| letter_expired(job)).count();
    if expired > 0 || (counts.visible + counts.in_flight == 0 && !dead.is_empty()) {
        let _ = write!(
            body,
            r#"<p class="note" data-expired="{expired}">Some of these jobs have no dead letter left: the DLQ keeps a message 14 days from its first send, so {expired} of them failed too long ago, and an empty DLQ holds none. Retry runs such a job again from its record.</p>"#
        );
    }
    if dead.is_empty() {
        body.push_str(r#"<p class="empty">No dead-lettered job among the newest failed jobs.</p>"#);
    } else {
        body.push_str(r#"<table class="jobs"><thead><tr><th scope="col">Job</th><th scope="col">Type</th><th scope="col">Caller</th><th scope="col">Failed</th><th scope="col" class="num">Attempts</th><th scope="col">Last error</th><th scope="col">Actions</th></tr></thead><tbody>"#);
        for job in dead {
            let replay = if letter_expired(job) {
                "<span>dead letter expired</span>".to_owned()
            } else {
                format!(
                    r#"<a href="/confirm?action=replay&amp;job={}">Replay…</a>"#,
                    job.id
                )
            };
            let _ = write!(
                body,
                r#"<tr data-dead="{id}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td>{replay} <a href="/confirm?action=retry&amp;job={id}">Retry…</a> <a href="/confirm?action=discard&amp;job={id}">Discard…</a></td></tr>"#,
                job_link(job.id),
                escape(&job.job_type),
                escape(&job.owner),
                time(job.finished_at, now),
                job.attempts,
                detail(job),
                id = job.id,
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&source(
        "the DLQ's queue attributes, and the failed jobs marked dead-lettered in the state index (newest 100 failed jobs). Looking receives no message; replay and discard do, for the moment they run, as <code>jobline dlq</code> does.",
    ));
    Ok(Reply::ok(html::page(
        "Dead letters",
        Section::DeadLetters,
        &body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse() {
        let id = JobId::random();
        assert_eq!(
            parse_cursor(&format!("12.{id}")),
            Some(ListKey { created_at: 12, id })
        );
        assert_eq!(parse_cursor("12"), None);
    }
}

//! The console's job list: one state at a time (a tab each: scheduled,
//! queued, running, failed, cancelled), filtered by type, caller and
//! creation time, a page at a time. The scheduled tab shows when each job
//! runs, and offers Run now and Cancel.

use super::html::{self, Section, encode, job_link, state_badge, time};
use super::pages::{PAGE_SIZE, detail, source};
use super::{Console, ConsoleError, Reply};
use crate::jobs::{StateQuery, find_jobs, parse_utc_minute};
use http::StatusCode;
use jobline_core::JobState;
use jobline_core::store::{ListKey, StateListing};
use maud::{Markup, html};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The states the job list shows, in the order of a job's life: every
/// state an index holds (succeeded jobs are in none).
fn listed_states() -> impl Iterator<Item = JobState> {
    JobState::ALL
        .into_iter()
        .filter(|state| StateListing::of(*state) != StateListing::Unlisted)
}

/// A tab a state, the current one marked.
fn tabs(current: JobState) -> Markup {
    html! {
        nav.tabs aria-label="Job states" {
            @for state in listed_states() {
                a href={ "/jobs?state=" (state.as_str()) }
                    aria-current=[(state == current).then_some("page")]
                    data-tab=(state.as_str()) { (state.as_str()) }
            }
        }
    }
}

/// `at.id`, the job list's cursor.
fn parse_cursor(text: &str) -> Option<ListKey> {
    let (at, id) = text.split_once('.')?;
    Some(ListKey {
        at: at.parse().ok()?,
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
                "The state must be scheduled, queued, running, succeeded, failed or cancelled.",
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
    if StateListing::of(state) == StateListing::Unlisted {
        return Ok(Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Succeeded jobs are not listed",
            "No index holds succeeded jobs (one would cost every job write units): \
             the overview counts them from the JobsSucceeded metric, and a job is found by its id.",
        ));
    }
    let after = field("after").and_then(parse_cursor);
    let found = find_jobs(&*console.store, &search, after).await?;

    let next = found.next.map(|next| {
        let mut link = format!("/jobs?state={}", state.as_str());
        for name in ["type", "owner", "since", "before"] {
            if let Some(value) = field(name) {
                let _ = write!(link, "&{name}={}", encode(value));
            }
        }
        let _ = write!(link, "&after={}.{}", next.at, next.id);
        link
    });
    let value = |name: &str| field(name).unwrap_or("");
    let scheduled = state == JobState::Scheduled;
    let body = html! {
        (tabs(state))
        form method="get" action="/jobs" class="filters" role="search" {
            label {
                "State "
                select name="state" {
                    @for option in listed_states() {
                        option value=(option.as_str()) selected[option == state] { (option.as_str()) }
                    }
                }
            }
            label { "Type " input name="type" value=(value("type")) size="12"; }
            label { "Caller " input name="owner" value=(value("owner")) size="16"; }
            label {
                "Created since "
                input name="since" value=(value("since")) placeholder="2026-11-30T10:15" size="16";
            }
            label {
                "Created before "
                input name="before" value=(value("before")) placeholder="UTC" size="16";
            }
            button type="submit" { "Show" }
        }
        @if found.jobs.is_empty() {
            p.empty { "No " (state.as_str()) " jobs match." }
        } @else {
            table.jobs {
                thead {
                    tr {
                        th scope="col" { "Job" }
                        th scope="col" { "Type" }
                        th scope="col" { "Caller" }
                        th scope="col" { "State" }
                        th scope="col" { "Created" }
                        @if scheduled {
                            th scope="col" { "Runs at" }
                            th scope="col" { "Actions" }
                        } @else {
                            th scope="col" class="num" { "Attempts" }
                            th scope="col" { "Progress or error" }
                        }
                    }
                }
                tbody {
                    @for job in &found.jobs {
                        tr data-job=(job.id) {
                            td { (job_link(job.id)) }
                            td { (job.job_type) }
                            td { (job.owner) }
                            td { (state_badge(job.state)) }
                            td { (time(Some(job.created_at), now)) }
                            @if scheduled {
                                td data-run-at { (time(job.run_at, now)) }
                                td {
                                    a href={ "/confirm?action=run&job=" (job.id) } { "Run now…" }
                                    " "
                                    a href={ "/confirm?action=cancel&job=" (job.id) } { "Cancel…" }
                                }
                            } @else {
                                td.num { (job.attempts) }
                                td { (detail(job)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(link) = next {
            p { a href=(link) rel="next" { "Older jobs →" } }
        }
        @if found.listed.stopped_early {
            p.notice {
                "Stopped after " (found.listed.pages) " pages of the index: "
                (found.listed.passed_over)
                " jobs passed over by the filters. Follow “Older jobs” to read on."
            }
        }
        (source(html! {
            @if StateListing::of(state) == StateListing::DueIndex {
                "the jobs table's due index (every unfinished job), newest first by due time, each job read and kept if "
                (state.as_str()) "; this page read "
            } @else {
                "the jobs table's state index, newest first; this page read "
            }
            span data-scanned { (found.scanned) }
            " index entries (" (found.listed.pages) " pages of at most 16 × "
            (jobline_core::store::MAX_LIST_LIMIT) " entries), whatever the table holds."
        }))
    };
    Ok(Reply::ok(html::page(
        &format!("Jobs: {}", state.as_str()),
        Section::Jobs,
        body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::JobId;

    #[test]
    fn cursors_parse() {
        let id = JobId::random();
        assert_eq!(
            parse_cursor(&format!("12.{id}")),
            Some(ListKey { at: 12, id })
        );
        assert_eq!(parse_cursor("12"), None);
    }
}

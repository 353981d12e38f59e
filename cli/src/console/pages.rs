//! The console's pages: the overview, one job, and the dead letters (the
//! job list is in `job_list.rs`, the schedules in `schedules.rs`). Each
//! says where its numbers come from. They are maud templates
//! (see [`mod@html`]): checked at compile time, every job field escaped.

use super::html::{self, Section, encode, job_link, json_block, progress_bar, state_badge, time};
use super::{Console, ConsoleError, Reply};
use crate::jobs::{StateQuery, find_jobs};
use http::StatusCode;
use jobline_core::activity::Series;
use jobline_core::activity::Window;
use jobline_core::limits::DLQ_RETENTION_SECS;
use jobline_core::store::{StateCount, StateListing};
use jobline_core::{JobId, JobRecord, JobState, Metric};
use maud::{Markup, html};

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

pub(super) fn source(text: Markup) -> Markup {
    html! { p.source { "Source: " (text) } }
}

/// The overview: jobs by state, queue depths, the oldest queued job, and
/// the last hour's activity.
pub async fn overview(console: &Console, now: i64) -> Result<Reply, ConsoleError> {
    let window = Window::last(CHART_MINUTES, now);
    // Succeeded jobs are in no index: the chart's metrics count them.
    let indexed = JobState::ALL
        .map(|state| (StateListing::of(state) != StateListing::Unlisted).then_some(state));
    let counts = futures_util::future::try_join_all(
        indexed
            .iter()
            .flatten()
            .map(|state| console.store.count_by_state(*state, COUNT_PER_SHARD)),
    );
    let (counts, queue, dlq, oldest, history) = tokio::join!(
        counts,
        console.queue.counts(),
        console.dlq.counts(),
        console.store.oldest_queued(),
        console.history.per_minute(&CHARTED, window),
    );
    let (counts, queue, dlq, oldest, history) = (counts?, queue?, dlq?, oldest?, history?);
    let mut counts = counts.into_iter();
    let succeeded = history
        .iter()
        .find(|series| series.metric == Metric::JobsSucceeded)
        .map_or(0.0, Series::total);

    let counted = COUNT_PER_SHARD * usize::from(jobline_core::store::SHARDS);
    let body = html! {
        div.grid {
            section aria-labelledby="states" {
                h2 id="states" { "Jobs by state" }
                table.counts {
                    thead { tr { th scope="col" { "State" } th scope="col" class="num" { "Jobs" } } }
                    tbody {
                        @for (state, indexed) in JobState::ALL.iter().zip(&indexed) {
                            tr {
                                th scope="row" {
                                    @if indexed.is_some() {
                                        a href={ "/jobs?state=" (state.as_str()) } { (state_badge(*state)) }
                                    } @else {
                                        (state_badge(*state))
                                    }
                                }
                                @if indexed.is_some() {
                                    @let count = counts.next().unwrap_or(StateCount { count: 0, complete: true });
                                    td.num data-count=(state.as_str()) {
                                        (count.count) @if !count.complete { "+" }
                                    }
                                } @else {
                                    td.num data-count=(state.as_str()) title="in the last hour, from the JobsSucceeded metric" {
                                        (succeeded) " in the last hour"
                                    }
                                }
                            }
                        }
                    }
                }
                (source(html! {
                    "scheduled, queued and running: the jobs table's due index (" code { "pending-due" }
                    "), each job read, the first " (counted) " unfinished jobs counted (past them, a lower bound, shown with +); "
                    "failed and cancelled: its state index (" code { "state-created" } "), counted exactly up to "
                    (counted) " jobs a state; succeeded: in no index (each entry would cost every job write units), "
                    "so the last hour's " code { "JobsSucceeded" } " metric."
                }))
            }
            section aria-labelledby="queues" {
                h2 id="queues" { "Queues" }
                table {
                    thead {
                        tr {
                            th scope="col" { "Queue" }
                            th scope="col" class="num" { "Waiting" }
                            th scope="col" class="num" { "In flight" }
                            th scope="col" class="num" { "Delayed" }
                        }
                    }
                    tbody {
                        tr {
                            th scope="row" { "Jobs" }
                            td.num data-queue="jobs" { (queue.visible) }
                            td.num { (queue.in_flight) }
                            td.num { (queue.delayed) }
                        }
                        tr {
                            th scope="row" { a href="/dlq" { "Dead letters" } }
                            td.num data-queue="dlq" { (dlq.visible) }
                            td.num { (dlq.in_flight) }
                            td.num { (dlq.delayed) }
                        }
                    }
                }
                p {
                    "Oldest queued job: "
                    strong data-oldest {
                        @match oldest {
                            Some(job) => {
                                (crate::dlq::format_age((now - job.created_at).max(0) / 1_000))
                                " old (job " (job_link(job.id)) ")"
                            }
                            None => { "no job is queued" }
                        }
                    }
                }
                (source(html! {
                    "SQS queue attributes (approximate, updated by SQS within a minute; reading them receives nothing); the oldest queued job from the due index, by due time (its creation time unless it was replayed or continued)."
                }))
            }
        }
        section aria-labelledby="activity" {
            h2 id="activity" { "Activity, per minute over the last hour" }
            (html::chart(&history, window))
            (source(html! {
                "CloudWatch (" code { "GetMetricData" } ", namespace " code { "Jobline" }
                ", the functions' EMF metrics summed over every job type)."
                @if console.emulated {
                    " Locally nothing ingests EMF lines: the emulator's CloudWatch holds what "
                    code { "jobline-local serve --ingest-metrics" } " put there ("
                    code { "scripts/dev" } " turns it on)."
                }
            }))
        }
    };
    Ok(Reply::ok(html::page("Overview", Section::Overview, body)))
}

/// A job's progress, or its last error, in a table cell.
pub(super) fn detail(job: &JobRecord) -> Markup {
    html! {
        @if let Some(error) = &job.error {
            span.error-text { (error.chars().take(120).collect::<String>()) }
        } @else if let Some(progress) = &job.progress {
            (progress_bar(progress.fraction, &progress.message))
        }
    }
}

/// The actions a job's state allows, as links to their confirmation.
fn job_actions(job: &JobRecord) -> Markup {
    let mut actions = Vec::new();
    if job.state == JobState::Scheduled {
        actions.push(("run", "Run now…"));
    }
    if !job.state.is_finished() {
        actions.push(("cancel", "Cancel…"));
    }
    if job.state == JobState::Failed {
        if job.dead_lettered && !job.discarded {
            actions.push(("replay", "Replay dead letter…"));
            actions.push(("discard", "Discard dead letter…"));
        } else {
            actions.push(("retry", "Retry…"));
        }
    }
    html! {
        @if !actions.is_empty() {
            p.actions {
                @for (i, (action, label)) in actions.into_iter().enumerate() {
                    @if i > 0 { " " }
                    a.button href={ "/confirm?action=" (action) "&job=" (job.id) } { (label) }
                }
            }
        }
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
    let yes_no = |flag: bool| if flag { "yes" } else { "no" };
    let webhook = jobline_core::view::webhook_view(&job);
    let files = super::job_files::section(console, &job, now).await?;
    let error_heading = if job.state == JobState::Failed {
        "Error"
    } else {
        "The last attempt's error"
    };
    let body = html! {
        (job_actions(&job))
        dl.fields {
            dt { "State" } dd { span data-state { (state_badge(job.state)) } }
            dt { "Type" } dd { (job.job_type) }
            dt { "Caller" } dd { (job.owner) }
            dt { "Created" } dd { (time(Some(job.created_at), now)) }
            @if let Some(run_at) = job.run_at {
                dt { "Runs at" } dd data-run-at { (time(Some(run_at), now)) }
            }
            @if let Some(schedule) = &job.schedule_id {
                dt { "Schedule" }
                dd {
                    a href={ "/schedules/" (schedule) "?owner=" (encode(&job.owner)) } { code { (schedule) } }
                }
            }
            dt { "First started" } dd { (time(job.started_at, now)) }
            dt { "This run started" } dd { (time(job.run_started_at, now)) }
            dt { "Finished" } dd { (time(job.finished_at, now)) }
            dt { "Attempts" } dd { (job.attempts) }
            dt { "Lease until" } dd { (time(job.lease_expires_at, now)) }
            dt { "Continuations" } dd { (job.continuations) }
            dt { "Checkpoint saved" } dd { (time(job.checkpoint_at, now)) }
            @if let Some(progress) = &job.progress {
                dt { "Progress" }
                dd {
                    (progress_bar(progress.fraction, &progress.message))
                    " (" (time(Some(progress.at_ms), now)) ")"
                }
            }
            dt { "Cancel requested" } dd { (yes_no(job.cancel_requested)) }
            dt { "Dead-lettered" } dd { (yes_no(job.dead_lettered)) }
            dt { "Discarded" } dd { (yes_no(job.discarded)) }
            dt { "Replays" } dd { (job.replays) }
            @if let Some(url) = &job.callback_url {
                dt { "Webhook" }
                dd { (url) " — " (webhook["state"].as_str().unwrap_or("pending")) }
            }
            dt { "Kept until (TTL)" } dd { (jobline_core::job::format_ms(job.expires_at * 1_000)) }
        }
        @if let Some(error) = &job.error {
            h2 { (error_heading) }
            pre.error-text data-error { (error) }
        }
        h2 { "Payload" }
        (json_block(&job.payload))
        @if let Some(result) = &job.result {
            h2 { "Result" }
            (json_block(result))
        } @else if let Some(key) = &job.result_key {
            h2 { "Result" }
            p {
                "Stored apart in the results bucket under " code { (key) }
                " (the API hands clients a presigned link)."
            }
        }
        (files)
        (source(html! {
            "the job's item in the jobs table (a strongly consistent read)"
            @if console.bucket.is_some() { "; its outputs, listed in the results bucket" }
            "."
        }))
    };
    Ok(Reply::ok(html::page(
        &format!("Job {}", job.id),
        Section::Jobs,
        body,
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
    // SQS expires a dead letter by its original send, which came before its
    // job failed: past this, no message of the job can be left.
    let expired_before = now - i64::from(DLQ_RETENTION_SECS) * 1000;
    let letter_expired = |job: &JobRecord| job.finished_at.is_some_and(|at| at < expired_before);
    let expired = dead.iter().filter(|job| letter_expired(job)).count();
    let body = html! {
        p {
            "The dead-letter queue holds " strong data-dlq-depth { (counts.visible) }
            " messages (" (counts.in_flight) " being handled)."
        }
        p.actions {
            a.button href="/confirm?action=replay" { "Replay all…" }
            " "
            a class="button danger" href="/confirm?action=discard" { "Discard all…" }
        }
        @if expired > 0 || (counts.visible + counts.in_flight == 0 && !dead.is_empty()) {
            p.note data-expired=(expired) {
                "Some of these jobs have no dead letter left: the DLQ keeps a message 14 days from its first send, so "
                (expired)
                " of them failed too long ago, and an empty DLQ holds none. Retry runs such a job again from its record."
            }
        }
        @if dead.is_empty() {
            p.empty { "No dead-lettered job among the newest failed jobs." }
        } @else {
            table.jobs {
                thead {
                    tr {
                        th scope="col" { "Job" }
                        th scope="col" { "Type" }
                        th scope="col" { "Caller" }
                        th scope="col" { "Failed" }
                        th scope="col" class="num" { "Attempts" }
                        th scope="col" { "Last error" }
                        th scope="col" { "Actions" }
                    }
                }
                tbody {
                    @for job in &dead {
                        @let id = job.id;
                        tr data-dead=(id) {
                            td { (job_link(id)) }
                            td { (job.job_type) }
                            td { (job.owner) }
                            td { (time(job.finished_at, now)) }
                            td.num { (job.attempts) }
                            td { (detail(job)) }
                            td {
                                @if letter_expired(job) {
                                    span { "dead letter expired" }
                                } @else {
                                    a href={ "/confirm?action=replay&job=" (id) } { "Replay…" }
                                }
                                " "
                                a href={ "/confirm?action=retry&job=" (id) } { "Retry…" }
                                " "
                                a href={ "/confirm?action=discard&job=" (id) } { "Discard…" }
                            }
                        }
                    }
                }
            }
        }
        (source(html! {
            "the DLQ's queue attributes, and the failed jobs marked dead-lettered in the state index (newest 100 failed jobs). Looking receives no message; replay and discard do, for the moment they run, as "
            code { "jobline dlq" } " does."
        }))
    };
    Ok(Reply::ok(html::page(
        "Dead letters",
        Section::DeadLetters,
        body,
    )))
}

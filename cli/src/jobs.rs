//! `jobline jobs`: every caller's jobs in one state, newest first
//! ([`OperatorStore::list_by_state`]): failed and cancelled jobs from the
//! jobs table's state index, by creation time; queued and running ones from
//! its due index, by due time; succeeded jobs are in no index, and the
//! listing says so. Read with the operator's own AWS credentials.
//!
//! The type and owner filters are applied here, to the pages the index
//! gives: a filter that matches few jobs could otherwise page through a
//! whole state, so the listing reads at most [`MAX_PAGES`] pages and says
//! on stderr how many jobs it passed over when it stops there.

use jobline_core::caller::CallerKey;
use jobline_core::store::{JobPage, ListKey, MAX_LIST_LIMIT, ReplayOutcome, StateListing};
use jobline_core::view::job_summary;
use jobline_core::{
    JobId, JobMessage, JobQueue, JobRecord, JobState, OperatorStore, QueueError, StoreError,
};
use serde_json::{Value, json};
use std::io::{self, Write};

/// The most pages of [`OperatorStore::list_by_state`] one listing reads (each
/// reads at most 16 × its limit index entries and as many summaries).
pub const MAX_PAGES: usize = 20;

/// What `jobline jobs` (and the console's job list) lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateQuery {
    pub state: JobState,
    /// At most this many jobs are listed.
    pub limit: usize,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs of this caller.
    pub owner: Option<String>,
    /// Only jobs created at or after this time (ms since the epoch): the
    /// listing stops at the first older one, as it reads newest first.
    pub created_since: Option<i64>,
    /// Only jobs created before this time (ms since the epoch): the listing
    /// starts there, which costs no read.
    pub created_before: Option<i64>,
}

impl StateQuery {
    /// Every job in `state`, up to `limit`, newest first.
    pub fn new(state: JobState, limit: usize) -> Self {
        Self {
            state,
            limit,
            job_type: None,
            owner: None,
            created_since: None,
            created_before: None,
        }
    }

    fn matches(&self, job: &JobRecord) -> bool {
        self.job_type.as_deref().is_none_or(|t| job.job_type == t)
            && self.owner.as_deref().is_none_or(|o| job.owner == o)
    }

    fn filtered(&self) -> bool {
        self.job_type.is_some()
            || self.owner.is_some()
            || (!self.by_creation()
                && (self.created_since.is_some() || self.created_before.is_some()))
    }

    /// Whether the store lists this state by creation time, so that the
    /// time filters can start and stop the listing; listed by due time
    /// (the unfinished states), they only filter.
    fn by_creation(&self) -> bool {
        StateListing::of(self.state) == StateListing::StateIndex
    }

    fn in_window(&self, job: &JobRecord) -> bool {
        self.created_since
            .is_none_or(|since| job.created_at >= since)
            && self
                .created_before
                .is_none_or(|before| job.created_at < before)
    }

    /// Where the listing starts: after `after`, and before `created_before`
    /// when the listing is by creation time.
    fn start(&self, after: Option<ListKey>) -> Option<ListKey> {
        let before = self
            .created_before
            .filter(|_| self.by_creation())
            .map(|at| ListKey { at, id: JobId::MIN });
        match (after, before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a listing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// The jobs listed.
    pub printed: usize,
    /// The jobs read that the type or owner filter left out.
    pub passed_over: usize,
    /// The pages read.
    pub pages: usize,
    /// It stopped at [`MAX_PAGES`] with more jobs left to read.
    pub stopped_early: bool,
}

impl Listed {
    /// Tells `err` that the listing stopped at its page bound, if it did.
    pub fn report(&self, err: &mut dyn Write) -> io::Result<()> {
        if self.stopped_early {
            writeln!(
                err,
                "stopped after {} pages: {} jobs printed, {} passed over by the \
                 --type/--owner/time filters; more jobs in this state were not read",
                self.pages, self.printed, self.passed_over
            )?;
        }
        Ok(())
    }
}

/// One listing's jobs, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The jobs that passed the filters, newest first, without payloads,
    /// results and checkpoints.
    pub jobs: Vec<JobRecord>,
    pub listed: Listed,
    /// The index entries read (at most `SHARDS × page size` a page).
    pub scanned: usize,
    /// Where the next listing starts, when more jobs may follow.
    pub next: Option<ListKey>,
}

/// Errors of a listing.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("listing the jobs: {0}")]
    Store(#[from] StoreError),
    #[error("writing the output: {0}")]
    Output(#[from] io::Error),
}

/// A listed job as printed: its summary at `now_ms` ([`job_summary`]) and
/// its owner.
pub fn job_line(job: &JobRecord, now_ms: i64) -> Value {
    let mut line = job_summary(job, now_ms);
    if let Value::Object(fields) = &mut line {
        fields.insert("owner".to_owned(), json!(job.owner));
    }
    line
}

/// A UTC minute, `2026-11-30T10:15` (or with a space, or a trailing `Z`),
/// in ms since the epoch: the time filters of `jobline jobs` and the console.
pub fn parse_utc_minute(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, clock) = text.split_once(['T', ' '])?;
    let mut date = date.split('-').map(str::parse::<i32>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut clock = clock.split(':').map(str::parse::<u8>);
    let (hour, minute) = (clock.next()?.ok()?, clock.next()?.ok()?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let at = date.with_hms(hour, minute, 0).ok()?.assume_utc();
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Up to `query.limit` jobs in `query.state` that pass its filters, newest
/// first, starting after `after`, reading at most [`MAX_PAGES`] pages of
/// `store`'s state listing.
pub async fn find_jobs(
    store: &dyn OperatorStore,
    query: &StateQuery,
    after: Option<ListKey>,
) -> Result<Found, StoreError> {
    let mut found = Found {
        jobs: Vec::new(),
        listed: Listed {
            printed: 0,
            passed_over: 0,
            pages: 0,
            stopped_early: false,
        },
        scanned: 0,
        next: None,
    };
    let mut after = query.start(after);
    'pages: while found.jobs.len() < query.limit {
        if found.listed.pages == MAX_PAGES {
            found.listed.stopped_early = true;
            found.next = after;
            break;
        }
        // Unfiltered, a page holds what is left to list; filtered, as many
        // jobs as a page can, since some will be passed over.
        let page_size = if query.filtered() {
            MAX_LIST_LIMIT
        } else {
            query.limit - found.jobs.len()
        };
        let JobPage {
            jobs,
            keys,
            next,
            scanned,
        } = store
            .list_by_state(query.state, after, page_size.clamp(1, MAX_LIST_LIMIT))
            .await?;
        found.listed.pages += 1;
        found.scanned += scanned;
        for (key, job) in keys.into_iter().zip(jobs) {
            if query.by_creation()
                && query
                    .created_since
                    .is_some_and(|since| job.created_at < since)
            {
                found.next = None;
                break 'pages;
            }
            if found.jobs.len() == query.limit {
                found.next = after;
                break 'pages;
            }
            after = Some(key);
            if query.matches(&job) && query.in_window(&job) {
                found.jobs.push(job);
            } else {
                found.listed.passed_over += 1;
            }
        }
        match next {
            Some(next) => {
                after = Some(next);
                found.next = Some(next);
            }
            None => {
                found.next = None;
                break;
            }
        }
    }
    found.listed.printed = found.jobs.len();
    Ok(found)
}

/// Prints to `out`, one JSON object a line, the jobs [`find_jobs`] finds
/// from the newest on, as their clients see them at `now_ms` (a scheduled
/// job whose time has come shows `queued`; the listing is by the records'
/// state).
pub async fn list_jobs(
    store: &dyn OperatorStore,
    query: &StateQuery,
    now_ms: i64,
    out: &mut dyn Write,
) -> Result<Listed, JobsError> {
    let found = find_jobs(store, query, None).await?;
    for job in &found.jobs {
        serde_json::to_writer(&mut *out, &job_line(job, now_ms)).map_err(io::Error::from)?;
        writeln!(out)?;
    }
    Ok(found.listed)
}

/// What [`retry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// The job was `failed` and is `queued` again; its message was sent.
    Requeued { message_id: String },
    /// The job was already `queued` (a retry whose send failed, say): its
    /// message was sent again; a duplicate costs one refused claim.
    SentAgain { message_id: String },
    /// The job is in a state a retry does not touch.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// Errors of a retry.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("requeueing the job: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the job is queued again but its message could not be sent ({0}); retry again to send it"
    )]
    Send(#[from] QueueError),
}

/// An operator runs a finished-as-failed job again (`jobline retry`, the
/// console's Retry): [`ReplayStore::replay`](jobline_core::ReplayStore::replay) puts it back to `queued`, then its
/// message goes to `queue`. A retry whose send failed leaves the job
/// `queued`, and retrying it again sends the message.
pub async fn retry(
    store: &dyn OperatorStore,
    queue: &dyn JobQueue,
    id: JobId,
    now_ms: i64,
) -> Result<Retried, RetryError> {
    let requeued = match store.replay(id, now_ms).await? {
        ReplayOutcome::Replayed => true,
        ReplayOutcome::Unchanged(JobState::Queued) => false,
        ReplayOutcome::Unchanged(state) => return Ok(Retried::Unchanged(state)),
        ReplayOutcome::Missing => return Ok(Retried::Missing),
    };
    // In its caller's fair-queue group, as its first message was.
    let group = store.get(id).await?.map(|job| CallerKey::of(&job.owner));
    let message_id = queue.send(&JobMessage::new(id).in_group(group)).await?;
    Ok(if requeued {
        Retried::Requeued { message_id }
    } else {
        Retried::SentAgain { message_id }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::ApiStore;
    use jobline_testkit::memory::store::MemoryStore;
    use jobline_testkit::testing::{job, now_ms};

    async fn store_with(jobs: &[JobRecord]) -> MemoryStore {
        let store = MemoryStore::new();
        for job in jobs {
            store.create(job).await.unwrap();
        }
        store
    }

    fn query(state: JobState, limit: usize) -> StateQuery {
        StateQuery::new(state, limit)
    }

    async fn run(store: &dyn OperatorStore, query: &StateQuery) -> (Vec<Value>, Listed) {
        let mut out = Vec::new();
        let listed = list_jobs(store, query, now_ms(), &mut out).await.unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (lines, listed)
    }

    #[tokio::test]
    async fn jobs_lists_one_state_of_every_caller_newest_first() {
        let jobs: Vec<JobRecord> = (0..12)
            .map(|i| {
                job(if i % 3 == 0 { "csv-stats" } else { "primes" })
                    .owner(&format!("caller-{}", i % 4))
                    .state(if i % 2 == 0 {
                        JobState::Failed
                    } else {
                        JobState::Queued
                    })
                    .created_at(1_000 + i)
                    .build()
            })
            .collect();
        let store = store_with(&jobs).await;

        let (lines, listed) = run(&store, &query(JobState::Failed, 50)).await;
        let ids: Vec<String> = lines
            .iter()
            .map(|line| line["jobId"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = jobs
            .iter()
            .rev()
            .filter(|job| job.state == JobState::Failed)
            .map(|job| job.id.to_string())
            .collect();
        assert_eq!(ids, expected);
        assert_eq!(lines[0]["owner"], "caller-2", "job 10's caller");
        assert_eq!(lines[0]["status"], "failed");
        assert_eq!(lines[0]["type"], "primes");
        assert_eq!(listed.printed, 6);
        assert!(!listed.stopped_early);

        let (lines, listed) = run(&store, &query(JobState::Queued, 2)).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["jobId"], jobs[11].id.to_string());
        assert_eq!(lines[1]["jobId"], jobs[9].id.to_string());
        assert_eq!(listed.pages, 1);

        // Filters: type and owner, in code.
        let mut filtered = query(JobState::Failed, 50);
        filtered.job_type = Some("csv-stats".into());
        let (lines, listed) = run(&store, &filtered).await;
        let ids: Vec<&str> = lines.iter().map(|l| l["jobId"].as_str().unwrap()).collect();
        assert_eq!(ids, [jobs[6].id.to_string(), jobs[0].id.to_string()]);
        assert_eq!(listed.passed_over, 4);
        filtered.owner = Some("caller-2".into());
        let (lines, _) = run(&store, &filtered).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["jobId"], jobs[6].id.to_string());

        let (lines, listed) = run(&store, &query(JobState::Running, 50)).await;
        assert!(lines.is_empty());
        assert_eq!((listed.printed, listed.pages), (0, 1));
    }

    #[test]
    fn utc_minutes_parse() {
        assert_eq!(parse_utc_minute("1970-01-01T00:01"), Some(60_000));
        assert_eq!(
            parse_utc_minute("2026-11-30 10:15Z"),
            Some(1_796_033_700_000)
        );
        assert_eq!(parse_utc_minute("yesterday"), None);
        assert_eq!(parse_utc_minute("2026-13-01T00:00"), None);
        assert_eq!(parse_utc_minute("2026-11-30T24:00"), None);
    }

    #[tokio::test]
    async fn a_listing_resumes_where_it_stopped_within_its_time_range() {
        for state in [JobState::Cancelled, JobState::Queued] {
            resumes_within_its_time_range(state).await;
        }
    }

    /// Pages of a filtered listing of `state` (by creation time, or by due
    /// time) each resume where the one before stopped.
    async fn resumes_within_its_time_range(state: JobState) {
        let jobs: Vec<JobRecord> = (0..30)
            .map(|i| {
                job(if i % 2 == 0 { "primes" } else { "sleep" })
                    .state(state)
                    .created_at(1_000 + i)
                    .build()
            })
            .collect();
        let store = store_with(&jobs).await;
        let newest_first = |wanted: &dyn Fn(&JobRecord) -> bool| -> Vec<JobId> {
            jobs.iter()
                .rev()
                .filter(|j| wanted(j))
                .map(|j| j.id)
                .collect()
        };
        // Pages of 4 sleep jobs created in [1_005, 1_025): each resumes
        // after the last job the one before examined.
        let query = StateQuery {
            job_type: Some("sleep".into()),
            created_since: Some(1_005),
            created_before: Some(1_025),
            ..StateQuery::new(state, 4)
        };
        let (mut listed, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let found = find_jobs(&store, &query, after).await.unwrap();
            assert!(found.jobs.len() <= 4);
            listed.extend(found.jobs.iter().map(|j| j.id));
            pages += 1;
            match found.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected =
            newest_first(&|j| j.job_type == "sleep" && (1_005..1_025).contains(&j.created_at));
        assert_eq!(listed, expected, "{state}");
        assert_eq!(pages, 3, "{state}: 10 jobs by pages of 4");
    }

    #[tokio::test]
    async fn retry_requeues_a_failed_job_and_sends_its_message() {
        use jobline_testkit::memory::queue::MemoryQueue;
        let failed = job("primes").state(JobState::Failed).error("boom").build();
        let done = job("primes").state(JobState::Succeeded).build();
        let store = store_with(&[failed.clone(), done.clone()]).await;
        let queue = MemoryQueue::new();

        queue.set_failing_sends(true);
        assert!(matches!(
            retry(&store, &queue, failed.id, now_ms()).await,
            Err(RetryError::Send(_))
        ));
        assert_eq!(store.job(failed.id).unwrap().state, JobState::Queued);
        queue.set_failing_sends(false);
        assert!(matches!(
            retry(&store, &queue, failed.id, now_ms()).await.unwrap(),
            Retried::SentAgain { .. }
        ));
        assert_eq!(
            queue.sent(),
            [JobMessage::new(failed.id).in_group(Some(CallerKey::of(&failed.owner)))]
        );

        let again = job("primes").state(JobState::Failed).build();
        store.create(&again).await.unwrap();
        assert!(matches!(
            retry(&store, &queue, again.id, now_ms()).await.unwrap(),
            Retried::Requeued { .. }
        ));
        assert_eq!(store.job(again.id).unwrap().replays, 1);
        assert_eq!(
            retry(&store, &queue, done.id, now_ms()).await.unwrap(),
            Retried::Unchanged(JobState::Succeeded)
        );
        assert_eq!(
            retry(&store, &queue, JobId::random(), now_ms())
                .await
                .unwrap(),
            Retried::Missing
        );
        assert_eq!(queue.sent().len(), 2, "nothing sent for the others");
    }

    #[tokio::test]
    async fn jobs_stops_after_its_page_bound_and_says_so() {
        // More non-matching jobs than MAX_PAGES pages hold, then one match.
        let others = MAX_PAGES * MAX_LIST_LIMIT + 5;
        let mut jobs: Vec<JobRecord> = vec![
            job("primes")
                .owner("wanted")
                .state(JobState::Cancelled)
                .created_at(0)
                .build(),
        ];
        jobs.extend((0..others).map(|i| {
            job("primes")
                .owner("someone-else")
                .state(JobState::Cancelled)
                .created_at(1 + i as i64)
                .build()
        }));
        let store = store_with(&jobs).await;
        let mut wanted = query(JobState::Cancelled, 5);
        wanted.owner = Some("wanted".into());
        let (lines, listed) = run(&store, &wanted).await;
        assert!(lines.is_empty(), "the match is past the bound");
        assert_eq!(
            listed,
            Listed {
                printed: 0,
                passed_over: MAX_PAGES * MAX_LIST_LIMIT,
                pages: MAX_PAGES,
                stopped_early: true,
            }
        );
        let mut err = Vec::new();
        listed.report(&mut err).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("stopped after 20 pages"), "{err}");
        assert!(err.contains("2000 passed over"), "{err}");

        // Without a filter the same listing ends within the bound.
        let (lines, listed) = run(&store, &query(JobState::Cancelled, 5)).await;
        assert_eq!(lines.len(), 5);
        let mut err = Vec::new();
        listed.report(&mut err).unwrap();
        assert!(err.is_empty());
    }
}

//! The dead-letter queue tools: `jobline dlq list`, `replay` and `discard`.
//!
//! SQS cannot read a queue without receiving from it, and a receive hides the
//! message for a visibility timeout. So every command first *scans* the DLQ
//! (`scan.rs`): it receives everything (or up to the limit), holding each
//! message hidden [`HOLD_SECS`] at a time, and picks the messages its
//! [`Selection`] wants. The messages it passes over are made visible again as
//! soon as the scan ends, before any job is touched; they must stay hidden
//! until then, or the scan would receive them again and could not tell a
//! drained queue from a redelivery. The selected messages stay hidden only
//! while the command works: their hold is extended [`HOLD_SECS`] at a time
//! while the run lasts, and each is deleted or made visible again as soon as
//! it is handled. A killed command hides nothing for longer than
//! [`HOLD_SECS`].
//!
//! A command stops at the first message it fails to handle (an AWS error
//! tends to repeat): the messages not yet attempted are made visible again
//! and the report says how many were handled and how many remain.

pub mod discard;
pub mod list;
pub mod replay;
mod scan;

pub use discard::DiscardReport;
pub use list::{ListRow, format_age, render_list};
pub use replay::{ReplayEntry, ReplayReport};

use jobline_core::job::JobRecord;
use jobline_core::queue::ReceivedMessage;
use jobline_core::{Clock, JobId, JobQueue, OperatorStore, QueueError, StoreError};
use scan::Scan;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// How long the commands hide a message at a time: enough for a scan batch
/// or a few replays, short enough that a killed command hides nothing for
/// long. The hold is extended while a run lasts.
pub const HOLD_SECS: u32 = 30;
/// A hold that ends sooner than this is extended before the next step.
const EXTEND_MARGIN: Duration = Duration::from_secs(10);
/// Why a job message has no job.
const JOB_MISSING: &str = "job record not found (expired or never written)";

/// Errors that stop a DLQ command before it handled any message. Failures
/// while handling messages are not errors: they are reported in the
/// command's report.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queues and store the DLQ commands work on.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue<'a> {
    /// The dead-letter queue (`JOBS_DLQ_URL`).
    pub dlq: &'a dyn JobQueue,
    /// The main queue replayed jobs are sent to (`JOBS_QUEUE_URL`).
    pub queue: &'a dyn JobQueue,
    /// The job records (`JOBS_TABLE`).
    pub store: &'a dyn OperatorStore,
    /// How long a message is hidden at a time ([`HOLD_SECS`]).
    pub hold_secs: u32,
    /// The time replays and discards are stamped with (the wall clock, or a
    /// test's movable one).
    pub clock: Clock,
}

/// A message read from the DLQ.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message: ReceivedMessage,
    pub body: DeadBody,
}

/// What a dead message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadBody {
    /// A job message; `record` is `None` when the job is not in the table
    /// (its TTL expired, or it was never written).
    Job {
        job_id: JobId,
        record: Option<Box<JobRecord>>,
    },
    /// A body that is not a Jobline message, with the reason.
    Malformed(String),
}

impl DeadLetter {
    pub fn job_id(&self) -> Option<JobId> {
        match &self.body {
            DeadBody::Job { job_id, .. } => Some(*job_id),
            DeadBody::Malformed(_) => None,
        }
    }

    pub fn record(&self) -> Option<&JobRecord> {
        match &self.body {
            DeadBody::Job { record, .. } => record.as_deref(),
            DeadBody::Malformed(_) => None,
        }
    }
}

/// Which dead messages a command works on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Only these jobs (any of them); empty means every job.
    pub job_ids: Vec<JobId>,
    /// Only jobs of these types (any of them); empty means every type.
    pub job_types: Vec<String>,
    /// At most this many messages.
    pub limit: Option<NonZeroUsize>,
}

impl Selection {
    /// Everything, up to `limit`.
    pub fn all(limit: Option<NonZeroUsize>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    fn is_filtered(&self) -> bool {
        !self.job_ids.is_empty() || !self.job_types.is_empty()
    }

    fn wants_job(&self, id: JobId) -> bool {
        self.job_ids.is_empty() || self.job_ids.contains(&id)
    }

    /// A job whose record is missing has no type, so a type filter drops it.
    fn wants_type(&self, record: Option<&JobRecord>) -> bool {
        self.job_types.is_empty()
            || record.is_some_and(|job| self.job_types.contains(&job.job_type))
    }

    /// The filters as command-line flags, e.g. `--type primes --job-id …`.
    pub fn filter_flags(&self) -> String {
        let types = self.job_types.iter().map(|t| format!("--type {t}"));
        let ids = self.job_ids.iter().map(|id| format!("--job-id {id}"));
        types.chain(ids).collect::<Vec<_>>().join(" ")
    }
}

/// What happened to one selected message; `O` is the command's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<O> {
    pub message_id: String,
    pub job_id: Option<JobId>,
    pub job_type: Option<String>,
    pub outcome: O,
}

impl<O> Entry<O> {
    fn new(letter: &DeadLetter, outcome: O) -> Self {
        Self {
            message_id: letter.message.message_id.clone(),
            job_id: letter.job_id(),
            job_type: letter.record().map(|job| job.job_type.clone()),
            outcome,
        }
    }

    /// `job ID (TYPE)`, or `message ID` for a message without a job.
    pub fn subject(&self) -> String {
        match (&self.job_id, &self.job_type) {
            (Some(id), Some(job_type)) => format!("job {id} ({job_type})"),
            (Some(id), None) => format!("job {id}"),
            (None, _) => format!("message {}", self.message_id),
        }
    }
}

/// What a command's outcome for one message means to the run.
trait Handled {
    /// The dead message was deleted.
    fn deleted(&self) -> bool;
    /// Handling it failed: the run stops here.
    fn failed(&self) -> bool;
    /// The failure of a message the run could not go on with.
    fn failure(reason: String) -> Self;
}

/// How a run went, besides the selected messages' outcomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Messages the filters did not match, made visible again untouched.
    pub passed_over: usize,
    /// The filters, as flags, for the passed-over line.
    pub filters: String,
    /// `--limit`, when the scan stopped on it.
    pub limit_reached: Option<NonZeroUsize>,
    /// Messages received after the limit was reached, made visible again.
    pub beyond_limit: usize,
    /// Selected messages not attempted because the run stopped at a
    /// failure; they stay in the DLQ, visible.
    pub not_attempted: usize,
}

impl Tally {
    /// Ends the summary line with the passed-over count, then says why the
    /// run stopped early, if it did. `handled` counts the messages handled.
    fn render(&self, handled: usize, out: &mut dyn Write) -> io::Result<()> {
        if self.passed_over > 0 {
            write!(
                out,
                "; {} passed over (did not match {})",
                messages(self.passed_over),
                self.filters
            )?;
        }
        writeln!(out)?;
        if self.not_attempted > 0 {
            writeln!(
                out,
                "stopped at the failure: {} handled, {} not attempted and left in the DLQ, \
                 visible; run the command again to go on",
                messages(handled),
                messages(self.not_attempted)
            )?;
        }
        if let Some(limit) = self.limit_reached {
            let seen = match self.beyond_limit {
                0 => "the DLQ may hold more".to_owned(),
                n => format!(
                    "{} seen after it and left in the DLQ, maybe others",
                    messages(n)
                ),
            };
            writeln!(
                out,
                "stopped at --limit {limit}: {} handled; {seen}",
                messages(handled)
            )?;
        }
        Ok(())
    }
}

/// `1 message`, `7 messages`.
fn messages(n: usize) -> String {
    if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    }
}

impl<'a> DeadLetterQueue<'a> {
    /// The tools on these queues and store, holding messages [`HOLD_SECS`]
    /// at a time.
    pub fn new(
        dlq: &'a dyn JobQueue,
        queue: &'a dyn JobQueue,
        store: &'a dyn OperatorStore,
    ) -> Self {
        Self {
            dlq,
            queue,
            store,
            hold_secs: HOLD_SECS,
            clock: Clock::system(),
        }
    }

    /// Stamps replays and discards with `clock`'s time.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn hold(&self) -> Duration {
        Duration::from_secs(self.hold_secs.into())
    }

    /// Makes a message visible again at once. A failure is only logged: the
    /// message comes back by itself when its visibility timeout ends.
    async fn make_visible(&self, receipt_handle: &str) {
        if let Err(error) = self.dlq.change_visibility(receipt_handle, 0).await {
            tracing::warn!(%error, "could not make a DLQ message visible again; it reappears when its visibility timeout ends");
        }
    }

    /// Extends the hold on `receipt_handles` when it ends within
    /// [`EXTEND_MARGIN`]; `held_until` is when it ends.
    async fn keep_hidden<'h>(
        &self,
        receipt_handles: impl IntoIterator<Item = &'h str>,
        held_until: &mut Instant,
    ) -> Result<(), QueueError> {
        let now = Instant::now();
        if held_until.saturating_duration_since(now) >= EXTEND_MARGIN {
            return Ok(());
        }
        for handle in receipt_handles {
            self.dlq.change_visibility(handle, self.hold_secs).await?;
        }
        *held_until = now + self.hold();
        Ok(())
    }

    /// Runs `handle` on each selected message of `scan` in turn, after making
    /// the passed-over messages visible again. A message that is not deleted
    /// is made visible again once handled; at the first failure the run
    /// stops and the rest are made visible again.
    async fn work<O: Handled>(
        &self,
        mut scan: Scan,
        handle: impl AsyncFn(&DeadLetter) -> O,
    ) -> (Vec<Entry<O>>, Tally) {
        for message in &scan.unselected {
            self.make_visible(&message.receipt_handle).await;
        }
        let mut entries = Vec::with_capacity(scan.selected.len());
        let mut letters = scan.selected.iter();
        while let Some(letter) = letters.next() {
            let waiting = std::iter::once(letter)
                .chain(letters.clone())
                .map(|l| l.message.receipt_handle.as_str());
            let outcome = match self.keep_hidden(waiting, &mut scan.held_until).await {
                Ok(()) => handle(letter).await,
                Err(error) => {
                    let why = format!("could not keep the message hidden: {error}");
                    entries.push(Entry::new(letter, O::failure(why)));
                    self.make_visible(&letter.message.receipt_handle).await;
                    break;
                }
            };
            if !outcome.deleted() {
                self.make_visible(&letter.message.receipt_handle).await;
            }
            let failed = outcome.failed();
            entries.push(Entry::new(letter, outcome));
            if failed {
                break;
            }
        }
        let rest: Vec<&DeadLetter> = letters.collect();
        for letter in &rest {
            self.make_visible(&letter.message.receipt_handle).await;
        }
        scan.tally.not_attempted = rest.len();
        (entries, scan.tally)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The in-memory table and queues the commands' unit tests run on.

    use super::DeadLetterQueue;
    use jobline_core::{JobId, JobMessage, JobRecord, JobRequest, JobState};
    pub use jobline_testkit::memory::{queue::MemoryQueue, store::MemoryStore};
    use serde_json::json;
    use std::num::NonZeroUsize;

    /// Puts a job in `state` in the table; returns its id.
    pub fn insert(
        store: &MemoryStore,
        job_type: &str,
        state: JobState,
        error: Option<&str>,
    ) -> JobId {
        let request = JobRequest {
            job_type: job_type.into(),
            payload: json!({}),
            callback_url: None,
        };
        let mut job = JobRecord::new_queued(JobId::random(), "alice", &request, 1_000, 30);
        job.state = state;
        job.error = error.map(str::to_owned);
        job.dead_lettered = state == JobState::Failed;
        let id = job.id;
        store.insert(job);
        id
    }

    /// Puts a dead message for job `id` in the DLQ; returns its message id.
    pub fn push_job(dlq: &MemoryQueue, id: JobId) -> String {
        dlq.push(&JobMessage::new(id).encode())
    }

    pub fn record(store: &MemoryStore, id: JobId) -> JobRecord {
        store.job(id).expect("the job is in the table")
    }

    pub fn tools<'a>(
        dlq: &'a MemoryQueue,
        queue: &'a MemoryQueue,
        store: &'a MemoryStore,
    ) -> DeadLetterQueue<'a> {
        DeadLetterQueue::new(dlq, queue, store)
    }

    pub fn all_visible(queue: &MemoryQueue) -> bool {
        queue.contents().iter().all(|(_, visible)| *visible)
    }

    /// The DLQ tools only ever make messages visible again when their hold
    /// is not extended: every visibility change is `ChangeMessageVisibility 0`.
    pub fn assert_only_made_visible(queues: &[&MemoryQueue]) {
        for queue in queues {
            let changes = queue.visibility_changes();
            assert!(changes.iter().all(|(_, secs)| *secs == 0), "{changes:?}");
        }
    }

    pub fn limit(n: usize) -> Option<NonZeroUsize> {
        NonZeroUsize::new(n)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use jobline_core::JobState;

    #[tokio::test]
    async fn a_long_run_extends_the_hold_of_the_messages_it_still_holds() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        for _ in 0..3 {
            push_job(&dlq, insert(&store, "primes", JobState::Failed, None));
        }
        // A hold shorter than the margin: every step finds it about to end.
        let tools = DeadLetterQueue {
            hold_secs: 5,
            ..tools(&dlq, &queue, &store)
        };

        let report = tools.replay(&Selection::default(), false).await.unwrap();

        assert_eq!(report.replayed(), 3);
        assert!(dlq.contents().is_empty());
        let extended: Vec<String> = dlq
            .visibility_changes()
            .into_iter()
            .map(|(handle, secs)| {
                assert_eq!(secs, 5, "only extensions, by the hold");
                handle
            })
            .collect();
        let handles = ["m1-r1", "m2-r2", "m3-r3"];
        let mut expected = handles.to_vec(); // before the scan's last receive
        expected.extend(&handles); // before the first replay
        expected.extend(&handles[1..]); // before the second: the two left
        expected.extend(&handles[2..]);
        assert_eq!(extended, expected);
    }
}

//! `jobline dlq list` and `jobline dlq replay`: the dead-letter queue tools.
//!
//! SQS cannot read a queue without receiving from it, and a receive hides the
//! message for a visibility timeout. So both commands *scan*: receive in
//! batches of 10 (SQS's cap per request) with a long-poll wait of one second
//! (a short poll samples only some SQS servers and may answer empty while
//! messages remain), de-duplicate by message id (a standard queue delivers at
//! least once, and a message whose timeout ran out comes back), and stop when
//! a receive is empty, the limit is reached, or a receive brings nothing new.
//! Every message not deleted is made visible again with
//! `ChangeMessageVisibility 0`, so listing changes nothing.
//!
//! A replay goes requeue (DynamoDB) → send (main queue) → delete (DLQ), and
//! deletes only after the send succeeded: an interruption between two steps
//! leaves the dead message in place, and the next replay sends the job again.
//! That is why a job that is already `queued` (or `running`) is sent again
//! rather than skipped: an interrupted replay may have requeued it without
//! sending its message. A job can get a duplicate message, which the worker's
//! conditional claim ignores, but is never left without one.

use jobline_shared::job::{JobRecord, format_ms, now_ms};
use jobline_shared::queue::{Receive, ReceivedMessage};
use jobline_shared::store::ReplayOutcome;
use jobline_shared::{JobId, JobMessage, JobQueue, JobState, JobStore, QueueError, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::num::NonZeroUsize;

/// How long `list` hides the messages it reads: enough to read a few
/// thousand, short enough that an interrupted listing hides nothing for long.
pub const LIST_VISIBILITY_SECS: i32 = 30;
/// How long `replay` hides the messages it works on: a replay makes three
/// requests per message, so it holds its selection longer than a listing.
pub const REPLAY_VISIBILITY_SECS: i32 = 300;
/// SQS returns at most 10 messages per receive.
const RECEIVE_BATCH: usize = 10;
/// Long-poll wait per receive, so an empty answer means an empty queue.
const RECEIVE_WAIT_SECS: i32 = 1;

/// Errors that stop a DLQ command. Per-message failures of a replay are not
/// errors: they are reported in its [`ReplayReport`].
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queues and store the DLQ commands work on.
#[derive(Clone, Copy)]
pub struct DeadLetterQueue<'a> {
    /// The dead-letter queue (`JOBS_DLQ_URL`).
    pub dlq: &'a dyn JobQueue,
    /// The main queue replayed jobs are sent to (`JOBS_QUEUE_URL`).
    pub queue: &'a dyn JobQueue,
    /// The job records (`JOBS_TABLE`).
    pub store: &'a dyn JobStore,
}

impl fmt::Debug for DeadLetterQueue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterQueue").finish_non_exhaustive()
    }
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
}

/// The messages a scan holds hidden, in the order received.
#[derive(Debug, Default)]
struct Scan {
    selected: Vec<DeadLetter>,
    unselected: Vec<ReceivedMessage>,
}

/// A received message, selected or not, while a scan runs.
enum Scanned {
    Selected(DeadLetter),
    Unselected(ReceivedMessage),
}

impl Scanned {
    fn message_mut(&mut self) -> &mut ReceivedMessage {
        match self {
            Self::Selected(letter) => &mut letter.message,
            Self::Unselected(message) => message,
        }
    }

    fn receipt_handle(&self) -> &str {
        match self {
            Self::Selected(letter) => &letter.message.receipt_handle,
            Self::Unselected(message) => &message.receipt_handle,
        }
    }
}

impl DeadLetterQueue<'_> {
    /// Receives the whole DLQ (or up to the limit), hiding each message for
    /// `visibility_secs`, and reads the job of each message that may be
    /// selected. On an error, everything received is made visible again.
    async fn scan(&self, selection: &Selection, visibility_secs: i32) -> Result<Scan, DlqError> {
        let mut scanned: Vec<Scanned> = Vec::new();
        let mut by_message_id: HashMap<String, usize> = HashMap::new();
        let mut selected = 0;
        let limit = selection.limit.map_or(usize::MAX, NonZeroUsize::get);
        while selected < limit {
            let wanted = if selection.is_filtered() {
                RECEIVE_BATCH
            } else {
                RECEIVE_BATCH.min(limit - selected)
            };
            let request = Receive {
                max_messages: i32::try_from(wanted).unwrap_or(10),
                wait_secs: RECEIVE_WAIT_SECS,
                visibility_secs,
            };
            let batch = match self.dlq.receive(request).await {
                Ok(batch) => batch,
                Err(error) => return Err(self.abort(&scanned, error.into()).await),
            };
            let mut new_messages = 0;
            for message in batch {
                if let Some(&index) = by_message_id.get(&message.message_id) {
                    // Received again: only the newest receipt handle works.
                    *scanned[index].message_mut() = message;
                    continue;
                }
                new_messages += 1;
                by_message_id.insert(message.message_id.clone(), scanned.len());
                let entry = if selected < limit {
                    match self.classify(message, selection).await {
                        Ok(entry) => entry,
                        Err((message, error)) => {
                            scanned.push(Scanned::Unselected(message));
                            return Err(self.abort(&scanned, error.into()).await);
                        }
                    }
                } else {
                    Scanned::Unselected(message)
                };
                if matches!(entry, Scanned::Selected(_)) {
                    selected += 1;
                }
                scanned.push(entry);
            }
            if new_messages == 0 {
                break;
            }
        }
        let mut scan = Scan::default();
        for entry in scanned {
            match entry {
                Scanned::Selected(letter) => scan.selected.push(letter),
                Scanned::Unselected(message) => scan.unselected.push(message),
            }
        }
        Ok(scan)
    }

    /// Decodes a message and, when the selection may want it, reads its job.
    async fn classify(
        &self,
        message: ReceivedMessage,
        selection: &Selection,
    ) -> Result<Scanned, (ReceivedMessage, StoreError)> {
        let job_id = match JobMessage::decode(&message.body) {
            Ok(decoded) => decoded.job_id,
            Err(malformed) if !selection.is_filtered() => {
                return Ok(Scanned::Selected(DeadLetter {
                    message,
                    body: DeadBody::Malformed(malformed.to_string()),
                }));
            }
            Err(_) => return Ok(Scanned::Unselected(message)),
        };
        if !selection.wants_job(job_id) {
            return Ok(Scanned::Unselected(message));
        }
        let record = match self.store.get(job_id).await {
            Ok(record) => record,
            Err(error) => return Err((message, error)),
        };
        if !selection.wants_type(record.as_ref()) {
            return Ok(Scanned::Unselected(message));
        }
        Ok(Scanned::Selected(DeadLetter {
            message,
            body: DeadBody::Job {
                job_id,
                record: record.map(Box::new),
            },
        }))
    }

    /// Makes everything a failed scan received visible again.
    async fn abort(&self, scanned: &[Scanned], error: DlqError) -> DlqError {
        for entry in scanned {
            self.release(entry.receipt_handle()).await;
        }
        error
    }

    /// Makes a message visible again at once. A failure is only logged: the
    /// message comes back by itself when its visibility timeout ends.
    async fn release(&self, receipt_handle: &str) {
        if let Err(error) = self.dlq.change_visibility(receipt_handle, 0).await {
            tracing::warn!(%error, "could not make a DLQ message visible again; it reappears when its visibility timeout ends");
        }
    }

    /// `dlq list`: reads the dead messages and their jobs, and leaves every
    /// message in the queue, visible.
    pub async fn list(&self, limit: Option<NonZeroUsize>) -> Result<Vec<DeadLetter>, DlqError> {
        let scan = self
            .scan(&Selection::all(limit), LIST_VISIBILITY_SECS)
            .await?;
        for message in scan
            .unselected
            .iter()
            .chain(scan.selected.iter().map(|letter| &letter.message))
        {
            self.release(&message.receipt_handle).await;
        }
        Ok(scan.selected)
    }

    /// `dlq replay`: replays the selected dead messages, or with `dry_run`
    /// only says what a replay would do. Messages not selected are made
    /// visible again before any job is touched.
    pub async fn replay(
        &self,
        selection: &Selection,
        dry_run: bool,
    ) -> Result<ReplayReport, DlqError> {
        let scan = self.scan(selection, REPLAY_VISIBILITY_SECS).await?;
        for message in &scan.unselected {
            self.release(&message.receipt_handle).await;
        }
        let mut entries = Vec::with_capacity(scan.selected.len());
        for letter in scan.selected {
            let outcome = if dry_run {
                self.release(&letter.message.receipt_handle).await;
                predict(&letter)
            } else {
                self.replay_one(&letter).await
            };
            entries.push(ReplayEntry {
                message_id: letter.message.message_id.clone(),
                job_id: letter.job_id(),
                job_type: letter.record().map(|job| job.job_type.clone()),
                outcome,
            });
        }
        Ok(ReplayReport { dry_run, entries })
    }

    /// Replays one message; anything but a completed replay leaves the
    /// message in the DLQ, visible again.
    async fn replay_one(&self, letter: &DeadLetter) -> Outcome {
        let outcome = match &letter.body {
            DeadBody::Malformed(reason) => Outcome::Skipped(SkipReason::Malformed(reason.clone())),
            DeadBody::Job { job_id, .. } => self.requeue_and_send(letter, *job_id).await,
        };
        if !matches!(outcome, Outcome::Replayed { .. }) {
            self.release(&letter.message.receipt_handle).await;
        }
        outcome
    }

    async fn requeue_and_send(&self, letter: &DeadLetter, job_id: JobId) -> Outcome {
        let from = match self.store.replay(job_id).await {
            Ok(ReplayOutcome::Replayed) => JobState::Failed,
            Ok(ReplayOutcome::Unchanged(state)) if needs_message(state) => state,
            Ok(ReplayOutcome::Unchanged(state)) => {
                return Outcome::Skipped(SkipReason::State(state));
            }
            Ok(ReplayOutcome::Missing) => return Outcome::Skipped(SkipReason::JobMissing),
            Err(error) => return Outcome::Failed(format!("requeue in DynamoDB failed: {error}")),
        };
        let sent_message_id = match self.queue.send(&JobMessage { job_id }).await {
            Ok(id) => id,
            Err(error) => {
                return Outcome::Failed(format!(
                    "sending to the main queue failed: {error}; \
                     the dead message stays in the DLQ: replay it again"
                ));
            }
        };
        let receipt = [letter.message.receipt_handle.clone()];
        match self.dlq.delete(&receipt).await {
            Ok(undeleted) if undeleted.is_empty() => Outcome::Replayed {
                from,
                sent_message_id,
            },
            Ok(_) => Outcome::Failed(format!(
                "sent as message {sent_message_id}, but SQS did not delete the dead message; \
                 replaying it again sends a duplicate, which the worker ignores"
            )),
            Err(error) => Outcome::Failed(format!(
                "sent as message {sent_message_id}, but deleting the dead message failed: \
                 {error}; replaying it again sends a duplicate, which the worker ignores"
            )),
        }
    }
}

/// Whether a job that was not `failed` still gets a message on replay:
/// `queued` may be a job an interrupted replay requeued without sending,
/// `running` one whose worker died with its lease; a duplicate is harmless.
/// A `succeeded` job has nothing left to run.
fn needs_message(state: JobState) -> bool {
    matches!(state, JobState::Queued | JobState::Running)
}

/// What a replay would do, from the job as the scan read it.
fn predict(letter: &DeadLetter) -> Outcome {
    match &letter.body {
        DeadBody::Malformed(reason) => Outcome::Skipped(SkipReason::Malformed(reason.clone())),
        DeadBody::Job { record: None, .. } => Outcome::Skipped(SkipReason::JobMissing),
        DeadBody::Job {
            record: Some(job), ..
        } if job.state == JobState::Failed || needs_message(job.state) => {
            Outcome::WouldReplay { from: job.state }
        }
        DeadBody::Job {
            record: Some(job), ..
        } => Outcome::Skipped(SkipReason::State(job.state)),
    }
}

/// What happened to one selected message.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayEntry {
    pub message_id: String,
    pub job_id: Option<JobId>,
    pub job_type: Option<String>,
    pub outcome: Outcome,
}

/// The result of replaying one dead message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The job was requeued (`from` is `failed`) or already `queued` or
    /// `running`; it was sent to the main queue, and the dead message deleted.
    Replayed {
        from: JobState,
        sent_message_id: String,
    },
    /// Dry run: this message would be replayed.
    WouldReplay { from: JobState },
    /// Left in the DLQ, untouched.
    Skipped(SkipReason),
    /// Left in the DLQ after an error; replaying it again is safe.
    Failed(String),
}

/// Why a dead message is not replayed.
#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    /// Not a Jobline message; replay never deletes it.
    Malformed(String),
    /// No record for the job (its TTL expired, or it was never written).
    JobMissing,
    /// The job is in a state a message cannot move on.
    State(JobState),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => {
                write!(f, "{reason}; left in the DLQ")
            }
            Self::JobMissing => f.write_str("job record not found (expired or never written)"),
            Self::State(state) => write!(f, "job is {state}, nothing to replay"),
        }
    }
}

/// Everything a replay did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub entries: Vec<ReplayEntry>,
}

impl ReplayReport {
    /// Messages replayed or, in a dry run, that would be.
    pub fn replayed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Replayed { .. } | Outcome::WouldReplay { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    fn count(&self, outcome: impl Fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|e| outcome(&e.outcome)).count()
    }

    /// One line per message, then the summary.
    pub fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        for entry in &self.entries {
            let job = match (&entry.job_id, &entry.job_type) {
                (Some(id), Some(job_type)) => format!("job {id} ({job_type})"),
                (Some(id), None) => format!("job {id}"),
                (None, _) => format!("message {}", entry.message_id),
            };
            match &entry.outcome {
                Outcome::Replayed {
                    from: JobState::Failed,
                    sent_message_id,
                } => writeln!(
                    out,
                    "replayed      {job}: failed -> queued, sent as message {sent_message_id}"
                )?,
                Outcome::Replayed {
                    from,
                    sent_message_id,
                } => writeln!(
                    out,
                    "replayed      {job}: already {from} (not requeued), sent again as message \
                     {sent_message_id}; the worker ignores a duplicate"
                )?,
                Outcome::WouldReplay {
                    from: JobState::Failed,
                } => writeln!(
                    out,
                    "would replay  {job}: failed -> queued, send to the main queue, delete from the DLQ"
                )?,
                Outcome::WouldReplay { from } => writeln!(
                    out,
                    "would replay  {job}: already {from}, send again, delete from the DLQ"
                )?,
                Outcome::Skipped(reason) => writeln!(out, "skipped       {job}: {reason}")?,
                Outcome::Failed(error) => writeln!(out, "failed        {job}: {error}")?,
            }
        }
        if self.dry_run {
            writeln!(
                out,
                "dry run: would replay {}, would skip {}; nothing was changed",
                self.replayed(),
                self.skipped()
            )
        } else {
            writeln!(
                out,
                "replayed {}, skipped {}, failed {}",
                self.replayed(),
                self.skipped(),
                self.failed()
            )
        }
    }
}

/// One row of `dlq list --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRow {
    pub message_id: String,
    pub job_id: Option<JobId>,
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    pub state: Option<JobState>,
    pub last_error: Option<String>,
    /// When the message was first sent (SQS keeps it through the redrive).
    pub sent_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub receive_count: u32,
    /// Why the row has no job: a missing record or a malformed body.
    pub problem: Option<String>,
    /// The raw body, for malformed messages only.
    pub body: Option<String>,
}

impl ListRow {
    pub fn new(letter: &DeadLetter, now_ms: i64) -> Self {
        let sent_at = letter.message.sent_at_ms();
        let record = letter.record();
        let problem = match &letter.body {
            DeadBody::Malformed(reason) => Some(reason.clone()),
            DeadBody::Job { record: None, .. } => Some(SkipReason::JobMissing.to_string()),
            DeadBody::Job { .. } => None,
        };
        Self {
            message_id: letter.message.message_id.clone(),
            job_id: letter.job_id(),
            job_type: record.map(|job| job.job_type.clone()),
            state: record.map(|job| job.state),
            last_error: record.and_then(|job| job.error.clone()),
            sent_at: sent_at.map(format_ms),
            age_seconds: sent_at.map(|sent| (now_ms - sent).max(0) / 1000),
            receive_count: letter.message.receive_count(),
            body: matches!(letter.body, DeadBody::Malformed(_))
                .then(|| letter.message.body.clone()),
            problem,
        }
    }
}

/// Prints `dlq list` output: a table, or a JSON array with `json`.
pub fn render_list(letters: &[DeadLetter], json: bool, out: &mut dyn Write) -> io::Result<()> {
    let now = now_ms();
    let rows: Vec<ListRow> = letters.iter().map(|l| ListRow::new(l, now)).collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        return writeln!(out);
    }
    if rows.is_empty() {
        return writeln!(out, "the dead-letter queue is empty");
    }
    let dash = || "-".to_owned();
    let mut table = vec![
        [
            "MESSAGE ID",
            "JOB ID",
            "TYPE",
            "STATE",
            "RECEIVES",
            "AGE",
            "LAST ERROR",
        ]
        .map(str::to_owned),
    ];
    table.extend(rows.iter().map(|row| {
        [
            row.message_id.clone(),
            row.job_id.map_or_else(dash, |id| id.to_string()),
            row.job_type.clone().unwrap_or_else(dash),
            match (&row.state, &row.body) {
                (Some(state), _) => state.to_string(),
                (None, Some(_)) => "malformed".to_owned(),
                (None, None) => "missing".to_owned(),
            },
            row.receive_count.to_string(),
            row.age_seconds.map_or_else(dash, format_age),
            one_line(
                row.last_error
                    .as_deref()
                    .or(row.problem.as_deref())
                    .unwrap_or("-"),
            ),
        ]
    }));
    let mut widths = [0; 6];
    for row in &table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &table {
        for (cell, width) in row[..6].iter().zip(widths) {
            write!(out, "{cell:<width$}  ")?;
        }
        writeln!(out, "{}", row[6])?;
    }
    writeln!(out, "{} message(s)", rows.len())
}

/// A duration in seconds as `42s`, `12m`, `3h05m` or `2d04h`.
pub fn format_age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// A table cell: no line breaks.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_shared::JobRequest;
    use jobline_shared::queue::memory::MemoryQueue;
    use jobline_shared::store::memory::MemoryStore;
    use serde_json::json;

    /// Puts a job in `state` in the table; returns its id.
    fn insert(store: &MemoryStore, job_type: &str, state: JobState, error: Option<&str>) -> JobId {
        let request = JobRequest {
            job_type: job_type.into(),
            payload: json!({}),
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
    fn push_job(dlq: &MemoryQueue, id: JobId) -> String {
        dlq.push(&JobMessage { job_id: id }.encode())
    }

    fn record(store: &MemoryStore, id: JobId) -> JobRecord {
        store.job(id).expect("the job is in the table")
    }

    fn tools<'a>(
        dlq: &'a MemoryQueue,
        queue: &'a MemoryQueue,
        store: &'a MemoryStore,
    ) -> DeadLetterQueue<'a> {
        DeadLetterQueue { dlq, queue, store }
    }

    fn all_visible(queue: &MemoryQueue) -> bool {
        queue.contents().iter().all(|(_, visible)| *visible)
    }

    /// The DLQ tools only ever make messages visible again: every visibility
    /// change they make is `ChangeMessageVisibility 0`.
    fn assert_only_made_visible(queues: &[&MemoryQueue]) {
        for queue in queues {
            let changes = queue.visibility_changes();
            assert!(changes.iter().all(|(_, secs)| *secs == 0), "{changes:?}");
        }
    }

    fn limit(n: usize) -> Option<NonZeroUsize> {
        NonZeroUsize::new(n)
    }

    #[tokio::test]
    async fn list_reads_jobs_and_malformed_bodies_and_changes_nothing() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let failed = insert(&store, "primes", JobState::Failed, Some("boom"));
        let failed_message = push_job(&dlq, failed);
        let missing_message = push_job(&dlq, JobId::random());
        let junk_message = dlq.push("not json");

        let letters = tools(&dlq, &queue, &store).list(None).await.unwrap();

        let ids: Vec<&str> = letters
            .iter()
            .map(|l| l.message.message_id.as_str())
            .collect();
        assert_eq!(ids, [&failed_message, &missing_message, &junk_message]);
        assert_eq!(letters[0].record().unwrap().error.as_deref(), Some("boom"));
        assert!(matches!(
            letters[1].body,
            DeadBody::Job { record: None, .. }
        ));
        assert!(matches!(letters[2].body, DeadBody::Malformed(_)));
        assert_eq!(dlq.contents().len(), 3);
        assert!(all_visible(&dlq), "listing leaves every message visible");
        assert_eq!(store.writes(), 0);
        assert!(queue.sent().is_empty());

        let mut table = Vec::new();
        render_list(&letters, false, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.contains("primes") && table.contains("boom"),
            "{table}"
        );
        assert!(
            table.contains("malformed") && table.contains("missing"),
            "{table}"
        );
        let mut json_out = Vec::new();
        render_list(&letters, true, &mut json_out).unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&json_out).unwrap();
        assert_eq!(rows[0]["type"], "primes");
        assert_eq!(rows[0]["state"], "failed");
        assert_eq!(rows[0]["lastError"], "boom");
        assert_eq!(rows[0]["receiveCount"], 1);
        assert_eq!(rows[2]["body"], "not json");
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn list_stops_on_limit_and_on_redelivered_messages() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        for _ in 0..25 {
            push_job(&dlq, insert(&store, "primes", JobState::Failed, None));
        }
        let letters = tools(&dlq, &queue, &store).list(limit(12)).await.unwrap();
        assert_eq!(letters.len(), 12);
        assert!(all_visible(&dlq));

        // SQS hands out messages again once their visibility ends: each is
        // listed once, and made visible with its newest receipt handle.
        let redelivering = MemoryQueue::new();
        redelivering.set_redelivering(true);
        for _ in 0..3 {
            push_job(
                &redelivering,
                insert(&store, "primes", JobState::Failed, None),
            );
        }
        let letters = tools(&redelivering, &queue, &store)
            .list(None)
            .await
            .unwrap();
        assert_eq!(letters.len(), 3);
        assert!(all_visible(&redelivering));
        assert_eq!(store.writes(), 0);
        assert!(queue.sent().is_empty());
        assert_only_made_visible(&[&dlq, &redelivering, &queue]);
    }

    #[tokio::test]
    async fn a_failed_send_leaves_the_dead_message_and_a_second_replay_finishes() {
        let (dlq, store) = (MemoryQueue::new(), MemoryStore::new());
        let job = insert(&store, "primes", JobState::Failed, Some("boom"));
        let message = push_job(&dlq, job);

        let broken = MemoryQueue::new();
        broken.set_failing_sends(true);
        let report = tools(&dlq, &broken, &store)
            .replay(&Selection::default(), false)
            .await
            .unwrap();
        assert_eq!((report.replayed(), report.failed()), (0, 1));
        assert!(
            matches!(&report.entries[0].outcome, Outcome::Failed(e) if e.contains("replay it again"))
        );
        assert_eq!(
            dlq.contents(),
            [(message.clone(), true)],
            "still there, visible"
        );
        assert!(dlq.deleted().is_empty());
        assert_eq!(
            record(&store, job).state,
            JobState::Queued,
            "requeued before the send"
        );
        assert_eq!(store.writes(), 1, "only the requeue");

        // The job is queued now; the next replay still sends it.
        let queue = MemoryQueue::new();
        let report = tools(&dlq, &queue, &store)
            .replay(&Selection::default(), false)
            .await
            .unwrap();
        assert_eq!(
            report.entries[0].outcome,
            Outcome::Replayed {
                from: JobState::Queued,
                sent_message_id: "m1".into()
            }
        );
        assert_eq!(queue.sent(), [JobMessage { job_id: job }]);
        assert_eq!(
            queue.contents(),
            [("m1".to_owned(), true)],
            "the job's message waits in the main queue"
        );
        assert_eq!(dlq.deleted(), [message]);
        assert_eq!(record(&store, job).replays, 1, "requeued once");
        assert_eq!(store.writes(), 2, "only the two requeues");
        assert_only_made_visible(&[&dlq, &broken, &queue]);
    }

    #[tokio::test]
    async fn replay_requeues_sends_then_deletes_and_skips_what_it_cannot_replay() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let failed = insert(&store, "primes", JobState::Failed, Some("boom"));
        let succeeded = insert(&store, "primes", JobState::Succeeded, None);
        push_job(&dlq, failed);
        let succeeded_message = push_job(&dlq, succeeded);
        let missing_message = push_job(&dlq, JobId::random());
        let junk_message = dlq.push("{}");

        let report = tools(&dlq, &queue, &store)
            .replay(&Selection::default(), false)
            .await
            .unwrap();

        assert_eq!(
            (report.replayed(), report.skipped(), report.failed()),
            (1, 3, 0)
        );
        assert_eq!(queue.sent(), [JobMessage { job_id: failed }]);
        let job = record(&store, failed);
        assert_eq!((job.state, job.replays), (JobState::Queued, 1));
        assert_eq!(record(&store, succeeded).state, JobState::Succeeded);
        let left: Vec<(String, bool)> = [succeeded_message, missing_message, junk_message]
            .into_iter()
            .map(|id| (id, true))
            .collect();
        assert_eq!(dlq.contents(), left, "skipped messages stay, visible");
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("replayed 1, skipped 3, failed 0"), "{out}");
        assert!(out.contains("malformed"), "{out}");
        assert_eq!(store.writes(), 3, "only the requeues of the three jobs");
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn dry_run_makes_no_writes() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let failed = insert(&store, "primes", JobState::Failed, Some("boom"));
        let succeeded = insert(&store, "csv-stats", JobState::Succeeded, None);
        push_job(&dlq, failed);
        push_job(&dlq, succeeded);
        dlq.push("junk");
        let before = (store.snapshot(), dlq.contents());

        let report = tools(&dlq, &queue, &store)
            .replay(&Selection::default(), true)
            .await
            .unwrap();

        let outcomes: Vec<&Outcome> = report.entries.iter().map(|e| &e.outcome).collect();
        assert_eq!(
            outcomes[0],
            &Outcome::WouldReplay {
                from: JobState::Failed
            }
        );
        assert_eq!(
            outcomes[1],
            &Outcome::Skipped(SkipReason::State(JobState::Succeeded))
        );
        assert!(matches!(
            outcomes[2],
            Outcome::Skipped(SkipReason::Malformed(_))
        ));
        assert_eq!((store.snapshot(), dlq.contents()), before);
        assert!(all_visible(&dlq));
        assert_eq!(store.writes(), 0);
        assert!(queue.sent().is_empty());
        assert!(dlq.deleted().is_empty());
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("would replay 1, would skip 2")
        );
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn filters_and_limit_select_the_right_messages() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let primes: Vec<JobId> = (0..3)
            .map(|_| insert(&store, "primes", JobState::Failed, None))
            .collect();
        let csv = insert(&store, "csv-stats", JobState::Failed, None);
        dlq.push("junk");
        for id in primes.iter().chain([&csv]) {
            push_job(&dlq, *id);
        }
        let replay = |selection: Selection| {
            let tools = tools(&dlq, &queue, &store);
            async move { tools.replay(&selection, true).await.unwrap() }
        };
        let selected = |report: ReplayReport| -> Vec<Option<JobId>> {
            report.entries.iter().map(|e| e.job_id).collect()
        };

        let by_id = replay(Selection {
            job_ids: vec![primes[1], csv],
            ..Selection::default()
        })
        .await;
        assert_eq!(selected(by_id), [Some(primes[1]), Some(csv)]);

        let by_type = replay(Selection {
            job_types: vec!["csv-stats".into()],
            ..Selection::default()
        })
        .await;
        assert_eq!(selected(by_type), [Some(csv)]);

        let both = replay(Selection {
            job_ids: vec![primes[0], csv],
            job_types: vec!["primes".into()],
            ..Selection::default()
        })
        .await;
        assert_eq!(selected(both), [Some(primes[0])]);

        let limited = replay(Selection::all(limit(2))).await;
        assert_eq!(
            selected(limited),
            [None, Some(primes[0])],
            "malformed counts"
        );

        let filtered_and_limited = replay(Selection {
            job_types: vec!["primes".into()],
            limit: limit(2),
            ..Selection::default()
        })
        .await;
        assert_eq!(
            selected(filtered_and_limited),
            [Some(primes[0]), Some(primes[1])]
        );
        assert!(
            all_visible(&dlq),
            "unselected messages are made visible again"
        );
        assert_eq!(dlq.contents().len(), 5);

        // A real replay with a filter touches only the selected job.
        let report = tools(&dlq, &queue, &store)
            .replay(
                &Selection {
                    job_ids: vec![primes[2]],
                    ..Selection::default()
                },
                false,
            )
            .await
            .unwrap();
        assert_eq!(report.replayed(), 1);
        assert_eq!(queue.sent(), [JobMessage { job_id: primes[2] }]);
        assert_eq!(dlq.contents().len(), 4);
        assert!(all_visible(&dlq));
        assert_eq!(record(&store, primes[0]).state, JobState::Failed);
        assert_eq!(store.writes(), 1, "only the real replay's requeue");
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(format_age(42), "42s");
        assert_eq!(format_age(12 * 60 + 5), "12m");
        assert_eq!(format_age(3 * 3_600 + 5 * 60), "3h05m");
        assert_eq!(format_age(2 * 86_400 + 4 * 3_600), "2d04h");
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}

//! `jobline dlq replay`: puts dead jobs back to work.
//!
//! A replay goes replay (DynamoDB) → send (main queue) → delete (DLQ), and
//! deletes only after the send succeeded: an interruption between two steps
//! leaves the dead message in place, and the next replay sends the job again.
//! That is why a job that is already `queued` (or `running`) is sent again
//! rather than skipped: an interrupted replay may have requeued it without
//! sending its message. A job can get a duplicate message, which the worker's
//! conditional claim ignores, but is never left without one.

use super::{
    DeadBody, DeadLetter, DeadLetterQueue, DlqError, Entry, Handled, JOB_MISSING, Selection, Tally,
};
use jobline_core::store::ReplayOutcome;
use jobline_core::{JobId, JobMessage, JobState};
use std::fmt;
use std::io::{self, Write};

impl DeadLetterQueue<'_> {
    /// `dlq replay`: replays the selected dead messages, or with `dry_run`
    /// only says what a replay would do. Messages not selected are made
    /// visible again before any job is touched.
    pub async fn replay(
        &self,
        selection: &Selection,
        dry_run: bool,
    ) -> Result<ReplayReport, DlqError> {
        let scan = self.scan(selection).await?;
        let (entries, tally) = self
            .work(scan, async |letter: &DeadLetter| {
                if dry_run {
                    predict(letter)
                } else {
                    self.replay_one(letter).await
                }
            })
            .await;
        // A requested job with no message in the DLQ (after a full scan):
        // its dead letter expired (14 days) or was replayed or discarded.
        let not_in_dlq = if tally.limit_reached.is_none() {
            selection
                .job_ids
                .iter()
                .filter(|id| !entries.iter().any(|entry| entry.job_id == Some(**id)))
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        Ok(ReplayReport {
            dry_run,
            entries,
            not_in_dlq,
            tally,
        })
    }

    /// Replays one message; anything but a completed replay leaves the
    /// message in the DLQ.
    async fn replay_one(&self, letter: &DeadLetter) -> Outcome {
        match &letter.body {
            DeadBody::Malformed(reason) => Outcome::Skipped(SkipReason::Malformed(reason.clone())),
            DeadBody::Job { job_id, .. } => self.replay_and_send(letter, *job_id).await,
        }
    }

    async fn replay_and_send(&self, letter: &DeadLetter, job_id: JobId) -> Outcome {
        let from = match self.store.replay(job_id, self.clock.now_ms()).await {
            Ok(ReplayOutcome::Replayed) => JobState::Failed,
            Ok(ReplayOutcome::Unchanged(state)) if needs_message(state) => state,
            Ok(ReplayOutcome::Unchanged(state)) => {
                return Outcome::Skipped(SkipReason::State(state));
            }
            Ok(ReplayOutcome::Missing) => return Outcome::Skipped(SkipReason::JobMissing),
            Err(error) => return Outcome::Failed(format!("replay in DynamoDB failed: {error}")),
        };
        let message = JobMessage::new(job_id).in_group(letter.message.group());
        let sent_message_id = match self.queue.send(&message).await {
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
pub type ReplayEntry = Entry<Outcome>;

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

impl Handled for Outcome {
    fn deleted(&self) -> bool {
        matches!(self, Self::Replayed { .. })
    }

    fn failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }

    fn failure(reason: String) -> Self {
        Self::Failed(reason)
    }
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
            Self::JobMissing => f.write_str(JOB_MISSING),
            Self::State(state) => write!(f, "job is {state}, nothing to replay"),
        }
    }
}

/// Why a job asked for has no dead letter, and what still runs it again.
pub const NOT_IN_DLQ: &str = "no message of this job is in the dead-letter queue (it keeps \
     messages 14 days; this one expired, or was replayed or discarded already); \
     if the job is still failed, its record runs it again:";

/// What an empty DLQ means for a replay.
pub const EMPTY_DLQ: &str = "nothing to replay (the DLQ keeps messages 14 days); a failed job \
     whose dead letter is gone runs again with `jobline retry JOB_ID` (`jobline jobs --state failed` \
     lists them)";

/// Everything a replay did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub entries: Vec<ReplayEntry>,
    /// The jobs asked for (`--job-id`) that have no message in the DLQ.
    pub not_in_dlq: Vec<JobId>,
    /// What the run passed over, and whether it stopped early.
    pub tally: Tally,
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
            let job = entry.subject();
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
        for id in &self.not_in_dlq {
            writeln!(
                out,
                "not in DLQ    job {id}: {NOT_IN_DLQ} `jobline retry {id}`"
            )?;
        }
        if self.entries.is_empty() && self.not_in_dlq.is_empty() && self.tally.passed_over == 0 {
            writeln!(out, "the dead-letter queue is empty: {EMPTY_DLQ}")?;
        }
        if self.dry_run {
            write!(
                out,
                "dry run: would replay {}, would skip {}; nothing was changed",
                self.replayed(),
                self.skipped()
            )?;
        } else {
            write!(
                out,
                "replayed {}, skipped {}, failed {}",
                self.replayed(),
                self.skipped(),
                self.failed()
            )?;
        }
        self.tally.render(self.entries.len(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::fixtures::*;

    /// The next morning two weeks on: the job is still failed and
    /// dead-lettered, but its dead letter expired. The replay says so, and
    /// names the command that still runs it.
    #[tokio::test]
    async fn a_job_whose_dead_letter_expired_is_named_with_what_still_runs_it() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let gone = insert(&store, "primes", JobState::Failed, None);
        let report = tools(&dlq, &queue, &store)
            .replay(
                &Selection {
                    job_ids: vec![gone],
                    ..Selection::default()
                },
                false,
            )
            .await
            .unwrap();
        assert_eq!(report.not_in_dlq, [gone]);
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!("not in DLQ    job {gone}")),
            "{text}"
        );
        assert!(text.contains(&format!("`jobline retry {gone}`")), "{text}");
        assert!(text.contains("14 days"), "{text}");

        let report = tools(&dlq, &queue, &store)
            .replay(&Selection::default(), false)
            .await
            .unwrap();
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("the dead-letter queue is empty"), "{text}");
        assert!(text.contains("jobline retry"), "{text}");
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
        assert_eq!(queue.sent(), [JobMessage::new(job)]);
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
        assert_eq!(queue.sent(), [JobMessage::new(failed)]);
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

    fn rendered(report: &ReplayReport) -> String {
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn a_filter_that_selects_nothing_says_how_many_messages_it_passed_over() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        for _ in 0..7 {
            push_job(&dlq, insert(&store, "primes", JobState::Failed, None));
        }
        let selection = Selection {
            job_types: vec!["csv-stats".into()],
            ..Selection::default()
        };

        let report = tools(&dlq, &queue, &store)
            .replay(&selection, false)
            .await
            .unwrap();

        assert!(report.entries.is_empty());
        assert_eq!(report.tally.passed_over, 7);
        let out = rendered(&report);
        assert_eq!(
            out,
            "replayed 0, skipped 0, failed 0; 7 messages passed over \
             (did not match --type csv-stats)\n"
        );
        assert!(all_visible(&dlq));
        assert_eq!(dlq.contents().len(), 7);
        assert_eq!(store.writes(), 0);
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn a_failed_replay_stops_the_run_and_says_what_remains() {
        let (dlq, store) = (MemoryQueue::new(), MemoryStore::new());
        let jobs: Vec<JobId> = (0..3)
            .map(|_| insert(&store, "primes", JobState::Failed, Some("boom")))
            .collect();
        for id in &jobs {
            push_job(&dlq, *id);
        }
        let broken = MemoryQueue::new();
        broken.set_failing_sends(true);

        let report = tools(&dlq, &broken, &store)
            .replay(&Selection::default(), false)
            .await
            .unwrap();

        assert_eq!(report.entries.len(), 1, "stopped at the first failure");
        assert_eq!(report.failed(), 1);
        assert_eq!(report.tally.not_attempted, 2);
        assert_eq!(store.writes(), 1, "only the first job was touched");
        assert_eq!(record(&store, jobs[1]).state, JobState::Failed);
        assert_eq!(dlq.contents().len(), 3);
        assert!(all_visible(&dlq), "what was not attempted is visible again");
        let out = rendered(&report);
        assert!(
            out.contains(
                "stopped at the failure: 1 message handled, 2 messages not attempted and left in the DLQ"
            ),
            "{out}"
        );
        assert!(out.contains("replayed 0, skipped 0, failed 1"), "{out}");
        assert_only_made_visible(&[&dlq, &broken]);
    }

    #[tokio::test]
    async fn a_run_stopped_by_the_limit_says_so() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        for _ in 0..3 {
            push_job(&dlq, insert(&store, "primes", JobState::Failed, None));
        }
        let report = tools(&dlq, &queue, &store)
            .replay(&Selection::all(limit(2)), false)
            .await
            .unwrap();
        assert_eq!(report.replayed(), 2);
        let out = rendered(&report);
        assert!(
            out.contains("stopped at --limit 2: 2 messages handled; the DLQ may hold more"),
            "{out}"
        );
        assert_eq!(dlq.contents(), [("m3".to_owned(), true)]);
    }
}

//! `jobline dlq discard`: gives up on dead letters that must never run again,
//! which is how an operator turns the DLQ alarm off for them.
//!
//! For each selected message: discard the job in DynamoDB (any state but
//! `succeeded` becomes `failed` with `discarded`, so its client sees the end),
//! and only then delete the dead message. An interruption between the two
//! leaves the message, and the next discard finishes: discarding a discarded
//! job changes nothing. A message without a job to mark (malformed, the job's
//! record gone, or the job `succeeded`) is only deleted; with a filter, as in
//! a replay, malformed messages and jobs without a record are not selected.

use super::{
    DeadBody, DeadLetter, DeadLetterQueue, DlqError, Entry, Handled, JOB_MISSING, Selection, Tally,
};
use jobline_core::store::DiscardOutcome;
use jobline_core::{JobId, JobState};
use std::fmt;
use std::io::{self, Write};

impl DeadLetterQueue<'_> {
    /// `dlq discard`: discards the selected dead messages' jobs and deletes
    /// the messages, or with `dry_run` only says what it would do.
    pub async fn discard(
        &self,
        selection: &Selection,
        dry_run: bool,
    ) -> Result<DiscardReport, DlqError> {
        let scan = self.scan(selection).await?;
        let (entries, tally) = self
            .work(scan, async |letter: &DeadLetter| {
                if dry_run {
                    Outcome::WouldDelete(predict(letter))
                } else {
                    self.discard_one(letter).await
                }
            })
            .await;
        Ok(DiscardReport {
            dry_run,
            entries,
            tally,
        })
    }

    /// Marks the job, then deletes the message.
    async fn discard_one(&self, letter: &DeadLetter) -> Outcome {
        let change = match &letter.body {
            DeadBody::Malformed(reason) => JobChange::Malformed(reason.clone()),
            DeadBody::Job { job_id, .. } => match self.mark(*job_id).await {
                Ok(change) => change,
                Err(failure) => return failure,
            },
        };
        let receipt = [letter.message.receipt_handle.clone()];
        match self.dlq.delete(&receipt).await {
            Ok(undeleted) if undeleted.is_empty() => Outcome::Deleted(change),
            Ok(_) => Outcome::Failed(format!(
                "{change}, but SQS did not delete the dead message; discard it again"
            )),
            Err(error) => Outcome::Failed(format!(
                "{change}, but deleting the dead message failed: {error}; discard it again"
            )),
        }
    }

    async fn mark(&self, job_id: JobId) -> Result<JobChange, Outcome> {
        match self.store.discard(job_id, self.clock.now_ms()).await {
            Ok(DiscardOutcome::Discarded) => Ok(JobChange::Discarded),
            Ok(DiscardOutcome::Unchanged(state)) => Ok(JobChange::Kept(state)),
            Ok(DiscardOutcome::Missing) => Ok(JobChange::Missing),
            Err(error) => Err(Outcome::Failed(format!(
                "discarding the job in DynamoDB failed: {error}; the dead message stays"
            ))),
        }
    }
}

/// What a discard would do to the job, from the job as the scan read it.
fn predict(letter: &DeadLetter) -> JobChange {
    match &letter.body {
        DeadBody::Malformed(reason) => JobChange::Malformed(reason.clone()),
        DeadBody::Job { record: None, .. } => JobChange::Missing,
        DeadBody::Job {
            record: Some(job), ..
        } if job.state == JobState::Succeeded => JobChange::Kept(job.state),
        DeadBody::Job { .. } => JobChange::Discarded,
    }
}

/// What discarding a dead message did (or would do) to its job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobChange {
    /// The job is `failed` and `discarded` (also if it already was).
    Discarded,
    /// The job is in a final state a discard leaves alone (`succeeded`).
    Kept(JobState),
    /// No record for the job.
    Missing,
    /// Not a Jobline message: there is no job.
    Malformed(String),
}

impl fmt::Display for JobChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discarded => f.write_str("job marked failed (discarded)"),
            Self::Kept(state) => write!(f, "job {state}, left as it is"),
            Self::Missing => f.write_str(JOB_MISSING),
            Self::Malformed(reason) => f.write_str(reason),
        }
    }
}

/// The result of discarding one dead message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The job was handled as said, and the dead message deleted.
    Deleted(JobChange),
    /// Dry run: this would happen, and the message would be deleted.
    WouldDelete(JobChange),
    /// Left in the DLQ after an error; discarding it again is safe.
    Failed(String),
}

impl Handled for Outcome {
    fn deleted(&self) -> bool {
        matches!(self, Self::Deleted(_))
    }

    fn failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }

    fn failure(reason: String) -> Self {
        Self::Failed(reason)
    }
}

/// What happened to one selected message.
pub type DiscardEntry = Entry<Outcome>;

/// Everything a discard did.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscardReport {
    pub dry_run: bool,
    pub entries: Vec<DiscardEntry>,
    /// What the run passed over, and whether it stopped early.
    pub tally: Tally,
}

impl DiscardReport {
    /// Jobs discarded or, in a dry run, that would be.
    pub fn discarded(&self) -> usize {
        self.count(|o| {
            matches!(
                o,
                Outcome::Deleted(JobChange::Discarded) | Outcome::WouldDelete(JobChange::Discarded)
            )
        })
    }

    /// Messages deleted (or that would be) without a job to discard.
    pub fn deleted_only(&self) -> usize {
        self.count(|o| match o {
            Outcome::Deleted(change) | Outcome::WouldDelete(change) => {
                *change != JobChange::Discarded
            }
            Outcome::Failed(_) => false,
        })
    }

    pub fn failed(&self) -> usize {
        self.count(Handled::failed)
    }

    fn count(&self, outcome: impl Fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|e| outcome(&e.outcome)).count()
    }

    /// One line per message, then the summary.
    pub fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        for entry in &self.entries {
            let subject = entry.subject();
            match &entry.outcome {
                Outcome::Deleted(JobChange::Discarded) => {
                    writeln!(
                        out,
                        "discarded      {subject}: {}, dead message deleted",
                        JobChange::Discarded
                    )?;
                }
                Outcome::Deleted(change) => {
                    writeln!(
                        out,
                        "deleted        {subject}: {change}; dead message deleted"
                    )?;
                }
                Outcome::WouldDelete(JobChange::Discarded) => writeln!(
                    out,
                    "would discard  {subject}: mark the job failed (discarded), delete the dead message"
                )?,
                Outcome::WouldDelete(change) => writeln!(
                    out,
                    "would delete   {subject}: {change}; delete the dead message"
                )?,
                Outcome::Failed(error) => writeln!(out, "failed         {subject}: {error}")?,
            }
        }
        if self.dry_run {
            write!(
                out,
                "dry run: would discard {}, would only delete {}; nothing was changed",
                self.discarded(),
                self.deleted_only()
            )?;
        } else {
            write!(
                out,
                "discarded {}, only deleted {}, failed {}",
                self.discarded(),
                self.deleted_only(),
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

    fn rendered(report: &DiscardReport) -> String {
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn discard_marks_each_job_then_deletes_its_message_and_a_second_discard_is_harmless() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let failed = insert(&store, "primes", JobState::Failed, Some("boom"));
        let running = insert(&store, "primes", JobState::Running, None);
        let succeeded = insert(&store, "csv-stats", JobState::Succeeded, None);
        for id in [failed, running, succeeded, JobId::random()] {
            push_job(&dlq, id);
        }
        dlq.push("junk");
        let deleted_at = jobline_testkit::testing::now_ms();

        let report = tools(&dlq, &queue, &store)
            .discard(&Selection::default(), false)
            .await
            .unwrap();

        assert_eq!(
            (report.discarded(), report.deleted_only(), report.failed()),
            (2, 3, 0)
        );
        let changes: Vec<&Outcome> = report.entries.iter().map(|e| &e.outcome).collect();
        assert_eq!(
            changes[2],
            &Outcome::Deleted(JobChange::Kept(JobState::Succeeded))
        );
        assert_eq!(changes[3], &Outcome::Deleted(JobChange::Missing));
        assert!(matches!(
            changes[4],
            Outcome::Deleted(JobChange::Malformed(_))
        ));
        let job = record(&store, failed);
        assert_eq!((job.state, job.discarded), (JobState::Failed, true));
        assert_eq!(job.error.as_deref(), Some("boom"), "the last error is kept");
        let job = record(&store, running);
        assert_eq!((job.state, job.discarded), (JobState::Failed, true));
        assert_eq!(job.error.as_deref(), Some("discarded by an operator"));
        assert!(job.finished_at.is_some_and(|at| at >= deleted_at));
        assert_eq!(job.lease_expires_at, None);
        let job = record(&store, succeeded);
        assert_eq!((job.state, job.discarded), (JobState::Succeeded, false));
        assert!(dlq.contents().is_empty(), "the DLQ is empty");
        assert_eq!(dlq.deleted().len(), 5);
        assert!(queue.sent().is_empty(), "nothing goes to the main queue");
        assert_eq!(store.writes(), 4, "one discard per job message");
        let out = rendered(&report);
        assert!(
            out.contains("discarded 2, only deleted 3, failed 0"),
            "{out}"
        );
        assert!(
            out.contains(&format!("discarded      job {failed} (primes)")),
            "{out}"
        );

        // An interrupted discard left a message for a discarded job: the
        // next discard deletes it and changes nothing else.
        let before = store.snapshot();
        push_job(&dlq, failed);
        let report = tools(&dlq, &queue, &store)
            .discard(&Selection::default(), false)
            .await
            .unwrap();
        assert_eq!(
            report.entries[0].outcome,
            Outcome::Deleted(JobChange::Discarded)
        );
        assert_eq!(store.snapshot(), before);
        assert!(dlq.contents().is_empty());

        let report = tools(&dlq, &queue, &store)
            .discard(&Selection::default(), false)
            .await
            .unwrap();
        assert_eq!(rendered(&report), "discarded 0, only deleted 0, failed 0\n");
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn a_dry_run_discard_changes_nothing() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let failed = insert(&store, "primes", JobState::Failed, Some("boom"));
        push_job(&dlq, failed);
        dlq.push("junk");
        let before = (store.snapshot(), dlq.contents());

        let report = tools(&dlq, &queue, &store)
            .discard(&Selection::default(), true)
            .await
            .unwrap();

        assert_eq!(
            report.entries[0].outcome,
            Outcome::WouldDelete(JobChange::Discarded)
        );
        assert!(matches!(
            report.entries[1].outcome,
            Outcome::WouldDelete(JobChange::Malformed(_))
        ));
        assert_eq!((store.snapshot(), dlq.contents()), before);
        assert!(all_visible(&dlq));
        assert_eq!(store.writes(), 0);
        assert!(dlq.deleted().is_empty());
        let out = rendered(&report);
        assert!(
            out.contains("dry run: would discard 1, would only delete 1; nothing was changed"),
            "{out}"
        );
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn discard_filters_like_replay_and_counts_what_it_passed_over() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let primes = insert(&store, "primes", JobState::Failed, None);
        let csv = insert(&store, "csv-stats", JobState::Failed, None);
        push_job(&dlq, primes);
        let csv_message = push_job(&dlq, csv);
        let junk_message = dlq.push("junk");
        let selection = Selection {
            job_types: vec!["primes".into()],
            ..Selection::default()
        };

        let report = tools(&dlq, &queue, &store)
            .discard(&selection, false)
            .await
            .unwrap();

        assert_eq!(report.discarded(), 1);
        assert!(record(&store, primes).discarded);
        assert!(!record(&store, csv).discarded);
        assert_eq!(
            dlq.contents(),
            [(csv_message, true), (junk_message, true)],
            "malformed messages are not selected with a filter"
        );
        let out = rendered(&report);
        assert!(
            out.contains(
                "discarded 1, only deleted 0, failed 0; 2 messages passed over (did not match --type primes)"
            ),
            "{out}"
        );
    }
}

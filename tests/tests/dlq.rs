//! `jobline dlq list`, `replay` and `discard` against moto: real dead-letter
//! queue messages for real failed job records, and what each command leaves
//! in the queues and the table.

use jobline_cli::args::{DlqCommand, ListArgs, SelectArgs};
use jobline_cli::commands::{Exit, run_dlq};
use jobline_cli::dlq::replay::Outcome;
use jobline_cli::dlq::{DeadBody, DeadLetterQueue, Selection};
use jobline_core::queue::{Receive, ReceivedMessage};
use jobline_core::{
    ApiStore, Completion, JobId, JobMessage, JobQueue, JobRecord, JobRequest, JobState, ReadStore,
    ReplayStore, WorkerStore,
};
use jobline_dynamodb::DynamoJobStore;
use jobline_sqs::SqsJobQueue;
use jobline_testkit::testing::now_ms;
use jobline_tests::TestEnv;
use serde_json::json;
use std::collections::BTreeSet;
use std::num::NonZeroUsize;

/// The store and queues of one test, and the DLQ tools on them.
struct Dlq {
    env: TestEnv,
    store: DynamoJobStore,
    queue: SqsJobQueue,
    dlq: SqsJobQueue,
}

impl Dlq {
    async fn new() -> Self {
        let env = TestEnv::new().await;
        Self {
            store: env.store(),
            queue: env.queue(),
            dlq: env.dlq(),
            env,
        }
    }

    fn tools(&self) -> DeadLetterQueue<'_> {
        DeadLetterQueue::new(&self.dlq, &self.queue, &self.store)
    }

    /// A job that failed for good, as the worker leaves it on the last
    /// receive, and its message in the DLQ, as the redrive policy leaves it.
    async fn dead_job(&self, job_type: &str, error: &str) -> JobId {
        let request = JobRequest {
            job_type: job_type.into(),
            payload: json!({"upTo": 10}),
            callback_url: None,
        };
        let job = JobRecord::new_queued(JobId::random(), "alice", &request, now_ms(), 30);
        self.store.create(&job).await.unwrap();
        let now = now_ms();
        self.store
            .claim(job.id, now, now + 60_000, 1, "t")
            .await
            .unwrap();
        let dead = Completion::Failed {
            error: error.into(),
            dead_lettered: true,
        };
        self.store.finish(job.id, 1, "t", &dead, now).await.unwrap();
        self.dlq.send(&JobMessage::new(job.id)).await.unwrap();
        job.id
    }

    async fn job(&self, id: JobId) -> JobRecord {
        self.store.get(id).await.unwrap().expect("job record")
    }

    /// Puts a message that is not a Jobline message in the DLQ.
    async fn send_raw(&self, body: &str) {
        self.env
            .clients
            .sqs
            .send_message()
            .queue_url(&self.env.queues.dlq_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Runs a `jobline dlq` command on this test's resources; returns its
    /// exit code and output.
    async fn jobline(&self, command: DlqCommand) -> (Exit, String) {
        let mut out = Vec::new();
        let exit = run_dlq(command, self.tools(), &mut out).await.unwrap();
        (exit, String::from_utf8(out).unwrap())
    }
}

/// `jobline dlq list [--limit N] [--json]`.
fn list(limit: usize, json: bool) -> DlqCommand {
    DlqCommand::List(ListArgs {
        limit: NonZeroUsize::new(limit),
        json,
    })
}

/// `[--dry-run]` with the filters of `selection`.
fn select(selection: Selection, dry_run: bool) -> SelectArgs {
    SelectArgs {
        dry_run,
        limit: selection.limit,
        job_ids: selection.job_ids,
        job_types: selection.job_types,
    }
}

/// `jobline dlq replay [--dry-run]` with the filters of `selection`.
fn replay(selection: Selection, dry_run: bool) -> DlqCommand {
    DlqCommand::Replay(select(selection, dry_run))
}

/// `jobline dlq discard [--dry-run]` with the filters of `selection`.
fn discard(selection: Selection, dry_run: bool) -> DlqCommand {
    DlqCommand::Discard(select(selection, dry_run))
}

/// Receives every visible message of `queue` (and keeps them hidden).
async fn drain(queue: &SqsJobQueue) -> Vec<ReceivedMessage> {
    let request = Receive {
        max_messages: 10,
        wait_secs: 1,
        visibility_secs: 120,
    };
    jobline_tests::receive_all(queue, request).await
}

/// The job ids of job messages, sorted.
fn job_ids(messages: &[ReceivedMessage]) -> Vec<JobId> {
    let mut ids: Vec<JobId> = messages
        .iter()
        .map(|m| JobMessage::decode(&m.body).unwrap().job_id)
        .collect();
    ids.sort_by_key(JobId::to_string);
    ids
}

fn sorted(ids: &[JobId]) -> Vec<JobId> {
    let mut ids = ids.to_vec();
    ids.sort_by_key(JobId::to_string);
    ids
}

#[tokio::test]
async fn list_reports_dead_jobs_and_leaves_them_in_the_dlq() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let primes = t.dead_job("primes", "upTo must be at most 10000000").await;
    let csv = t
        .dead_job("csv-stats", "row 3 has 2 columns, expected 3")
        .await;
    t.send_raw("this is not a job message").await;

    let letters = t.tools().list(None).await.unwrap();
    assert_eq!(letters.len(), 3);
    for (id, job_type, error) in [
        (primes, "primes", "upTo must be at most 10000000"),
        (csv, "csv-stats", "row 3 has 2 columns, expected 3"),
    ] {
        let letter = letters
            .iter()
            .find(|l| l.job_id() == Some(id))
            .expect("listed");
        let job = letter.record().expect("record read");
        assert_eq!(job.job_type, job_type);
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error.as_deref(), Some(error));
        assert!(
            letter.message.sent_at_ms().is_some(),
            "SentTimestamp is read"
        );
        assert_eq!(letter.message.receive_count(), 1);
    }
    assert!(
        letters
            .iter()
            .any(|l| matches!(&l.body, DeadBody::Malformed(_))),
        "a malformed body is listed, not dropped"
    );

    // The command prints them, and everything is still in the DLQ, visible.
    let (exit, table) = t.jobline(list(0, false)).await;
    assert_eq!(exit, Exit::Success);
    for expected in [
        "primes",
        "csv-stats",
        "row 3 has 2 columns",
        "malformed",
        "3 message(s)",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }
    let (_, json_out) = t.jobline(list(2, true)).await;
    let rows: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{json_out}");

    let left = drain(&t.dlq).await;
    assert_eq!(left.len(), 3, "listing deletes nothing and hides nothing");
    let mut receives: Vec<u32> = left.iter().map(ReceivedMessage::receive_count).collect();
    receives.sort_unstable();
    assert_eq!(
        receives,
        [3, 4, 4],
        "two full listings, one of 2, and this drain"
    );
    assert_eq!(t.job(primes).await.state, JobState::Failed);
    assert!(drain(&t.queue).await.is_empty());
    t.env.cleanup().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let a = t.dead_job("primes", "boom").await;
    let b = t.dead_job("csv-stats", "bang").await;

    let (exit, out) = t.jobline(replay(Selection::default(), true)).await;
    assert_eq!(exit, Exit::Success);
    assert!(out.contains("would replay 2, would skip 0"), "{out}");

    assert_eq!(
        job_ids(&drain(&t.dlq).await),
        sorted(&[a, b]),
        "still in the DLQ"
    );
    assert!(drain(&t.queue).await.is_empty(), "nothing sent");
    for id in [a, b] {
        let job = t.job(id).await;
        assert_eq!((job.state, job.replays), (JobState::Failed, 0));
        assert!(job.dead_lettered);
    }
    t.env.cleanup().await;
}

#[tokio::test]
async fn filters_and_limit_choose_what_is_replayed() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let p1 = t.dead_job("primes", "p1").await;
    let p2 = t.dead_job("primes", "p2").await;
    let p3 = t.dead_job("primes", "p3").await;
    let csv = t.dead_job("csv-stats", "c").await;

    let (exit, out) = t
        .jobline(replay(
            Selection {
                job_ids: vec![p2],
                ..Selection::default()
            },
            false,
        ))
        .await;
    assert_eq!(exit, Exit::Success);
    assert!(out.contains("replayed 1, skipped 0, failed 0"), "{out}");
    assert_eq!(job_ids(&drain(&t.queue).await), [p2]);
    assert_eq!(t.job(p2).await.state, JobState::Queued);

    let (_, out) = t
        .jobline(replay(
            Selection {
                job_types: vec!["csv-stats".into()],
                ..Selection::default()
            },
            false,
        ))
        .await;
    assert!(out.contains("replayed 1,"), "{out}");
    assert_eq!(job_ids(&drain(&t.queue).await), [csv]);

    let (_, out) = t
        .jobline(replay(
            Selection {
                job_types: vec!["primes".into()],
                limit: NonZeroUsize::new(1),
                ..Selection::default()
            },
            false,
        ))
        .await;
    assert!(out.contains("replayed 1,"), "{out}");
    let sent = job_ids(&drain(&t.queue).await);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0] == p1 || sent[0] == p3,
        "one of the remaining primes jobs"
    );
    let remaining = if sent[0] == p1 { p3 } else { p1 };

    assert_eq!(job_ids(&drain(&t.dlq).await), [remaining], "the rest stays");
    assert_eq!(t.job(remaining).await.state, JobState::Failed);
    t.env.cleanup().await;
}

#[tokio::test]
async fn replay_moves_dead_jobs_to_the_main_queue_and_replaying_twice_is_safe() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let a = t.dead_job("primes", "boom").await;
    let b = t.dead_job("csv-stats", "bang").await;

    let report = t
        .tools()
        .replay(&Selection::default(), false)
        .await
        .unwrap();
    assert_eq!(
        (report.replayed(), report.skipped(), report.failed()),
        (2, 0, 0)
    );
    let sent = drain(&t.queue).await;
    assert_eq!(job_ids(&sent), sorted(&[a, b]));
    for id in [a, b] {
        let job = t.job(id).await;
        assert_eq!((job.state, job.replays), (JobState::Queued, 1));
        assert!(!job.dead_lettered);
        assert_eq!(job.finished_at, None);
    }
    assert!(drain(&t.dlq).await.is_empty(), "the DLQ is empty");

    // Nothing left: a second replay does nothing.
    let (exit, out) = t.jobline(replay(Selection::default(), false)).await;
    assert_eq!(exit, Exit::Success);
    assert!(out.contains("replayed 0, skipped 0, failed 0"), "{out}");

    // A replay cut off before its delete leaves the dead message behind:
    // replaying it again sends a duplicate and requeues nothing twice.
    t.dlq.send(&JobMessage::new(a)).await.unwrap();
    let report = t
        .tools()
        .replay(&Selection::default(), false)
        .await
        .unwrap();
    assert!(
        matches!(
            report.entries[0].outcome,
            Outcome::Replayed {
                from: JobState::Queued,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(t.job(a).await.replays, 1, "requeued only once");
    assert_eq!(job_ids(&drain(&t.queue).await), [a], "a duplicate message");
    assert!(drain(&t.dlq).await.is_empty());
    t.env.cleanup().await;
}

#[tokio::test]
async fn replay_leaves_malformed_and_finished_jobs_in_the_dlq() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let failed = t.dead_job("primes", "boom").await;
    let finished = t.dead_job("primes", "boom").await;
    t.store.replay(finished, now_ms()).await.unwrap();
    let now = now_ms();
    t.store
        .claim(finished, now, now + 60_000, 1, "t")
        .await
        .unwrap();
    let done = Completion::Succeeded(json!({"count": 4}));
    t.store.finish(finished, 2, "t", &done, now).await.unwrap();
    t.send_raw("{\"jobId\": 42}").await;

    let (exit, out) = t.jobline(replay(Selection::default(), false)).await;
    assert_eq!(exit, Exit::Success, "skips are not failures");
    assert!(out.contains("replayed 1, skipped 2, failed 0"), "{out}");
    assert!(out.contains("malformed"), "{out}");
    assert!(out.contains("job is succeeded"), "{out}");
    assert_eq!(job_ids(&drain(&t.queue).await), [failed]);

    let left = drain(&t.dlq).await;
    let bodies: BTreeSet<String> = left.into_iter().map(|m| m.body).collect();
    let finished_body = JobMessage::new(finished).encode();
    assert_eq!(
        bodies,
        BTreeSet::from(["{\"jobId\": 42}".to_owned(), finished_body])
    );
    t.env.cleanup().await;
}

#[tokio::test]
async fn a_filter_that_matches_nothing_says_what_it_passed_over() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let a = t.dead_job("primes", "boom").await;
    let b = t.dead_job("primes", "bang").await;

    let (exit, out) = t
        .jobline(replay(
            Selection {
                job_types: vec!["csv-stats".into()],
                ..Selection::default()
            },
            false,
        ))
        .await;

    assert_eq!(exit, Exit::Success);
    assert_eq!(
        out,
        "replayed 0, skipped 0, failed 0; 2 messages passed over (did not match --type csv-stats)\n"
    );
    assert_eq!(
        job_ids(&drain(&t.dlq).await),
        sorted(&[a, b]),
        "both still in the DLQ, visible at once"
    );
    assert!(drain(&t.queue).await.is_empty());
    t.env.cleanup().await;
}

#[tokio::test]
async fn discard_ends_the_jobs_and_empties_the_dlq_and_a_second_discard_is_harmless() {
    jobline_tests::require_emulator!();
    let t = Dlq::new().await;
    let a = t.dead_job("primes", "boom").await;
    let b = t.dead_job("csv-stats", "bang").await;
    t.send_raw("this is not a job message").await;

    // A dry run changes nothing.
    let (exit, out) = t.jobline(discard(Selection::default(), true)).await;
    assert_eq!(exit, Exit::Success);
    assert!(
        out.contains("dry run: would discard 2, would only delete 1; nothing was changed"),
        "{out}"
    );
    for id in [a, b] {
        let job = t.job(id).await;
        assert_eq!((job.state, job.discarded), (JobState::Failed, false));
    }
    let listed = t.tools().list(None).await.unwrap();
    assert_eq!(
        listed.len(),
        3,
        "a dry run deletes nothing and hides nothing"
    );

    let (exit, out) = t.jobline(discard(Selection::default(), false)).await;
    assert_eq!(exit, Exit::Success);
    assert!(
        out.contains("discarded 2, only deleted 1, failed 0"),
        "{out}"
    );
    assert!(
        out.contains(&format!("discarded      job {a} (primes)")),
        "{out}"
    );
    let discarded = t.job(a).await;
    assert_eq!(
        (discarded.state, discarded.discarded),
        (JobState::Failed, true)
    );
    assert_eq!(
        discarded.error.as_deref(),
        Some("boom"),
        "the error is kept"
    );
    assert!(t.job(b).await.discarded);
    assert!(drain(&t.dlq).await.is_empty(), "the DLQ is empty");
    assert!(drain(&t.queue).await.is_empty(), "nothing was sent");

    // Again: nothing left, nothing changes.
    let (exit, out) = t.jobline(discard(Selection::default(), false)).await;
    assert_eq!(exit, Exit::Success);
    assert_eq!(out, "discarded 0, only deleted 0, failed 0\n");

    // A discard cut off before its delete leaves the dead message behind:
    // the next discard deletes it and leaves the job as it is.
    t.dlq.send(&JobMessage::new(a)).await.unwrap();
    let (exit, out) = t.jobline(discard(Selection::default(), false)).await;
    assert_eq!(exit, Exit::Success);
    assert!(
        out.contains("discarded 1, only deleted 0, failed 0"),
        "{out}"
    );
    assert_eq!(t.job(a).await, discarded);
    assert!(drain(&t.dlq).await.is_empty());
    t.env.cleanup().await;
}

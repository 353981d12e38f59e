//! The sweeper against DynamoDB and SQS on moto: jobs whose last delivery
//! died, or whose message was never received, end `failed` and
//! dead-lettered within their time bound while their message stays in the
//! DLQ; finished jobs cost a sweep no reads; a job claimed or replayed in
//! between is left alone; the local runner sweeps on its timer.

use jobline_core::deadline::Deadlines;
use jobline_core::queue::Receive;
use jobline_core::store::{Completion, SHARDS, SWEPT_ERROR, SweepOutcome};
use jobline_core::{ApiStore, JobId, JobMessage, JobQueue, JobRecord, JobState, JobStore};
use jobline_dynamodb::DUE_ATTRIBUTE;
use jobline_dynamodb::SHARD_ATTRIBUTE;
use jobline_local::provision;
use jobline_sweeper::Sweeper;
use jobline_testkit::testing::job;
use jobline_testkit::testing::now_ms;
use jobline_tests::{TestEnv, test_queue_settings};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Two deliveries a second apart, no backoff, runs of at most 300 ms, half
/// a second of margin.
fn short(retention_ms: i64) -> Deadlines {
    Deadlines {
        retention_ms,
        visibility_timeout_ms: 1_000,
        retry_max_delay_ms: 0,
        max_receive_count: 2,
        max_run_ms: 300,
        margin_ms: 500,
    }
}

async fn env() -> TestEnv {
    TestEnv::with_settings(test_queue_settings(1, 2)).await
}

async fn stored(store: &dyn JobStore, id: JobId) -> JobRecord {
    store.get(id).await.unwrap().expect("the job exists")
}

/// The job's item as DynamoDB holds it: whether it carries the index keys.
async fn indexed(env: &TestEnv, id: JobId) -> bool {
    let item = env.job_item(id).await;
    let has = |name: &str| item.contains_key(name);
    assert_eq!(has(SHARD_ATTRIBUTE), has(DUE_ATTRIBUTE), "{item:?}");
    has(DUE_ATTRIBUTE)
}

async fn dlq_depth(env: &TestEnv) -> u64 {
    let attributes = provision::queue_attributes(&env.clients.sqs, &env.queues.dlq_url)
        .await
        .unwrap();
    attributes["ApproximateNumberOfMessages"].parse().unwrap()
}

#[tokio::test]
async fn a_job_whose_every_delivery_dies_is_failed_within_its_bound_and_stays_in_the_dlq() {
    jobline_tests::require_emulator!();
    let env = env().await;
    let deadlines = short(3_600_000);
    let store: Arc<dyn JobStore> = Arc::new(env.store().with_deadlines(deadlines));
    let queue = env.queue();
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    queue.send(&JobMessage::new(queued.id)).await.unwrap();

    // Each delivery claims the job with a short lease, then "kills the
    // worker": nothing completes it or touches the message.
    let receive = Receive {
        max_messages: 1,
        wait_secs: 1,
        visibility_secs: 1,
    };
    let (mut last_claim, mut last_lease) = (0, 0);
    let mut claims = 0;
    for _ in 0..20 {
        let Some(message) = queue.receive(receive).await.unwrap().pop() else {
            if claims == 2 {
                break;
            }
            continue;
        };
        let now = now_ms();
        (last_claim, last_lease) = (now, now + 300);
        store
            .claim(queued.id, now, last_lease, message.receive_count(), "t")
            .await
            .unwrap();
        claims += 1;
    }
    assert_eq!(claims, 2, "two deliveries, then the DLQ");
    // The next receive moves the message to the DLQ (SQS does it on receive).
    assert!(queue.receive(receive).await.unwrap().is_empty());
    assert_eq!(dlq_depth(&env).await, 1);
    assert_eq!(stored(&*store, queued.id).await.state, JobState::Running);

    let sweeper = Sweeper::new(store.clone());
    let due = deadlines
        .claimed(last_claim, 2)
        .expect("the last delivery's claim moves the bound");
    assert_eq!(
        due,
        last_lease + 500,
        "the last delivery leaves only the run limit and the margin"
    );
    let early = sweeper.sweep_once(due - 1).await;
    assert_eq!(early.swept, 0, "not before its bound");
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(due + 10 - now_ms()).unwrap_or(0),
    ))
    .await;
    let report = sweeper.sweep_once(now_ms()).await;
    assert_eq!((report.swept, report.skipped), (1, 0));
    assert_eq!(report.queries, usize::from(SHARDS));

    let swept = stored(&*store, queued.id).await;
    assert_eq!(swept.state, JobState::Failed);
    assert!(swept.dead_lettered);
    assert_eq!(swept.error.as_deref(), Some(SWEPT_ERROR));
    assert_eq!(swept.attempts, 2);
    let finished = swept.finished_at.expect("finished");
    assert!(
        (due..due + 5_000).contains(&finished),
        "finished at {finished}, due at {due}"
    );
    assert!(!indexed(&env, queued.id).await, "out of the index");
    assert_eq!(dlq_depth(&env).await, 1, "the message stays in the DLQ");
    env.cleanup().await;
}

#[tokio::test]
async fn finished_jobs_are_not_in_the_index_so_a_sweep_reads_only_unfinished_ones() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let store: Arc<dyn JobStore> = Arc::new(env.store());
    let now = now_ms();
    for n in 0..40 {
        let done = job("primes").build();
        store.create(&done).await.unwrap();
        assert!(indexed(&env, done.id).await);
        store
            .claim(done.id, now, now + 60_000, 1, "t")
            .await
            .unwrap();
        let completion = if n % 2 == 0 {
            Completion::Succeeded(json!(n))
        } else {
            Completion::Failed {
                error: "boom".into(),
                dead_lettered: false,
            }
        };
        store
            .finish(done.id, 1, "t", &completion, now)
            .await
            .unwrap();
        assert!(!indexed(&env, done.id).await);
    }
    let waiting = job("primes").build();
    store.create(&waiting).await.unwrap();

    // Thirty days on, only the unfinished job is read, by one query per
    // partition whatever the table holds.
    let later = now + 30 * 86_400_000;
    let report = Sweeper::new(store.clone()).sweep_once(later).await;
    assert_eq!(report.queries, usize::from(SHARDS));
    assert_eq!((report.scanned, report.swept), (1, 1));
    let page = store
        .overdue(waiting.id.shard(SHARDS), later, None, 100)
        .await
        .unwrap();
    assert_eq!((page.jobs.len(), page.scanned), (0, 0));
    env.cleanup().await;
}

#[tokio::test]
async fn a_job_claimed_after_it_was_listed_is_not_swept() {
    jobline_tests::require_emulator!();
    let env = env().await;
    // A retention of nothing: the job is overdue half a second after creation.
    let store: Arc<dyn JobStore> = Arc::new(env.store().with_deadlines(short(0)));
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    let now = now_ms() + 1_000;
    let page = store
        .overdue(queued.id.shard(SHARDS), now, None, 100)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1, "listed as overdue");
    assert_eq!(page.jobs[0].id, queued.id);

    // A worker claims it before the sweeper gets to it.
    store
        .claim(queued.id, now, now + 60_000, 1, "t")
        .await
        .unwrap();
    assert_eq!(
        store.sweep(queued.id, now).await.unwrap(),
        SweepOutcome::Unchanged(JobState::Running)
    );
    let report = Sweeper::new(store.clone()).sweep_once(now).await;
    assert_eq!(report.swept, 0);
    assert_eq!(stored(&*store, queued.id).await.state, JobState::Running);
    env.cleanup().await;
}

#[tokio::test]
async fn a_replayed_job_gets_its_index_attributes_back() {
    jobline_tests::require_emulator!();
    let env = env().await;
    let store: Arc<dyn JobStore> = Arc::new(env.store().with_deadlines(short(0)));
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    let now = now_ms() + 1_000;
    let report = Sweeper::new(store.clone()).sweep_once(now).await;
    assert_eq!(report.swept, 1);
    assert!(!indexed(&env, queued.id).await);

    assert_eq!(
        store.replay(queued.id, now_ms()).await.unwrap(),
        jobline_core::store::ReplayOutcome::Replayed
    );
    assert!(
        indexed(&env, queued.id).await,
        "replayed: back in the index"
    );
    let replayed = stored(&*store, queued.id).await;
    assert_eq!(replayed.state, JobState::Queued);
    assert!(!replayed.dead_lettered);
    env.cleanup().await;
}

/// A message that expires unseen (never sent, here): the local runner's
/// timer sweeps its job.
#[tokio::test]
async fn the_local_runner_sweeps_on_its_timer() {
    jobline_tests::require_emulator!();
    let env = env().await;
    let store = Arc::new(env.store().with_deadlines(short(0)));
    let unsent = job("primes").build();
    store.create(&unsent).await.unwrap();
    let stack = jobline_local::Stack::builder(store.clone(), Arc::new(env.queue()), &env.config)
        .sweep_interval(Duration::from_millis(200))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(jobline_local::serve(stack, listener, async {
        drop(stopped.await);
    }));
    let mut state = JobState::Queued;
    for _ in 0..50 {
        state = stored(&*store, unsent.id).await.state;
        if state == JobState::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert_eq!(state, JobState::Failed, "swept by the runner's timer");
    assert!(stored(&*store, unsent.id).await.dead_lettered);
    env.cleanup().await;
}

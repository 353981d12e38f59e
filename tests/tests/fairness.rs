//! Fair to every caller, on the local stack against moto: each job's
//! message goes in its caller's group, the local pollers hand out batches
//! as SQS fair queues do (`jobline_local::fair`), and each caller's
//! unfinished jobs are bounded (429 `too_many_jobs`, that caller's alone),
//! counted up by the API and down by the notifier off the table's stream.

use async_trait::async_trait;
use jobline_api::Api;
use jobline_core::caller::CallerCounts;
use jobline_core::job_types::{JobContext, payload_u64};
use jobline_core::{Clock, JobError, JobHandler, JobId, JobTypes, ReadStore, WorkerConfig};
use jobline_dynamodb::callers::DynamoCallerCounts;
use jobline_local::Stack;
use jobline_local::poller::PollerSettings;
use jobline_tests::TestEnv;
use jobline_tests::identity::request_as;
use jobline_tests::stack::Served;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A job that takes `ms` milliseconds.
#[derive(Debug, Clone, Copy)]
struct Nap;

#[async_trait]
impl JobHandler for Nap {
    fn name(&self) -> &str {
        "nap"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        payload_u64(payload, "ms", 10_000).map(drop)
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let ms = payload_u64(&payload, "ms", 10_000).map_err(JobError::Permanent)?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({"slept": ms})),
            () = ctx.cancelled() => Err(JobError::Retryable("stopped".into())),
        }
    }
}

async fn submit(api: &Api, sub: &str, ms: u64) -> (u16, Value, Option<String>) {
    let body = json!({"type": "nap", "payload": {"ms": ms}});
    let reply = api
        .handle(request_as("POST", "/jobs", Some(&body), sub))
        .await;
    let status = reply.response.status().as_u16();
    let retry_after = reply
        .response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = serde_json::from_slice(reply.response.body().as_ref()).unwrap_or(Value::Null);
    (status, body, retry_after)
}

fn id_of(body: &Value) -> JobId {
    body["jobId"].as_str().expect("a job id").parse().unwrap()
}

/// How long each job waited in the queue (its first start less its
/// creation), in ms, once every one of `ids` has finished.
async fn queue_times(env: &TestEnv, ids: &[JobId], within: Duration) -> Vec<i64> {
    let started = Instant::now();
    let store = env.store();
    let mut times = Vec::new();
    for id in ids {
        loop {
            let job = store.get(*id).await.unwrap().expect("the job");
            if job.state.is_finished() {
                times.push(job.started_at.expect("it ran") - job.created_at);
                break;
            }
            assert!(started.elapsed() < within, "job {id} not finished: {job:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    times
}

#[tokio::test]
async fn one_callers_burst_does_not_hold_back_anothers_jobs() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    // 4 pollers of 10: 40 messages in flight, so a caller with 30 of them
    // or more is noisy, as SQS counts it.
    let stack = env
        .stack(JobTypes::new().with(Nap))
        .poller_settings(PollerSettings {
            batch_size: 10,
            batching_window: Duration::ZERO,
            wait_secs: 1,
            fair_window: 1_000,
            ..PollerSettings::default()
        })
        .worker_config(WorkerConfig {
            concurrency: 10,
            ..env.config.worker.clone()
        })
        .pollers(4)
        .build();
    let served = Served::start(stack).await;
    // The burst, 16 submissions at a time: it must arrive faster than the
    // pollers drain it (40 a second), or it makes no backlog to be fair
    // about, on however loaded a machine.
    let mut noisy = Vec::new();
    for _ in 0..25 {
        let burst = (0..16).map(|_| submit(&served.api, "noisy", 1_000));
        for (status, body, _) in futures_util::future::join_all(burst).await {
            assert_eq!(status, 202, "{body}");
            noisy.push(id_of(&body));
        }
    }
    let mut quiet = Vec::new();
    for _ in 0..10 {
        let (status, body, _) = submit(&served.api, "quiet", 1_000).await;
        assert_eq!(status, 202, "{body}");
        quiet.push(id_of(&body));
    }
    let quiet_times = queue_times(&env, &quiet, Duration::from_secs(60)).await;
    let noisy_times = queue_times(&env, &noisy, Duration::from_secs(90)).await;
    served.stop().await;
    let longest = |times: &[i64]| times.iter().copied().max().unwrap_or(0);
    println!(
        "fair queue: the quiet caller's 10 jobs waited at most {} ms; the noisy caller's 400 up to {} ms",
        longest(&quiet_times),
        longest(&noisy_times)
    );
    // The stated bound: a batch's run (1 s, its 10 jobs at once) and a
    // poll, not the burst's 400 jobs at 40 a second.
    assert!(longest(&quiet_times) <= 2_500, "{quiet_times:?}");
    assert!(longest(&noisy_times) >= 5_000, "{noisy_times:?}");
    env.cleanup().await;
}

/// The stack with webhooks on (so the notifier's relay reads the table's
/// stream) and each caller's unfinished jobs bounded at `limit`.
async fn bounded_stack(
    env: &TestEnv,
    table: &str,
    limit: u64,
    counts: Arc<DynamoCallerCounts>,
) -> Stack {
    let (notify, secret) = env.provision_webhooks().await;
    let mut config = env.config.clone();
    config.callers.table_name = Some(table.to_owned());
    config.callers.max_unfinished = limit;
    let webhooks = env.webhook_parts(&notify, &secret, &Clock::system()).await;
    Stack::builder(Arc::new(env.store()), Arc::new(env.queue()), &config)
        .job_types(JobTypes::new().with(Nap))
        .poller_settings(PollerSettings {
            batching_window: Duration::ZERO,
            wait_secs: 1,
            ..PollerSettings::default()
        })
        .webhooks(webhooks)
        .caller_counts(counts)
        .build()
}

#[tokio::test]
async fn a_callers_bound_refuses_only_that_caller_and_frees_as_its_jobs_finish() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let (table, counts) = env.caller_counts().await;
    let served = Served::start(bounded_stack(&env, &table, 5, Arc::clone(&counts)).await).await;

    // Eight at once: five accepted, three refused with the caller's bound.
    let submissions: Vec<_> = (0..8).map(|_| submit(&served.api, "noisy", 500)).collect();
    let answers = futures_util::future::join_all(submissions).await;
    let accepted = answers.iter().filter(|(s, _, _)| *s == 202).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!((accepted, refused.len()), (5, 3), "{answers:?}");
    for (_, body, retry_after) in &refused {
        assert_eq!(body["error"]["code"], "too_many_jobs", "{body}");
        assert_eq!(body["error"]["limit"], 5, "{body}");
        assert!(retry_after.is_some(), "a Retry-After");
    }
    // Another caller is not refused.
    let (status, body, _) = submit(&served.api, "quiet", 10).await;
    assert_eq!(status, 202, "{body}");

    // Once its jobs finish, the relay counts them down and the caller may
    // submit again.
    let first = answers.iter().find(|(s, _, _)| *s == 202).unwrap();
    let owner = env
        .store()
        .get(id_of(&first.1))
        .await
        .unwrap()
        .unwrap()
        .owner;
    assert_eq!(counts.tally(&owner).await.unwrap().unfinished, 5);
    let started = Instant::now();
    loop {
        if counts.tally(&owner).await.unwrap().unfinished == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never counted down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body, _) = submit(&served.api, "noisy", 10).await;
    assert_eq!(status, 202, "{body}");
    served.stop().await;
    env.cleanup().await;
}

/// `jobline callers recount` sets a count that drifted (here: a cancel no
/// relay counted down, and a count set wrong) to the caller's unfinished
/// jobs in the table, and `show` prints it.
#[tokio::test]
async fn recount_sets_a_callers_drifted_count_to_its_unfinished_jobs() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let (table, counts) = env.caller_counts().await;
    // No poller and no relay: the jobs stay queued, and nothing counts down.
    let stack = bounded_stack(&env, &table, 50, Arc::clone(&counts)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body, _) = submit(stack.api(), "operator-test", 10).await;
        assert_eq!(status, 202, "{body}");
        ids.push(id_of(&body));
    }
    let cancel = format!("/jobs/{}/cancel", ids[0]);
    let reply = stack
        .api()
        .handle(request_as("POST", &cancel, None, "operator-test"))
        .await;
    assert_eq!(reply.response.status(), 200);
    let owner = env.store().get(ids[1]).await.unwrap().unwrap().owner;
    counts.set_unfinished(&owner, 9).await.unwrap();

    let now = Clock::system().now_ms();
    let shown = jobline_cli::callers::recount(&env.store(), counts.as_ref(), &owner, now)
        .await
        .unwrap();
    assert_eq!(shown["counted"], 9, "{shown}");
    assert_eq!(shown["unfinished"], 2, "two queued, one cancelled: {shown}");
    assert_eq!(counts.tally(&owner).await.unwrap().unfinished, 2);
    let shown = jobline_cli::callers::show(counts.as_ref(), &owner, now)
        .await
        .unwrap();
    assert_eq!(
        shown,
        json!({"owner": owner, "key": jobline_core::caller::CallerKey::of(&owner).to_string(),
               "unfinished": 2, "uploadsToday": {"uploads": 0, "bytes": 0}})
    );
    env.cleanup().await;
}

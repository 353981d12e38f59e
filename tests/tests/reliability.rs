//! "202 means it will finish", under injected faults over real connections.
//!
//! The whole local stack (the HTTP server, the API, the worker and its
//! pollers) runs against moto through two fault-injecting proxies, one per
//! function as deployed: every DynamoDB and SQS call of the API and of the
//! worker meets 500s, throttles, resets before and after forwarding, and
//! delays, each at 3 %. Clients submit over HTTP and retry a 503 or a broken
//! connection with the same `Idempotency-Key`, as docs/api.md tells them to.
//! Every accepted job must reach a final state within a bound, once per key,
//! with the right result, and nothing may be left in flight. The calls each
//! proxy saw are then held against that function's IAM role in
//! `template.yaml`: moto enforces no IAM, so this is the check that the
//! deployed functions are allowed what they do.
//!
//! Every job carries a callback URL: the notifier (its own proxy, its own
//! role) and the reader of the jobs table's stream (a fourth proxy: the
//! event source mapping's part) meet the same faults, and every job's
//! final state must be delivered to the receiver, recorded as delivered.

use jobline_core::job::DeliveryState;
use jobline_core::limits::QueueSettings;
use jobline_core::{JobId, JobState, ReadStore, WorkerConfig};
use jobline_local::Stack;
use jobline_local::poller::PollerSettings;
use jobline_local::stack::{Webhooks, notifier_poller_settings};
use jobline_local::stream::StreamReader;
use jobline_testkit::testing::receiver;
use jobline_tests::faults::{Fault, FaultPlan, FaultProxy, FaultRates};
use jobline_tests::http::submit_all;
use jobline_tests::stack::Served;
use jobline_tests::template::Template;
use jobline_tests::{TestEnv, test_queue_settings};
use jobline_webhooks::Deliverer;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs submitted, and by how many concurrent clients.
const JOBS: usize = 300;
const CLIENTS: usize = 12;
/// The rate of each kind of fault on every AWS call.
const FAULT_RATE: f64 = 0.03;
/// Every accepted job must be final this long after the last submission.
const FINISH_BOUND: Duration = Duration::from_secs(150);
/// The queue's visibility timeout here: short, so a lost visibility change
/// or delete comes back quickly (the one setting that differs from the
/// template, besides the worker's short retry delays).
const VISIBILITY_SECS: u32 = 8;

/// The primes up to `n`, counted the slow and obvious way.
fn prime_count(n: u64) -> u64 {
    (2..=n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count() as u64
}

/// The IAM action `operation` of `service` needs (a batch call needs the
/// action of its single form).
fn iam_action(service: &str, operation: &str) -> String {
    let operation = operation.strip_suffix("Batch").unwrap_or(operation);
    format!("{service}:{operation}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_job_finishes_once_under_injected_faults() {
    jobline_tests::require_emulator!();
    let env = TestEnv::with_settings(test_queue_settings(
        VISIBILITY_SECS,
        QueueSettings::TEMPLATE.max_receive_count,
    ))
    .await;
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("the emulator");
    let plan = FaultPlan::uniform(
        FaultRates::each(FAULT_RATE)
            .with_delay(Duration::from_millis(50)..Duration::from_millis(600)),
    );
    let api_proxy = FaultProxy::start("api", &upstream, plan.clone())
        .await
        .expect("api proxy");
    let worker_proxy = FaultProxy::start("worker", &upstream, plan.clone())
        .await
        .expect("worker proxy");
    let notifier_proxy = FaultProxy::start("notifier", &upstream, plan.clone())
        .await
        .expect("notifier proxy");
    let stream_proxy = FaultProxy::start("stream", &upstream, plan)
        .await
        .expect("stream proxy");
    let (notify, secret_arn) = env.provision_webhooks().await;
    let (hook_url, hooks) = receiver(vec![204]).await;
    // The API bounds each call as its Lambda main does (API_AWS_TIMEOUT_MS).
    let api_clients = jobline_tests::faults::clients_behind(&api_proxy)
        .await
        .with_timeouts(jobline_aws::AwsTimeouts::api(&env.config));
    let worker_clients = jobline_tests::faults::clients_behind(&worker_proxy).await;
    let notifier_clients = jobline_tests::faults::clients_behind(&notifier_proxy).await;
    let stream_clients = jobline_tests::faults::clients_behind(&stream_proxy).await;
    let mut config = env.config.clone();
    config.webhooks.secret_id = Some(secret_arn);
    config.webhooks.queue_url = Some(notify.queue_url.clone());
    config.webhooks.allow_local_callbacks = true;
    config.webhooks.retry_base_delay_secs = 1;
    config.webhooks.retry_max_delay_secs = 2;
    let webhooks = Webhooks {
        store: Arc::new(notifier_clients.store(&config)),
        keys: Arc::new(notifier_clients.webhook_keys(&config).expect("a secret")),
        queue: Arc::new(jobline_sqs::SqsJobQueue::new(
            notifier_clients.sqs.clone(),
            &notify.queue_url,
        )),
        stream: StreamReader::for_table(
            &stream_clients.dynamodb,
            stream_clients.streams.clone(),
            &config.table_name,
        )
        .await
        .expect("the table's stream"),
        deliverer: Deliverer::new(),
        // Short, as the job queue's here: a receive whose answer a fault
        // lost comes back in seconds, not the template's three minutes.
        poller: PollerSettings {
            visibility_secs: VISIBILITY_SECS as i32,
            wait_secs: 1,
            ..notifier_poller_settings()
        },
    };
    let stack = Stack::builder(
        Arc::new(api_clients.store(&config)),
        Arc::new(api_clients.queue(&config)),
        &config,
    )
    .worker_clients(
        Arc::new(worker_clients.store(&config)),
        Arc::new(worker_clients.queue(&config)),
    )
    .worker_config(WorkerConfig {
        retry_base_delay_secs: 1,
        retry_max_delay_secs: 2,
        ..config.worker.clone()
    })
    .poller_settings(PollerSettings {
        batching_window: Duration::ZERO,
        wait_secs: 1,
        visibility_secs: VISIBILITY_SECS as i32,
        function_timeout: Duration::from_secs(6),
        ..PollerSettings::default()
    })
    .pollers(3)
    .webhooks(webhooks)
    .build();
    let served = Served::start(stack).await;
    let addr = served.addr;

    // Clients: primes jobs (results to check) and every tenth one that fails
    // once before it succeeds (the retry path).
    let started = Instant::now();
    let requests: Vec<(String, Value)> = (0..JOBS)
        .map(|i| {
            let request = if i % 10 == 9 {
                json!({"type": "fail-times", "payload": {"failures": 1}, "callbackUrl": hook_url})
            } else {
                json!({"type": "primes", "payload": {"upTo": 500 + i}, "callbackUrl": hook_url})
            };
            (format!("reliability-{i}"), request)
        })
        .collect();
    let jobs = submit_all(addr, requests, CLIENTS).await;
    let submitted_in = started.elapsed();

    // Every accepted job reaches a final state within the bound (read from
    // the table directly, past the proxies).
    let store = env.store();
    let deadline = Instant::now() + FINISH_BOUND;
    let mut finals: HashMap<JobId, jobline_core::JobRecord> = HashMap::new();
    while finals.len() < jobs.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} jobs not final within {FINISH_BOUND:?}",
            jobs.len() - finals.len(),
            jobs.len()
        );
        for job in &jobs {
            if finals.contains_key(&job.id) {
                continue;
            }
            let record = store.get(job.id).await.expect("read").expect("a record");
            if record.state.is_finished() {
                finals.insert(job.id, record);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let finished_in = started.elapsed();

    // Every final state is delivered and recorded so.
    let deadline = Instant::now() + FINISH_BOUND;
    let mut delivered: HashSet<JobId> = HashSet::new();
    let mut last_seen = HashMap::new();
    while delivered.len() < jobs.len() {
        if Instant::now() >= deadline {
            let undelivered: Vec<String> = jobs
                .iter()
                .filter(|job| !delivered.contains(&job.id))
                .map(|job| format!("{} {:?}", job.id, last_seen.get(&job.id)))
                .collect();
            panic!(
                "{} of {} webhooks not delivered within {FINISH_BOUND:?}: {undelivered:?}",
                undelivered.len(),
                jobs.len()
            );
        }
        for job in &jobs {
            if delivered.contains(&job.id) {
                continue;
            }
            let record = store.get(job.id).await.expect("read").expect("a record");
            let recorded = record.current_delivery();
            if recorded.is_some_and(|w| w.state == DeliveryState::Delivered) {
                delivered.insert(job.id);
            }
            last_seen.insert(job.id, recorded);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let received = hooks.lock().expect("the receiver's log").clone();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for request in &received {
        *per_event
            .entry(request.headers["webhook-id"].clone())
            .or_default() += 1;
    }
    for job in &jobs {
        let event = &finals[&job.id];
        let id = jobline_notifier::webhook_id(job.id, event.finished_at.expect("finished"));
        let posts = per_event.get(&id).copied().unwrap_or(0);
        assert!(posts >= 1, "{id} was never POSTed");
    }
    let webhook_duplicates = received.len() - jobs.len();
    // At least once: every extra POST of an event (always under its one
    // `webhook-id`, which receivers drop duplicates by) follows a fault on
    // the path from the stream to the receiver (a relay batch read again, a
    // send whose answer was lost, a delivery record that did not land), so
    // there are never more duplicates than such faults.
    let webhook_path_faults: usize = [&notifier_proxy, &stream_proxy]
        .iter()
        .flat_map(|proxy| proxy.injected().into_values())
        .sum();
    assert!(
        webhook_duplicates <= webhook_path_faults,
        "{webhook_duplicates} extra POSTs for {webhook_path_faults} faults on the webhook path"
    );

    // Nothing left in flight: the queue drains (messages whose delete failed
    // come back and are acknowledged as duplicates), and nothing died.
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while env.queue_depth(&env.queues.queue_url).await > 0 {
        assert!(Instant::now() < drain_deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(env.queue_depth(&env.queues.dlq_url).await, 0, "DLQ");
    while env.queue_depth(&notify.queue_url).await > 0 {
        assert!(
            Instant::now() < drain_deadline,
            "the notifier's queue did not drain"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(env.queue_depth(&notify.dlq_url).await, 0, "notifier DLQ");
    served.stop().await;

    // One job per key, each with the right result.
    let ids: HashSet<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), JOBS, "one job per key");
    let items = env
        .clients
        .dynamodb
        .scan()
        .table_name(&env.table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        // Job items only: a payload item (a large payload kept apart) has no state.
        .filter_expression("attribute_exists(#state)")
        .expression_attribute_names("#state", "state")
        .send()
        .await
        .expect("scan");
    let duplicated = (items.count() as usize).saturating_sub(ids.len());
    assert_eq!(duplicated, 0, "no job record beyond one per key");
    for job in &jobs {
        let record = &finals[&job.id];
        assert_eq!(record.state, JobState::Succeeded, "{record:?}");
        let result = record.result.as_ref().expect("a result");
        if job.request["type"] == "primes" {
            let up_to = job.request["payload"]["upTo"].as_u64().unwrap();
            assert_eq!(result["count"], prime_count(up_to), "{result}");
        } else {
            assert!(record.attempts >= 2, "fail-times ran twice: {record:?}");
        }
    }

    // Faults of every kind were injected at about their rate.
    let mut injected: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut calls = 0;
    for proxy in [&api_proxy, &worker_proxy, &notifier_proxy, &stream_proxy] {
        calls += proxy.calls().len();
        for (fault, n) in proxy.injected() {
            *injected.entry(fault).or_default() += n;
        }
    }
    for fault in Fault::QUICK {
        let n = injected.get(&fault).copied().unwrap_or(0);
        assert!(
            n as f64 >= calls as f64 * FAULT_RATE / 2.0,
            "{fault:?}: {n} of {calls} calls"
        );
    }

    // What each function did is what its role allows.
    let template = Template::load();
    for (proxy, role) in [
        (&api_proxy, "ApiFunctionRole"),
        (&worker_proxy, "WorkerFunctionRole"),
        (&notifier_proxy, "NotifierFunctionRole"),
    ] {
        let granted: BTreeSet<String> = template
            .role_grants(role)
            .into_iter()
            .map(|(action, _)| action)
            .collect();
        for (service, operation) in proxy.operations() {
            let action = iam_action(&service, &operation);
            assert!(
                granted.contains(&action),
                "{} called {operation}, but {role} does not allow {action}",
                proxy.label()
            );
        }
    }

    let retries: usize = jobs.iter().map(|j| j.retries).sum();
    let attempts: u32 = finals.values().map(|r| r.attempts).sum();
    let stuck = jobs.len() - finals.len();
    eprintln!(
        "reliability: {} jobs accepted, {stuck} stuck, {duplicated} duplicated; {calls} AWS calls, \
         faults injected {injected:?}; client retries {retries}; attempts {attempts}; \
         submitted in {submitted_in:?}, all final after {finished_in:?}; webhooks all delivered, \
         {webhook_duplicates} POSTed twice",
        jobs.len()
    );
    env.cleanup().await;
}

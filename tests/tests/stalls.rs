//! Hung AWS calls: long jobs must still all finish, and no job may run in
//! two places at once.
//!
//! The whole local stack (HTTP server, API, worker, three pollers) runs
//! against moto through two fault-injecting proxies, one per function as
//! deployed, that stall a share of every DynamoDB and SQS call: the call is
//! held with no answer, never forwarded, then its connection closed
//! ([`Fault::Stall`]). Stalls are longer than a job's lease, so a stalled
//! heartbeat (its `UpdateItem` or its `ChangeMessageVisibility`) lets the
//! lease run out and the message come back to another poller while the
//! first attempt may still be running. The jobs are long (several
//! heartbeats each) and of a test-only type, `stall-probe`, that records
//! when each run of each job started and ended.
//!
//! It asserts that every job accepted with a 202 reaches a final state its
//! client sees (`GET /jobs/{id}`, through the stalling API), each succeeded
//! one with its result, and that no two runs of one job overlapped in time.
//! A job whose last delivery stalled past every retry is left to the
//! sweeper at its time bound, days away: the test moves the clock past it
//! (no sleeping) and requires those jobs final too, each with its message
//! in the DLQ.
//! It prints a summary first (jobs, faults injected, handler starts per job,
//! lost jobs, overlapping runs), so a failure shows the figures too.
//!
//! Sizes: by default a short run (24 jobs; 6 s stalls against a 1 s
//! heartbeat, whose lease is 4 s: stalls scaled to the heartbeat), about
//! half a minute on two cores; with `JOBLINE_STALL_RUN=long`, 120 longer
//! jobs and 30 s stalls, about two minutes:
//!
//! ```sh
//! cargo test --workspace --test integration stalls:: -- --nocapture   # short; moto in AWS_ENDPOINT_URL
//! JOBLINE_STALL_RUN=long cargo test --workspace --test integration stalls:: -- --nocapture
//! ```

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream;
use jobline_aws::AwsTimeouts;
use jobline_core::deadline::Deadlines;
use jobline_core::job_types::JobContext;
use jobline_core::limits::QueueSettings;
use jobline_core::queue::{QueueCounts, Receive, ReceivedMessage, VisibilityChange};
use jobline_core::{
    Clock, JobError, JobHandler, JobId, JobMessage, JobQueue, JobState, JobTypes, QueueError,
    ReadStore, WorkerConfig,
};
use jobline_local::Stack;
use jobline_local::poller::PollerSettings;
use jobline_sqs::SqsJobQueue;
use jobline_tests::faults::{Fault, FaultPlan, FaultProxy, FaultRates};
use jobline_tests::http::{call, submit_all};
use jobline_tests::stack::Served;
use jobline_tests::{TestEnv, test_queue_settings};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Set to `long` for the long run.
const SIZE_VARIABLE: &str = "JOBLINE_STALL_RUN";

/// How big a run is.
#[derive(Debug, Clone, Copy)]
struct Size {
    name: &'static str,
    /// Jobs submitted, and by how many concurrent clients.
    jobs: usize,
    clients: usize,
    /// How long each job's handler runs when undisturbed.
    job_secs: u64,
    /// `HEARTBEAT_SECS`: a lease lasts two beats and a second.
    heartbeat_secs: u32,
    /// How long a stalled call hangs.
    stall: Duration,
    /// The share of DynamoDB and SQS calls (of the API and the worker) that stall.
    stall_rate: f64,
    /// Every accepted job must be seen final this long after the last 202.
    finish_bound: Duration,
}

/// The default: stalls of two leases (6 s against a 3 s lease).
const SHORT: Size = Size {
    name: "short",
    jobs: 24,
    clients: 8,
    job_secs: 5,
    heartbeat_secs: 1,
    stall: Duration::from_secs(6),
    stall_rate: 0.03,
    finish_bound: Duration::from_secs(90),
};

/// `JOBLINE_STALL_RUN=long`: 30 s stalls, ten leases.
const LONG: Size = Size {
    name: "long",
    jobs: 120,
    clients: 12,
    job_secs: 8,
    heartbeat_secs: 1,
    stall: Duration::from_secs(30),
    stall_rate: 0.02,
    finish_bound: Duration::from_secs(480),
};

impl Size {
    fn from_env() -> Self {
        match std::env::var(SIZE_VARIABLE).as_deref() {
            Err(_) | Ok("" | "short") => SHORT,
            Ok("long") => LONG,
            Ok(other) => panic!("{SIZE_VARIABLE}={other:?}: expected `short` or `long`"),
        }
    }

    /// The invocation's length: an undisturbed job, three stalls and some.
    fn function_timeout(self) -> Duration {
        Duration::from_secs(self.job_secs) + self.stall * 3 + Duration::from_secs(5)
    }
}

/// The queue's visibility timeout here: short, so a message whose claim's
/// visibility change or delete was stalled comes back quickly (as in the
/// 300-job fault run).
const VISIBILITY_SECS: u32 = 8;

/// How long the pollers' receive or delete may take (1 s long polls).
/// Deployed, the event source mapping makes those calls, not the worker,
/// so the worker's timeouts (under a heartbeat) are not theirs.
const MAPPING_TIMEOUT: Duration = Duration::from_secs(6);

/// The worker's queue as the local stack uses it: the worker's own calls
/// (visibility changes, sends) on the worker's clients; the pollers'
/// receives and deletes, which the event source mapping makes deployed, on
/// clients of their own. Both behind the worker's proxy.
#[derive(Debug)]
struct MappedQueue {
    worker: SqsJobQueue,
    mapping: SqsJobQueue,
}

#[async_trait]
impl JobQueue for MappedQueue {
    async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
        self.worker.send(message).await
    }

    async fn send_delayed(
        &self,
        message: &JobMessage,
        delay_secs: u32,
    ) -> Result<String, QueueError> {
        self.worker.send_delayed(message, delay_secs).await
    }

    async fn change_visibility(&self, receipt_handle: &str, secs: u32) -> Result<(), QueueError> {
        self.worker.change_visibility(receipt_handle, secs).await
    }

    async fn change_visibility_batch(
        &self,
        changes: &[VisibilityChange],
    ) -> Result<Vec<String>, QueueError> {
        self.worker.change_visibility_batch(changes).await
    }

    async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.mapping.receive(request).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError> {
        self.mapping.delete(receipt_handles).await
    }

    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        self.worker.counts().await
    }
}

/// The test-only job type: sleeps like `sleep` (in quarter seconds, so a
/// cancel stops it at once) and records every run of every job.
const PROBE: &str = "stall-probe";

/// One run of a job's handler.
#[derive(Debug, Clone)]
struct RunSpan {
    attempt: u32,
    started: Instant,
    /// When the handler returned, or its future was dropped.
    ended: Option<Instant>,
    /// `finished`, `cancelled`, or `dropped` (the worker let go of it).
    end: &'static str,
}

type Runs = Arc<Mutex<HashMap<JobId, Vec<RunSpan>>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone, Default)]
struct Probe {
    runs: Runs,
}

/// Marks its run ended when dropped, however the handler's future ends.
struct Running {
    runs: Runs,
    job: JobId,
    index: usize,
    end: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(span) = lock(&self.runs)
            .get_mut(&self.job)
            .and_then(|spans| spans.get_mut(self.index))
        {
            span.ended = Some(Instant::now());
            span.end = self.end;
        }
    }
}

fn seconds(payload: &Value) -> Result<u64, String> {
    payload["seconds"]
        .as_u64()
        .filter(|s| *s <= 60)
        .ok_or_else(|| "payload.seconds must be an integer from 0 to 60".to_owned())
}

#[async_trait]
impl JobHandler for Probe {
    fn name(&self) -> &str {
        PROBE
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        seconds(payload).map(drop)
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let seconds = seconds(&payload).map_err(JobError::Permanent)?;
        let index = {
            let mut runs = lock(&self.runs);
            let spans = runs.entry(ctx.job_id).or_default();
            spans.push(RunSpan {
                attempt: ctx.attempt,
                started: Instant::now(),
                ended: None,
                end: "dropped",
            });
            spans.len() - 1
        };
        let mut running = Running {
            runs: Arc::clone(&self.runs),
            job: ctx.job_id,
            index,
            end: "dropped",
        };
        for quarter in 0..seconds * 4 {
            ctx.progress(quarter as f64 / (seconds * 4) as f64, "probing");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = ctx.cancelled() => {
                    running.end = "cancelled";
                    return Err(JobError::Retryable("stopped when cancelled".to_owned()));
                }
            }
        }
        running.end = "finished";
        Ok(json!({ "slept": seconds }))
    }
}

/// An answer of the local server: `(status, JSON body)`, or why the
/// connection failed.
type Answer = Result<(u16, Value), String>;

/// The jobs the table holds in a final state, read past the proxies.
async fn finished_in_table(env: &TestEnv) -> HashSet<JobId> {
    let mut finished = HashSet::new();
    let mut start = None;
    loop {
        let page = env
            .clients
            .dynamodb
            .scan()
            .table_name(&env.table)
            .projection_expression("jobId, #state")
            .expression_attribute_names("#state", "state")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the jobs");
        for item in page.items() {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
            let state = text("state").and_then(|s| s.parse::<JobState>().ok());
            let id = text("jobId").and_then(|s| s.parse::<JobId>().ok());
            if let (Some(state), Some(id)) = (state, id)
                && state.is_finished()
            {
                finished.insert(id);
            }
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return finished,
        }
    }
}

/// Two runs of one job that were under way at the same time.
#[derive(Debug)]
struct Overlap {
    job: JobId,
    first: RunSpan,
    second: RunSpan,
}

/// Every pair of runs of one job whose spans intersect (a run not ended
/// counts as running until `now`).
fn overlaps(runs: &HashMap<JobId, Vec<RunSpan>>, now: Instant) -> Vec<Overlap> {
    let mut found = Vec::new();
    for (job, spans) in runs {
        for (i, first) in spans.iter().enumerate() {
            for second in &spans[i + 1..] {
                let first_end = first.ended.unwrap_or(now);
                let second_end = second.ended.unwrap_or(now);
                if first.started < second_end && second.started < first_end {
                    found.push(Overlap {
                        job: *job,
                        first: first.clone(),
                        second: second.clone(),
                    });
                }
            }
        }
    }
    found
}

/// A run's span in seconds since `origin`, e.g. `attempt 1 [3.2 s, 9.8 s] finished`.
fn span_text(span: &RunSpan, origin: Instant) -> String {
    let at = |t: Instant| t.saturating_duration_since(origin).as_secs_f64();
    let end = span
        .ended
        .map_or_else(|| "still running".to_owned(), |t| format!("{:.1} s", at(t)));
    format!(
        "attempt {} [{:.1} s, {end}] {}",
        span.attempt,
        at(span.started),
        span.end
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_jobs_all_finish_and_never_run_twice_at_once_while_calls_stall() {
    jobline_tests::require_emulator!();
    let size = Size::from_env();
    let settings = test_queue_settings(VISIBILITY_SECS, QueueSettings::TEMPLATE.max_receive_count);
    let env = TestEnv::with_settings(settings).await;
    let clock = Clock::movable();
    let upstream = std::env::var(jobline_tests::ENDPOINT_VARIABLE).expect("the emulator");
    let plan = FaultPlan::uniform(
        FaultRates::none()
            .with(Fault::Stall, size.stall_rate)
            .with_stall(size.stall..size.stall),
    );
    let api_proxy = FaultProxy::start("api", &upstream, plan.clone())
        .await
        .expect("api proxy");
    let worker_proxy = FaultProxy::start("worker", &upstream, plan)
        .await
        .expect("worker proxy");
    let function_timeout = size.function_timeout();
    let worker_config = WorkerConfig {
        retry_base_delay_secs: 1,
        retry_max_delay_secs: 2,
        heartbeat_secs: size.heartbeat_secs,
        function_timeout_secs: u32::try_from(function_timeout.as_secs()).expect("secs"),
        ..env.config.worker.clone()
    };
    let mut config = env.config.clone();
    config.worker = worker_config.clone();
    let deadlines = Deadlines::new(settings, &worker_config);
    // The API's and the worker's calls are bounded as their Lambda mains
    // bound them; the pollers' receives and deletes (the event source
    // mapping's, deployed) are not the worker's.
    let api_clients = jobline_tests::faults::clients_behind(&api_proxy)
        .await
        .with_timeouts(AwsTimeouts::api(&config));
    let worker_clients = jobline_tests::faults::clients_behind(&worker_proxy)
        .await
        .with_timeouts(AwsTimeouts::worker(&config.worker));
    let mapping_clients = jobline_tests::faults::clients_behind(&worker_proxy)
        .await
        .with_timeouts(AwsTimeouts::within(MAPPING_TIMEOUT));
    let probe = Probe::default();
    let stack = Stack::builder(
        Arc::new(api_clients.store(&config)),
        Arc::new(api_clients.queue(&config)),
        &config,
    )
    .job_types(JobTypes::new().with(probe.clone()))
    .worker_clients(
        Arc::new(worker_clients.store(&config)),
        Arc::new(MappedQueue {
            worker: worker_clients.queue(&config),
            mapping: mapping_clients.queue(&config),
        }),
    )
    .worker_config(worker_config)
    .poller_settings(PollerSettings {
        batching_window: Duration::ZERO,
        wait_secs: 1,
        visibility_secs: VISIBILITY_SECS as i32,
        function_timeout,
        ..PollerSettings::default()
    })
    .pollers(3)
    .clock(clock.clone())
    .build();
    let served = Served::start(stack).await;
    let addr = served.addr;

    // Clients submit long jobs, retrying 503s with the same key.
    let started = Instant::now();
    let requests: Vec<(String, Value)> = (0..size.jobs)
        .map(|i| {
            let seconds = size.job_secs + (i % 3) as u64;
            (
                format!("stall-{i}"),
                json!({"type": PROBE, "payload": {"seconds": seconds}}),
            )
        })
        .collect();
    let jobs = submit_all(addr, requests, size.clients).await;
    let submitted_in = started.elapsed();

    // Each accepted job's final state, as its client sees it: once the
    // table (one scan a second, past the proxies) holds it final, a GET
    // through the stalling API, four at a time, until it answers. (A GET of
    // every job every second would be most of the calls, and of the stalls.)
    let deadline = Instant::now() + size.finish_bound;
    let mut finals: HashMap<JobId, Value> = HashMap::new();
    let mut unanswered_gets = 0usize;
    while finals.len() < jobs.len() && Instant::now() < deadline {
        let finished = finished_in_table(&env).await;
        let pending: Vec<JobId> = jobs
            .iter()
            .map(|job| job.id)
            .filter(|id| finished.contains(id) && !finals.contains_key(id))
            .collect();
        let views: Vec<(JobId, Answer)> = stream::iter(pending)
            .map(|id| async move {
                let path = format!("/jobs/{id}");
                let view = tokio::time::timeout(
                    Duration::from_secs(10),
                    call(addr, "GET", &path, None, None),
                )
                .await
                .unwrap_or_else(|_| Err("no answer within 10 s".to_owned()));
                (id, view)
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for (id, view) in views {
            match view {
                Ok((200, body))
                    if matches!(
                        body["status"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    ) =>
                {
                    finals.insert(id, body);
                }
                // Not final through the API yet: asked again next round.
                Ok((200, _)) => {}
                Ok((503, _)) | Err(_) => unanswered_gets += 1,
                Ok((status, body)) => panic!("GET /jobs/{id}: unexpected {status}: {body}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let finished_in = started.elapsed();

    // A job whose last delivery never reached the store (every try of its
    // claim or of its completion stalled) is left to the sweeper, its
    // message in the DLQ: the promise's stated bound, days away
    // (jobline_core::deadline). The clock moves past it, with the faults
    // off, and those jobs' clients must then see them final too.
    let mut swept = 0u64;
    let unseen: Vec<JobId> = jobs
        .iter()
        .map(|job| job.id)
        .filter(|id| !finals.contains_key(id))
        .collect();
    if !unseen.is_empty() {
        for proxy in [&api_proxy, &worker_proxy] {
            proxy.set_plan(FaultPlan::uniform(FaultRates::none()));
        }
        let bound = deadlines.queued_at(clock.now_ms());
        clock.advance(Duration::from_millis(
            u64::try_from(bound - clock.now_ms()).unwrap_or(0) + 1_000,
        ));
        served.sweeper.sweep_once(clock.now_ms()).await;
        for id in unseen {
            if let Ok((200, body)) = call(addr, "GET", &format!("/jobs/{id}"), None, None).await
                && matches!(
                    body["status"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
            {
                finals.insert(id, body);
                swept += 1;
            }
        }
    }

    // What the table says of the jobs the client never saw final.
    let store = env.store();
    let mut lost = Vec::new();
    let mut lost_by_state: BTreeMap<String, usize> = BTreeMap::new();
    for job in jobs.iter().filter(|job| !finals.contains_key(&job.id)) {
        let state = store.get(job.id).await.expect("read").map_or_else(
            || "no record".to_owned(),
            |r| format!("{} after {} attempts", r.state, r.attempts),
        );
        lost.push(format!("{} ({state})", job.id));
        *lost_by_state.entry(state).or_default() += 1;
    }
    let queued = env.queue_depth(&env.queues.queue_url).await;
    let dead = env.queue_depth(&env.queues.dlq_url).await;

    // Stop the stack: every batch in hand ends, so every handler has ended.
    for proxy in [&api_proxy, &worker_proxy] {
        proxy.set_plan(FaultPlan::uniform(FaultRates::none()));
    }
    served.stop().await;

    // The figures.
    let runs = lock(&probe.runs).clone();
    let now = Instant::now();
    let overlapping = overlaps(&runs, now);
    let mut starts_per_job: BTreeMap<usize, usize> = BTreeMap::new();
    for job in &jobs {
        *starts_per_job
            .entry(runs.get(&job.id).map_or(0, Vec::len))
            .or_default() += 1;
    }
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for span in runs.values().flatten() {
        *ends.entry(span.end).or_default() += 1;
    }
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for view in finals.values() {
        let mut state = view["status"].as_str().unwrap_or("?").to_owned();
        if view["deadLettered"] == true {
            state.push_str(" (dead-lettered)");
        }
        *states.entry(state).or_default() += 1;
    }
    let mut calls = 0;
    let mut injected: BTreeMap<String, BTreeMap<Fault, usize>> = BTreeMap::new();
    let mut stalled: BTreeMap<String, usize> = BTreeMap::new();
    for proxy in [&api_proxy, &worker_proxy] {
        let proxy_calls = proxy.calls();
        calls += proxy_calls.len();
        injected.insert(proxy.label().to_owned(), proxy.injected());
        for call in proxy_calls.iter().filter(|c| c.fault == Some(Fault::Stall)) {
            *stalled
                .entry(format!("{} {}", proxy.label(), call.operation))
                .or_default() += 1;
        }
    }
    let mut jobs_overlapping: Vec<JobId> = overlapping.iter().map(|o| o.job).collect();
    jobs_overlapping.sort();
    jobs_overlapping.dedup();
    const SHOWN: usize = 20;
    let mut overlap_lines: Vec<String> = overlapping
        .iter()
        .take(SHOWN)
        .map(|o| {
            format!(
                "    {}: {} and {}",
                o.job,
                span_text(&o.first, started),
                span_text(&o.second, started)
            )
        })
        .collect();
    if overlapping.len() > SHOWN {
        overlap_lines.push(format!("    ... and {} more", overlapping.len() - SHOWN));
    }
    let client_retries: usize = jobs.iter().map(|j| j.retries).sum();
    eprintln!(
        "stalls ({}): {} jobs accepted ({}-{} s each), heartbeat {} s (lease {} s), stalls of {:?} \
         on {} % of DynamoDB and SQS calls; {calls} AWS calls\n  \
         faults injected: {injected:?}\n  \
         stalled operations: {stalled:?}\n  \
         seen final by their clients: {} {states:?}, {swept} of them only once the clock passed \
         their time bound; lost: {} {lost_by_state:?}\n  \
         handler starts per job (starts: jobs): {starts_per_job:?}; runs ended {ends:?}\n  \
         run twice at once: {} jobs, {} overlapping pairs{}{}\n  \
         client retries {client_retries}, GETs unanswered (503 or none) {unanswered_gets}; submitted in {submitted_in:.1?}, watched \
         until {finished_in:.1?}; after: queue {queued}, DLQ {dead}",
        size.name,
        jobs.len(),
        size.job_secs,
        size.job_secs + 2,
        size.heartbeat_secs,
        2 * size.heartbeat_secs + 1,
        size.stall,
        size.stall_rate * 100.0,
        finals.len(),
        lost.len(),
        jobs_overlapping.len(),
        overlapping.len(),
        if overlap_lines.is_empty() { "" } else { ":\n" },
        overlap_lines.join("\n"),
    );

    // The worker's calls stalled at about their rate (the API's are too few
    // to hold to one; their stalls are in the summary).
    let worker_stalls = worker_proxy
        .injected()
        .get(&Fault::Stall)
        .copied()
        .unwrap_or(0);
    let expected = worker_proxy.calls().len() as f64 * size.stall_rate;
    assert!(
        worker_stalls > 0 && worker_stalls as f64 >= expected / 4.0,
        "the worker's calls: {worker_stalls} stalls, expected about {expected:.0}"
    );
    // Nothing lost: every accepted job is seen final by its client, within
    // the finish bound or, when its last delivery was lost, by its time bound.
    assert!(
        lost.is_empty(),
        "{} of {} accepted jobs not seen final within {:?} of the last 202, nor once the \
         clock passed their time bound: {lost:?}",
        lost.len(),
        jobs.len(),
        size.finish_bound
    );
    // Only a job whose last delivery was spent is left to the sweeper: its
    // message went to the DLQ.
    assert!(
        swept <= dead,
        "{swept} jobs were finished only by the sweeper, but the DLQ holds {dead} messages"
    );
    // Never two runs of one job at once.
    assert!(
        overlapping.is_empty(),
        "{} jobs ran twice at once:\n{}",
        jobs_overlapping.len(),
        overlap_lines.join("\n")
    );
    // Every succeeded job has its result.
    for job in &jobs {
        let view = &finals[&job.id];
        if view["status"] == "succeeded" {
            let seconds = &job.request["payload"]["seconds"];
            assert_eq!(view["result"], json!({"slept": seconds}), "{view}");
        }
    }
    env.cleanup().await;
}

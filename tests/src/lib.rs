//! Support for the integration tests in `tests/tests/`: each test gets its
//! own table and queue pair, with unique names, on the moto server that
//! `scripts/test` starts and points `AWS_ENDPOINT_URL` at.
//!
//! Without an emulator (a bare `cargo test`), every test that needs one
//! starts with [`require_emulator!`] and passes as skipped, with one line
//! on stderr saying so; `scripts/test` sets `JOBLINE_REQUIRE_EMULATOR=1`,
//! which turns such a skip into a failure, so CI cannot skip silently.

pub mod template;

pub mod faults;
pub mod http;
pub mod identity;
pub mod process;

pub mod browser;

use jobline_core::config::Config;
use jobline_core::limits::QueueSettings;
use jobline_dynamodb::DynamoJobStore;
use jobline_local::Clients;
use jobline_local::provision::{self, Queues, create_schedules_table, schedules_table_name};
use jobline_sqs::SqsJobQueue;

/// The variable that points the SDK (and so the tests) at the emulator.
pub const ENDPOINT_VARIABLE: &str = "AWS_ENDPOINT_URL";

/// Set to `1` (by `scripts/test`), a missing emulator fails the tests.
pub const REQUIRE_VARIABLE: &str = "JOBLINE_REQUIRE_EMULATOR";

/// Whether the emulator-backed tests can run: `AWS_ENDPOINT_URL` is set.
/// If not, says so once per test binary on stderr (past the test harness's
/// capture, so it shows) and returns false, or panics when
/// `JOBLINE_REQUIRE_EMULATOR=1`. Use it through [`require_emulator!`].
pub fn emulator_available() -> bool {
    if std::env::var_os(ENDPOINT_VARIABLE).is_some_and(|v| !v.is_empty()) {
        return true;
    }
    assert!(
        std::env::var(REQUIRE_VARIABLE).as_deref() != Ok("1"),
        "{REQUIRE_VARIABLE}=1 but {ENDPOINT_VARIABLE} is not set: no emulator to test against"
    );
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        // Straight to the stream: `eprintln!` would be captured and hidden.
        drop(writeln!(
            std::io::stderr(),
            "skipping: no emulator; run ./scripts/test or set {ENDPOINT_VARIABLE}"
        ));
    });
    false
}

/// Returns from the test (which then passes as skipped) when there is no
/// emulator; see [`emulator_available`]. The first line of every test that
/// uses [`TestEnv`]: `jobline_tests::require_emulator!();`
#[macro_export]
macro_rules! require_emulator {
    () => {
        if !$crate::emulator_available() {
            return;
        }
    };
}

/// The queue settings an integration test runs with: the template's, except
/// for the two that make failures quick to see, the visibility timeout (a
/// crashed attempt's message comes back in seconds, not six minutes) and the
/// deliveries before the DLQ. This is the one place a test may differ from
/// `template.yaml`; `tests/tests/template.rs` pins the template's own values
/// against [`QueueSettings::TEMPLATE`] and this function's others.
pub fn test_queue_settings(visibility_timeout_secs: u32, max_receive_count: u32) -> QueueSettings {
    QueueSettings {
        visibility_timeout_secs,
        max_receive_count,
        ..QueueSettings::TEMPLATE
    }
}

/// A table and queue pair of one test, on the emulator.
#[derive(Debug)]
pub struct TestEnv {
    pub clients: Clients,
    pub table: String,
    pub queues: Queues,
    pub config: Config,
}

impl TestEnv {
    /// Creates resources with the template's settings.
    pub async fn new() -> Self {
        Self::with_settings(QueueSettings::TEMPLATE).await
    }

    /// Creates resources with `settings`, e.g. a small `max_receive_count`.
    pub async fn with_settings(settings: QueueSettings) -> Self {
        let endpoint = std::env::var(ENDPOINT_VARIABLE).unwrap_or_default();
        assert!(
            endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
            "integration tests run against moto on loopback: run them with scripts/test, \
             which starts it and sets {ENDPOINT_VARIABLE}, and begin each test with \
             jobline_tests::require_emulator!() (got {endpoint:?})"
        );
        let clients = Clients::from_env().await;
        let name = format!("jobline-test-{}", uuid::Uuid::new_v4().simple());
        provision::create_table(&clients.dynamodb, &name)
            .await
            .expect("create table on moto");
        let queues = provision::create_queues(&clients.sqs, &name, settings)
            .await
            .expect("create queues on moto");
        let bucket = provision::bucket_name(&name);
        provision::create_bucket(
            &clients.s3,
            &bucket,
            jobline_core::config::DEFAULT_RETENTION_DAYS,
        )
        .await
        .expect("create the results bucket on moto");
        let mut config = Config::for_resources(&name, &queues.queue_url, &queues.dlq_url)
            .expect("a configuration of the test's resources");
        config.results_bucket = Some(bucket);
        config.worker.max_receive_count = settings.max_receive_count;
        Self {
            clients,
            table: name,
            queues,
            config,
        }
    }

    pub fn store(&self) -> DynamoJobStore {
        self.clients.store(&self.config)
    }

    /// The schedules store on this test's schedules table
    /// ([`schedules_table_name`]), which the first call creates
    /// ([`create_schedules_table`]) and [`cleanup`](Self::cleanup) deletes.
    pub async fn schedules(&self) -> jobline_dynamodb::schedules::DynamoScheduleStore {
        let name = schedules_table_name(&self.table);
        create_schedules_table(&self.clients.dynamodb, &name)
            .await
            .expect("create the schedules table on moto");
        jobline_dynamodb::schedules::DynamoScheduleStore::new(self.clients.dynamodb.clone(), name)
    }

    pub fn queue(&self) -> SqsJobQueue {
        self.clients.queue(&self.config)
    }

    /// Job `id`'s item as DynamoDB holds it (strongly consistent), to see
    /// the attributes the store's codec never returns (index keys).
    pub async fn job_item(
        &self,
        id: jobline_core::JobId,
    ) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.clients
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(
                jobline_dynamodb::KEY_ATTRIBUTE,
                aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
            .expect("the item exists")
    }

    /// How many messages the queue at `url` holds: visible, in flight and
    /// delayed, as SQS approximates them.
    pub async fn queue_depth(&self, url: &str) -> u64 {
        let attributes = provision::queue_attributes(&self.clients.sqs, url)
            .await
            .expect("queue attributes");
        [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        .iter()
        .filter_map(|name| attributes.get(*name)?.parse::<u64>().ok())
        .sum()
    }

    pub fn dlq(&self) -> SqsJobQueue {
        SqsJobQueue::new(self.clients.sqs.clone(), &self.queues.dlq_url)
    }

    /// Creates what webhooks need on the emulator, as `jobline-local
    /// provision` does: the notifier's queue (and DLQ) and the master key
    /// secret. Returns the queue URLs and the secret's ARN, for
    /// `NOTIFY_QUEUE_URL` and `WEBHOOK_SECRET_ID`.
    pub async fn provision_webhooks(&self) -> (Queues, String) {
        let notify = provision::create_queues(
            &self.clients.sqs,
            &provision::notify_queue_name(&self.table),
            QueueSettings::NOTIFY,
        )
        .await
        .expect("create the notifier's queues on moto");
        let secret = provision::create_webhook_secret(&self.clients.secrets, &self.table)
            .await
            .expect("create the webhook secret on moto");
        (notify, secret)
    }

    /// Writes a queued job of `owner` and sends its message, as the API
    /// does; its id.
    pub async fn enqueue(
        &self,
        owner: &str,
        job_type: &str,
        payload: serde_json::Value,
    ) -> jobline_core::JobId {
        use jobline_core::{ApiStore, JobId, JobMessage, JobQueue, JobRecord, JobRequest};
        let request = JobRequest {
            job_type: job_type.into(),
            payload,
            callback_url: None,
        };
        let now = jobline_core::Clock::system().now_ms();
        let job = JobRecord::new_queued(JobId::random(), owner, &request, now, 1);
        self.store().create(&job).await.expect("write the job");
        self.queue()
            .send(&JobMessage::new(job.id))
            .await
            .expect("send its message");
        job.id
    }

    /// Reads job `id` every 50 ms until `done` holds of it, for at most
    /// `secs`; the record that passed.
    pub async fn until(
        &self,
        id: jobline_core::JobId,
        secs: u64,
        done: impl Fn(&jobline_core::JobRecord) -> bool,
    ) -> jobline_core::JobRecord {
        use jobline_core::ReadStore;
        let started = std::time::Instant::now();
        loop {
            let job = self.store().get(id).await.unwrap().expect("the job exists");
            if done(&job) {
                return job;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(secs),
                "job {id} not there within {secs} s: {job:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// This test's callers table (created here, deleted by
    /// [`cleanup`](Self::cleanup)): its name, and the counts on it.
    pub async fn caller_counts(
        &self,
    ) -> (
        String,
        std::sync::Arc<jobline_dynamodb::callers::DynamoCallerCounts>,
    ) {
        let table = provision::callers_table_name(&self.table);
        provision::create_callers_table(&self.clients.dynamodb, &table)
            .await
            .expect("create the callers table on moto");
        let counts = jobline_dynamodb::callers::DynamoCallerCounts::new(
            self.clients.dynamodb.clone(),
            &table,
        );
        (table, std::sync::Arc::new(counts))
    }

    /// What schedules and long delays need (a [`Schedules`](jobline_local::stack::Schedules) for the
    /// stack): this test's schedules table and schedule group (both created
    /// here, deleted by [`cleanup`](Self::cleanup)), at most
    /// `max_per_caller` schedules a caller.
    pub async fn schedule_parts(&self, max_per_caller: usize) -> jobline_local::stack::Schedules {
        let store = self.schedules().await;
        let group = provision::schedule_group_name(&self.table);
        provision::create_schedule_group(&self.clients.scheduler, &group)
            .await
            .expect("create the schedule group on moto");
        let timers = self.clients.timers(jobline_scheduler::TimerTarget {
            group,
            target_arn: provision::local_arn("lambda", "function:jobline-test-fire"),
            role_arn: provision::local_arn("iam", "role/jobline-test-scheduler"),
            dead_letter_arn: None,
        });
        jobline_local::stack::Schedules {
            timers: std::sync::Arc::new(timers),
            store: std::sync::Arc::new(store),
            max_per_caller,
        }
    }

    /// Deletes the table, the schedules table and the schedule group if they
    /// were created, and both queues.
    pub async fn cleanup(self) {
        let _ = self
            .clients
            .scheduler
            .delete_schedule_group()
            .name(provision::schedule_group_name(&self.table))
            .send()
            .await;
        // The schedules and callers tables, where a test made them.
        for table in [
            schedules_table_name(&self.table),
            provision::callers_table_name(&self.table),
        ] {
            let deleted = self
                .clients
                .dynamodb
                .delete_table()
                .table_name(&table)
                .send()
                .await;
            if let Err(e) = deleted {
                assert!(
                    e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()),
                    "delete table {table}: {e:?}"
                );
            }
        }
        provision::delete_all(
            &self.clients.dynamodb,
            &self.clients.sqs,
            &self.table,
            &self.queues,
        )
        .await
        .expect("delete test resources");
    }
}

/// The API, worker and poller of a [`TestEnv`], assembled by
/// [`jobline_local::Stack`] as `jobline-local serve` assembles them, with
/// the job types a test chooses.
pub mod stack {
    use super::TestEnv;
    use jobline_api::Api;
    use jobline_core::{Clock, JobTypes, WorkerConfig};
    use jobline_local::poller::{PollOutcome, Poller, PollerSettings};
    use jobline_local::{Stack, StackBuilder};
    use jobline_worker::Worker;
    use std::sync::Arc;
    use std::time::Duration;

    impl TestEnv {
        /// The webhook parts of the stack, as `jobline-local serve` builds
        /// them: the notifier's queue `notify`, the master key in `secret`
        /// (read on `clock`), the table's stream, and 1 s long polls.
        pub async fn webhook_parts(
            &self,
            notify: &jobline_local::provision::Queues,
            secret: &str,
            clock: &Clock,
        ) -> jobline_local::stack::Webhooks {
            let stream = jobline_local::stream::StreamReader::for_table(
                &self.clients.dynamodb,
                self.clients.streams.clone(),
                &self.table,
            )
            .await
            .expect("the table's stream");
            jobline_local::stack::Webhooks {
                store: Arc::new(self.store()),
                keys: Arc::new(
                    jobline_webhooks::SecretsManagerKeys::new(self.clients.secrets.clone(), secret)
                        .with_clock(clock.clone()),
                ),
                queue: Arc::new(jobline_sqs::SqsJobQueue::new(
                    self.clients.sqs.clone(),
                    &notify.queue_url,
                )),
                stream,
                deliverer: jobline_webhooks::Deliverer::new().with_timeout(Duration::from_secs(5)),
                poller: PollerSettings {
                    wait_secs: 1,
                    ..jobline_local::stack::notifier_poller_settings()
                },
            }
        }

        /// The stack on this test's table and queue: `job_types`, retries
        /// that come back after 1 to 2 seconds, pollers that gather up to
        /// 10 messages with 1 s long polls.
        pub fn stack(&self, job_types: JobTypes) -> StackBuilder {
            let bucket = Arc::new(
                self.clients
                    .results(&self.config)
                    .expect("the test's results bucket"),
            );
            Stack::builder(Arc::new(self.store()), Arc::new(self.queue()), &self.config)
                .results(bucket.clone())
                .files(bucket)
                .job_types(job_types)
                .worker_config(WorkerConfig {
                    retry_base_delay_secs: 2,
                    retry_max_delay_secs: 2,
                    ..self.config.worker.clone()
                })
                .poller_settings(poller_settings(Duration::ZERO))
                .queue_arn(TEST_QUEUE_ARN)
        }

        /// [`stack`](Self::stack) on `clock` (a [`Clock::movable`], which a
        /// test moves by hours and days): the API, worker, notifier, pollers
        /// and sweeper read it, and result links and uploads are presigned
        /// at its time.
        pub fn stack_on(&self, job_types: JobTypes, clock: &Clock) -> StackBuilder {
            let bucket = Arc::new(
                self.clients
                    .results(&self.config)
                    .expect("the test's results bucket")
                    .with_clock(clock.clone()),
            );
            self.stack(job_types)
                .results(bucket.clone())
                .files(bucket)
                .clock(clock.clone())
        }

        pub fn api(&self, job_types: JobTypes) -> Arc<Api> {
            Arc::clone(self.stack(job_types).build().api())
        }

        /// A worker whose retries come back after 1 to 2 seconds.
        pub fn worker(&self, job_types: JobTypes) -> Arc<Worker> {
            Arc::clone(self.stack(job_types).build().worker())
        }

        pub fn worker_with(&self, job_types: JobTypes, config: WorkerConfig) -> Arc<Worker> {
            Arc::clone(self.stack(job_types).worker_config(config).build().worker())
        }

        /// A poller that gathers up to 10 messages for up to `window`.
        pub fn poller(&self, worker: Arc<Worker>, window: Duration) -> Poller {
            Poller::new(
                Arc::new(self.queue()),
                worker,
                poller_settings(window),
                TEST_QUEUE_ARN,
            )
        }
    }

    /// A stack served on a free loopback port, as `jobline-local serve`
    /// runs it, until [`stop`](Self::stop).
    #[derive(Debug)]
    pub struct Served {
        pub addr: std::net::SocketAddr,
        pub api: Arc<Api>,
        pub sweeper: jobline_sweeper::Sweeper,
        stop: tokio::sync::oneshot::Sender<()>,
        serving: tokio::task::JoinHandle<Result<(), jobline_local::ServeError>>,
    }

    impl Served {
        pub async fn start(stack: Stack) -> Self {
            let api = Arc::clone(stack.api());
            let sweeper = stack.sweeper().clone();
            let (listener, addr) = jobline_local::server::bind(([127, 0, 0, 1], 0).into())
                .await
                .expect("bind");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(jobline_local::serve(stack, listener, async {
                drop(stopped.await);
            }));
            Self {
                addr,
                api,
                sweeper,
                stop,
                serving,
            }
        }

        /// Stops the stack as a SIGTERM would, and waits until it has.
        pub async fn stop(self) {
            let _ = self.stop.send(());
            self.serving.await.expect("serve task").expect("serve");
        }
    }

    fn poller_settings(window: Duration) -> PollerSettings {
        PollerSettings {
            batching_window: window,
            wait_secs: 1,
            visibility_secs: 30,
            function_timeout: Duration::from_secs(30),
            ..PollerSettings::default()
        }
    }

    /// The event Lambda would build from `messages`.
    pub fn sqs_event(
        messages: &[jobline_core::queue::ReceivedMessage],
    ) -> aws_lambda_events::event::sqs::SqsEvent {
        jobline_local::poller::sqs_event(messages, TEST_QUEUE_ARN)
    }

    const TEST_QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:test";

    /// Polls until a poll receives something, for at most `attempts` polls.
    pub async fn poll_until_received(poller: &Poller, attempts: usize) -> PollOutcome {
        for _ in 0..attempts {
            let outcome = poller.poll_once().await.expect("poll the queue");
            if outcome.received > 0 {
                return outcome;
            }
        }
        panic!("nothing was received in {attempts} polls");
    }
}

/// Job types for tests: ones that fail on purpose.
pub mod fixtures {
    use async_trait::async_trait;
    use jobline_core::job_types::JobContext;
    use jobline_core::{JobError, JobHandler};
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// `big`: a result of this many letters `r`, for results too large for
    /// the job's item (over 100 KiB), which go to the results bucket.
    #[derive(Debug, Clone, Copy)]
    pub struct BigResult(pub usize);

    #[async_trait]
    impl JobHandler for BigResult {
        fn name(&self) -> &str {
            "big"
        }

        async fn run(&self, _ctx: &JobContext, _payload: Value) -> Result<Value, JobError> {
            Ok(json!("r".repeat(self.0)))
        }
    }

    /// `flaky`: fails with a retryable error `failures` times, then succeeds.
    #[derive(Debug, Clone, Default)]
    pub struct Flaky {
        pub failures_left: Arc<AtomicU32>,
        pub runs: Arc<AtomicU32>,
    }

    impl Flaky {
        pub fn failing(times: u32) -> Self {
            Self {
                failures_left: Arc::new(AtomicU32::new(times)),
                runs: Arc::default(),
            }
        }
    }

    #[async_trait]
    impl JobHandler for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }

        async fn run(&self, _ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            let failing = self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                Err(JobError::Retryable(format!("flaky failure on run {run}")))
            } else {
                Ok(json!({ "run": run, "echo": payload }))
            }
        }
    }

    /// `broken`: fails with a retryable error while `broken` is set.
    #[derive(Debug, Clone)]
    pub struct Broken {
        pub broken: Arc<AtomicBool>,
    }

    impl Broken {
        pub fn new() -> Self {
            Self {
                broken: Arc::new(AtomicBool::new(true)),
            }
        }

        pub fn fix(&self) {
            self.broken.store(false, Ordering::SeqCst);
        }
    }

    impl Default for Broken {
        fn default() -> Self {
            Self::new()
        }
    }

    #[async_trait]
    impl JobHandler for Broken {
        fn name(&self) -> &str {
            "broken"
        }

        async fn run(&self, _ctx: &JobContext, _payload: Value) -> Result<Value, JobError> {
            if self.broken.load(Ordering::SeqCst) {
                Err(JobError::Retryable("the downstream service is down".into()))
            } else {
                Ok(json!({ "fixed": true }))
            }
        }
    }
}

/// A [`JobQueue`](jobline_core::JobQueue) that records the visibility
/// changes it passes on to the real queue: the seconds of each, alone or in
/// a batch, and the size of each batch request.
pub mod recording {
    use async_trait::async_trait;
    use jobline_core::queue::{QueueCounts, Receive, ReceivedMessage, VisibilityChange};
    use jobline_core::{JobMessage, JobQueue, QueueError};
    use jobline_sqs::SqsJobQueue;
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub struct RecordingQueue {
        pub inner: SqsJobQueue,
        pub visibility_changes: Arc<Mutex<Vec<u32>>>,
        pub visibility_batches: Arc<Mutex<Vec<usize>>>,
    }

    impl RecordingQueue {
        pub fn new(inner: SqsJobQueue) -> Self {
            Self {
                inner,
                visibility_changes: Arc::default(),
                visibility_batches: Arc::default(),
            }
        }

        pub fn changes(&self) -> Vec<u32> {
            self.visibility_changes
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default()
        }

        /// How many entries each batch request of visibility changes had.
        pub fn batches(&self) -> Vec<usize> {
            self.visibility_batches
                .lock()
                .map(|b| b.clone())
                .unwrap_or_default()
        }
    }

    #[async_trait]
    impl JobQueue for RecordingQueue {
        async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
            self.inner.send(message).await
        }

        async fn send_delayed(
            &self,
            message: &JobMessage,
            delay_secs: u32,
        ) -> Result<String, QueueError> {
            self.inner.send_delayed(message, delay_secs).await
        }

        async fn change_visibility(&self, receipt: &str, secs: u32) -> Result<(), QueueError> {
            if let Ok(mut changes) = self.visibility_changes.lock() {
                changes.push(secs);
            }
            self.inner.change_visibility(receipt, secs).await
        }

        async fn change_visibility_batch(
            &self,
            changes: &[VisibilityChange],
        ) -> Result<Vec<String>, QueueError> {
            if let Ok(mut recorded) = self.visibility_changes.lock() {
                recorded.extend(changes.iter().map(|change| change.secs));
            }
            if let Ok(mut batches) = self.visibility_batches.lock() {
                batches.push(changes.len());
            }
            self.inner.change_visibility_batch(changes).await
        }

        async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
            self.inner.receive(request).await
        }

        async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError> {
            self.inner.delete(receipt_handles).await
        }

        async fn counts(&self) -> Result<QueueCounts, QueueError> {
            self.inner.counts().await
        }
    }
}

/// Every message `queue` holds now: receives with `request` until a
/// receive comes back empty, each message once (they stay received, not
/// deleted, and come back after `request.visibility_secs`).
pub async fn receive_all(
    queue: &dyn jobline_core::JobQueue,
    request: jobline_core::queue::Receive,
) -> Vec<jobline_core::queue::ReceivedMessage> {
    let mut messages: Vec<jobline_core::queue::ReceivedMessage> = Vec::new();
    loop {
        let batch = queue.receive(request).await.expect("receive");
        if batch.is_empty() {
            return messages;
        }
        for message in batch {
            if !messages.iter().any(|m| m.message_id == message.message_id) {
                messages.push(message);
            }
        }
    }
}

/// Every message `queue` holds now (received, not deleted: they come back
/// after 30 s), decoded.
pub async fn queued_messages(queue: &dyn jobline_core::JobQueue) -> Vec<jobline_core::JobMessage> {
    let request = jobline_core::queue::Receive {
        max_messages: 10,
        wait_secs: 0,
        visibility_secs: 30,
    };
    receive_all(queue, request)
        .await
        .iter()
        .map(|m| jobline_core::JobMessage::decode(&m.body).expect("job message"))
        .collect()
}

//! Support for the integration tests in `tests/tests/`: each test gets its
//! own table and queue pair, with unique names, on the moto server that
//! `scripts/test` starts and points `AWS_ENDPOINT_URL` at.

use jobline_shared::aws::{Clients, TrustRoots};
use jobline_shared::config::{Config, WorkerConfig};
use jobline_shared::provision::{self, QueueSettings, Queues};
use jobline_shared::{DynamoJobStore, SqsJobQueue};

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
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        assert!(
            endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
            "integration tests run against moto on loopback: run them with scripts/test, \
             which starts it and sets AWS_ENDPOINT_URL (got {endpoint:?})"
        );
        let clients = Clients::from_env().await;
        let name = format!("jobline-test-{}", uuid::Uuid::new_v4().simple());
        provision::create_table(&clients.dynamodb, &name)
            .await
            .expect("create table on moto");
        let queues = provision::create_queues(&clients.sqs, &name, settings)
            .await
            .expect("create queues on moto");
        let config = Config {
            table_name: name.clone(),
            queue_url: queues.queue_url.clone(),
            dlq_url: Some(queues.dlq_url.clone()),
            retention_days: 30,
            public_base_url: None,
            trust_roots: TrustRoots::AmazonTrustServices,
            worker: WorkerConfig {
                max_receive_count: settings.max_receive_count,
                ..WorkerConfig::default()
            },
        };
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

    pub fn queue(&self) -> SqsJobQueue {
        self.clients.queue(&self.config)
    }

    pub fn dlq(&self) -> SqsJobQueue {
        SqsJobQueue::new(self.clients.sqs.clone(), &self.queues.dlq_url)
    }

    /// Deletes the table and both queues.
    pub async fn cleanup(self) {
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

/// The API, worker and poller of a [`TestEnv`], built as the binaries build
/// them but with the job types a test chooses.
pub mod stack {
    use super::TestEnv;
    use jobline_api::Api;
    use jobline_local::poller::{PollOutcome, Poller, PollerSettings};
    use jobline_shared::{JobTypes, WorkerConfig};
    use jobline_worker::Worker;
    use std::sync::Arc;
    use std::time::Duration;

    impl TestEnv {
        pub fn api(&self, job_types: JobTypes) -> Api {
            Api::new(
                Arc::new(self.store()),
                Arc::new(self.queue()),
                job_types,
                &self.config,
            )
        }

        /// A worker whose retries come back after 1 to 2 seconds.
        pub fn worker(&self, job_types: JobTypes) -> Arc<Worker> {
            self.worker_with(
                job_types,
                WorkerConfig {
                    retry_base_delay_secs: 2,
                    retry_max_delay_secs: 2,
                    ..self.config.worker.clone()
                },
            )
        }

        pub fn worker_with(&self, job_types: JobTypes, config: WorkerConfig) -> Arc<Worker> {
            Arc::new(Worker::new(
                Arc::new(self.store()),
                Arc::new(self.queue()),
                job_types,
                config,
            ))
        }

        /// A poller that gathers up to 10 messages for up to `window`.
        pub fn poller(&self, worker: Arc<Worker>, window: Duration) -> Poller {
            let settings = PollerSettings {
                batch_size: 10,
                batching_window: window,
                wait_secs: 1,
                visibility_secs: 30,
                function_timeout: Duration::from_secs(30),
            };
            Poller::new(Arc::new(self.queue()), worker, settings, TEST_QUEUE_ARN)
        }
    }

    /// The event Lambda would build from `messages`.
    pub fn sqs_event(
        messages: &[jobline_shared::queue::ReceivedMessage],
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
    use jobline_shared::job_types::JobContext;
    use jobline_shared::{JobError, JobHandler};
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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

/// A [`JobQueue`](jobline_shared::JobQueue) that records the visibility
/// changes it passes on to the real queue.
pub mod recording {
    use async_trait::async_trait;
    use jobline_shared::queue::{Receive, ReceivedMessage};
    use jobline_shared::{JobMessage, JobQueue, QueueError, SqsJobQueue};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub struct RecordingQueue {
        pub inner: SqsJobQueue,
        pub visibility_changes: Arc<Mutex<Vec<u32>>>,
    }

    impl RecordingQueue {
        pub fn new(inner: SqsJobQueue) -> Self {
            Self {
                inner,
                visibility_changes: Arc::default(),
            }
        }

        pub fn changes(&self) -> Vec<u32> {
            self.visibility_changes
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default()
        }
    }

    #[async_trait]
    impl JobQueue for RecordingQueue {
        async fn send(&self, message: &JobMessage) -> Result<String, QueueError> {
            self.inner.send(message).await
        }

        async fn change_visibility(&self, receipt: &str, secs: u32) -> Result<(), QueueError> {
            if let Ok(mut changes) = self.visibility_changes.lock() {
                changes.push(secs);
            }
            self.inner.change_visibility(receipt, secs).await
        }

        async fn receive(&self, request: Receive) -> Result<Vec<ReceivedMessage>, QueueError> {
            self.inner.receive(request).await
        }

        async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, QueueError> {
            self.inner.delete(receipt_handles).await
        }
    }
}

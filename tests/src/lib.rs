//! Support for the integration tests in `tests/tests/`: each test gets its
//! own table and queue pair, with unique names, on the moto server that
//! `scripts/test` starts and points `AWS_ENDPOINT_URL` at.

use jobline_shared::aws::Clients;
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

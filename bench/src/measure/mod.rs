//! The measurements, one module each, and what the emulator-backed ones
//! share: a table and queue pair of their own on the bench's moto, and the
//! event source mapping settings of `template.yaml`.

pub mod calls;
pub mod cost;
pub mod cpu;
pub mod init;
pub mod logs;
pub mod sizes;
pub mod throughput;

use crate::error::BenchError;
use crate::events;
use jobline_api::Api;
use jobline_local::poller::{Poller, PollerSettings};
use jobline_shared::JobTypes;
use jobline_shared::aws::{Clients, TrustRoots};
use jobline_shared::config::{Config, WorkerConfig};
use jobline_shared::provision::{self, QueueSettings, Queues, WORKER_TIMEOUT_SECS};
use jobline_worker::Worker;
use std::sync::Arc;
use std::time::Duration;

/// The mapping's `BatchSize` in template.yaml.
pub const BATCH_SIZE: usize = 10;

/// The local poller as the template's event source mapping: batches of 10
/// within a 1 s window. Its long polls wait 1 s rather than 20 s, so that a
/// run ends promptly once the queue is empty; while messages are waiting a
/// receive returns at once either way.
pub fn poller_settings() -> PollerSettings {
    PollerSettings {
        batch_size: BATCH_SIZE,
        batching_window: Duration::from_secs(1),
        wait_secs: 1,
        visibility_secs: i32::try_from(QueueSettings::TEMPLATE.visibility_timeout_secs)
            .unwrap_or(i32::MAX),
        function_timeout: Duration::from_secs(u64::from(WORKER_TIMEOUT_SECS)),
    }
}

/// Jobline on `resources` through `clients`: the real API, and the real
/// worker fed by the local poller as the event source mapping feeds it.
pub fn jobline(clients: &Clients, resources: &Resources) -> (Api, Poller) {
    let config = &resources.config;
    let store = Arc::new(clients.store(config));
    let queue = Arc::new(clients.queue(config));
    let worker = Arc::new(Worker::new(
        store.clone(),
        queue.clone(),
        JobTypes::builtin(),
        config.worker.clone(),
    ));
    (
        Api::new(store, queue.clone(), JobTypes::builtin(), config),
        Poller::new(queue, worker, poller_settings(), &resources.queue_arn),
    )
}

/// Submits the benchmark job through `api`; any answer but 202 is an error.
pub async fn submit(api: &Api) -> Result<(), BenchError> {
    let request =
        events::submit_request().map_err(|e| BenchError::Unexpected(format!("request: {e}")))?;
    let reply = api.handle(request).await;
    if reply.response.status() == http::StatusCode::ACCEPTED {
        Ok(())
    } else {
        Err(BenchError::Unexpected(format!(
            "submission answered {}: {:?}",
            reply.response.status(),
            reply.response.body()
        )))
    }
}

/// A table and queue pair of one measurement, with the template's settings.
#[derive(Debug)]
pub struct Resources {
    pub config: Config,
    pub queues: Queues,
    pub queue_arn: String,
}

impl Resources {
    /// Creates `jobline-bench-<purpose>-<random>` table, queue and DLQ.
    pub async fn create(clients: &Clients, purpose: &str) -> Result<Self, BenchError> {
        let name = format!("jobline-bench-{purpose}-{}", uuid::Uuid::new_v4().simple());
        provision::create_table(&clients.dynamodb, &name)
            .await
            .map_err(BenchError::aws)?;
        let queues = provision::create_queues(&clients.sqs, &name, QueueSettings::TEMPLATE)
            .await
            .map_err(BenchError::aws)?;
        let queue_arn = provision::queue_attributes(&clients.sqs, &queues.queue_url)
            .await
            .map_err(BenchError::aws)?
            .remove("QueueArn")
            .unwrap_or_default();
        let config = Config {
            table_name: name,
            queue_url: queues.queue_url.clone(),
            dlq_url: Some(queues.dlq_url.clone()),
            retention_days: 30,
            public_base_url: None,
            trust_roots: TrustRoots::AmazonTrustServices,
            worker: WorkerConfig::default(),
        };
        Ok(Self {
            config,
            queues,
            queue_arn,
        })
    }

    /// Deletes the table and queues.
    pub async fn delete(self, clients: &Clients) -> Result<(), BenchError> {
        provision::delete_all(
            &clients.dynamodb,
            &clients.sqs,
            &self.config.table_name,
            &self.queues,
        )
        .await
        .map_err(BenchError::aws)
    }
}

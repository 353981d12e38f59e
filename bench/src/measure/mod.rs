//! The measurements, one module each, and what the emulator-backed ones
//! share: a table and queue pair of their own on the bench's moto, and the
//! event source mapping settings of `template.yaml`.

pub mod calls;
pub mod cost;
pub mod cpu;
pub mod files;
pub mod init;
pub mod logs;
pub mod schedules;
pub mod sizes;
pub mod throughput;

use crate::error::BenchError;
use crate::events;
use jobline_api::Api;
use jobline_core::config::Config;
use jobline_core::limits::QueueSettings;
use jobline_local::Clients;
use jobline_local::Stack;
use jobline_local::poller::{Poller, PollerSettings};
use jobline_local::provision::{self, Queues};
use std::sync::Arc;

/// The mapping's `BatchSize` in template.yaml.
pub const BATCH_SIZE: usize = 10;

/// The local poller as the template's event source mapping: batches of 10
/// within a 1 s window. Its long polls wait 1 s rather than 20 s, so that a
/// run ends promptly once the queue is empty; while messages are waiting a
/// receive returns at once either way.
pub fn poller_settings() -> PollerSettings {
    PollerSettings {
        batch_size: BATCH_SIZE,
        wait_secs: 1,
        ..PollerSettings::default()
    }
}

/// Jobline on `resources` through `clients`, assembled by
/// [`Stack`] as `jobline-local serve` assembles it: the real API, and the
/// real worker fed by the local poller as the event source mapping feeds it.
pub fn jobline(clients: &Clients, resources: &Resources) -> (Arc<Api>, Poller) {
    let config = &resources.config;
    let stack = Stack::builder(
        Arc::new(clients.store(config)),
        Arc::new(clients.queue(config)),
        config,
    )
    .poller_settings(poller_settings())
    .queue_arn(&resources.queue_arn)
    .build();
    (Arc::clone(stack.api()), stack.poller())
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
        let config = Config::for_resources(&name, &queues.queue_url, &queues.dlq_url)
            .map_err(|e| BenchError::Unexpected(format!("configuration: {e}")))?;
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

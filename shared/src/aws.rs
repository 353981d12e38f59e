//! AWS SDK clients, loaded once per process.
//!
//! `aws_config` honours the standard `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS`), which is how the local
//! runner and the tests point Jobline at the moto emulator.

use crate::config::Config;
use crate::queue::SqsJobQueue;
use crate::store::DynamoJobStore;

/// The SDK clients a Jobline process needs.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Loads credentials, region and endpoints from the environment. It
    /// makes no network call: credentials resolve lazily on first use.
    pub async fn from_env() -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::new(&shared),
        }
    }

    /// The job store on the configured table.
    pub fn store(&self, config: &Config) -> DynamoJobStore {
        DynamoJobStore::new(self.dynamodb.clone(), &config.table_name)
    }

    /// The configured job queue.
    pub fn queue(&self, config: &Config) -> SqsJobQueue {
        SqsJobQueue::new(self.sqs.clone(), &config.queue_url)
    }
}

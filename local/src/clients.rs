//! Every SDK client a local process needs, in one place: the local runner,
//! the tests and the bench provision resources, read the table's stream and
//! inspect queues, buckets, secrets and schedules. A Lambda function never builds
//! these: each builds only the clients of the adapters it calls, from
//! `jobline_aws::lambda_sdk_config`.

use jobline_aws::{AwsTimeouts, TrustRoots, bounded, lambda_sdk_config};
use jobline_core::Config;
use jobline_dynamodb::DynamoJobStore;
use jobline_dynamodb::callers::DynamoCallerCounts;
use jobline_dynamodb::schedules::DynamoScheduleStore;
use jobline_s3::S3Bucket;
use jobline_scheduler::{EventBridgeTimers, TimerTarget};
use jobline_sqs::SqsJobQueue;
use jobline_webhooks::SecretsManagerKeys;

/// The SDK clients of a local process, sharing one SDK configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sdk: aws_config::SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The timers' schedules (EventBridge Scheduler).
    pub scheduler: aws_sdk_scheduler::Client,
    /// The jobs table's stream, which only the local runner reads itself.
    pub streams: aws_sdk_dynamodbstreams::Client,
}

impl Clients {
    /// As a Lambda function sets the SDK up ([`lambda_sdk_config`], from
    /// this process's environment).
    pub fn for_lambda(trust: TrustRoots) -> Self {
        Self::from_sdk_config(&lambda_sdk_config(trust))
    }

    /// As a tool run by a person sets the SDK up: the SDK's default chains
    /// (profiles, SSO, the system's CA store). No network call: credentials
    /// resolve on first use.
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&tools_sdk_config().await)
    }

    /// Clients sharing `sdk`.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: jobline_s3::client(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            scheduler: aws_sdk_scheduler::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
        }
    }

    /// These clients with every call bounded by `timeouts` ([`bounded`]).
    pub fn with_timeouts(self, timeouts: AwsTimeouts) -> Self {
        Self::from_sdk_config(&bounded(&self.sdk, timeouts))
    }

    /// The job store on the configured table, with the configured retention
    /// and time bounds.
    pub fn store(&self, config: &Config) -> DynamoJobStore {
        DynamoJobStore::from_sdk(&self.sdk, config)
    }

    /// The store of large results, if `RESULTS_BUCKET` names a bucket.
    pub fn results(&self, config: &Config) -> Option<S3Bucket> {
        config
            .results_bucket
            .as_ref()
            .map(|bucket| S3Bucket::from_sdk(&self.sdk, bucket))
    }

    /// The webhook master keys, if `WEBHOOK_SECRET_ID` names their secret.
    pub fn webhook_keys(&self, config: &Config) -> Option<SecretsManagerKeys> {
        config
            .webhooks
            .secret_id
            .as_ref()
            .map(|id| SecretsManagerKeys::from_sdk(&self.sdk, id))
    }

    /// The configured job queue.
    pub fn queue(&self, config: &Config) -> SqsJobQueue {
        SqsJobQueue::from_sdk(&self.sdk, &config.queue_url)
    }

    /// The schedules' store and timers `config` names, if it has schedules
    /// (`SCHEDULES_TABLE`, `SCHEDULE_GROUP`).
    pub fn schedules(&self, config: &Config) -> Option<crate::stack::Schedules> {
        let schedules = config.schedules.as_ref()?;
        Some(crate::stack::Schedules {
            timers: std::sync::Arc::new(self.timers(TimerTarget::of(schedules))),
            store: std::sync::Arc::new(DynamoScheduleStore::new(
                self.dynamodb.clone(),
                schedules.table_name.clone(),
            )),
            max_per_caller: schedules.max_per_caller,
        })
    }

    /// Each caller's counts, if `config` names a callers table
    /// (`CALLERS_TABLE`).
    pub fn caller_counts(&self, config: &Config) -> Option<DynamoCallerCounts> {
        let table = config.callers.table_name.clone()?;
        Some(DynamoCallerCounts::new(self.dynamodb.clone(), table))
    }

    /// The timers of `target`'s schedule group.
    pub fn timers(&self, target: TimerTarget) -> EventBridgeTimers {
        EventBridgeTimers::new(self.scheduler.clone(), target)
    }
}

/// A tool's SDK configuration: the SDK's default credential and region
/// chains and the system's CA store.
pub async fn tools_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

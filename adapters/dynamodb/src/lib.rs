//! The job records on DynamoDB: [`DynamoJobStore`], the adapter of
//! `jobline_core::store`'s ports.
//!
//! - [`store`]: the adapter; every state change is one conditional write;
//! - [`item`]: the item codec, the table's attribute and index names, and
//!   the size budgets every write keeps (DynamoDB refuses items over 400 KB);
//! - [`migrate`]: brings a table an earlier release wrote to the current
//!   layout (`jobline migrate`);
//! - [`outbox`]: the table's stream records, which say which changes call
//!   for a webhook or change a caller's count (the stream is the outbox of
//!   final states);
//! - [`schedules`]: the schedules table's adapter
//!   ([`DynamoScheduleStore`](schedules::DynamoScheduleStore)) and its codec;
//! - [`callers`]: each caller's unfinished jobs, counted in the callers
//!   table ([`DynamoCallerCounts`](callers::DynamoCallerCounts)).

pub mod callers;
mod fields;
pub mod item;
pub mod migrate;
pub mod outbox;
pub mod schedules;
pub mod store;

pub use item::{
    CREATED_ATTRIBUTE, DUE_ATTRIBUTE, DUE_INDEX, FINISHED_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE,
    KEY_ATTRIBUTE, OWNER_ATTRIBUTE, OWNER_INDEX, SHARD_ATTRIBUTE, STATE_INDEX,
    STATE_SHARD_ATTRIBUTE, TTL_ATTRIBUTE, WEBHOOK_INDEX, item_from_record, record_from_item,
    state_shard,
};
pub use store::DynamoJobStore;

use aws_types::SdkConfig;
use jobline_core::Config;
use jobline_core::deadline::Deadlines;
use jobline_core::limits::QueueSettings;

impl DynamoJobStore {
    /// The store on `config`'s table, with its retention and time bounds,
    /// over a client of `sdk`.
    pub fn from_sdk(sdk: &SdkConfig, config: &Config) -> Self {
        Self::on_table(sdk, &config.table_name)
            .with_retention_days(config.retention_days)
            .with_deadlines(Deadlines::new(
                QueueSettings::for_worker_timeout(config.worker.function_timeout_secs),
                &config.worker,
            ))
    }

    /// The store on `table` with the default retention and time bounds,
    /// over a client of `sdk`: for reading (an operator's listing).
    pub fn on_table(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }
}

impl schedules::DynamoScheduleStore {
    /// The schedules on `table` (`SCHEDULES_TABLE`), over a client of `sdk`.
    pub fn from_sdk(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    /// The schedules on `table`, over `jobs`' own client (a function that
    /// reaches both tables builds one DynamoDB client, not two).
    pub fn beside(jobs: &DynamoJobStore, table: impl Into<String>) -> Self {
        Self::new(jobs.client().clone(), table)
    }
}

impl callers::DynamoCallerCounts {
    /// The counts on `table` (`CALLERS_TABLE`), over a client of `sdk`.
    pub fn from_sdk(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    /// The counts on `table` (`CALLERS_TABLE`), over `jobs`' own client.
    pub fn beside(jobs: &DynamoJobStore, table: impl Into<String>) -> Self {
        Self::new(jobs.client().clone(), table)
    }
}

//! [`DynamoCallerCounts`]: each caller's unfinished jobs in the callers
//! table (`CALLERS_TABLE`, partition key `owner`), one small item a caller.
//!
//! An admission is one conditional `UpdateItem` (`ADD unfinished 1` while
//! under the bound): 1 write unit, and no read, whatever the caller's
//! backlog (a count query over its unfinished jobs would read every one of
//! them). A count down is one more `UpdateItem`, conditional on the count
//! being above zero, so a duplicate of a final state's stream record can
//! lower it by one too many at worst, never below zero.

use crate::item::n;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_aws::sdk_error;
use jobline_core::caller::{CallerCounts, CountError};

/// The callers table's partition key.
pub const OWNER_KEY: &str = "owner";
/// The count of a caller's unfinished jobs.
pub const UNFINISHED: &str = "unfinished";

/// Counts in table `table`.
#[derive(Debug, Clone)]
pub struct DynamoCallerCounts {
    client: Client,
    table: String,
}

impl DynamoCallerCounts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn failed<E>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_dynamodb::error::SdkError<E>) -> CountError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |error| CountError {
        operation,
        source: sdk_error(error),
    }
}

fn refused<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    error: &aws_sdk_dynamodb::error::SdkError<E>,
) -> bool {
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

#[async_trait::async_trait]
impl CallerCounts for DynamoCallerCounts {
    async fn admit(&self, owner: &str, limit: u64) -> Result<bool, CountError> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(OWNER_KEY, AttributeValue::S(owner.to_owned()))
            .update_expression("ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", UNFINISHED)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(error) if refused(&error) => Ok(false),
            Err(error) => Err(failed("UpdateItem")(error)),
        }
    }

    async fn adjust(&self, owner: &str, delta: i64) -> Result<(), CountError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(OWNER_KEY, AttributeValue::S(owner.to_owned()))
            .update_expression("ADD #n :delta")
            .expression_attribute_names("#n", UNFINISHED)
            .expression_attribute_values(":delta", n(delta));
        if delta < 0 {
            update = update
                .condition_expression("#n >= :least")
                .expression_attribute_values(":least", n(-delta));
        }
        match update.send().await {
            Ok(_) => Ok(()),
            // Already at zero (or never counted): nothing to count down.
            Err(error) if refused(&error) => Ok(()),
            Err(error) => Err(failed("UpdateItem")(error)),
        }
    }

    async fn unfinished(&self, owner: &str) -> Result<u64, CountError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(OWNER_KEY, AttributeValue::S(owner.to_owned()))
            .send()
            .await
            .map_err(failed("GetItem"))?;
        Ok(item
            .item()
            .and_then(|item| item.get(UNFINISHED))
            .and_then(|value| value.as_n().ok())
            .and_then(|count| count.parse().ok())
            .unwrap_or(0))
    }
}

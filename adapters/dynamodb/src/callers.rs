//! [`DynamoCallerCounts`]: each caller's unfinished jobs in the callers
//! table (`CALLERS_TABLE`, partition key `owner`), one small item a caller.
//!
//! An admission is one conditional `UpdateItem` (`ADD unfinished 1` while
//! under the bound): 1 write unit, and no read, whatever the caller's
//! backlog (a count query over its unfinished jobs would read every one of
//! them). A count down is one more `UpdateItem`, conditional on the count
//! being above zero, so a duplicate of a final state's stream record can
//! lower it by one too many at worst, never below zero.
//!
//! A caller's uploads of the day are counted in the same item (the day,
//! how many, how many bytes declared): an upload link is one conditional
//! `UpdateItem` that counts on within the day and under the quota (1 write
//! unit); the day's first is a second one that starts the day afresh (2 in
//! all), and a refusal costs three (a refused conditional write is charged
//! like one that succeeds).

use crate::item::n;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_aws::sdk_error;
use jobline_core::caller::{CallerCounts, CallerTally, CountError, DayUploads, UploadQuota};

/// The callers table's partition key.
pub const OWNER_KEY: &str = "owner";
/// The count of a caller's unfinished jobs.
pub const UNFINISHED: &str = "unfinished";

/// The UTC day ([`jobline_core::caller::utc_day`]) a caller's upload counts are of.
pub const UPLOAD_DAY: &str = "uploadDay";
/// A caller's upload links of [`UPLOAD_DAY`].
pub const DAY_UPLOADS: &str = "dayUploads";
/// The bytes declared in a caller's uploads of [`UPLOAD_DAY`].
pub const DAY_UPLOAD_BYTES: &str = "dayUploadBytes";

/// How an upload is counted: on within the day the item holds, or from
/// zero on a day after it.
#[derive(Debug, Clone, Copy)]
enum UploadCount {
    WithinDay,
    NewDay,
}

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

    async fn allow_upload(
        &self,
        owner: &str,
        day: i64,
        bytes: u64,
        quota: UploadQuota,
    ) -> Result<bool, CountError> {
        let Some(room) = quota.bytes.checked_sub(bytes).filter(|_| quota.uploads > 0) else {
            return Ok(false);
        };
        // Within the day; else the day's first; else (another request
        // started the day between the two) within it once more.
        for count in [
            UploadCount::WithinDay,
            UploadCount::NewDay,
            UploadCount::WithinDay,
        ] {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(OWNER_KEY, AttributeValue::S(owner.to_owned()))
                .expression_attribute_names("#d", UPLOAD_DAY)
                .expression_attribute_names("#u", DAY_UPLOADS)
                .expression_attribute_names("#b", DAY_UPLOAD_BYTES)
                .expression_attribute_values(":day", n(day))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":bytes", n(bytes));
            let update = match count {
                UploadCount::WithinDay => update
                    .update_expression("ADD #u :one, #b :bytes")
                    .condition_expression("#d = :day AND #u < :max AND #b <= :room")
                    .expression_attribute_values(":max", n(quota.uploads))
                    .expression_attribute_values(":room", n(room)),
                UploadCount::NewDay => update
                    .update_expression("SET #d = :day, #u = :one, #b = :bytes")
                    .condition_expression("attribute_not_exists(#d) OR #d < :day"),
            };
            match update.send().await {
                Ok(_) => return Ok(true),
                Err(error) if refused(&error) => continue,
                Err(error) => return Err(failed("UpdateItem")(error)),
            }
        }
        Ok(false)
    }

    async fn tally(&self, owner: &str) -> Result<CallerTally, CountError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(OWNER_KEY, AttributeValue::S(owner.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(failed("GetItem"))?;
        let number = |name: &str| {
            answer
                .item()
                .and_then(|item| item.get(name))
                .and_then(|value| value.as_n().ok())
                .and_then(|count| count.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let count = |name: &str| u64::try_from(number(name)).unwrap_or(0);
        Ok(CallerTally {
            unfinished: count(UNFINISHED),
            uploads: DayUploads {
                day: number(UPLOAD_DAY),
                uploads: count(DAY_UPLOADS),
                bytes: count(DAY_UPLOAD_BYTES),
            },
        })
    }

    async fn set_unfinished(&self, owner: &str, count: u64) -> Result<(), CountError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(OWNER_KEY, AttributeValue::S(owner.to_owned()))
            .update_expression("SET #n = :count")
            .expression_attribute_names("#n", UNFINISHED)
            .expression_attribute_values(":count", n(count))
            .send()
            .await
            .map_err(failed("UpdateItem"))?;
        Ok(())
    }
}

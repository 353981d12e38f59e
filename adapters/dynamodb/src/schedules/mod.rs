//! [`DynamoScheduleStore`]: the adapter of [`ScheduleStore`] on the schedules
//! table (`SCHEDULES_TABLE`), keyed `owner` (partition) and `scheduleId`
//! (sort), with no index, stream or TTL; [`item`] is its codec.
//!
//! The key puts each caller's schedules in one partition: `get` of another
//! caller's id finds nothing (its key names the caller), a listing is one
//! `Query` of the partition in id order, and the per-caller bound is a
//! `Select=COUNT` query of it, stopped at the bound by `Limit` (billed as
//! reading the items it counts, whole, but it returns none). The
//! operators' console pages through every caller's with a `Scan`, bounded
//! per page by `Limit`.
//!
//! Every change is one conditional write that asks for
//! `ReturnValuesOnConditionCheckFailure=ALL_OLD`: a refused one returns the
//! current item in the same response, so a conflict costs no read. `create`
//! is conditional on a new key, `update` on the version it read.
//!
//! A fire's record is one `UpdateItem` that changes only the fire
//! attributes (`ADD` of a count, `SET` of the times), never the
//! definition, so it cannot undo an edit and needs no version. A fired
//! outcome moves `lastFireAt`/`lastJobId` only forward, in the write's
//! condition; when DynamoDB refuses it, the returned item says why:
//!
//! - the schedule is gone: `Conflict { current: None }`;
//! - the same scheduled time is recorded: a duplicate delivery of that fire
//!   (its job id is derived from it), which changes nothing;
//! - a later fire is recorded: the fire arrived late; a second `UpdateItem`
//!   counts it in `fired` without moving the last fire back.
//!
//! So a fire costs one write (two when it arrives after a later one), each
//! billed on the larger of the item before and after, 1 write unit per
//! started KB: 1 unit for a small payload, at most 11 for the largest item
//! (see [`item`]). A refused write is billed too (on the current item), so
//! a duplicate delivery costs what its fire did. A skipped or refused fire counts each delivery recorded
//! (a duplicate delivery of one counts twice) and sets `lastMissedAt` to
//! its time.

pub mod item;

use crate::item::{n, s};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Select,
};
use item::{
    ACTIVE_FROM_ATTRIBUTE, CALLBACK_ATTRIBUTE, FIRED_ATTRIBUTE, LAST_FIRE_AT_ATTRIBUTE,
    LAST_JOB_ATTRIBUTE, LAST_MISSED_AT_ATTRIBUTE, LAST_REFUSAL_ATTRIBUTE, OWNER_ATTRIBUTE,
    PAUSED_ATTRIBUTE, REFUSED_ATTRIBUTE, SCHEDULE_ID_ATTRIBUTE, SKIPPED_ATTRIBUTE,
    UPDATED_ATTRIBUTE, VERSION_ATTRIBUTE, bound_refusal, item_from_schedule, schedule_from_item,
    schedule_key, spec_attributes,
};
use jobline_aws::sdk_error;
use jobline_core::schedule::{
    FireOutcome, ScheduleId, SchedulePage, ScheduleRecord, ScheduleStore, ScheduleStoreError,
};
use std::collections::HashMap;

/// A DynamoDB item.
type Item = HashMap<String, AttributeValue>;

/// The condition of every write but `create`: the schedule exists.
const EXISTS: &str = "attribute_exists(#scheduleId)";

/// The condition of a fired outcome's write: the schedule exists and no
/// fire as late is recorded. Values: `:at`.
const FIRE_CONDITION: &str = "attribute_exists(#scheduleId) \
     AND (attribute_not_exists(#lastFireAt) OR #lastFireAt < :at)";

/// The schedules port on a DynamoDB table keyed `owner`, `scheduleId`.
#[derive(Debug, Clone)]
pub struct DynamoScheduleStore {
    client: Client,
    table: String,
}

impl DynamoScheduleStore {
    /// The store on `table` (`SCHEDULES_TABLE`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// An `UpdateItem` of `owner`'s schedule `id`, naming `#scheduleId`
    /// and asking for the current item on a refusal.
    fn update_of(&self, owner: &str, id: ScheduleId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schedule_key(owner, id)))
            .expression_attribute_names("#scheduleId", SCHEDULE_ID_ATTRIBUTE)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    /// Sends `request`: a refusal is `Refused` with the current item.
    async fn send_update(&self, request: UpdateItemFluentBuilder) -> Result<(), WriteFailure> {
        request.send().await.map(|_| ()).map_err(|e| {
            write_failure("UpdateItem", e, |e| match e {
                UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item()),
                _ => None,
            })
        })
    }

    /// One page of a query of `owner`'s partition (every item, or with
    /// `count`, how many), after `after`, of at most `limit` items.
    async fn query(
        &self,
        owner: &str,
        after: Option<ScheduleId>,
        limit: usize,
        count: bool,
    ) -> Result<aws_sdk_dynamodb::operation::query::QueryOutput, ScheduleStoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_values(":owner", s(owner))
            .set_exclusive_start_key(after.map(|id| schedule_key(owner, id)))
            .limit(page_limit(limit))
            .consistent_read(true);
        if count {
            request = request.select(Select::Count);
        }
        request.send().await.map_err(aws_error("Query"))
    }
}

/// `limit` as DynamoDB's `Limit`: at least 1.
fn page_limit(limit: usize) -> i32 {
    i32::try_from(limit.max(1)).unwrap_or(i32::MAX)
}

/// A write DynamoDB did not make.
enum WriteFailure {
    /// The condition failed; the current item, if there is one.
    Refused(Option<Item>),
    /// Any other error.
    Failed(ScheduleStoreError),
}

impl From<WriteFailure> for ScheduleStoreError {
    /// A refusal's `Conflict` with the current schedule read from the item.
    fn from(failure: WriteFailure) -> Self {
        match failure {
            WriteFailure::Refused(None) => Self::Conflict { current: None },
            WriteFailure::Refused(Some(item)) => match schedule_from_item(&item) {
                Ok(current) => Self::Conflict {
                    current: Some(Box::new(current)),
                },
                Err(malformed) => malformed,
            },
            WriteFailure::Failed(err) => err,
        }
    }
}

/// Sorts an SDK error: a conditional-check failure is `Refused` with the
/// item DynamoDB sent back; anything else is `Aws`.
fn write_failure<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
    conflict_item: impl FnOnce(&E) -> Option<Option<&Item>>,
) -> WriteFailure
where
    E: std::error::Error + Send + Sync + 'static,
{
    match err.as_service_error().and_then(conflict_item) {
        Some(item) => WriteFailure::Refused(item.cloned()),
        None => WriteFailure::Failed(aws_error(operation)(err)),
    }
}

/// The error of `operation` that failed with an SDK error.
fn aws_error<E: std::error::Error + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> ScheduleStoreError {
    move |error| ScheduleStoreError::Aws {
        operation,
        source: sdk_error(error),
    }
}

/// The schedule id of a key DynamoDB returned (`LastEvaluatedKey`).
fn key_id(key: &Item) -> Result<ScheduleId, ScheduleStoreError> {
    key.get(SCHEDULE_ID_ATTRIBUTE)
        .and_then(|v| v.as_s().ok())
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            ScheduleStoreError::Malformed(format!("{SCHEDULE_ID_ATTRIBUTE}: not a schedule id"))
        })
}

/// The owner of a key DynamoDB returned.
fn key_owner(key: &Item) -> Result<String, ScheduleStoreError> {
    key.get(OWNER_ATTRIBUTE)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| ScheduleStoreError::Malformed(format!("{OWNER_ATTRIBUTE}: missing")))
}

/// The schedules of a page of items.
fn schedules(items: &[Item]) -> Result<Vec<ScheduleRecord>, ScheduleStoreError> {
    items.iter().map(schedule_from_item).collect()
}

#[async_trait]
impl ScheduleStore for DynamoScheduleStore {
    async fn create(&self, schedule: &ScheduleRecord) -> Result<(), ScheduleStoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_schedule(schedule)))
            .condition_expression("attribute_not_exists(#scheduleId)")
            .expression_attribute_names("#scheduleId", SCHEDULE_ID_ATTRIBUTE)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                write_failure("PutItem", e, |e| match e {
                    PutItemError::ConditionalCheckFailedException(c) => Some(c.item()),
                    _ => None,
                })
                .into()
            })
    }

    async fn get(
        &self,
        owner: &str,
        id: ScheduleId,
    ) -> Result<Option<ScheduleRecord>, ScheduleStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(schedule_key(owner, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_error("GetItem"))?;
        output.item().map(schedule_from_item).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        after: Option<ScheduleId>,
        limit: usize,
    ) -> Result<SchedulePage, ScheduleStoreError> {
        let output = self.query(owner, after, limit, false).await?;
        let schedules = schedules(output.items())?;
        let next = match output.last_evaluated_key() {
            None => None,
            Some(key) => Some(match schedules.last() {
                Some(last) => last.id,
                None => key_id(key)?,
            }),
        };
        Ok(SchedulePage { schedules, next })
    }

    async fn count(&self, owner: &str, up_to: usize) -> Result<usize, ScheduleStoreError> {
        let mut total = 0;
        let mut after = None;
        while total < up_to {
            let output = self.query(owner, after, up_to - total, true).await?;
            total += usize::try_from(output.count()).unwrap_or(0);
            match output.last_evaluated_key() {
                Some(key) => after = Some(key_id(key)?),
                None => break,
            }
        }
        Ok(total.min(up_to))
    }

    async fn update(&self, schedule: &ScheduleRecord) -> Result<(), ScheduleStoreError> {
        let mut set = spec_attributes(&schedule.spec);
        set.extend([
            (PAUSED_ATTRIBUTE, AttributeValue::Bool(schedule.paused)),
            (UPDATED_ATTRIBUTE, n(schedule.updated_at)),
            (ACTIVE_FROM_ATTRIBUTE, n(schedule.active_from)),
            (VERSION_ATTRIBUTE, n(schedule.version)),
        ]);
        let assignments: Vec<String> = set
            .iter()
            .map(|(name, _)| format!("#{name} = :{name}"))
            .collect();
        let mut expression = format!("SET {}", assignments.join(", "));
        let mut request = self.update_of(&schedule.owner, schedule.id);
        if schedule.spec.callback_url.is_none() {
            expression.push_str(&format!(" REMOVE #{CALLBACK_ATTRIBUTE}"));
            request = request
                .expression_attribute_names(format!("#{CALLBACK_ATTRIBUTE}"), CALLBACK_ATTRIBUTE);
        }
        for (name, value) in set {
            request = request
                .expression_attribute_names(format!("#{name}"), name)
                .expression_attribute_values(format!(":{name}"), value);
        }
        self.send_update(
            request
                .update_expression(expression)
                .condition_expression(format!("{EXISTS} AND #{VERSION_ATTRIBUTE} = :previous"))
                .expression_attribute_values(":previous", n(i64::from(schedule.version) - 1)),
        )
        .await
        .map_err(Into::into)
    }

    async fn delete(&self, owner: &str, id: ScheduleId) -> Result<bool, ScheduleStoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(schedule_key(owner, id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(aws_error("DeleteItem"))?;
        Ok(output.attributes().is_some_and(|item| !item.is_empty()))
    }

    async fn record_fire(
        &self,
        owner: &str,
        id: ScheduleId,
        outcome: &FireOutcome,
    ) -> Result<(), ScheduleStoreError> {
        let one = || n(1);
        let request = self.update_of(owner, id);
        let (request, scheduled_at) = match outcome {
            FireOutcome::Fired(fire) => {
                let moved = self
                    .send_update(
                        request
                            .update_expression(
                                "SET #lastFireAt = :at, #lastJobId = :job ADD #fired :one",
                            )
                            .condition_expression(FIRE_CONDITION)
                            .expression_attribute_names("#lastFireAt", LAST_FIRE_AT_ATTRIBUTE)
                            .expression_attribute_names("#lastJobId", LAST_JOB_ATTRIBUTE)
                            .expression_attribute_names("#fired", FIRED_ATTRIBUTE)
                            .expression_attribute_values(":at", n(fire.scheduled_at))
                            .expression_attribute_values(":job", s(fire.job_id.to_string()))
                            .expression_attribute_values(":one", one()),
                    )
                    .await;
                let current = match moved {
                    Ok(()) => return Ok(()),
                    Err(WriteFailure::Refused(Some(current))) => current,
                    Err(other) => return Err(other.into()),
                };
                let recorded = schedule_from_item(&current)?.last_fire.ok_or_else(|| {
                    ScheduleStoreError::Malformed(format!(
                        "{LAST_FIRE_AT_ATTRIBUTE}: missing from a refused fire's schedule"
                    ))
                })?;
                if recorded.scheduled_at == fire.scheduled_at {
                    // A duplicate delivery of the fire recorded.
                    return Ok(());
                }
                // A later fire is recorded: count this one only.
                let late = self
                    .update_of(owner, id)
                    .update_expression("ADD #fired :one")
                    .expression_attribute_names("#fired", FIRED_ATTRIBUTE);
                (late, None)
            }
            FireOutcome::Skipped { scheduled_at } => (
                request
                    .update_expression("ADD #skipped :one SET #lastMissedAt = :at")
                    .expression_attribute_names("#skipped", SKIPPED_ATTRIBUTE),
                Some(*scheduled_at),
            ),
            FireOutcome::Refused {
                scheduled_at,
                reason,
            } => (
                request
                    .update_expression(
                        "ADD #refused :one SET #lastMissedAt = :at, #lastRefusal = :reason",
                    )
                    .expression_attribute_names("#refused", REFUSED_ATTRIBUTE)
                    .expression_attribute_names("#lastRefusal", LAST_REFUSAL_ATTRIBUTE)
                    .expression_attribute_values(":reason", s(bound_refusal(reason))),
                Some(*scheduled_at),
            ),
        };
        let request = match scheduled_at {
            Some(at) => request
                .expression_attribute_names("#lastMissedAt", LAST_MISSED_AT_ATTRIBUTE)
                .expression_attribute_values(":at", n(at)),
            None => request,
        };
        self.send_update(
            request
                .condition_expression(EXISTS)
                .expression_attribute_values(":one", one()),
        )
        .await
        .map_err(|failure| match failure {
            // The schedule's fire record is not what the caller changed.
            WriteFailure::Refused(_) => ScheduleStoreError::Conflict { current: None },
            WriteFailure::Failed(err) => err,
        })
    }

    async fn list_all(
        &self,
        after: Option<(String, ScheduleId)>,
        limit: usize,
    ) -> Result<(Vec<ScheduleRecord>, Option<(String, ScheduleId)>), ScheduleStoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(after.map(|(owner, id)| schedule_key(&owner, id)))
            .limit(page_limit(limit))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_error("Scan"))?;
        let next = output
            .last_evaluated_key()
            .map(|key| Ok::<_, ScheduleStoreError>((key_owner(key)?, key_id(key)?)))
            .transpose()?;
        Ok((schedules(output.items())?, next))
    }
}

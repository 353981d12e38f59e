//! The API function's role ([`ApiStore`]) and the cancel it shares with
//! operators ([`CancelStore`]): creating a job and marking what its enqueue
//! did, a caller's listing, the cancel and the delete.

use super::index::IndexQuery;
use super::{DynamoJobStore, request_error, write_failure};
use crate::item::{
    CHECKPOINT_AT_ATTRIBUTE, CREATED_ATTRIBUTE, OWNER_ATTRIBUTE, OWNER_INDEX, StoredItems,
    items_to_create, key, n, payload_item_key, s, stored_items,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState};
use jobline_core::store::{
    ApiStore, CANCEL_TRIES, CancelOutcome, CancelStore, DeleteOutcome, JobPage, ListKey,
    MAX_LIST_LIMIT, cancel_settled, enqueue_failed,
};

/// The condition of [`ApiStore::mark_enqueue_failed`] on the item it
/// replaces. Values: `:queued`, `:scheduled`, `:zero`, `:created` (the
/// creator's `createdAt`).
const ENQUEUE_FAILED_CONDITION: &str = "#state IN (:queued, :scheduled) AND attempts = :zero \
     AND createdAt = :created AND attribute_not_exists(resentAt)";

/// The condition of [`ApiStore::mark_resending`], the rule of
/// [`may_resend`](jobline_core::store::may_resend). Values: `:queued`,
/// `:scheduled`, `:zero`, `:false`.
const RESEND_CONDITION: &str = "#state IN (:queued, :scheduled) AND attempts = :zero AND \
     (attribute_not_exists(enqueueFailed) OR enqueueFailed = :false)";

#[async_trait]
impl CancelStore for DynamoJobStore {
    async fn cancel(&self, id: JobId, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        // The state the job is believed to be in; a refusal says which it is.
        let mut running = false;
        for _ in 0..CANCEL_TRIES {
            let request = if running {
                self.update(id)
                    .update_expression("SET cancelRequested = :true")
                    .condition_expression("#state = :running")
                    .expression_attribute_values(":running", s(JobState::Running.as_str()))
            } else {
                self.update_to(id, JobState::Cancelled)
                    .update_expression(
                        "SET #state = :cancelled, stateShard = :stateShard, finishedAt = :now, \
                         cancelRequested = :true REMOVE leaseExpiresAt, pending, dueAt",
                    )
                    .condition_expression("#state IN (:queued, :scheduled)")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                    .expression_attribute_values(":scheduled", s(JobState::Scheduled.as_str()))
                    .expression_attribute_values(":cancelled", s(JobState::Cancelled.as_str()))
                    .expression_attribute_values(":now", n(now_ms))
            };
            let written = self
                .send_update(
                    request
                        .expression_attribute_values(":true", AttributeValue::Bool(true))
                        .return_values(ReturnValue::AllNew),
                )
                .await;
            match written {
                Ok(output) => {
                    let item = output.attributes().ok_or_else(|| {
                        StoreError::Malformed("cancel returned no attributes".into())
                    })?;
                    let job = Box::new(self.record(item).await?);
                    return Ok(if running {
                        CancelOutcome::Requested(job)
                    } else {
                        CancelOutcome::Cancelled(job)
                    });
                }
                Err(StoreError::Conflict { current: None }) => return Ok(CancelOutcome::Missing),
                Err(StoreError::Conflict { current: Some(job) }) => {
                    running = job.state == JobState::Running;
                    if let Some(outcome) = cancel_settled(*job) {
                        return Ok(outcome);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Aws {
            operation: "UpdateItem",
            source: "the job kept changing state under the cancel".into(),
        })
    }
}

#[async_trait]
impl ApiStore for DynamoJobStore {
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError> {
        let StoredItems {
            job: item,
            payload,
            checkpoint,
        } = items_to_create(job, &self.deadlines);
        // The items apart first, so that no job item names a missing one.
        for apart in [payload, checkpoint].into_iter().flatten() {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(apart))
                .send()
                .await
                .map_err(|e| request_error("PutItem", e))?;
        }
        self.put(
            item,
            "attribute_not_exists(jobId) OR enqueueFailed = :true",
            vec![(":true", AttributeValue::Bool(true))],
            false,
        )
        .await
    }

    async fn mark_enqueue_failed(
        &self,
        job: &JobRecord,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.put(
            stored_items(&enqueue_failed(job, error, now_ms)).job,
            ENQUEUE_FAILED_CONDITION,
            vec![
                (":queued", s(JobState::Queued.as_str())),
                (":scheduled", s(JobState::Scheduled.as_str())),
                (":zero", n(0)),
                (":created", n(job.created_at)),
            ],
            true,
        )
        .await
    }

    async fn mark_resending(&self, id: JobId, now_ms: i64) -> Result<(), StoreError> {
        self.send_update(
            self.update(id)
                .update_expression("SET resentAt = :now")
                .condition_expression(RESEND_CONDITION)
                .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                .expression_attribute_values(":scheduled", s(JobState::Scheduled.as_str()))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .expression_attribute_values(":now", n(now_ms)),
        )
        .await
        .map(|_| ())
    }

    async fn run_now(&self, id: JobId, now_ms: i64) -> Result<JobRecord, StoreError> {
        let output = self
            .send_update(
                self.update_to(id, JobState::Queued)
                    .update_expression("SET #state = :queued, runAt = :now")
                    .condition_expression("#state = :scheduled")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                    .expression_attribute_values(":scheduled", s(JobState::Scheduled.as_str()))
                    .expression_attribute_values(":now", n(now_ms))
                    .return_values(ReturnValue::AllNew),
            )
            .await?;
        let item = output
            .attributes()
            .ok_or_else(|| StoreError::Malformed("run-now returned no attributes".into()))?;
        self.record(item).await
    }

    async fn list(
        &self,
        owner: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let page = self
            .index_page(
                IndexQuery {
                    index: OWNER_INDEX,
                    partition: (OWNER_ATTRIBUTE, s(owner)),
                    sort: CREATED_ATTRIBUTE,
                },
                self.client
                    .query()
                    .key_condition_expression("#owner = :owner")
                    .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
                    .expression_attribute_values(":owner", s(owner))
                    .scan_index_forward(false),
                after.map(|after| (after.id, after.at)),
                limit.clamp(1, MAX_LIST_LIMIT),
            )
            .await?;
        let list_key = |(id, at)| ListKey { at, id };
        let keys: Vec<ListKey> = page.entries.into_iter().map(list_key).collect();
        let (keys, jobs) = self.read_summaries(&keys).await?.into_iter().unzip();
        Ok(JobPage {
            // In the index's order.
            jobs,
            keys,
            scanned: page.scanned,
            next: page.next.map(list_key),
        })
    }

    async fn delete(&self, id: JobId) -> Result<DeleteOutcome, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .condition_expression("#state IN (:succeeded, :failed, :cancelled)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":succeeded", s(JobState::Succeeded.as_str()))
            .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
            .expression_attribute_values(":cancelled", s(JobState::Cancelled.as_str()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match deleted {
            Ok(output) => output.attributes,
            Err(e) => {
                return match self
                    .settle(write_failure(
                        "DeleteItem",
                        e,
                        conditional_failure!(DeleteItemError),
                    ))
                    .await
                {
                    StoreError::Conflict { current: None } => Ok(DeleteOutcome::Missing),
                    StoreError::Conflict { current: Some(job) } => {
                        Ok(DeleteOutcome::Unfinished(job.state))
                    }
                    other => Err(other),
                };
            }
        };
        // The payload and the checkpoint stored apart go with their job.
        if let Some(payload_key) = old.as_ref().map(payload_item_key).transpose()?.flatten() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(payload_key))
                .send()
                .await
                .map_err(|e| request_error("DeleteItem", e))?;
        }
        if old
            .as_ref()
            .is_some_and(|old| old.contains_key(CHECKPOINT_AT_ATTRIBUTE))
        {
            self.delete_checkpoint(id).await?;
        }
        Ok(DeleteOutcome::Deleted)
    }
}

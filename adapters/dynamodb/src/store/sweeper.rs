//! The sweeper function's role ([`SweeperStore`]): the overdue jobs of the
//! due index and the conditional sweep that fails one, and the webhooks
//! the webhook index says are still owed.

use super::DynamoJobStore;
use crate::item::{
    DUE_ATTRIBUTE, DUE_INDEX, FINISHED_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE, SHARD_ATTRIBUTE,
    WEBHOOK_INDEX, key, n, s,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobState};
use jobline_core::store::{
    DueKey, OverduePage, SWEPT_ERROR, SweepOutcome, SweeperStore, outcome_of,
};

/// The sweeper's condition: the job is unfinished, overdue, and holds no
/// live lease. Values: `:queued`, `:scheduled`, `:running`, `:now` (ms).
pub const SWEEP_CONDITION: &str = "#state IN (:queued, :scheduled, :running) AND dueAt < :now \
     AND (attribute_not_exists(leaseExpiresAt) OR leaseExpiresAt < :now)";

/// The sweeper's update. Values: `:failed`, `:true`, `:swept` (the error),
/// `:now` (ms), `:stateShard` ([`state_shard`](crate::item::state_shard) of `failed`).
pub const SWEEP_UPDATE: &str = "SET #state = :failed, stateShard = :stateShard, \
     deadLettered = :true, #error = :swept, \
     finishedAt = :now REMOVE leaseExpiresAt, pending, dueAt";

#[async_trait]
impl SweeperStore for DynamoJobStore {
    async fn overdue(
        &self,
        shard: u8,
        now_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError> {
        let index = (DUE_INDEX, SHARD_ATTRIBUTE, DUE_ATTRIBUTE);
        self.before_page(index, shard, now_ms, after, limit).await
    }

    async fn sweep(&self, id: JobId, now_ms: i64) -> Result<SweepOutcome, StoreError> {
        let outcome = self
            .send_update(
                self.update_to(id, JobState::Failed)
                    .update_expression(SWEEP_UPDATE)
                    .condition_expression(format!("attribute_exists(jobId) AND {SWEEP_CONDITION}"))
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                    .expression_attribute_values(":scheduled", s(JobState::Scheduled.as_str()))
                    .expression_attribute_values(":running", s(JobState::Running.as_str()))
                    .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
                    .expression_attribute_values(":true", AttributeValue::Bool(true))
                    .expression_attribute_values(":swept", s(SWEPT_ERROR))
                    .expression_attribute_values(":now", n(now_ms))
                    .return_values(ReturnValue::AllNew),
            )
            .await;
        let swept = match outcome {
            Ok(output) => {
                let item = output
                    .attributes()
                    .ok_or_else(|| StoreError::Malformed("sweep returned no attributes".into()))?;
                Ok(self.record(item).await?)
            }
            Err(error) => Err(error),
        };
        outcome_of(
            swept,
            |job| SweepOutcome::Swept(Box::new(job)),
            SweepOutcome::Unchanged,
            SweepOutcome::Missing,
        )
    }

    async fn owed_webhooks(
        &self,
        shard: u8,
        finished_before_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError> {
        let index = (WEBHOOK_INDEX, HOOK_SHARD_ATTRIBUTE, FINISHED_ATTRIBUTE);
        self.before_page(index, shard, finished_before_ms, after, limit)
            .await
    }

    async fn settle_webhook(&self, id: JobId) -> Result<(), StoreError> {
        self.send_update(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(id)))
                .update_expression(format!("REMOVE {HOOK_SHARD_ATTRIBUTE}"))
                .condition_expression("attribute_exists(jobId)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                ),
        )
        .await
        .map(|_| ())
    }
}

//! The checkpoint item: written when a running attempt saves a new
//! checkpoint over the inline size (a heartbeat, a yield), read by the
//! claim that resumes from it, deleted with its job and kept as long as it
//! when replayed. (A checkpoint up to the inline size is written in the job
//! item by the beat itself.)
//!
//! Kept apart from the job item so that a heartbeat, which DynamoDB bills
//! on the whole item it rewrites, costs 1 write unit whatever the
//! checkpoint's size (up to 16 KiB: 17 units a beat when it lived inside).
//! The job item's fenced write comes first and records the checkpoint's
//! time (`checkpointAt`); only an attempt that still owns the job then
//! writes the checkpoint, fenced by its attempt number, so a checkpoint of
//! an older attempt never replaces a newer one's. A crash between the two
//! leaves the previous checkpoint (or none) in place, and the next attempt
//! resumes from it: it repeats some work, as any resume may, and loses
//! none.

use super::{DynamoJobStore, read_failure, request_error};
use crate::item::{
    CHECKPOINT_AT_ATTRIBUTE, CHECKPOINT_ATTRIBUTE, INLINE_CHECKPOINT_BYTES, TTL_ATTRIBUTE,
    checkpoint_key, n, s, save_checkpoint_request,
};
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, expires_at};
use serde_json::Value;
use std::collections::HashMap;

/// Where a checkpoint being saved goes, as JSON text.
pub(super) enum Placed {
    /// Into the job item, by the write that records its time.
    Inline(String),
    /// Into the checkpoint item, after that write.
    Apart(String),
}

impl Placed {
    pub(super) fn of(checkpoint: &Value) -> Self {
        let text = checkpoint.to_string();
        if text.len() <= INLINE_CHECKPOINT_BYTES {
            Self::Inline(text)
        } else {
            Self::Apart(text)
        }
    }
}

impl DynamoJobStore {
    /// Writes `checkpoint` (JSON text over
    /// [`INLINE_CHECKPOINT_BYTES`](crate::item::INLINE_CHECKPOINT_BYTES)) as job
    /// `id`'s checkpoint item, saved by attempt `attempt` at `now_ms`, unless
    /// a later attempt saved one: then `Conflict`, as the attempt no longer
    /// owns the job.
    pub(super) async fn save_checkpoint(
        &self,
        id: JobId,
        attempt: u32,
        checkpoint: String,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let written = save_checkpoint_request(
            &self.client,
            &self.table,
            id,
            s(checkpoint),
            attempt,
            expires_at(now_ms, self.retention_days),
        )
        .send()
        .await;
        match written {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict { current: None })
            }
            Err(e) => Err(request_error("UpdateItem", e)),
        }
    }

    /// The checkpoint job item `item` names: inline in an item written
    /// before checkpoints moved out, else the checkpoint item's when the job
    /// item records one (`checkpointAt`), read strongly consistent.
    pub(super) async fn read_checkpoint(
        &self,
        item: &HashMap<String, AttributeValue>,
        id: JobId,
    ) -> Result<Option<Value>, StoreError> {
        let text = match item.get(CHECKPOINT_ATTRIBUTE) {
            Some(inline) => Some(inline.clone()),
            None if item.contains_key(CHECKPOINT_AT_ATTRIBUTE) => self
                .read_item(checkpoint_key(id), None)
                .await?
                .and_then(|mut apart| apart.remove(CHECKPOINT_ATTRIBUTE)),
            None => None,
        };
        text.map(|value| {
            let text = value
                .as_s()
                .map_err(|_| StoreError::Malformed("checkpoint: not a string".into()))?;
            serde_json::from_str(text)
                .map_err(|e| StoreError::Malformed(format!("checkpoint: {e}")))
        })
        .transpose()
    }

    /// Deletes job `id`'s checkpoint item, if there is one.
    pub(super) async fn delete_checkpoint(&self, id: JobId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(checkpoint_key(id)))
            .send()
            .await
            .map_err(read_failure("DeleteItem"))?;
        Ok(())
    }

    /// Keeps job `id`'s checkpoint item, if there is one, until `expires`
    /// (seconds since the epoch): a replayed job keeps its checkpoint.
    pub(super) async fn extend_checkpoint(
        &self,
        id: JobId,
        expires: i64,
    ) -> Result<(), StoreError> {
        let extended = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(checkpoint_key(id)))
            .update_expression("SET #ttl = :expires")
            .condition_expression("attribute_exists(jobId)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":expires", n(expires))
            .send()
            .await;
        match extended {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(request_error("UpdateItem", e)),
        }
    }
}

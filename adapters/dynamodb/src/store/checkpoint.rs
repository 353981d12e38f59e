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

use super::{DynamoJobStore, request_error};
use crate::item::{
    CHECKPOINT_ATTRIBUTE, INLINE_CHECKPOINT_BYTES, TTL_ATTRIBUTE, checkpoint_key, n, s,
    save_checkpoint_request,
};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, expires_at};
use serde_json::Value;

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

    /// Adds saving this checkpoint at `now_ms` to `request`, a job item
    /// update whose `SET` and `REMOVE` clauses are `sets` and `removes`:
    /// its time always, the checkpoint itself when inline (else the inline
    /// one, maybe an earlier release's, is removed). Returns the request
    /// and, for a checkpoint apart, the text to write after it
    /// ([`DynamoJobStore::save_checkpoint`]).
    pub(super) fn write(
        self,
        request: UpdateItemFluentBuilder,
        sets: &mut String,
        removes: &mut Vec<&'static str>,
        now_ms: i64,
    ) -> (UpdateItemFluentBuilder, Option<String>) {
        let request = request.expression_attribute_values(":now", n(now_ms));
        sets.push_str(", checkpointAt = :now");
        match self {
            Self::Inline(text) => {
                sets.push_str(", checkpoint = :checkpoint");
                (
                    request.expression_attribute_values(":checkpoint", s(text)),
                    None,
                )
            }
            Self::Apart(text) => {
                removes.push("checkpoint");
                (request, Some(text))
            }
        }
    }
}

/// An update expression of `sets` (a `SET` clause) and `removes`.
pub(super) fn expression(sets: &str, removes: &[&str]) -> String {
    if removes.is_empty() {
        sets.to_owned()
    } else {
        format!("{sets} REMOVE {}", removes.join(", "))
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
        let request = save_checkpoint_request(
            &self.client,
            &self.table,
            id,
            s(checkpoint),
            attempt,
            expires_at(now_ms, self.retention_days),
        );
        self.send_update(request).await.map(|_| ())
    }

    /// Job `id`'s checkpoint from its checkpoint item (strongly
    /// consistent), if it has one: for a job item that records a checkpoint
    /// (`checkpointAt`) and holds none inline.
    pub(super) async fn read_apart_checkpoint(
        &self,
        id: JobId,
    ) -> Result<Option<Value>, StoreError> {
        let apart = self.read_item(checkpoint_key(id), None).await?;
        apart
            .as_ref()
            .and_then(|item| item.get(CHECKPOINT_ATTRIBUTE))
            .map(|value| {
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
            .map_err(|e| request_error("DeleteItem", e))?;
        Ok(())
    }

    /// Keeps job `id`'s checkpoint item, if there is one, until `expires`
    /// (seconds since the epoch): a replayed job keeps its checkpoint.
    pub(super) async fn extend_checkpoint(
        &self,
        id: JobId,
        expires: i64,
    ) -> Result<(), StoreError> {
        let extend = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(checkpoint_key(id)))
            .update_expression("SET #ttl = :expires")
            .condition_expression("attribute_exists(jobId)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":expires", n(expires));
        match self.send_update(extend).await {
            // No checkpoint item: nothing to keep.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

//! Where a job's checkpoint is stored: in the job item up to
//! [`INLINE_CHECKPOINT_BYTES`], where a heartbeat that saves it still
//! rewrites one small item; above, in an item of its own keyed
//! `"<id>#checkpoint"` (see the parent module), so that a heartbeat never
//! rewrites it and pays for it only when it changed.

use super::{KEY_ATTRIBUTE, TTL_ATTRIBUTE, n, s};
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::job::JobId;
use std::collections::HashMap;

/// The attribute of a checkpoint (JSON text): in the job item when inline,
/// in the checkpoint item when apart.
pub const CHECKPOINT_ATTRIBUTE: &str = "checkpoint";
/// The job item's time of its last checkpoint (ms): with no inline
/// checkpoint, the marker that the checkpoint item holds one.
pub const CHECKPOINT_AT_ATTRIBUTE: &str = "checkpointAt";
/// The largest checkpoint (bytes of JSON) kept in the job item: with the
/// fixed attributes (about 400 bytes) and a progress report (under 300),
/// the job item stays within 1 KB, so a beat that saves it costs the one
/// write unit a beat costs anyway; a larger one would make every later
/// beat pay for it, and is stored apart.
pub const INLINE_CHECKPOINT_BYTES: usize = 256;
/// The checkpoint item's fence: the attempt that wrote it. A write of an
/// older attempt is refused.
pub const CHECKPOINT_ATTEMPT_ATTRIBUTE: &str = "attempt";

/// The key of the item holding job `id`'s checkpoint, `"<id>#checkpoint"`:
/// no job id contains `#`, so it is no job's key.
pub fn checkpoint_key(id: JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([(KEY_ATTRIBUTE.to_owned(), s(format!("{id}#checkpoint")))])
}

/// Job `id`'s checkpoint item: `checkpoint` (an attribute value of JSON
/// text) saved by attempt `attempt`, kept until `expires_at` (the job's
/// TTL). It has no index attribute, so no index lists it.
pub fn checkpoint_item(
    id: JobId,
    checkpoint: AttributeValue,
    attempt: u32,
    expires_at: i64,
) -> HashMap<String, AttributeValue> {
    let mut item = checkpoint_key(id);
    item.insert(CHECKPOINT_ATTRIBUTE.to_owned(), checkpoint);
    item.insert(CHECKPOINT_ATTEMPT_ATTRIBUTE.to_owned(), n(attempt));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(expires_at));
    item
}

/// The update that saves `checkpoint` (an attribute value of JSON text) as
/// job `id`'s checkpoint item, written by attempt `attempt` and kept until
/// `expires_at`, unless a later attempt saved one (the condition fails).
/// An `UpdateItem`, which creates the item if it is missing, so the
/// worker's role needs no `PutItem`.
pub(crate) fn save_checkpoint_request(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: JobId,
    checkpoint: AttributeValue,
    attempt: u32,
    expires_at: i64,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    client
        .update_item()
        .table_name(table)
        .set_key(Some(checkpoint_key(id)))
        .update_expression("SET #checkpoint = :checkpoint, #attempt = :attempt, #ttl = :expires")
        .condition_expression("attribute_not_exists(#attempt) OR #attempt <= :attempt")
        .expression_attribute_names("#checkpoint", CHECKPOINT_ATTRIBUTE)
        .expression_attribute_names("#attempt", CHECKPOINT_ATTEMPT_ATTRIBUTE)
        .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
        .expression_attribute_values(":checkpoint", checkpoint)
        .expression_attribute_values(":attempt", n(attempt))
        .expression_attribute_values(":expires", n(expires_at))
}

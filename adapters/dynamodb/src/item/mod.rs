//! The DynamoDB item of a job record: attribute names, the codec between
//! items and [`JobRecord`]s, and the size budgets that keep an item under
//! DynamoDB's limit.
//!
//! DynamoDB refuses any item over 400 KB (attribute names included), with a
//! `ValidationException` that no retry can cure. So every part of a record
//! that a caller or a job controls has a budget, and the budgets add up to
//! less than the limit:
//!
//! | attribute  | budget                        | enforced by                                  |
//! |------------|-------------------------------|----------------------------------------------|
//! | `payload`  | [`PAYLOAD_BUDGET_BYTES`](jobline_core::limits::PAYLOAD_BUDGET_BYTES) 256 KiB | the API, on the payload as stored         |
//! | `result`   | [`RESULT_BUDGET_BYTES`](jobline_core::limits::RESULT_BUDGET_BYTES) 100 KiB  | the worker, before it finishes a job      |
//! | `error`    | [`ERROR_BUDGET_BYTES`] 1 KiB     | the store itself ([`bound_error`]), on every write |
//! | the rest   | [`FIXED_BUDGET_BYTES`](jobline_core::limits::FIXED_BUDGET_BYTES) 1 KiB     | fixed-size ids, states, numbers, flags    |
//! | `checkpoint` | [`CHECKPOINT_BUDGET_BYTES`](jobline_core::limits::CHECKPOINT_BUDGET_BYTES) 16 KiB | the job's context, when the handler saves it |
//! | `progress` | [`PROGRESS_BUDGET_BYTES`](jobline_core::limits::PROGRESS_BUDGET_BYTES) 512 B  | the job's context (a message of at most 200 bytes) |
//! | `callbackUrl`, `webhook` | [`WEBHOOK_BUDGET_BYTES`](jobline_core::limits::WEBHOOK_BUDGET_BYTES) 2.25 KiB | the API (a URL of at most 2048 bytes), fixed-size delivery state |
//! | `traceparent` | [`TRACE_CONTEXT_BUDGET_BYTES`](jobline_core::limits::TRACE_CONTEXT_BUDGET_BYTES) 66 B | fixed size: a W3C `traceparent` the API wrote |
//! | reserved   | [`RESERVED_BYTES`](jobline_core::limits::RESERVED_BYTES) (~23 KiB)     | for fields to come |
//!
//! A checkpoint over [`INLINE_CHECKPOINT_BYTES`] lives apart too, in an
//! item of its own ([`checkpoint_item`], keyed `"<id>#checkpoint"`):
//! DynamoDB bills an update on the larger of the item before and after, so
//! with a 16 KiB checkpoint in the job item every heartbeat cost 17 write
//! units. Now a beat rewrites only the job item (1 unit up to 1 KB), and
//! the checkpoint item is written only when the handler saved a new
//! checkpoint, and read only by the claim. A small checkpoint stays inline,
//! where saving it costs nothing more than the beat. The budget stays small all the same: a checkpoint
//! says where to resume, not what was computed so far (that belongs in the
//! job's own storage).
//!
//! The in-memory store measures items with [`item_size`] and refuses one
//! over [`MAX_ITEM_BYTES`](jobline_core::limits::MAX_ITEM_BYTES), as DynamoDB does.
//!
//! Large payloads live apart. DynamoDB bills a write on the whole item
//! (1 write unit per started KB, the larger of the item before and after),
//! so an `UpdateItem` that only moves a job from `queued` to `running` costs
//! 257 write units when the item carries a 256 KiB payload. A payload whose
//! JSON is over [`INLINE_PAYLOAD_BYTES`] is therefore written once, by
//! `create`, as an item of its own ([`StoredItems::payload`], keyed
//! `"<id>#payload#<fingerprint>"`, with the job's TTL and no index
//! attributes, so the due index never lists it); the job item keeps only
//! [`PAYLOAD_SIZE_ATTRIBUTE`], the payload's size, and every state change
//! rewrites about 1 KB. The key carries the request's fingerprint so that a
//! reused idempotency key with another payload writes another item and can
//! never overwrite the payload of the job that holds the key. The budgets
//! above still count the payload in the job's record ([`item_from_record`],
//! the whole record as one item), so that either layout fits DynamoDB.

mod checkpoint;

pub(crate) use checkpoint::save_checkpoint_request;
pub use checkpoint::{
    CHECKPOINT_AT_ATTRIBUTE, CHECKPOINT_ATTEMPT_ATTRIBUTE, CHECKPOINT_ATTRIBUTE,
    INLINE_CHECKPOINT_BYTES, checkpoint_item, checkpoint_key,
};

use crate::fields::{Fields, malformed};
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::deadline::Deadlines;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, Progress, WebhookDelivery};
use jobline_core::limits::ERROR_BUDGET_BYTES;
use jobline_core::store::StateListing;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// The table's partition key.
pub const KEY_ATTRIBUTE: &str = "jobId";
/// The attribute DynamoDB's TTL reads (seconds since the epoch).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// The sparse index of unfinished jobs by due time (KEYS_ONLY): partition
/// [`SHARD_ATTRIBUTE`], sort [`DUE_ATTRIBUTE`]. Only unfinished jobs carry
/// both, so only they are in it.
pub const DUE_INDEX: &str = "pending-due";
/// The index partition of an unfinished job: its shard, `"0"` to `"15"`.
pub const SHARD_ATTRIBUTE: &str = "pending";
/// When only the sweeper may move an unfinished job on (ms since the epoch).
pub const DUE_ATTRIBUTE: &str = "dueAt";

/// The sparse index of webhooks owed (KEYS_ONLY): partition
/// [`HOOK_SHARD_ATTRIBUTE`], sort `finishedAt`. A job with a callback URL
/// carries its hook shard from its creation until the notifier records its
/// delivery `delivered` or `failed`; since an item is in an index only with
/// both keys, it is listed from its final state (`finishedAt`) until then,
/// at no write of its own: entering costs one index write, leaving one.
/// A replay sets the hook shard again, for the new run's final state.
pub const WEBHOOK_INDEX: &str = "hooks-finished";
/// A called-back job's partition of [`WEBHOOK_INDEX`]: its shard, `"0"` to
/// `"15"`.
pub const HOOK_SHARD_ATTRIBUTE: &str = "hookShard";
/// When the job reached its final state (ms since the epoch): the sort key
/// of [`WEBHOOK_INDEX`].
pub const FINISHED_ATTRIBUTE: &str = "finishedAt";

/// The index of each caller's jobs by creation time (KEYS_ONLY): partition
/// [`OWNER_ATTRIBUTE`], sort [`CREATED_ATTRIBUTE`]. Only job items carry an
/// owner, so payload items are not in it; its keys never change after the
/// job is written, so it costs one index write per job, at creation.
pub const OWNER_INDEX: &str = "owner-created";
/// The job's caller, the owner index's partition.
pub const OWNER_ATTRIBUTE: &str = "owner";
/// When the job was created (ms since the epoch), the owner index's sort key.
pub const CREATED_ATTRIBUTE: &str = "createdAt";

/// The sparse index of the failed and cancelled jobs, by state and creation
/// time (KEYS_ONLY): partition [`STATE_SHARD_ATTRIBUTE`], sort
/// [`CREATED_ATTRIBUTE`]. Only a job in a state
/// [`StateListing::StateIndex`] names carries the attribute (set by the
/// final write that makes it failed or cancelled, removed by a replay), so
/// a job that succeeds never enters it. Each state is spread over
/// [`SHARDS`](jobline_core::store::SHARDS) partitions (by [`JobId::shard`], as the
/// due index), so that no partition takes every write of a failing
/// dependency's burst; a listing queries the shards of one state and merges
/// them newest first.
pub const STATE_INDEX: &str = "state-created";
/// A failed or cancelled job item's place in [`STATE_INDEX`],
/// `"<state>#<shard>"` ([`state_shard`]): set by the write that makes it
/// so, in the same conditional write, and removed by every write to another
/// state.
pub const STATE_SHARD_ATTRIBUTE: &str = "stateShard";

/// Every attribute of a job item but its payload, its checkpoint and its
/// result: what a listing reads ([`summary_from_item`]).
pub(crate) const SUMMARY_ATTRIBUTES: &[&str] = &[
    KEY_ATTRIBUTE,
    OWNER_ATTRIBUTE,
    "jobType",
    "fingerprint",
    "state",
    CREATED_ATTRIBUTE,
    "startedAt",
    "runStartedAt",
    "finishedAt",
    "attempts",
    "leaseExpiresAt",
    "claimToken",
    "error",
    "deadLettered",
    "enqueueFailed",
    "resentAt",
    "discarded",
    "replays",
    "progress",
    "checkpointAt",
    "cancelRequested",
    "continuations",
    "callbackUrl",
    "webhook",
    TTL_ATTRIBUTE,
    RUN_AT_ATTRIBUTE,
    "scheduleId",
];

/// The uploads a job reads (JSON text of its `inputs`), written once with
/// the job; not among the summary's attributes (a listing shows none).
pub const INPUTS_ATTRIBUTE: &str = "inputs";

/// When a delayed job becomes due (ms since the epoch): the claim's
/// condition reads it.
pub const RUN_AT_ATTRIBUTE: &str = "runAt";

/// The job's trace context (its W3C `traceparent`, 55 bytes), written once
/// with the job; not among the summary's attributes (a listing shows none;
/// the worker's claim and the notifier's read return it).
pub const TRACE_ATTRIBUTE: &str = "traceparent";

/// The job item's attribute that holds an inline payload (JSON text); the
/// payload item holds it under the same name.
pub const PAYLOAD_ATTRIBUTE: &str = "payload";
/// On a job item whose payload is stored apart, the payload's size (bytes of
/// JSON): the marker that the payload item must be read.
pub const PAYLOAD_SIZE_ATTRIBUTE: &str = "payloadBytes";
/// The largest payload (bytes of JSON) kept in the job item. 1 write unit
/// is 1 KB of item: a job item with at most 1 KiB of payload and its fixed
/// attributes (about 300 bytes before a result) costs 1 or 2 units a state
/// change, the same as a marker and a separate read would save; anything
/// larger is stored apart so that a state change stays at about 1 unit.
pub const INLINE_PAYLOAD_BYTES: usize = 1024;

/// The stored form of `progress`: JSON text `{"fraction","message","at"}`.
pub(crate) fn progress_text(progress: &Progress) -> String {
    serde_json::json!({
        "fraction": progress.fraction,
        "message": progress.message,
        "at": progress.at_ms,
    })
    .to_string()
}

/// The stored form of a webhook delivery: JSON text
/// `{"for","state","attempts","status","at"}`.
pub(crate) fn webhook_text(delivery: &WebhookDelivery) -> String {
    serde_json::json!({
        "for": delivery.for_finished_at,
        "state": delivery.state.as_str(),
        "attempts": delivery.attempts,
        "status": delivery.last_status,
        "at": delivery.at_ms,
    })
    .to_string()
}

pub(crate) fn webhook_from(value: &Value) -> Option<WebhookDelivery> {
    Some(WebhookDelivery {
        for_finished_at: value.get("for")?.as_i64()?,
        state: value.get("state")?.as_str()?.parse().ok()?,
        attempts: u32::try_from(value.get("attempts")?.as_u64()?).ok()?,
        last_status: match value.get("status")? {
            Value::Null => None,
            status => Some(u16::try_from(status.as_u64()?).ok()?),
        },
        at_ms: value.get("at")?.as_i64()?,
    })
}

fn progress_from(value: &Value) -> Option<Progress> {
    Some(Progress {
        fraction: value.get("fraction")?.as_f64()?,
        message: value.get("message")?.as_str()?.to_owned(),
        at_ms: value.get("at")?.as_i64()?,
    })
}

/// What ends an error message cut to [`ERROR_BUDGET_BYTES`].
const ELLIPSIS: &str = "…";

/// `error` cut to at most [`ERROR_BUDGET_BYTES`] bytes, on a char boundary,
/// ending with an ellipsis when it was cut.
pub fn bound_error(error: &str) -> Cow<'_, str> {
    if error.len() <= ERROR_BUDGET_BYTES {
        return Cow::Borrowed(error);
    }
    let mut end = ERROR_BUDGET_BYTES - ELLIPSIS.len();
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &error[..end]))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of job `id`'s item.
pub(crate) fn key(id: JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([(KEY_ATTRIBUTE.to_owned(), s(id.to_string()))])
}

/// The index attributes of job `id` due at `due_at_ms`.
pub(crate) fn due_attributes(id: JobId, due_at_ms: i64) -> [(String, AttributeValue); 2] {
    [
        (
            SHARD_ATTRIBUTE.to_owned(),
            s(id.shard(jobline_core::store::SHARDS).to_string()),
        ),
        (DUE_ATTRIBUTE.to_owned(), n(due_at_ms)),
    ]
}

/// Job `id`'s partition of [`WEBHOOK_INDEX`].
pub(crate) fn hook_shard(id: JobId) -> AttributeValue {
    s(id.shard(jobline_core::store::SHARDS).to_string())
}

/// Partition `shard` (below [`SHARDS`](jobline_core::store::SHARDS)) of `state` in
/// [`STATE_INDEX`]: `"<state>#<shard>"`.
pub fn state_partition(state: JobState, shard: u8) -> String {
    format!("{}#{shard}", state.as_str())
}

/// Job `id`'s partition of [`STATE_INDEX`] while it is in `state`.
pub fn state_shard(id: JobId, state: JobState) -> String {
    state_partition(state, id.shard(jobline_core::store::SHARDS))
}

/// The DynamoDB item for a job record, its error bounded by [`bound_error`],
/// with its [`STATE_SHARD_ATTRIBUTE`] when its state is one the state index
/// lists ([`StateListing::StateIndex`]; [`record_from_item`] ignores it).
/// The whole record as one item, checkpoint included: what the budgets
/// count; [`stored_items`] is how it is stored.
pub fn item_from_record(job: &JobRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (KEY_ATTRIBUTE.to_owned(), s(job.id.to_string())),
        (OWNER_ATTRIBUTE.to_owned(), s(job.owner.as_str())),
        ("jobType".to_owned(), s(job.job_type.as_str())),
        (PAYLOAD_ATTRIBUTE.to_owned(), s(job.payload.to_string())),
        ("fingerprint".to_owned(), s(job.fingerprint.as_str())),
        ("state".to_owned(), s(job.state.as_str())),
        (CREATED_ATTRIBUTE.to_owned(), n(job.created_at)),
        ("attempts".to_owned(), n(job.attempts)),
        (
            "deadLettered".to_owned(),
            AttributeValue::Bool(job.dead_lettered),
        ),
        (
            "enqueueFailed".to_owned(),
            AttributeValue::Bool(job.enqueue_failed),
        ),
        ("replays".to_owned(), n(job.replays)),
        (TTL_ATTRIBUTE.to_owned(), n(job.expires_at)),
    ]);
    let optional = [
        ("startedAt", job.started_at.map(n)),
        ("runStartedAt", job.run_started_at.map(n)),
        ("resentAt", job.resent_at.map(n)),
        ("finishedAt", job.finished_at.map(n)),
        ("leaseExpiresAt", job.lease_expires_at.map(n)),
        ("claimToken", job.claim_token.as_deref().map(s)),
        ("result", job.result.as_ref().map(|r| s(r.to_string()))),
        ("resultKey", job.result_key.as_deref().map(s)),
        ("error", job.error.as_deref().map(|e| s(bound_error(e)))),
        (
            "discarded",
            job.discarded.then_some(AttributeValue::Bool(true)),
        ),
        (
            "progress",
            job.progress.as_ref().map(|p| s(progress_text(p))),
        ),
        (
            CHECKPOINT_ATTRIBUTE,
            job.checkpoint.as_ref().map(|c| s(c.to_string())),
        ),
        (CHECKPOINT_AT_ATTRIBUTE, job.checkpoint_at.map(n)),
        (
            "cancelRequested",
            job.cancel_requested.then_some(AttributeValue::Bool(true)),
        ),
        (
            "continuations",
            (job.continuations > 0).then(|| n(job.continuations)),
        ),
        ("callbackUrl", job.callback_url.as_deref().map(s)),
        ("webhook", job.webhook.as_ref().map(|w| s(webhook_text(w)))),
        (RUN_AT_ATTRIBUTE, job.run_at.map(n)),
        ("scheduleId", job.schedule_id.as_deref().map(s)),
        (
            INPUTS_ATTRIBUTE,
            (!job.inputs.is_empty())
                .then(|| s(serde_json::to_string(&job.inputs).unwrap_or_default())),
        ),
        (
            TRACE_ATTRIBUTE,
            job.traceparent.map(|context| s(context.to_string())),
        ),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?))),
    );
    if StateListing::of(job.state) == StateListing::StateIndex {
        item.insert(
            STATE_SHARD_ATTRIBUTE.to_owned(),
            s(state_shard(job.id, job.state)),
        );
    }
    item
}

/// A job record as DynamoDB stores it: the job item, the payload item when
/// the payload is over [`INLINE_PAYLOAD_BYTES`], and the checkpoint item
/// when there is a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItems {
    pub job: HashMap<String, AttributeValue>,
    pub payload: Option<HashMap<String, AttributeValue>>,
    pub checkpoint: Option<HashMap<String, AttributeValue>>,
}

/// The key of the item holding the payload of job `id` submitted with
/// `fingerprint`.
fn payload_key(id: &str, fingerprint: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(
        KEY_ATTRIBUTE.to_owned(),
        s(format!("{id}#payload#{fingerprint}")),
    )])
}

/// The items `job` is stored as: [`item_from_record`], with a checkpoint
/// over [`INLINE_CHECKPOINT_BYTES`] moved to an item of its own
/// ([`checkpoint_item`]) and a payload over [`INLINE_PAYLOAD_BYTES`] moved
/// to another (same TTL), replaced by [`PAYLOAD_SIZE_ATTRIBUTE`].
pub fn stored_items(job: &JobRecord) -> StoredItems {
    let mut item = item_from_record(job);
    let large = item
        .get(CHECKPOINT_ATTRIBUTE)
        .and_then(|v| v.as_s().ok())
        .is_some_and(|text| text.len() > INLINE_CHECKPOINT_BYTES);
    let checkpoint = large
        .then(|| item.remove(CHECKPOINT_ATTRIBUTE))
        .flatten()
        .map(|text| checkpoint_item(job.id, text, job.attempts, job.expires_at));
    let size = item
        .get(PAYLOAD_ATTRIBUTE)
        .and_then(|v| v.as_s().ok())
        .map_or(0, String::len);
    if size <= INLINE_PAYLOAD_BYTES {
        return StoredItems {
            job: item,
            payload: None,
            checkpoint,
        };
    }
    let mut payload = payload_key(&job.id.to_string(), &job.fingerprint);
    payload.extend(item.remove_entry(PAYLOAD_ATTRIBUTE));
    payload.insert(TTL_ATTRIBUTE.to_owned(), n(job.expires_at));
    item.insert(PAYLOAD_SIZE_ATTRIBUTE.to_owned(), n(size));
    StoredItems {
        job: item,
        payload: Some(payload),
        checkpoint,
    }
}

/// The items `create` writes for new job `job` ([`stored_items`]), its job
/// item with its index attributes: in the due index while unfinished (due
/// as `deadlines` bound a job queued at its creation), and carrying its
/// webhook index partition when it has a callback URL. A delayed job is due
/// as one queued at its `runAt`. Public so that the
/// benchmark's raw-SDK baseline writes exactly what the store writes.
pub fn items_to_create(job: &JobRecord, deadlines: &Deadlines) -> StoredItems {
    let mut items = stored_items(job);
    if !job.state.is_finished() {
        items
            .job
            .extend(due_attributes(job.id, deadlines.queued_at(job.due_from())));
    }
    if job.callback_url.is_some() {
        items
            .job
            .insert(HOOK_SHARD_ATTRIBUTE.to_owned(), hook_shard(job.id));
    }
    items
}

/// The key of the payload item that job item `item` refers to, or `None`
/// when its payload is inline.
pub fn payload_item_key(
    item: &HashMap<String, AttributeValue>,
) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
    if !item.contains_key(PAYLOAD_SIZE_ATTRIBUTE) || item.contains_key(PAYLOAD_ATTRIBUTE) {
        return Ok(None);
    }
    let string = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Malformed(format!("{name}: missing")))
    };
    Ok(Some(payload_key(
        string(KEY_ATTRIBUTE)?,
        string("fingerprint")?,
    )))
}

/// Job item `item` with its payload put back from `payload_item` (the item
/// at [`payload_item_key`]), ready for [`record_from_item`].
pub(crate) fn joined(
    item: &HashMap<String, AttributeValue>,
    payload_item: Option<&HashMap<String, AttributeValue>>,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let payload = payload_item
        .and_then(|p| p.get(PAYLOAD_ATTRIBUTE))
        .ok_or_else(|| StoreError::Malformed("payload: its item is missing".into()))?;
    let mut item = item.clone();
    item.remove(PAYLOAD_SIZE_ATTRIBUTE);
    item.insert(PAYLOAD_ATTRIBUTE.to_owned(), payload.clone());
    Ok(item)
}

/// Reads a job record from a DynamoDB item, its payload inline (a job item
/// whose payload is stored apart must first be joined to its payload item,
/// as [`DynamoJobStore`](crate::DynamoJobStore) does).
pub fn record_from_item(item: &HashMap<String, AttributeValue>) -> Result<JobRecord, StoreError> {
    let fields = Fields(item);
    let malformed = |name: &str, why: &str| StoreError::Malformed(malformed(name, why));
    let string = |name: &str| fields.string(name).map_err(StoreError::Malformed);
    let required = |name: &str| fields.required(name).map_err(StoreError::Malformed);
    let number = |name: &str| fields.number(name).map_err(StoreError::Malformed);
    let count = |name: &str| fields.count::<u32>(name).map_err(StoreError::Malformed);
    let flag = |name: &str| item.get(name).and_then(|v| v.as_bool().ok()).copied();
    let json = |name: &str| -> Result<Option<Value>, StoreError> {
        string(name)?
            .map(|text| serde_json::from_str(text).map_err(|e| malformed(name, &e.to_string())))
            .transpose()
    };
    Ok(JobRecord {
        id: required(KEY_ATTRIBUTE)?
            .parse()
            .map_err(|_| malformed(KEY_ATTRIBUTE, "not a job id"))?,
        owner: required("owner")?.clone(),
        job_type: required("jobType")?.clone(),
        payload: json(PAYLOAD_ATTRIBUTE)?.ok_or_else(|| malformed(PAYLOAD_ATTRIBUTE, "missing"))?,
        fingerprint: required("fingerprint")?.clone(),
        state: required("state")?
            .parse()
            .map_err(|e: String| malformed("state", &e))?,
        created_at: number("createdAt")?.ok_or_else(|| malformed("createdAt", "missing"))?,
        started_at: number("startedAt")?,
        run_started_at: number("runStartedAt")?,
        finished_at: number("finishedAt")?,
        attempts: count("attempts")?,
        lease_expires_at: number("leaseExpiresAt")?,
        claim_token: string("claimToken")?.cloned(),
        result: json("result")?,
        result_key: string("resultKey")?.cloned(),
        error: string("error")?.cloned(),
        dead_lettered: flag("deadLettered").unwrap_or(false),
        enqueue_failed: flag("enqueueFailed").unwrap_or(false),
        resent_at: number("resentAt")?,
        discarded: flag("discarded").unwrap_or(false),
        replays: count("replays")?,
        progress: json("progress")?
            .map(|value| progress_from(&value).ok_or_else(|| malformed("progress", "not progress")))
            .transpose()?,
        checkpoint: json(CHECKPOINT_ATTRIBUTE)?,
        checkpoint_at: number(CHECKPOINT_AT_ATTRIBUTE)?,
        cancel_requested: flag("cancelRequested").unwrap_or(false),
        continuations: count("continuations")?,
        callback_url: string("callbackUrl")?.cloned(),
        webhook: json("webhook")?
            .map(|value| webhook_from(&value).ok_or_else(|| malformed("webhook", "not a delivery")))
            .transpose()?,
        expires_at: number(TTL_ATTRIBUTE)?.unwrap_or(0),
        run_at: number(RUN_AT_ATTRIBUTE)?,
        schedule_id: string("scheduleId")?.cloned(),
        inputs: json(INPUTS_ATTRIBUTE)?
            .map(|value| {
                serde_json::from_value(value)
                    .map_err(|e| malformed(INPUTS_ATTRIBUTE, &e.to_string()))
            })
            .transpose()?
            .unwrap_or_default(),
        // One that does not read (it never should) only costs the job its
        // trace: its spans start one of their own.
        traceparent: string(TRACE_ATTRIBUTE)?.and_then(|text| text.parse().ok()),
    })
}

/// A job record from an item read with [`SUMMARY_ATTRIBUTES`] only: its
/// payload is `null` and it has no result or checkpoint.
pub(crate) fn summary_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<JobRecord, StoreError> {
    let mut item = item.clone();
    item.insert(PAYLOAD_ATTRIBUTE.to_owned(), s("null"));
    record_from_item(&item)
}

/// An item's size as DynamoDB counts it against [`MAX_ITEM_BYTES`](jobline_core::limits::MAX_ITEM_BYTES): each
/// attribute's name plus its value (strings in UTF-8 bytes, numbers about
/// one byte per two digits plus one, booleans one byte).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value_size(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(text) => text.len(),
            AttributeValue::N(number) => number.len().div_ceil(2) + 1,
            AttributeValue::B(blob) => blob.as_ref().len(),
            AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            AttributeValue::M(map) => 3 + item_size(map) + map.len(),
            _ => 1,
        }
    }
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::Clock;
    use jobline_core::job::JobRequest;
    use jobline_core::limits::{
        MAX_ITEM_BYTES, PAYLOAD_BUDGET_BYTES, PROGRESS_BUDGET_BYTES, RESERVED_BYTES,
        RESULT_BUDGET_BYTES,
    };
    use serde_json::json;

    /// A queued job of `job_type` being built. (The test kit's builder is
    /// out of reach here: the test kit depends on this crate.)
    struct Built(JobRecord);

    fn job(job_type: &str) -> Built {
        Built(JobRecord::new_queued(
            JobId::random(),
            "alice",
            &JobRequest {
                job_type: job_type.to_owned(),
                payload: json!({}),
                callback_url: None,
            },
            Clock::system().now_ms(),
            30,
        ))
    }

    impl Built {
        fn id(mut self, id: JobId) -> Self {
            self.0.id = id;
            self
        }
        fn payload(mut self, payload: Value) -> Self {
            self.0.payload = payload;
            self
        }
        fn result(mut self, result: Value) -> Self {
            self.0.result = Some(result);
            self
        }
        fn error(mut self, error: &str) -> Self {
            self.0.error = Some(error.to_owned());
            self
        }
        fn build(self) -> JobRecord {
            let mut job = self.0;
            job.fingerprint = JobRequest {
                job_type: job.job_type.clone(),
                payload: job.payload.clone(),
                callback_url: None,
            }
            .fingerprint();
            job
        }
    }

    #[test]
    fn records_round_trip_through_items() {
        let mut job = job("primes").payload(json!({"upTo": 100})).build();
        assert_eq!(record_from_item(&item_from_record(&job)).unwrap(), job);
        job.state = JobState::Succeeded;
        job.started_at = Some(50);
        job.finished_at = Some(60);
        job.attempts = 2;
        job.result = Some(json!({"count": 25}));
        job.error = Some("boom".into());
        job.replays = 1;
        job.discarded = true;
        job.claim_token = Some("a-delivery".into());
        assert_eq!(record_from_item(&item_from_record(&job)).unwrap(), job);
        job.result = None;
        job.result_key = Some("results/x/1.json".into());
        assert_eq!(record_from_item(&item_from_record(&job)).unwrap(), job);
        job.state = JobState::Cancelled;
        job.progress = Some(Progress::new(0.25, "a \"quoted\" step", 70));
        job.checkpoint = Some(json!({"next": 1000}));
        job.checkpoint_at = Some(71);
        job.cancel_requested = true;
        job.continuations = 3;
        job.callback_url = Some("https://hooks.example.com/jobs".into());
        job.webhook = Some(WebhookDelivery {
            for_finished_at: 60,
            state: jobline_core::job::DeliveryState::Failed,
            attempts: 5,
            last_status: Some(503),
            at_ms: 90,
        });
        assert_eq!(record_from_item(&item_from_record(&job)).unwrap(), job);
        job.traceparent = Some(jobline_core::trace_context::TraceContext::new_root());
        let item = item_from_record(&job);
        assert_eq!(
            item[TRACE_ATTRIBUTE],
            s(job.traceparent.unwrap().to_string())
        );
        assert_eq!(record_from_item(&item).unwrap(), job);
    }

    #[test]
    fn the_trace_context_fits_its_budget() {
        let mut job = job("primes").build();
        job.traceparent = Some(jobline_core::trace_context::TraceContext::new_root());
        let item = item_from_record(&job);
        let size = item_size(&HashMap::from([(
            TRACE_ATTRIBUTE.to_owned(),
            item[TRACE_ATTRIBUTE].clone(),
        )]));
        assert_eq!(size, jobline_core::limits::TRACE_CONTEXT_BUDGET_BYTES);
    }

    #[test]
    fn the_largest_progress_fits_its_budget() {
        let worst = Progress::new(1.0 / 3.0, &"\"\u{1}".repeat(1000), i64::MAX);
        let size = item_size(&HashMap::from([(
            "progress".to_owned(),
            s(progress_text(&worst)),
        )]));
        assert!(size <= PROGRESS_BUDGET_BYTES, "{size}");
    }

    #[test]
    fn discarded_is_stored_only_when_set() {
        let job = job("primes").build();
        assert!(!item_from_record(&job).contains_key("discarded"));
        let mut item = item_from_record(&job);
        item.insert("discarded".into(), AttributeValue::Bool(true));
        assert!(record_from_item(&item).unwrap().discarded);
    }

    #[test]
    fn malformed_items_name_the_attribute() {
        let job = job("primes").build();
        let mut item = item_from_record(&job);
        item.insert("state".into(), s("paused"));
        let err = record_from_item(&item).unwrap_err();
        assert!(err.to_string().contains("state"), "{err}");
        item.remove("owner");
        let err = record_from_item(&item).unwrap_err();
        assert!(err.to_string().contains("owner"), "{err}");
    }

    #[test]
    fn errors_are_cut_on_a_char_boundary_with_an_ellipsis() {
        assert_eq!(bound_error("short"), "short");
        let exact = "x".repeat(ERROR_BUDGET_BYTES);
        assert_eq!(bound_error(&exact), exact.as_str());

        // Two-byte characters: the cut must not split one.
        let long = "é".repeat(ERROR_BUDGET_BYTES);
        let bounded = bound_error(&long);
        assert!(bounded.len() <= ERROR_BUDGET_BYTES, "{}", bounded.len());
        assert!(bounded.ends_with(ELLIPSIS));
        assert!(long.starts_with(bounded.trim_end_matches(ELLIPSIS)));
        assert_eq!(
            bounded.len(),
            ERROR_BUDGET_BYTES - 1,
            "one byte short of a whole é"
        );

        let mut job = job("primes").error(&long).build();
        let stored = record_from_item(&item_from_record(&job)).unwrap();
        job.error = Some(bounded.into_owned());
        assert_eq!(stored, job);
    }

    #[test]
    fn the_budgets_fit_an_item_with_room_to_spare() {
        let full = job("primes")
            .payload(json!("p".repeat(PAYLOAD_BUDGET_BYTES - 2)))
            .result(json!("r".repeat(RESULT_BUDGET_BYTES - 2)))
            .error(&"e".repeat(2 * ERROR_BUDGET_BYTES))
            .build();
        let size = item_size(&item_from_record(&full));
        assert!(size <= MAX_ITEM_BYTES - RESERVED_BYTES, "{size}");
    }

    #[test]
    fn large_payloads_are_stored_apart_and_joined_back() {
        let small = job("primes").payload(json!({"upTo": 10})).build();
        let stored = stored_items(&small);
        assert_eq!(stored.job, item_from_record(&small));
        assert_eq!(stored.payload, None);
        assert_eq!(payload_item_key(&stored.job).unwrap(), None);

        let pad = "p".repeat(INLINE_PAYLOAD_BYTES);
        let large = job("primes").payload(json!({ "pad": pad })).build();
        let stored = stored_items(&large);
        assert!(!stored.job.contains_key(PAYLOAD_ATTRIBUTE));
        assert!(item_size(&stored.job) < 1024, "{}", item_size(&stored.job));
        let payload = stored.payload.expect("a payload item");
        assert!(!payload.contains_key(SHARD_ATTRIBUTE) && !payload.contains_key(DUE_ATTRIBUTE));
        assert!(!payload.contains_key(STATE_SHARD_ATTRIBUTE) && !payload.contains_key("owner"));
        assert!(
            !stored.job.contains_key(STATE_SHARD_ATTRIBUTE),
            "a queued job is in no state index partition"
        );
        assert_eq!(payload[TTL_ATTRIBUTE], n(large.expires_at));
        let key = payload_item_key(&stored.job).unwrap().expect("a key");
        assert_eq!(key[KEY_ATTRIBUTE], payload[KEY_ATTRIBUTE]);
        let whole = joined(&stored.job, Some(&payload)).unwrap();
        assert_eq!(record_from_item(&whole).unwrap(), large);
        assert!(joined(&stored.job, None).is_err());
        // A reused idempotency key with another payload gets another item.
        let other = job("primes")
            .id(large.id)
            .payload(json!({ "pad": pad, "x": 1 }))
            .build();
        assert_ne!(
            stored_items(&other).payload.unwrap()[KEY_ATTRIBUTE],
            payload[KEY_ATTRIBUTE]
        );
    }

    #[test]
    fn item_sizes_count_names_and_values() {
        let item = HashMap::from([
            ("ab".to_owned(), s("héllo")),
            ("n".to_owned(), n(12345)),
            ("f".to_owned(), AttributeValue::Bool(true)),
        ]);
        assert_eq!(item_size(&item), (2 + 6) + (1 + 4) + (1 + 1));
    }

    #[test]
    fn only_failed_and_cancelled_jobs_carry_a_state_index_partition() {
        for state in JobState::ALL {
            let mut record = job("primes").build();
            record.state = state;
            let stored = stored_items(&record);
            let partition = stored.job.get(STATE_SHARD_ATTRIBUTE);
            match state {
                JobState::Failed | JobState::Cancelled => {
                    let id = record_from_item(&stored.job).unwrap().id;
                    assert_eq!(partition, Some(&s(state_shard(id, state))), "{state}");
                }
                _ => assert_eq!(partition, None, "{state}"),
            }
        }
    }

    #[test]
    fn a_large_checkpoint_is_stored_apart_and_a_small_one_inline() {
        let mut small = job("primes").build();
        small.checkpoint = Some(json!({"next": 7}));
        let stored = stored_items(&small);
        assert_eq!(stored.checkpoint, None);
        assert!(stored.job.contains_key(CHECKPOINT_ATTRIBUTE));

        let mut large = job("primes").build();
        large.attempts = 3;
        large.checkpoint = Some(json!({"seen": "x".repeat(INLINE_CHECKPOINT_BYTES)}));
        let stored = stored_items(&large);
        assert!(!stored.job.contains_key(CHECKPOINT_ATTRIBUTE));
        let apart = stored.checkpoint.expect("a checkpoint item");
        assert_eq!(apart, {
            let text = s(large.checkpoint.as_ref().unwrap().to_string());
            checkpoint_item(large.id, text, 3, large.expires_at)
        });
        assert_eq!(apart[KEY_ATTRIBUTE], s(format!("{}#checkpoint", large.id)));
    }
}

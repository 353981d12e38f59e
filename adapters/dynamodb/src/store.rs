//! [`DynamoJobStore`]: the [`JobStore`] adapter on a DynamoDB table keyed by
//! `jobId`.
//!
//! Every state change is one conditional `PutItem` or `UpdateItem`. Writes
//! ask for `ReturnValuesOnConditionCheckFailure=ALL_OLD`: when DynamoDB
//! refuses one, it returns the current item in the same response, so a
//! duplicate delivery costs one failed write and no read (one, of the payload
//! item, when the payload is stored apart: see below). A write DynamoDB
//! rejects as invalid (`ValidationException`, e.g. an item over 400 KB)
//! becomes [`StoreError::Invalid`]: retrying it cannot help.
//!
//! The claim and finish expressions are public constants so that the
//! benchmark's raw-SDK baseline can send exactly what the store sends.
//!
//! A payload over [`INLINE_PAYLOAD_BYTES`](crate::item::INLINE_PAYLOAD_BYTES)
//! is stored in an item of its own ([`stored_items`]): `create` writes it first (an unconditional
//! `PutItem`; if the job's write then fails, it is an orphan the TTL
//! removes), and the job item carries only its size, so each state change
//! rewrites about 1 KB whatever the payload. Every record the store returns
//! is whole: when a job item it read (the claim's `ALL_NEW`, `get`, a
//! refusal's `ALL_OLD`, the sweep's `ALL_NEW`) has its payload apart, it
//! reads the payload item too (`GetItem`, strongly consistent). `replay`
//! extends the payload item's TTL with the job's, before it replays the job.
//!
//! Every write to a non-final state sets the due index's attributes
//! (`pending`, `dueAt`, see [`jobline_core::deadline`]); every write to a final
//! state removes them, so the sweeper's `Query` reads only unfinished jobs.
//!
//! Every write that sets `state` sets the state index's partition
//! (`stateShard`, [`state_shard`]) in the same expression, so the index
//! ([`STATE_INDEX`]) can never disagree with the job's state.

use crate::item::record_from_item;
use crate::item::{
    CREATED_ATTRIBUTE, DUE_ATTRIBUTE, DUE_INDEX, FINISHED_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE,
    KEY_ATTRIBUTE, OWNER_ATTRIBUTE, OWNER_INDEX, PAYLOAD_SIZE_ATTRIBUTE, SHARD_ATTRIBUTE,
    STATE_INDEX, STATE_SHARD_ATTRIBUTE, SUMMARY_ATTRIBUTES, StoredItems, TTL_ATTRIBUTE,
    WEBHOOK_INDEX, bound_error, due_attributes, hook_shard, joined, key, n, payload_item_key,
    progress_text, s, state_partition, state_shard, stored_items, summary_from_item, webhook_text,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure, Select,
};
use futures_util::future::try_join_all;
use jobline_aws::sdk_error;
use jobline_core::config::DEFAULT_RETENTION_DAYS;
use jobline_core::deadline::Deadlines;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, WebhookDelivery, expires_at};
use jobline_core::store::{
    CANCEL_TRIES, CancelOutcome, Completion, DISCARDED_ERROR, DeleteOutcome, DiscardOutcome,
    DueKey, Heartbeat, JobPage, JobStore, ListKey, MAX_LIST_LIMIT, OverduePage, Renewed,
    ReplayOutcome, SHARDS, SWEPT_ERROR, StateCount, SweepOutcome, cancel_settled, enqueue_failed,
    merge_shards, outcome_of, own_claim, own_write,
};
use serde_json::Value;
use std::collections::HashMap;

/// The condition of [`JobStore::mark_enqueue_failed`] on the item it
/// replaces. Values: `:queued`, `:zero`, `:created` (the creator's
/// `createdAt`).
const ENQUEUE_FAILED_CONDITION: &str = "#state = :queued AND attempts = :zero \
     AND createdAt = :created AND attribute_not_exists(resentAt)";

/// The condition of [`JobStore::mark_resending`], the rule of
/// [`may_resend`](jobline_core::store::may_resend). Values: `:queued`,
/// `:zero`, `:false`.
const RESEND_CONDITION: &str = "#state = :queued AND attempts = :zero AND \
     (attribute_not_exists(enqueueFailed) OR enqueueFailed = :false)";

/// The item DynamoDB returned with a conditional-check failure of an
/// operation whose error type is `$error_type`.
macro_rules! conditional_failure {
    ($error_type:ident) => {
        |e: &$error_type| match e {
            $error_type::ConditionalCheckFailedException(c) => Some(c.item()),
            _ => None,
        }
    };
}

// Expressions name the attribute `state` `#state` (a reserved word), and
// `result` and `error` `#result` and `#error`.

/// The claim's update. Values: `:running` (`"running"`), `:one` (1),
/// `:lease` (the lease's end, ms), `:token` (the delivery's claim token),
/// `:now` (ms), `:shard` (the job's index partition), `:due` (its new
/// `dueAt`, ms), `:stateShard` (its state index partition,
/// [`state_shard`] of `running`).
pub const CLAIM_UPDATE: &str = "SET #state = :running, stateShard = :stateShard, \
     attempts = attempts + :one, \
     leaseExpiresAt = :lease, claimToken = :token, startedAt = if_not_exists(startedAt, :now), \
     runStartedAt = if_not_exists(runStartedAt, :now), \
     pending = :shard, dueAt = :due";

/// The claim's condition: the job exists and is `queued`, or `running` with
/// an expired lease or none. Values: `:queued`, `:running`, `:now` (ms).
pub const CLAIM_CONDITION: &str = "attribute_exists(jobId) AND (#state = :queued OR \
     (#state = :running AND (attribute_not_exists(leaseExpiresAt) OR leaseExpiresAt < :now)))";

/// The fence of `finish` and `return_to_queue`: the job is still `running`
/// under the same attempt. Values: `:running`, `:attempt`.
pub const FINISH_CONDITION: &str = "#state = :running AND attempts = :attempt";

/// The update of a successful finish. Values: `:done` (`"succeeded"`),
/// `:result` (JSON text), `:now` (ms), `:stateShard` ([`state_shard`] of
/// `succeeded`).
pub const FINISH_SUCCEEDED_UPDATE: &str = "SET #state = :done, stateShard = :stateShard, \
     #result = :result, \
     finishedAt = :now REMOVE leaseExpiresAt, #error, pending, dueAt";

/// The update of a failed finish. Values: `:done` (`"failed"`), `:error`,
/// `:now` (ms), `:dead` (whether the message was dead-lettered),
/// `:stateShard` ([`state_shard`] of `failed`).
pub const FINISH_FAILED_UPDATE: &str = "SET #state = :done, stateShard = :stateShard, \
     #error = :error, finishedAt = :now, \
     deadLettered = :dead REMOVE leaseExpiresAt, pending, dueAt";

/// The update of a successful finish whose result is stored apart. Values:
/// `:done` (`"succeeded"`), `:key` (the result's object key), `:now` (ms),
/// `:stateShard` ([`state_shard`] of `succeeded`).
pub const FINISH_LINKED_UPDATE: &str = "SET #state = :done, stateShard = :stateShard, \
     resultKey = :key, \
     finishedAt = :now REMOVE leaseExpiresAt, #error, #result, pending, dueAt";

/// The update of a cancelled finish. Values: `:done` (`"cancelled"`),
/// `:now` (ms), `:stateShard` ([`state_shard`] of `cancelled`).
pub const FINISH_CANCELLED_UPDATE: &str = "SET #state = :done, stateShard = :stateShard, \
     finishedAt = :now REMOVE leaseExpiresAt, pending, dueAt";

/// The heartbeat's fence: the job is still `running` under the same attempt
/// and delivery. Values: `:running`, `:attempt`, `:token`.
pub const HEARTBEAT_CONDITION: &str =
    "#state = :running AND attempts = :attempt AND claimToken = :token";

/// The sweeper's condition: the job is unfinished, overdue, and holds no
/// live lease. Values: `:queued`, `:running`, `:now` (ms).
pub const SWEEP_CONDITION: &str = "(#state = :queued OR #state = :running) AND dueAt < :now \
     AND (attribute_not_exists(leaseExpiresAt) OR leaseExpiresAt < :now)";

/// The sweeper's update. Values: `:failed`, `:true`, `:swept` (the error),
/// `:now` (ms), `:stateShard` ([`state_shard`] of `failed`).
pub const SWEEP_UPDATE: &str = "SET #state = :failed, stateShard = :stateShard, \
     deadLettered = :true, #error = :swept, \
     finishedAt = :now REMOVE leaseExpiresAt, pending, dueAt";

/// [`JobStore`] on a DynamoDB table keyed by `jobId`.
#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
    retention_days: u32,
    deadlines: Deadlines,
}

impl DynamoJobStore {
    /// The store on `table`, keeping replayed jobs for
    /// [`DEFAULT_RETENTION_DAYS`], with the template's [`Deadlines`].
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days: DEFAULT_RETENTION_DAYS,
            deadlines: Deadlines::default(),
        }
    }

    /// Bounds jobs' times by `deadlines` (`dueAt`).
    #[must_use]
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Keeps a replayed job for `days` from its replay (`JOB_RETENTION_DAYS`).
    #[must_use]
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// An `UpdateItem` of job `id`'s item, with `#state` named and the
    /// current item asked for on a refusal.
    fn update(&self, id: JobId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .expression_attribute_names("#state", "state")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    /// [`update`](Self::update) of a write that moves job `id` to `state`:
    /// `:stateShard` is its state index partition there.
    fn update_to(&self, id: JobId, state: JobState) -> UpdateItemFluentBuilder {
        self.update(id)
            .expression_attribute_values(":stateShard", s(state_shard(id, state)))
    }

    /// One page of partition `shard` of the sharded time index `(index,
    /// partition attribute, sort attribute)` (the due index, the webhook
    /// index): entries whose time is before `before_ms`, earliest first,
    /// after `after`.
    async fn before_page(
        &self,
        (index, partition, sort): (&str, &str, &str),
        shard: u8,
        before_ms: i64,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<OverduePage, StoreError> {
        let shard_value = s(shard.to_string());
        let page = self
            .index_page(
                IndexQuery {
                    index,
                    partition: (partition, shard_value.clone()),
                    sort,
                },
                self.client
                    .query()
                    .key_condition_expression("#shard = :shard AND #at < :before")
                    .expression_attribute_names("#shard", partition)
                    .expression_attribute_names("#at", sort)
                    .expression_attribute_values(":shard", shard_value)
                    .expression_attribute_values(":before", n(before_ms)),
                after.map(|after| (after.id, after.due_at_ms)),
                limit.max(1),
            )
            .await?;
        let key = |(id, due_at_ms)| DueKey { due_at_ms, id };
        Ok(OverduePage {
            jobs: page.entries.into_iter().map(key).collect(),
            scanned: page.scanned,
            next: page.next.map(key),
        })
    }

    /// Writes `item` if `condition` holds.
    async fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        state_name: bool,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        if state_name {
            request = request.expression_attribute_names("#state", "state");
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self
                .settle(write_failure(
                    "PutItem",
                    e,
                    conditional_failure!(PutItemError),
                ))
                .await),
        }
    }

    /// Sends an `UpdateItem`, mapping its errors.
    async fn send_update(
        &self,
        request: UpdateItemFluentBuilder,
    ) -> Result<UpdateItemOutput, StoreError> {
        match request.send().await {
            Ok(output) => Ok(output),
            Err(e) => Err(self
                .settle(write_failure(
                    "UpdateItem",
                    e,
                    conditional_failure!(UpdateItemError),
                ))
                .await),
        }
    }

    /// A refused write's `Conflict`, with the current job read whole.
    async fn settle(&self, failure: WriteFailure) -> StoreError {
        match failure {
            WriteFailure::Refused(None) => StoreError::Conflict { current: None },
            WriteFailure::Refused(Some(item)) => match self.record(&item).await {
                Ok(job) => StoreError::Conflict {
                    current: Some(Box::new(job)),
                },
                Err(malformed) => malformed,
            },
            WriteFailure::Failed(err) => err,
        }
    }

    /// The record of job item `item`, its payload read from the payload item
    /// when it is stored apart.
    async fn record(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<JobRecord, StoreError> {
        match payload_item_key(item)? {
            None => record_from_item(item),
            Some(payload_key) => {
                let payload = self.read_item(payload_key, None).await?;
                record_from_item(&joined(item, payload.as_ref())?)
            }
        }
    }

    /// The item at `key` (its attributes `projection` only, if given),
    /// strongly consistent.
    async fn read_item(
        &self,
        key: HashMap<String, AttributeValue>,
        projection: Option<&[&str]>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let mut request = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true);
        if let Some(names) = projection {
            let placeholders: Vec<String> = (0..names.len()).map(|i| format!("#p{i}")).collect();
            request = request.projection_expression(placeholders.join(", "));
            for (placeholder, name) in placeholders.iter().zip(names) {
                request = request.expression_attribute_names(placeholder, *name);
            }
        }
        let output = request.send().await.map_err(read_failure("GetItem"))?;
        Ok(output.item().cloned())
    }

    /// Keeps the payload item of job `id`, if its payload is stored apart,
    /// until `expires` (seconds): the TTL the job gets when it is replayed.
    async fn extend_payload(&self, id: JobId, expires: i64) -> Result<(), StoreError> {
        let refs = self
            .read_item(
                key(id),
                Some(&[KEY_ATTRIBUTE, "fingerprint", PAYLOAD_SIZE_ATTRIBUTE]),
            )
            .await?;
        let Some(payload_key) = refs.as_ref().map(payload_item_key).transpose()?.flatten() else {
            return Ok(());
        };
        let extended = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(payload_key))
            .update_expression("SET #ttl = :expires")
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#key", KEY_ATTRIBUTE)
            .expression_attribute_values(":expires", n(expires));
        match self.send_update(extended).await {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => {
                Err(StoreError::Malformed("payload: its item is missing".into()))
            }
            Err(other) => Err(other),
        }
    }
}

/// Which keys-only index a query reads: its name, its partition (attribute
/// and value) and its numeric sort key's attribute.
struct IndexQuery<'a> {
    index: &'a str,
    partition: (&'a str, AttributeValue),
    sort: &'a str,
}

/// One page of a keys-only index: each entry's job id and sort value, the
/// entries read (`ScannedCount`), and where the next page starts.
struct IndexPage {
    entries: Vec<(JobId, i64)>,
    scanned: usize,
    next: Option<(JobId, i64)>,
}

impl DynamoJobStore {
    /// Sends `request` (its key condition and order) to `query`'s index,
    /// reading at most `limit` entries after `after` (a job id and its sort
    /// value), and reads the page's entries.
    async fn index_page(
        &self,
        query: IndexQuery<'_>,
        request: QueryFluentBuilder,
        after: Option<(JobId, i64)>,
        limit: usize,
    ) -> Result<IndexPage, StoreError> {
        let (partition, value) = query.partition;
        let start = after.map(|(id, sort)| {
            HashMap::from([
                (KEY_ATTRIBUTE.to_owned(), s(id.to_string())),
                (partition.to_owned(), value),
                (query.sort.to_owned(), n(sort)),
            ])
        });
        let output = request
            .table_name(&self.table)
            .index_name(query.index)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(read_failure("Query"))?;
        let entry = |item| index_entry(item, query.index, query.sort);
        Ok(IndexPage {
            entries: output.items().iter().map(entry).collect::<Result<_, _>>()?,
            scanned: usize::try_from(output.scanned_count()).unwrap_or(0),
            next: output.last_evaluated_key().map(entry).transpose()?,
        })
    }

    /// At most `limit` entries of partition `shard` of `state` in
    /// [`STATE_INDEX`], newest first (or oldest first), after `after`.
    async fn state_shard_page(
        &self,
        state: JobState,
        shard: u8,
        after: Option<ListKey>,
        limit: usize,
        oldest_first: bool,
    ) -> Result<IndexPage, StoreError> {
        let partition = s(state_partition(state, shard));
        self.index_page(
            IndexQuery {
                index: STATE_INDEX,
                partition: (STATE_SHARD_ATTRIBUTE, partition.clone()),
                sort: CREATED_ATTRIBUTE,
            },
            self.client
                .query()
                .key_condition_expression("#partition = :partition")
                .expression_attribute_names("#partition", STATE_SHARD_ATTRIBUTE)
                .expression_attribute_values(":partition", partition)
                .scan_index_forward(oldest_first),
            after.map(|after| (after.id, after.created_at)),
            limit,
        )
        .await
    }

    /// The entries of partition `shard` of `state` in [`STATE_INDEX`],
    /// counted up to `bound` (`Select=COUNT`: DynamoDB reads the entries
    /// but returns none), page by page.
    async fn count_state_shard(
        &self,
        state: JobState,
        shard: u8,
        bound: usize,
    ) -> Result<usize, StoreError> {
        let partition = s(state_partition(state, shard));
        let (mut count, mut start) = (0, None);
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATE_INDEX)
                .key_condition_expression("#partition = :partition")
                .expression_attribute_names("#partition", STATE_SHARD_ATTRIBUTE)
                .expression_attribute_values(":partition", partition.clone())
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .limit(i32::try_from(bound - count).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(read_failure("Query"))?;
            count += usize::try_from(output.count()).unwrap_or(0);
            start = output.last_evaluated_key;
            if start.is_none() || count >= bound {
                return Ok(count);
            }
        }
    }

    /// The jobs at `keys`, in their order, without payloads, results and
    /// checkpoints (a job deleted since its key was read is left out): one
    /// `BatchGetItem` (strongly consistent), repeated for any keys DynamoDB
    /// leaves unprocessed.
    async fn read_summaries(&self, keys: &[ListKey]) -> Result<Vec<JobRecord>, StoreError> {
        let mut found = HashMap::new();
        let mut pending: Vec<HashMap<String, AttributeValue>> =
            keys.iter().map(|k| key(k.id)).collect();
        let placeholders: Vec<String> = (0..SUMMARY_ATTRIBUTES.len())
            .map(|i| format!("#a{i}"))
            .collect();
        while !pending.is_empty() {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .projection_expression(placeholders.join(", "));
            for (placeholder, name) in placeholders.iter().zip(SUMMARY_ATTRIBUTES) {
                request = request.expression_attribute_names(placeholder, *name);
            }
            let request = request
                .build()
                .map_err(|e| StoreError::Malformed(format!("BatchGetItem request: {e}")))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(read_failure("BatchGetItem"))?;
            for item in output
                .responses()
                .and_then(|tables| tables.get(&self.table))
                .into_iter()
                .flatten()
            {
                let job = summary_from_item(item)?;
                found.insert(job.id, job);
            }
            if let Some(left) = output
                .unprocessed_keys()
                .and_then(|tables| tables.get(&self.table))
            {
                pending = left.keys().to_vec();
            }
        }
        Ok(keys.iter().filter_map(|k| found.remove(&k.id)).collect())
    }
}

/// The job id and the numeric sort key `sort` of an entry of `index` (an
/// item of a query's page, or its `LastEvaluatedKey`).
fn index_entry(
    item: &HashMap<String, AttributeValue>,
    index: &str,
    sort: &str,
) -> Result<(JobId, i64), StoreError> {
    let malformed = |name: &str| StoreError::Malformed(format!("{index} entry: {name}"));
    Ok((
        item.get(KEY_ATTRIBUTE)
            .and_then(|v| v.as_s().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed(KEY_ATTRIBUTE))?,
        item.get(sort)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed(sort))?,
    ))
}

/// A write DynamoDB did not make, before a refusal's item is read.
enum WriteFailure {
    /// The condition failed; the current item, if there is one.
    Refused(Option<HashMap<String, AttributeValue>>),
    /// Any other error.
    Failed(StoreError),
}

/// Sorts an SDK error: a conditional-check failure is `Refused` with the
/// item DynamoDB sent back; anything else is [`request_error`].
fn write_failure<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    conflict_item: impl FnOnce(&E) -> Option<Option<&HashMap<String, AttributeValue>>>,
) -> WriteFailure
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match err.as_service_error().and_then(conflict_item) {
        Some(item) => WriteFailure::Refused(item.cloned()),
        None => WriteFailure::Failed(request_error(operation, err)),
    }
}

/// Turns an SDK error into a [`StoreError`]: a `ValidationException` into
/// `Invalid`, anything else into `Aws`.
/// The error of a read that failed: `operation`'s SDK error.
fn read_failure<E: std::error::Error + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |error| StoreError::Aws {
        operation,
        source: sdk_error(error),
    }
}

fn request_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    if err.code() == Some("ValidationException") {
        return StoreError::Invalid {
            operation,
            reason: err.message().unwrap_or("ValidationException").to_owned(),
        };
    }
    StoreError::Aws {
        operation,
        source: sdk_error(err),
    }
}

/// `error` cut to [`ERROR_BUDGET_BYTES`](crate::item::ERROR_BUDGET_BYTES),
/// as an attribute value.
fn error_value(error: &str) -> AttributeValue {
    s(bound_error(error))
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError> {
        let StoredItems {
            job: mut item,
            payload,
        } = stored_items(job);
        if let Some(payload) = payload {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(payload))
                .send()
                .await
                .map_err(|e| request_error("PutItem", e))?;
        }
        if !job.state.is_finished() {
            item.extend(due_attributes(
                job.id,
                self.deadlines.queued_at(job.created_at),
            ));
        }
        if job.callback_url.is_some() {
            item.insert(HOOK_SHARD_ATTRIBUTE.to_owned(), hook_shard(job.id));
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
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .expression_attribute_values(":now", n(now_ms)),
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        match self.read_item(key(id), None).await? {
            Some(item) => self.record(&item).await.map(Some),
            None => Ok(None),
        }
    }

    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
        receive_count: u32,
        token: &str,
    ) -> Result<JobRecord, StoreError> {
        let [(_, shard), (_, due)] =
            due_attributes(id, self.deadlines.claimed(now_ms, receive_count));
        let claimed = self
            .send_update(
                self.update_to(id, JobState::Running)
                    .update_expression(CLAIM_UPDATE)
                    .condition_expression(CLAIM_CONDITION)
                    .expression_attribute_values(":running", s(JobState::Running.as_str()))
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":lease", n(lease_until_ms))
                    .expression_attribute_values(":token", s(token))
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":shard", shard)
                    .expression_attribute_values(":due", due)
                    .return_values(ReturnValue::AllNew),
            )
            .await;
        let claimed = match claimed {
            Ok(output) => {
                let item = output
                    .attributes()
                    .ok_or_else(|| StoreError::Malformed("claim returned no attributes".into()))?;
                self.record(item).await
            }
            Err(err) => Err(err),
        };
        own_claim(claimed, token)
    }

    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let request = self
            .update_to(id, completion.state())
            .condition_expression(FINISH_CONDITION)
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":now", n(now_ms));
        let request = match completion {
            Completion::Succeeded(result) => request
                .update_expression(FINISH_SUCCEEDED_UPDATE)
                .expression_attribute_names("#error", "error")
                .expression_attribute_names("#result", "result")
                .expression_attribute_values(":done", s(JobState::Succeeded.as_str()))
                .expression_attribute_values(":result", s(result.to_string())),
            Completion::Failed {
                error,
                dead_lettered,
            } => request
                .update_expression(FINISH_FAILED_UPDATE)
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", s(JobState::Failed.as_str()))
                .expression_attribute_values(":error", error_value(error))
                .expression_attribute_values(":dead", AttributeValue::Bool(*dead_lettered)),
            Completion::SucceededLinked(key) => request
                .update_expression(FINISH_LINKED_UPDATE)
                .expression_attribute_names("#error", "error")
                .expression_attribute_names("#result", "result")
                .expression_attribute_values(":done", s(JobState::Succeeded.as_str()))
                .expression_attribute_values(":key", s(key.as_str())),
            Completion::Cancelled => request
                .update_expression(FINISH_CANCELLED_UPDATE)
                .expression_attribute_values(":done", s(JobState::Cancelled.as_str())),
        };
        own_write(
            self.send_update(request).await,
            attempt,
            token,
            completion.state(),
        )
    }

    async fn heartbeat(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        beat: &Heartbeat<'_>,
    ) -> Result<Renewed, StoreError> {
        let mut update = String::from("SET leaseExpiresAt = :lease");
        let mut request = self
            .update(id)
            .condition_expression(HEARTBEAT_CONDITION)
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":lease", n(beat.lease_until_ms))
            .return_values(ReturnValue::AllNew);
        if let Some(progress) = beat.progress {
            update.push_str(", progress = :progress");
            request = request.expression_attribute_values(":progress", s(progress_text(progress)));
        }
        if let Some(checkpoint) = beat.checkpoint {
            update.push_str(", checkpoint = :checkpoint, checkpointAt = :now");
            request = request
                .expression_attribute_values(":checkpoint", s(checkpoint.to_string()))
                .expression_attribute_values(":now", n(beat.now_ms));
        }
        let output = self.send_update(request.update_expression(update)).await?;
        Ok(Renewed {
            cancel_requested: output
                .attributes()
                .and_then(|item| item.get("cancelRequested"))
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        })
    }

    async fn suspend(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        checkpoint: Option<&Value>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let [(_, shard), (_, due)] = due_attributes(id, self.deadlines.queued_at(now_ms));
        let mut update = String::from(
            "SET #state = :queued, stateShard = :stateShard, \
             continuations = if_not_exists(continuations, :zero) + :one, \
             pending = :shard, dueAt = :due",
        );
        let mut request = self
            .update_to(id, JobState::Queued)
            .condition_expression(FINISH_CONDITION)
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":shard", shard)
            .expression_attribute_values(":due", due);
        if let Some(checkpoint) = checkpoint {
            update.push_str(", checkpoint = :checkpoint, checkpointAt = :now");
            request = request
                .expression_attribute_values(":checkpoint", s(checkpoint.to_string()))
                .expression_attribute_values(":now", n(now_ms));
        }
        update.push_str(" REMOVE leaseExpiresAt, #error");
        let suspended = self.send_update(request.update_expression(update)).await;
        own_write(suspended, attempt, token, JobState::Queued)
    }

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
                    .condition_expression("#state = :queued")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
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

    async fn return_to_queue(
        &self,
        id: JobId,
        attempt: u32,
        token: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let returned = self
            .send_update(
                self.update_to(id, JobState::Queued)
                    .update_expression(
                        "SET #state = :queued, stateShard = :stateShard, #error = :error \
                         REMOVE leaseExpiresAt",
                    )
                    .condition_expression(FINISH_CONDITION)
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                    .expression_attribute_values(":running", s(JobState::Running.as_str()))
                    .expression_attribute_values(":attempt", n(attempt))
                    .expression_attribute_values(":error", error_value(error)),
            )
            .await;
        own_write(returned, attempt, token, JobState::Queued)
    }

    async fn replay(&self, id: JobId, now: i64) -> Result<ReplayOutcome, StoreError> {
        let expires = expires_at(now, self.retention_days);
        // First the payload, so that a replayed job never outlives it.
        self.extend_payload(id, expires).await?;
        let [(_, shard), (_, due)] = due_attributes(id, self.deadlines.queued_at(now));
        let outcome = self
            .send_update(
                self.update_to(id, JobState::Queued)
                    .update_expression(format!(
                        "SET #state = :queued, {STATE_SHARD_ATTRIBUTE} = :stateShard, \
                     replays = if_not_exists(replays, :zero) + :one, \
                     deadLettered = :false, enqueueFailed = :false, {TTL_ATTRIBUTE} = :expires, \
                     {SHARD_ATTRIBUTE} = :shard, {DUE_ATTRIBUTE} = :due, \
                     {HOOK_SHARD_ATTRIBUTE} = :hook \
                     REMOVE finishedAt, leaseExpiresAt, discarded, runStartedAt, cancelRequested"
                    ))
                    .expression_attribute_values(":shard", shard)
                    .expression_attribute_values(":due", due)
                    .expression_attribute_values(":hook", hook_shard(id))
                    .condition_expression("#state = :failed")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                    .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":false", AttributeValue::Bool(false))
                    .expression_attribute_values(":expires", n(expires)),
            )
            .await;
        outcome_of(
            outcome,
            |_| ReplayOutcome::Replayed,
            ReplayOutcome::Unchanged,
            ReplayOutcome::Missing,
        )
    }

    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError> {
        let outcome = self
            .send_update(
                self.update_to(id, JobState::Failed)
                    .update_expression(
                        "SET #state = :failed, stateShard = :stateShard, discarded = :true, \
                     finishedAt = if_not_exists(finishedAt, :now), \
                     #error = if_not_exists(#error, :discarded) \
                     REMOVE leaseExpiresAt, pending, dueAt",
                    )
                    .condition_expression(
                        "attribute_exists(jobId) AND #state <> :succeeded AND #state <> :cancelled",
                    )
                    .expression_attribute_values(":cancelled", s(JobState::Cancelled.as_str()))
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
                    .expression_attribute_values(":succeeded", s(JobState::Succeeded.as_str()))
                    .expression_attribute_values(":true", AttributeValue::Bool(true))
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":discarded", s(DISCARDED_ERROR)),
            )
            .await;
        outcome_of(
            outcome,
            |_| DiscardOutcome::Discarded,
            DiscardOutcome::Unchanged,
            DiscardOutcome::Missing,
        )
    }

    async fn renew_due(&self, id: JobId, now_ms: i64) -> Result<(), StoreError> {
        let [(_, shard), (_, due)] = due_attributes(id, self.deadlines.queued_at(now_ms));
        self.send_update(
            self.update(id)
                .update_expression(format!(
                    "SET {SHARD_ATTRIBUTE} = :shard, {DUE_ATTRIBUTE} = :due"
                ))
                .condition_expression("#state = :queued OR #state = :running")
                .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                .expression_attribute_values(":running", s(JobState::Running.as_str()))
                .expression_attribute_values(":shard", shard)
                .expression_attribute_values(":due", due),
        )
        .await?;
        Ok(())
    }

    async fn record_delivery(
        &self,
        id: JobId,
        seen: Option<&WebhookDelivery>,
        delivery: &WebhookDelivery,
    ) -> Result<(), StoreError> {
        let finished: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|state| state.is_finished())
            .collect();
        let states = (0..finished.len())
            .map(|i| format!(":s{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let seen_condition = match seen {
            None => "attribute_not_exists(webhook)",
            Some(_) => "webhook = :seen",
        };
        let update = if delivery.state.is_final() {
            format!("SET webhook = :next REMOVE {HOOK_SHARD_ATTRIBUTE}")
        } else {
            "SET webhook = :next".to_owned()
        };
        let mut request = self
            .update(id)
            .update_expression(update)
            .condition_expression(format!(
                "#state IN ({states}) AND finishedAt = :for AND {seen_condition}"
            ))
            .expression_attribute_values(":next", s(webhook_text(delivery)))
            .expression_attribute_values(":for", n(delivery.for_finished_at));
        for (i, state) in finished.iter().enumerate() {
            request = request.expression_attribute_values(format!(":s{i}"), s(state.as_str()));
        }
        if let Some(seen) = seen {
            request = request.expression_attribute_values(":seen", s(webhook_text(seen)));
        }
        self.send_update(request).await?;
        Ok(())
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
                after.map(|after| (after.id, after.created_at)),
                limit.clamp(1, MAX_LIST_LIMIT),
            )
            .await?;
        let list_key = |(id, created_at)| ListKey { created_at, id };
        let keys: Vec<ListKey> = page.entries.into_iter().map(list_key).collect();
        Ok(JobPage {
            // In the index's order.
            jobs: self.read_summaries(&keys).await?,
            scanned: page.scanned,
            next: page.next.map(list_key),
        })
    }

    async fn list_by_state(
        &self,
        state: JobState,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        // The 16 queries at once: a page costs one round trip of queries.
        let pages = try_join_all(
            (0..SHARDS).map(|shard| self.state_shard_page(state, shard, after, limit, false)),
        )
        .await?;
        let (mut keys, mut scanned, mut cut) = (Vec::new(), 0, false);
        for page in pages {
            scanned += page.scanned;
            cut |= page.next.is_some();
            keys.extend(
                page.entries
                    .into_iter()
                    .map(|(id, created_at)| ListKey { created_at, id }),
            );
        }
        let (keys, next) = merge_shards(keys, cut, limit);
        Ok(JobPage {
            // Newest first; a job that changed state since the query is
            // listed as it is now.
            jobs: self.read_summaries(&keys).await?,
            scanned,
            next,
        })
    }

    async fn count_by_state(
        &self,
        state: JobState,
        per_shard: usize,
    ) -> Result<StateCount, StoreError> {
        // One more than the bound tells a full shard from a larger one.
        let counts = try_join_all(
            (0..SHARDS).map(|shard| self.count_state_shard(state, shard, per_shard + 1)),
        )
        .await?;
        Ok(StateCount {
            count: counts.iter().map(|&count| count.min(per_shard)).sum(),
            complete: counts.iter().all(|&count| count <= per_shard),
        })
    }

    async fn oldest_in_state(&self, state: JobState) -> Result<Option<ListKey>, StoreError> {
        let pages = try_join_all(
            (0..SHARDS).map(|shard| self.state_shard_page(state, shard, None, 1, true)),
        )
        .await?;
        Ok(pages
            .into_iter()
            .flat_map(|page| page.entries)
            .map(|(id, created_at)| ListKey { created_at, id })
            .min())
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
        // The payload stored apart goes with its job.
        if let Some(payload_key) = old.as_ref().map(payload_item_key).transpose()?.flatten() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(payload_key))
                .send()
                .await
                .map_err(|e| request_error("DeleteItem", e))?;
        }
        Ok(DeleteOutcome::Deleted)
    }

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

    async fn sweep(&self, id: JobId, now_ms: i64) -> Result<SweepOutcome, StoreError> {
        let outcome = self
            .send_update(
                self.update_to(id, JobState::Failed)
                    .update_expression(SWEEP_UPDATE)
                    .condition_expression(format!("attribute_exists(jobId) AND {SWEEP_CONDITION}"))
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
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
}

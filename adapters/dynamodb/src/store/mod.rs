//! [`DynamoJobStore`]: the store port's adapter on a DynamoDB table keyed by
//! `jobId`, one file per role of [`jobline_core::store`] (`api`, `worker`,
//! `operator`, `sweeper`, `notifier`), with the writes and reads they share
//! here and the keys-only index queries in `index`.
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
//! is stored in an item of its own
//! ([`stored_items`](crate::item::stored_items)): `create` writes it first
//! (an unconditional `PutItem`; if the job's write then fails, it is an
//! orphan the TTL removes), and the job item carries only its size, so each state change
//! rewrites about 1 KB whatever the payload. Every record the store returns
//! is whole: when a job item it read (the claim's `ALL_NEW`, `get`, a
//! refusal's `ALL_OLD`, the sweep's `ALL_NEW`) has its payload apart, it
//! reads the payload item too (`GetItem`, strongly consistent). `replay`
//! extends the payload item's TTL with the job's, before it replays the job.
//!
//! A job enters the due index (`pending`, `dueAt`, see
//! [`jobline_core::deadline`]) when it is queued, and leaves it in its
//! final write; only the last delivery's claim moves it. So the sweeper's
//! `Query` reads only unfinished jobs, and a job that succeeds writes the
//! index twice.
//!
//! The state index ([`STATE_INDEX`](crate::item::STATE_INDEX)) lists only
//! failed and cancelled jobs
//! ([`StateListing`]): the write that
//! makes a job so sets its partition (`stateShard`, [`state_shard`]) in the
//! same expression, and every write to another state removes it, so the
//! index can never disagree with the job's state (and an item written by an
//! earlier release, which carried `stateShard` in every state, leaves it at
//! its next write).
//!
//! The checkpoint is an item of its own
//! ([`checkpoint_item`](crate::item::checkpoint_item)), written by
//! `checkpoint.rs` after the job item's fenced write that records its time,
//! and read only by the claim.

use crate::item::{bound_error, joined, key, payload_item_key, record_from_item, s, state_shard};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use jobline_aws::sdk_error;
use jobline_core::config::DEFAULT_RETENTION_DAYS;
use jobline_core::deadline::Deadlines;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState};
use jobline_core::store::{ReadStore, StateListing};
use std::collections::HashMap;

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

mod api;
mod checkpoint;
mod index;
mod notifier;
mod operator;
mod sweeper;
mod worker;

pub use sweeper::{SWEEP_CONDITION, SWEEP_UPDATE};
pub use worker::{
    CLAIM_CONDITION, CLAIM_UPDATE, FINISH_CANCELLED_UPDATE, FINISH_CONDITION, FINISH_FAILED_UPDATE,
    FINISH_LINKED_UPDATE, FINISH_SUCCEEDED_UPDATE, HEARTBEAT_CONDITION,
};

// Expressions name the attribute `state` `#state` (a reserved word), and
// `result` and `error` `#result` and `#error`.

/// The store port, every role of it
/// ([`JobStore`](jobline_core::store::JobStore)), on a DynamoDB table keyed
/// by `jobId`.
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

    /// Its DynamoDB client, to share with the schedules' store.
    pub fn client(&self) -> &Client {
        &self.client
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
    /// when the state index lists `state`, `:stateShard` is its partition
    /// there (the expression sets `stateShard = :stateShard`; any other
    /// removes `stateShard`).
    fn update_to(&self, id: JobId, state: JobState) -> UpdateItemFluentBuilder {
        let update = self.update(id);
        if StateListing::of(state) == StateListing::StateIndex {
            update.expression_attribute_values(":stateShard", s(state_shard(id, state)))
        } else {
            update
        }
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
    /// when it is stored apart, without its checkpoint (which only the
    /// claim reads).
    async fn record(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<JobRecord, StoreError> {
        let mut job = self.whole_record(item).await?;
        job.checkpoint = None;
        Ok(job)
    }

    /// [`record`](Self::record) with the checkpoint the job item holds
    /// inline, if any.
    async fn whole_record(
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

/// The error of a read that failed: `operation`'s SDK error.
pub(crate) fn read_failure<E: std::error::Error + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |error| StoreError::Aws {
        operation,
        source: sdk_error(error),
    }
}

/// Turns an SDK error into a [`StoreError`]: a `ValidationException` into
/// `Invalid`, anything else into `Aws`.
pub(crate) fn request_error<E>(
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

/// `error` cut to [`ERROR_BUDGET_BYTES`](jobline_core::limits::ERROR_BUDGET_BYTES),
/// as an attribute value.
fn error_value(error: &str) -> AttributeValue {
    s(bound_error(error))
}

#[async_trait]
impl ReadStore for DynamoJobStore {
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        match self.read_item(key(id), None).await? {
            Some(item) => self.record(&item).await.map(Some),
            None => Ok(None),
        }
    }
}

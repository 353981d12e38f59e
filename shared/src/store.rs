//! `JobStore`: the job records, and their DynamoDB implementation.
//!
//! Every state change is one conditional `PutItem` or `UpdateItem`, so two
//! workers that get the same message cannot both run or both complete a job.
//! Writes ask for `ReturnValuesOnConditionCheckFailure=ALL_OLD`: when DynamoDB
//! refuses one, it returns the current item in the same response, so a
//! duplicate delivery costs one failed write and no read.

use crate::error::{StoreError, sdk_error};
use crate::job::{JobId, JobRecord, JobState};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;
use std::collections::HashMap;

/// The table's partition key.
pub const KEY_ATTRIBUTE: &str = "jobId";
/// The attribute DynamoDB's TTL reads (seconds since the epoch).
pub const TTL_ATTRIBUTE: &str = "expiresAt";

/// How an attempt ended, as written by [`JobStore::finish`].
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Succeeded(Value),
    Failed { error: String, dead_lettered: bool },
}

/// What [`JobStore::replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The job was `failed` and is `queued` again.
    Replayed,
    /// The job is in another state and was left alone.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// What [`JobStore::discard`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    /// The job is `failed` and `discarded` (also when it already was).
    Discarded,
    /// The job `succeeded` and was left alone.
    Unchanged(JobState),
    /// There is no such job.
    Missing,
}

/// The error a discarded job gets when it had none.
pub const DISCARDED_ERROR: &str = "discarded by an operator";

/// The job records. Each method is one DynamoDB request.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Writes a new `queued` job unless its id is taken by a job that was
    /// queued successfully. On a taken id: `Conflict` with the existing job.
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError>;

    /// Marks a job whose message could not be sent as failed, if no worker
    /// has claimed it; the same idempotency key may then submit it again.
    async fn mark_enqueue_failed(&self, job: &JobRecord, error: &str) -> Result<(), StoreError>;

    /// Reads a job, strongly consistent.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Claims a job for one attempt: `queued` (or `running` with an expired
    /// lease) becomes `running`, `attempts` grows by one, and the lease runs
    /// until `lease_until_ms`. Returns the claimed job.
    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<JobRecord, StoreError>;

    /// Completes attempt number `attempt`, fenced by it: a stale attempt whose
    /// lease was taken over gets `Conflict`.
    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Returns a job to `queued` after a retryable failure of `attempt`,
    /// keeping `error` for the client to see.
    async fn return_to_queue(&self, id: JobId, attempt: u32, error: &str)
    -> Result<(), StoreError>;

    /// Replays a `failed` job: back to `queued`, `replays` plus one.
    async fn replay(&self, id: JobId) -> Result<ReplayOutcome, StoreError>;

    /// An operator gives up on a job: any state but `succeeded` becomes
    /// `failed` with `discarded`, `finishedAt` set if missing, the lease
    /// removed, and [`DISCARDED_ERROR`] as error if there was none.
    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError>;
}

/// [`JobStore`] on a DynamoDB table keyed by `jobId`.
#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(id: JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([(KEY_ATTRIBUTE.to_owned(), s(id.to_string()))])
}

/// Turns an SDK error into a [`StoreError`], keeping the item DynamoDB sent
/// back with a conditional-check failure.
fn store_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    conflict_item: impl FnOnce(&E) -> Option<Option<&HashMap<String, AttributeValue>>>,
) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    if let Some(item) = err.as_service_error().and_then(conflict_item) {
        return match item.map(record_from_item).transpose() {
            Ok(current) => StoreError::Conflict {
                current: current.map(Box::new),
            },
            Err(malformed) => malformed,
        };
    }
    StoreError::Aws {
        operation,
        source: sdk_error(err),
    }
}

macro_rules! conditional_failure {
    ($error_type:ident) => {
        |e: &$error_type| match e {
            $error_type::ConditionalCheckFailedException(c) => Some(c.item()),
            _ => None,
        }
    };
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &JobRecord) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(job)))
            .condition_expression("attribute_not_exists(jobId) OR enqueueFailed = :true")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| store_error("PutItem", e, conditional_failure!(PutItemError)))?;
        Ok(())
    }

    async fn mark_enqueue_failed(&self, job: &JobRecord, error: &str) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let mut failed = job.clone();
        failed.state = JobState::Failed;
        failed.enqueue_failed = true;
        failed.error = Some(error.to_owned());
        failed.finished_at = Some(crate::job::now_ms());
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(&failed)))
            .condition_expression("#state = :queued AND attempts = :zero")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":zero", n(0))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| store_error("PutItem", e, conditional_failure!(PutItemError)))?;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Aws {
                operation: "GetItem",
                source: sdk_error(e),
            })?;
        output.item().map(record_from_item).transpose()
    }

    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<JobRecord, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression(
                "SET #state = :running, attempts = attempts + :one, \
                 leaseExpiresAt = :lease, startedAt = if_not_exists(startedAt, :now)",
            )
            .condition_expression(
                "attribute_exists(jobId) AND (#state = :queued OR \
                 (#state = :running AND leaseExpiresAt < :now))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":lease", n(lease_until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e, conditional_failure!(UpdateItemError)))?;
        let item = output
            .attributes()
            .ok_or_else(|| StoreError::Malformed("claim returned no attributes".into()))?;
        record_from_item(item)
    }

    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .condition_expression("#state = :running AND attempts = :attempt")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match completion {
            Completion::Succeeded(result) => request
                .update_expression(
                    "SET #state = :done, #result = :result, finishedAt = :now \
                     REMOVE leaseExpiresAt, #error",
                )
                .expression_attribute_names("#result", "result")
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", s(JobState::Succeeded.as_str()))
                .expression_attribute_values(":result", s(result.to_string())),
            Completion::Failed {
                error,
                dead_lettered,
            } => request
                .update_expression(
                    "SET #state = :done, #error = :error, finishedAt = :now, \
                     deadLettered = :dead REMOVE leaseExpiresAt",
                )
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":done", s(JobState::Failed.as_str()))
                .expression_attribute_values(":error", s(error.as_str()))
                .expression_attribute_values(":dead", AttributeValue::Bool(*dead_lettered)),
        };
        request
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e, conditional_failure!(UpdateItemError)))?;
        Ok(())
    }

    async fn return_to_queue(
        &self,
        id: JobId,
        attempt: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression("SET #state = :queued, #error = :error REMOVE leaseExpiresAt")
            .condition_expression("#state = :running AND attempts = :attempt")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":error", s(error))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e, conditional_failure!(UpdateItemError)))?;
        Ok(())
    }

    async fn replay(&self, id: JobId) -> Result<ReplayOutcome, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression(
                "SET #state = :queued, replays = if_not_exists(replays, :zero) + :one, \
                 deadLettered = :false REMOVE finishedAt, leaseExpiresAt",
            )
            .condition_expression("#state = :failed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e, conditional_failure!(UpdateItemError)));
        match outcome {
            Ok(_) => Ok(ReplayOutcome::Replayed),
            Err(StoreError::Conflict { current: None }) => Ok(ReplayOutcome::Missing),
            Err(StoreError::Conflict { current: Some(job) }) => {
                Ok(ReplayOutcome::Unchanged(job.state))
            }
            Err(other) => Err(other),
        }
    }

    async fn discard(&self, id: JobId, now_ms: i64) -> Result<DiscardOutcome, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression(
                "SET #state = :failed, discarded = :true, \
                 finishedAt = if_not_exists(finishedAt, :now), \
                 #error = if_not_exists(#error, :error) REMOVE leaseExpiresAt",
            )
            .condition_expression("attribute_exists(jobId) AND #state <> :succeeded")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
            .expression_attribute_values(":succeeded", s(JobState::Succeeded.as_str()))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":error", s(DISCARDED_ERROR))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e, conditional_failure!(UpdateItemError)));
        match outcome {
            Ok(_) => Ok(DiscardOutcome::Discarded),
            Err(StoreError::Conflict { current: None }) => Ok(DiscardOutcome::Missing),
            Err(StoreError::Conflict { current: Some(job) }) => {
                Ok(DiscardOutcome::Unchanged(job.state))
            }
            Err(other) => Err(other),
        }
    }
}

/// The DynamoDB item for a job record.
pub fn item_from_record(job: &JobRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (KEY_ATTRIBUTE.to_owned(), s(job.id.to_string())),
        ("owner".to_owned(), s(job.owner.as_str())),
        ("jobType".to_owned(), s(job.job_type.as_str())),
        ("payload".to_owned(), s(job.payload.to_string())),
        ("fingerprint".to_owned(), s(job.fingerprint.as_str())),
        ("state".to_owned(), s(job.state.as_str())),
        ("createdAt".to_owned(), n(job.created_at)),
        ("attempts".to_owned(), n(job.attempts)),
        (
            "deadLettered".to_owned(),
            AttributeValue::Bool(job.dead_lettered),
        ),
        (
            "enqueueFailed".to_owned(),
            AttributeValue::Bool(job.enqueue_failed),
        ),
        ("discarded".to_owned(), AttributeValue::Bool(job.discarded)),
        ("replays".to_owned(), n(job.replays)),
        (TTL_ATTRIBUTE.to_owned(), n(job.expires_at)),
    ]);
    let optional = [
        ("startedAt", job.started_at.map(n)),
        ("finishedAt", job.finished_at.map(n)),
        ("leaseExpiresAt", job.lease_expires_at.map(n)),
        ("result", job.result.as_ref().map(|r| s(r.to_string()))),
        ("error", job.error.as_deref().map(s)),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?))),
    );
    item
}

/// Reads a job record from a DynamoDB item.
pub fn record_from_item(item: &HashMap<String, AttributeValue>) -> Result<JobRecord, StoreError> {
    let malformed = |name: &str, why: &str| StoreError::Malformed(format!("{name}: {why}"));
    let string = |name: &str| -> Result<Option<&String>, StoreError> {
        item.get(name)
            .map(|v| v.as_s().map_err(|_| malformed(name, "not a string")))
            .transpose()
    };
    let required = |name: &str| string(name)?.ok_or_else(|| malformed(name, "missing"));
    let number = |name: &str| -> Result<Option<i64>, StoreError> {
        item.get(name)
            .map(|v| {
                v.as_n()
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| malformed(name, "not an integer"))
            })
            .transpose()
    };
    let count = |name: &str| -> Result<u32, StoreError> {
        number(name)?
            .unwrap_or(0)
            .try_into()
            .map_err(|_| malformed(name, "out of range"))
    };
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
        payload: json("payload")?.ok_or_else(|| malformed("payload", "missing"))?,
        fingerprint: required("fingerprint")?.clone(),
        state: required("state")?
            .parse()
            .map_err(|e: String| malformed("state", &e))?,
        created_at: number("createdAt")?.ok_or_else(|| malformed("createdAt", "missing"))?,
        started_at: number("startedAt")?,
        finished_at: number("finishedAt")?,
        attempts: count("attempts")?,
        lease_expires_at: number("leaseExpiresAt")?,
        result: json("result")?,
        error: string("error")?.cloned(),
        dead_lettered: flag("deadLettered").unwrap_or(false),
        enqueue_failed: flag("enqueueFailed").unwrap_or(false),
        discarded: flag("discarded").unwrap_or(false),
        replays: count("replays")?,
        expires_at: number(TTL_ATTRIBUTE)?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobRequest;
    use serde_json::json;

    #[test]
    fn records_round_trip_through_items() {
        let request = JobRequest {
            job_type: "primes".into(),
            payload: json!({"upTo": 100}),
        };
        let mut job = JobRecord::new_queued(JobId::random(), "alice", &request, 42, 30);
        assert_eq!(record_from_item(&item_from_record(&job)).unwrap(), job);
        job.state = JobState::Succeeded;
        job.started_at = Some(50);
        job.finished_at = Some(60);
        job.attempts = 2;
        job.result = Some(json!({"count": 25}));
        job.error = Some("boom".into());
        job.replays = 1;
        assert_eq!(record_from_item(&item_from_record(&job)).unwrap(), job);
    }

    #[test]
    fn malformed_items_name_the_attribute() {
        let request = JobRequest {
            job_type: "primes".into(),
            payload: json!({}),
        };
        let job = JobRecord::new_queued(JobId::random(), "alice", &request, 42, 30);
        let mut item = item_from_record(&job);
        item.insert("state".into(), s("paused"));
        let err = record_from_item(&item).unwrap_err();
        assert!(err.to_string().contains("state"), "{err}");
        item.remove("owner");
        let err = record_from_item(&item).unwrap_err();
        assert!(err.to_string().contains("owner"), "{err}");
    }
}

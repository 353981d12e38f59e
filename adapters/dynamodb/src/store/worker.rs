//! The worker function's role ([`WorkerStore`]): the claim, the heartbeat,
//! and the fenced writes that end or hand back an attempt. Its expressions
//! are public so that the benchmark's raw-SDK baseline can send exactly
//! what the store sends.

use super::checkpoint::{Placed, expression};
use super::{DynamoJobStore, error_value};
use crate::item::{
    CHECKPOINT_AT_ATTRIBUTE, DUE_ATTRIBUTE, SHARD_ATTRIBUTE, due_attributes, n, progress_text, s,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, RUN_AT_TOLERANCE_MS};
use jobline_core::store::{Completion, Heartbeat, Renewed, WorkerStore, own_claim, own_write};
use serde_json::Value;

/// The claim's `SET` clause, shared by [`CLAIM_UPDATE`] and the last
/// delivery's claim, which also moves `dueAt`.
macro_rules! claim_set {
    () => {
        "SET #state = :running, attempts = attempts + :one, \
         leaseExpiresAt = :lease, claimToken = :token, \
         startedAt = if_not_exists(startedAt, :now), \
         runStartedAt = if_not_exists(runStartedAt, :now)"
    };
}

/// The claim's update (on every delivery but the last): the job's `dueAt`
/// stays ([`jobline_core::deadline`]), so the due index is not written.
/// Values: `:running` (`"running"`), `:one` (1), `:lease` (the lease's end,
/// ms), `:token` (the delivery's claim token), `:now` (ms).
pub const CLAIM_UPDATE: &str = concat!(claim_set!(), " REMOVE stateShard");

/// The last delivery's claim: [`CLAIM_UPDATE`] and the job's new `dueAt`,
/// `:due` (ms), the run limit from now.
const LAST_CLAIM_UPDATE: &str = concat!(claim_set!(), ", dueAt = :due REMOVE stateShard");

/// The claim's condition: the job exists and is `queued`, `scheduled` and
/// due by `:dueBy` (now plus [`RUN_AT_TOLERANCE_MS`]), or `running` with an
/// expired lease or none. Values: `:queued`, `:scheduled`, `:dueBy`,
/// `:running`, `:now` (ms).
pub const CLAIM_CONDITION: &str = "attribute_exists(jobId) AND (#state = :queued OR \
     (#state = :scheduled AND (attribute_not_exists(runAt) OR runAt <= :dueBy)) OR \
     (#state = :running AND (attribute_not_exists(leaseExpiresAt) OR leaseExpiresAt < :now)))";

/// The fence of `finish` and `return_to_queue`: the job is still `running`
/// under the same attempt. Values: `:running`, `:attempt`.
pub const FINISH_CONDITION: &str = "#state = :running AND attempts = :attempt";

/// The update of a successful finish. Values: `:done` (`"succeeded"`),
/// `:result` (JSON text), `:now` (ms). It leaves the due index, and enters
/// no other.
pub const FINISH_SUCCEEDED_UPDATE: &str = "SET #state = :done, #result = :result, \
     finishedAt = :now REMOVE leaseExpiresAt, #error, pending, dueAt, stateShard";

/// The update of a failed finish. Values: `:done` (`"failed"`), `:error`,
/// `:now` (ms), `:dead` (whether the message was dead-lettered),
/// `:stateShard` ([`state_shard`](crate::item::state_shard) of `failed`).
pub const FINISH_FAILED_UPDATE: &str = "SET #state = :done, stateShard = :stateShard, \
     #error = :error, finishedAt = :now, \
     deadLettered = :dead REMOVE leaseExpiresAt, pending, dueAt";

/// The update of a successful finish whose result is stored apart. Values:
/// `:done` (`"succeeded"`), `:key` (the result's object key), `:now` (ms).
pub const FINISH_LINKED_UPDATE: &str = "SET #state = :done, resultKey = :key, \
     finishedAt = :now REMOVE leaseExpiresAt, #error, #result, pending, dueAt, stateShard";

/// The update of a cancelled finish. Values: `:done` (`"cancelled"`),
/// `:now` (ms), `:stateShard` ([`state_shard`](crate::item::state_shard) of `cancelled`).
pub const FINISH_CANCELLED_UPDATE: &str = "SET #state = :done, stateShard = :stateShard, \
     finishedAt = :now REMOVE leaseExpiresAt, pending, dueAt";

/// The heartbeat's fence: the job is still `running` under the same attempt
/// and delivery. Values: `:running`, `:attempt`, `:token`.
pub const HEARTBEAT_CONDITION: &str =
    "#state = :running AND attempts = :attempt AND claimToken = :token";

#[async_trait]
impl WorkerStore for DynamoJobStore {
    async fn claim(
        &self,
        id: JobId,
        now_ms: i64,
        lease_until_ms: i64,
        receive_count: u32,
        token: &str,
    ) -> Result<JobRecord, StoreError> {
        let mut request = self
            .update_to(id, JobState::Running)
            .update_expression(CLAIM_UPDATE)
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":scheduled", s(JobState::Scheduled.as_str()))
            .expression_attribute_values(":dueBy", n(now_ms + RUN_AT_TOLERANCE_MS))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":lease", n(lease_until_ms))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew);
        if let Some(due) = self.deadlines.claimed(now_ms, receive_count) {
            request = request
                .update_expression(LAST_CLAIM_UPDATE)
                .expression_attribute_values(":due", n(due));
        }
        let claimed = match self.send_update(request).await {
            Ok(output) => {
                let item = output
                    .attributes()
                    .ok_or_else(|| StoreError::Malformed("claim returned no attributes".into()))?;
                // The one read that returns the checkpoint: inline, or apart.
                let mut job = self.whole_record(item).await?;
                if job.checkpoint.is_none() && item.contains_key(CHECKPOINT_AT_ATTRIBUTE) {
                    job.checkpoint = self.read_apart_checkpoint(id).await?;
                }
                Ok(job)
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
        let mut sets = String::from("SET leaseExpiresAt = :lease");
        let mut removes = Vec::new();
        let mut request = self
            .update(id)
            .condition_expression(HEARTBEAT_CONDITION)
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":lease", n(beat.lease_until_ms))
            .return_values(ReturnValue::AllNew);
        if let Some(progress) = beat.progress {
            sets.push_str(", progress = :progress");
            request = request.expression_attribute_values(":progress", s(progress_text(progress)));
        }
        let mut apart = None;
        if let Some(checkpoint) = beat.checkpoint {
            (request, apart) =
                Placed::of(checkpoint).write(request, &mut sets, &mut removes, beat.now_ms);
        }
        let output = self
            .send_update(request.update_expression(expression(&sets, &removes)))
            .await?;
        if let Some(text) = apart {
            self.save_checkpoint(id, attempt, text, beat.now_ms).await?;
        }
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
        let mut sets = String::from(
            "SET #state = :queued, \
             continuations = if_not_exists(continuations, :zero) + :one, \
             pending = :shard, dueAt = :due",
        );
        let mut removes = vec!["leaseExpiresAt", "#error", "stateShard"];
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
        let mut apart = None;
        if let Some(checkpoint) = checkpoint {
            (request, apart) =
                Placed::of(checkpoint).write(request, &mut sets, &mut removes, now_ms);
        }
        let suspended = self
            .send_update(request.update_expression(expression(&sets, &removes)))
            .await;
        own_write(suspended, attempt, token, JobState::Queued)?;
        // The job's next message is sent after this returns, so its next
        // claim reads this checkpoint.
        match apart {
            Some(text) => self.save_checkpoint(id, attempt, text, now_ms).await,
            None => Ok(()),
        }
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
                        "SET #state = :queued, #error = :error \
                         REMOVE leaseExpiresAt, stateShard",
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

    async fn renew_due(&self, id: JobId, now_ms: i64) -> Result<(), StoreError> {
        let [(_, shard), (_, due)] = due_attributes(id, self.deadlines.queued_at(now_ms));
        self.send_update(
            self.update(id)
                .update_expression(format!(
                    "SET {SHARD_ATTRIBUTE} = :shard, {DUE_ATTRIBUTE} = :due"
                ))
                .condition_expression("#state IN (:queued, :scheduled, :running)")
                .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                .expression_attribute_values(":scheduled", s(JobState::Scheduled.as_str()))
                .expression_attribute_values(":running", s(JobState::Running.as_str()))
                .expression_attribute_values(":shard", shard)
                .expression_attribute_values(":due", due),
        )
        .await?;
        Ok(())
    }
}

//! An operator's role ([`OperatorStore`]) and the replay it shares with
//! the worker ([`ReplayStore`]): replaying and discarding jobs, and
//! listing, counting and finding the oldest of every caller's jobs by state.

use super::DynamoJobStore;
use crate::item::{
    DUE_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE, KEY_ATTRIBUTE, PAYLOAD_SIZE_ATTRIBUTE, SHARD_ATTRIBUTE,
    STATE_SHARD_ATTRIBUTE, TTL_ATTRIBUTE, due_attributes, hook_shard, key, n, payload_item_key, s,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobState, expires_at};
use jobline_core::store::{
    DISCARDED_ERROR, DiscardOutcome, JobPage, ListKey, MAX_LIST_LIMIT, OperatorStore,
    ReplayOutcome, ReplayStore, SHARDS, StateCount, merge_shards, outcome_of,
};

impl DynamoJobStore {
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

#[async_trait]
impl ReplayStore for DynamoJobStore {
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
}

#[async_trait]
impl OperatorStore for DynamoJobStore {
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
}

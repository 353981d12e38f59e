//! An operator's role ([`OperatorStore`]) and the replay it shares with
//! the worker ([`ReplayStore`]): replaying and discarding jobs, and
//! listing, counting and finding the oldest of every caller's jobs by state.

use super::DynamoJobStore;
use super::index::{IndexPage, IndexQuery};
use crate::item::{
    CHECKPOINT_AT_ATTRIBUTE, DUE_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE, KEY_ATTRIBUTE,
    PAYLOAD_SIZE_ATTRIBUTE, SHARD_ATTRIBUTE, STATE_SHARD_ATTRIBUTE, TTL_ATTRIBUTE, due_attributes,
    hook_shard, key, n, payload_item_key, s,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState, expires_at};
use jobline_core::store::{
    DISCARDED_ERROR, DiscardOutcome, JobPage, ListKey, MAX_LIST_LIMIT, OLDEST_SCAN, OperatorStore,
    ReplayOutcome, ReplayStore, SHARDS, StateCount, StateListing, merge_shards, outcome_of,
};

impl DynamoJobStore {
    /// Keeps the items stored apart from job `id`'s (its payload when over
    /// the inline size, its checkpoint) until `expires` (seconds): the TTL
    /// the job gets when it is replayed.
    async fn extend_apart(&self, id: JobId, expires: i64) -> Result<(), StoreError> {
        let refs = self
            .read_item(
                key(id),
                Some(&[
                    KEY_ATTRIBUTE,
                    "fingerprint",
                    PAYLOAD_SIZE_ATTRIBUTE,
                    CHECKPOINT_AT_ATTRIBUTE,
                ]),
            )
            .await?;
        if refs
            .as_ref()
            .is_some_and(|refs| refs.contains_key(CHECKPOINT_AT_ATTRIBUTE))
        {
            self.extend_checkpoint(id, expires).await?;
        }
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

    /// The unfinished jobs of the due index's partitions, up to `limit` a
    /// partition after `after`, newest first by `dueAt`, each read: the
    /// page's keys (merged, at most `limit`), the jobs among them in
    /// `state`, the entries read, and where the next page starts.
    async fn unfinished_page(
        &self,
        state: JobState,
        after: Option<ListKey>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let pages = try_join_all(
            (0..SHARDS)
                .map(|shard| self.partition_page(IndexQuery::due(shard), after, limit, false)),
        )
        .await?;
        let (keys, scanned, cut) = merged(pages);
        let (keys, next) = merge_shards(keys, cut, limit);
        let (keys, jobs) = self
            .read_summaries(&keys)
            .await?
            .into_iter()
            .filter(|(_, job)| job.state == state)
            .unzip();
        Ok(JobPage {
            jobs,
            keys,
            scanned,
            next,
        })
    }
}

/// The entries of one page of each partition, as list keys; the entries
/// read; whether any partition has more.
fn merged(pages: Vec<IndexPage>) -> (Vec<ListKey>, usize, bool) {
    let (mut keys, mut scanned, mut cut) = (Vec::new(), 0, false);
    for page in pages {
        scanned += page.scanned;
        cut |= page.next.is_some();
        keys.extend(page.entries.into_iter().map(|(id, at)| ListKey { at, id }));
    }
    (keys, scanned, cut)
}

/// The error of a listing or count of `succeeded`, which no index holds.
fn unlisted(operation: &'static str) -> StoreError {
    StoreError::Invalid {
        operation,
        reason: "succeeded jobs are in no index (one would cost every job index writes): \
                 count them from the JobsSucceeded metric, list them by caller"
            .to_owned(),
    }
}

#[async_trait]
impl ReplayStore for DynamoJobStore {
    async fn replay(&self, id: JobId, now: i64) -> Result<ReplayOutcome, StoreError> {
        let expires = expires_at(now, self.retention_days);
        // First the items apart, so that a replayed job never outlives them.
        self.extend_apart(id, expires).await?;
        let [(_, shard), (_, due)] = due_attributes(id, self.deadlines.queued_at(now));
        let outcome = self
            .send_update(
                self.update_to(id, JobState::Queued)
                    .update_expression(format!(
                        "SET #state = :queued, \
                     replays = if_not_exists(replays, :zero) + :one, \
                     deadLettered = :false, enqueueFailed = :false, {TTL_ATTRIBUTE} = :expires, \
                     {SHARD_ATTRIBUTE} = :shard, {DUE_ATTRIBUTE} = :due, \
                     {HOOK_SHARD_ATTRIBUTE} = :hook \
                     REMOVE finishedAt, leaseExpiresAt, discarded, runStartedAt, cancelRequested, \
                     {STATE_SHARD_ATTRIBUTE}"
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
        match StateListing::of(state) {
            StateListing::Unlisted => Err(unlisted("Query")),
            StateListing::DueIndex => self.unfinished_page(state, after, limit).await,
            StateListing::StateIndex => {
                // The 16 queries at once: a page costs one round trip of queries.
                let pages = try_join_all((0..SHARDS).map(|shard| {
                    self.partition_page(IndexQuery::state(state, shard), after, limit, false)
                }))
                .await?;
                let (keys, scanned, cut) = merged(pages);
                let (keys, next) = merge_shards(keys, cut, limit);
                // Newest first; a job that changed state since the query is
                // listed as it is now.
                let (keys, jobs) = self.read_summaries(&keys).await?.into_iter().unzip();
                Ok(JobPage {
                    jobs,
                    keys,
                    scanned,
                    next,
                })
            }
        }
    }

    async fn count_by_state(
        &self,
        state: JobState,
        per_shard: usize,
    ) -> Result<StateCount, StoreError> {
        // One more than the bound tells a full shard from a larger one.
        let bound = per_shard + 1;
        match StateListing::of(state) {
            StateListing::Unlisted => Err(unlisted("Query")),
            StateListing::StateIndex => {
                let counts = try_join_all(
                    (0..SHARDS).map(|shard| self.count_state_shard(state, shard, bound)),
                )
                .await?;
                Ok(StateCount {
                    count: counts.iter().map(|&count| count.min(per_shard)).sum(),
                    complete: counts.iter().all(|&count| count <= per_shard),
                })
            }
            StateListing::DueIndex => {
                let pages =
                    try_join_all((0..SHARDS).map(|shard| {
                        self.partition_page(IndexQuery::due(shard), None, bound, true)
                    }))
                    .await?;
                let complete = pages.iter().all(|page| page.entries.len() <= per_shard);
                let keys: Vec<ListKey> = pages
                    .into_iter()
                    .flat_map(|page| page.entries.into_iter().take(per_shard))
                    .map(|(id, at)| ListKey { at, id })
                    .collect();
                let jobs = self.read_summaries(&keys).await?;
                Ok(StateCount {
                    count: jobs.iter().filter(|(_, job)| job.state == state).count(),
                    complete,
                })
            }
        }
    }

    async fn oldest_queued(&self) -> Result<Option<JobRecord>, StoreError> {
        let oldest = try_join_all((0..SHARDS).map(|shard| self.oldest_queued_in(shard))).await?;
        Ok(oldest
            .into_iter()
            .flatten()
            .min_by_key(|(key, _)| *key)
            .map(|(_, job)| job))
    }
}

impl DynamoJobStore {
    /// The oldest queued job of partition `shard` of the due index, with its
    /// entry: its first entry, then up to [`OLDEST_SCAN`] in all, read in
    /// due order until one is queued.
    async fn oldest_queued_in(
        &self,
        shard: u8,
    ) -> Result<Option<(ListKey, JobRecord)>, StoreError> {
        let (mut after, mut read) = (None, 0);
        for limit in [1, OLDEST_SCAN - 1] {
            let page = self
                .partition_page(IndexQuery::due(shard), after, limit, true)
                .await?;
            read += page.entries.len();
            let keys: Vec<ListKey> = page
                .entries
                .into_iter()
                .map(|(id, at)| ListKey { at, id })
                .collect();
            let jobs = self.read_summaries(&keys).await?;
            if let Some(found) = jobs
                .into_iter()
                .find(|(_, job)| job.state == JobState::Queued)
            {
                return Ok(Some(found));
            }
            match page.next {
                Some((id, at)) if read < OLDEST_SCAN => after = Some(ListKey { at, id }),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

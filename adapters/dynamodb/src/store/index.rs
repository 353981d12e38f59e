//! The keys-only index queries the roles' listings share: a page of a
//! sharded time index (the sweeper's due and webhook indexes), of the owner
//! index (the API's listing), of a state's partition or of a due index
//! partition (an operator's listings and counts), and the batch read of a
//! page's jobs.

use super::{DynamoJobStore, read_failure};
use crate::item::{
    CREATED_ATTRIBUTE, DUE_ATTRIBUTE, DUE_INDEX, KEY_ATTRIBUTE, SHARD_ATTRIBUTE, STATE_INDEX,
    STATE_SHARD_ATTRIBUTE, SUMMARY_ATTRIBUTES, key, n, s, state_partition, summary_from_item,
};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Select};
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobRecord, JobState};
use jobline_core::store::{DueKey, ListKey, MAX_LIST_LIMIT, OverduePage};
use std::collections::HashMap;

/// Which keys-only index a query reads: its name, its partition (attribute
/// and value) and its numeric sort key's attribute.
pub(super) struct IndexQuery<'a> {
    pub(super) index: &'a str,
    pub(super) partition: (&'a str, AttributeValue),
    pub(super) sort: &'a str,
}

impl IndexQuery<'static> {
    /// Partition `shard` of `state` in [`STATE_INDEX`], by creation time.
    pub(super) fn state(state: JobState, shard: u8) -> Self {
        Self {
            index: STATE_INDEX,
            partition: (STATE_SHARD_ATTRIBUTE, s(state_partition(state, shard))),
            sort: CREATED_ATTRIBUTE,
        }
    }

    /// Partition `shard` of the due index, by due time.
    pub(super) fn due(shard: u8) -> Self {
        Self {
            index: DUE_INDEX,
            partition: (SHARD_ATTRIBUTE, s(shard.to_string())),
            sort: DUE_ATTRIBUTE,
        }
    }
}

/// One page of a keys-only index: each entry's job id and sort value, the
/// entries read (`ScannedCount`), and where the next page starts.
pub(super) struct IndexPage {
    pub(super) entries: Vec<(JobId, i64)>,
    pub(super) scanned: usize,
    pub(super) next: Option<(JobId, i64)>,
}

impl DynamoJobStore {
    /// One page of partition `shard` of the sharded time index `(index,
    /// partition attribute, sort attribute)` (the due index, the webhook
    /// index): entries whose time is before `before_ms`, earliest first,
    /// after `after`.
    pub(super) async fn before_page(
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

    /// Sends `request` (its key condition and order) to `query`'s index,
    /// reading at most `limit` entries after `after` (a job id and its sort
    /// value), and reads the page's entries.
    pub(super) async fn index_page(
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

    /// At most `limit` entries of `query`'s partition, newest first (or
    /// oldest first) by its sort key, after `after`.
    pub(super) async fn partition_page(
        &self,
        query: IndexQuery<'_>,
        after: Option<ListKey>,
        limit: usize,
        oldest_first: bool,
    ) -> Result<IndexPage, StoreError> {
        let (attribute, value) = query.partition.clone();
        let request = self
            .client
            .query()
            .key_condition_expression("#partition = :partition")
            .expression_attribute_names("#partition", attribute)
            .expression_attribute_values(":partition", value)
            .scan_index_forward(oldest_first);
        self.index_page(
            query,
            request,
            after.map(|after| (after.id, after.at)),
            limit,
        )
        .await
    }

    /// The entries of partition `shard` of `state` in [`STATE_INDEX`],
    /// counted up to `bound` (`Select=COUNT`: DynamoDB reads the entries
    /// but returns none), page by page.
    pub(super) async fn count_state_shard(
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

    /// The jobs at `keys` with their keys, in their order, without payloads, results and
    /// checkpoints (a job deleted since its key was read is left out): one
    /// `BatchGetItem` (strongly consistent) per 100 keys (its limit),
    /// repeated for any keys DynamoDB leaves unprocessed.
    pub(super) async fn read_summaries(
        &self,
        keys: &[ListKey],
    ) -> Result<Vec<(ListKey, JobRecord)>, StoreError> {
        let mut found = HashMap::new();
        let mut chunks = keys.chunks(MAX_LIST_LIMIT);
        let mut pending: Vec<HashMap<String, AttributeValue>> = Vec::new();
        let placeholders: Vec<String> = (0..SUMMARY_ATTRIBUTES.len())
            .map(|i| format!("#a{i}"))
            .collect();
        loop {
            if pending.is_empty() {
                match chunks.next() {
                    Some(chunk) => pending = chunk.iter().map(|k| key(k.id)).collect(),
                    None => break,
                }
            }
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
        Ok(keys
            .iter()
            .filter_map(|k| Some((*k, found.remove(&k.id)?)))
            .collect())
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

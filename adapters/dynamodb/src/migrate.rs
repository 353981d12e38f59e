//! The migration of a jobs table written by an earlier release to the
//! current layout (`jobline migrate`): a resumable scan that rewrites each
//! job item that needs it, with one conditional write.
//!
//! What changed on 2026-12-07 (issue 21), and so what a page fixes:
//!
//! - the state index lists only failed and cancelled jobs: an item in any
//!   other state loses its `stateShard` (leaving the index: one index write
//!   unit), and a failed or cancelled one keeps or gets it;
//! - a checkpoint over 256 bytes lives in an item of its own: such an
//!   inline `checkpoint` is written there (its size in write units), then
//!   removed from the job item, its time kept as `checkpointAt`.
//!
//! And what releases before the due and webhook indexes (2026-11-27,
//! 2026-12-07) left out, which no later write adds: an unfinished job with
//! no `dueAt` enters the due index, due a whole bound from the migration
//! (as if queued then, so no job whose message may still come is failed),
//! and a called-back job whose webhook is still owed gets its `hookShard`.
//!
//! The index definitions did not change, so the template deploys over the
//! old table as it is, and the new release reads old items as they are (it
//! reads an inline checkpoint, and every write it makes to a job removes a
//! stale `stateShard`): the migration only stops old items from costing
//! more. Each rewrite is conditional on the state and checkpoint the scan
//! read, so a job the running stack moves in between is left as the stack
//! wrote it (counted as `moved`); running the migration again is harmless,
//! and a run resumes after the last job id of the page it stopped at.

use crate::item::{
    CHECKPOINT_AT_ATTRIBUTE, CHECKPOINT_ATTRIBUTE, DUE_ATTRIBUTE, FINISHED_ATTRIBUTE,
    HOOK_SHARD_ATTRIBUTE, INLINE_CHECKPOINT_BYTES, KEY_ATTRIBUTE, STATE_SHARD_ATTRIBUTE,
    TTL_ATTRIBUTE, due_attributes, hook_shard, item_size, n, s, save_checkpoint_request,
    state_shard, webhook_from,
};
use crate::store::{read_failure, request_error};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::deadline::Deadlines;
use jobline_core::error::StoreError;
use jobline_core::job::{JobId, JobState};
use jobline_core::store::StateListing;
use std::collections::HashMap;

/// Items a page of the migration scans (one `Scan` request).
pub const PAGE_ITEMS: i32 = 200;

/// What one page of the migration did, and what it cost (computed from the
/// items' sizes with DynamoDB's billing rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPage {
    /// Items read (job items and the items kept apart from them).
    pub scanned: usize,
    /// Job items rewritten.
    pub rewritten: usize,
    /// Inline checkpoints moved to their own items.
    pub checkpoints_moved: usize,
    /// Job items whose rewrite was refused because the stack changed them
    /// after the scan read them (they are in the new layout already).
    pub moved: usize,
    /// Read units of the scan: half a unit per started 4 KB of each item
    /// (eventually consistent), rounded up over the page.
    pub read_units: u64,
    /// Write units: the rewrites (1 per started KB of the larger image),
    /// the checkpoint items (1 per started KB), and the index entries
    /// removed or added (1 each).
    pub write_units: u64,
    /// The job id to resume after (`--from`), or `None` when the scan is
    /// done.
    pub next: Option<String>,
}

impl MigrationPage {
    /// Adds `page`'s counts and costs to these totals, and takes its `next`.
    pub fn add(&mut self, page: MigrationPage) {
        self.scanned += page.scanned;
        self.rewritten += page.rewritten;
        self.checkpoints_moved += page.checkpoints_moved;
        self.moved += page.moved;
        self.read_units += page.read_units;
        self.write_units += page.write_units;
        self.next = page.next;
    }
}

/// The migration of one table.
#[derive(Debug, Clone)]
pub struct Migration {
    client: Client,
    table: String,
    page_items: i32,
    deadlines: Deadlines,
}

impl Migration {
    /// The migration of `table`, over a client of `sdk`.
    pub fn from_sdk(sdk: &aws_types::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(sdk),
            table: table.into(),
            page_items: PAGE_ITEMS,
            deadlines: Deadlines::default(),
        }
    }

    /// Scans `items` a page instead of [`PAGE_ITEMS`].
    #[must_use]
    pub fn with_page_items(mut self, items: i32) -> Self {
        self.page_items = items.max(1);
        self
    }

    /// Migrates one page at `now_ms`, starting after key `from`; with
    /// `dry_run`, counts what it would write and writes nothing.
    pub async fn page(
        &self,
        from: Option<&str>,
        dry_run: bool,
        now_ms: i64,
    ) -> Result<MigrationPage, StoreError> {
        migrate_page(self, from, dry_run, now_ms).await
    }
}

/// One page of the migration of `table` ([`Migration::page`]).
async fn migrate_page(
    migration: &Migration,
    from: Option<&str>,
    dry_run: bool,
    now_ms: i64,
) -> Result<MigrationPage, StoreError> {
    let (client, table) = (&migration.client, migration.table.as_str());
    let scan = client
        .scan()
        .table_name(table)
        .limit(migration.page_items)
        .set_exclusive_start_key(from.map(|id| HashMap::from([(KEY_ATTRIBUTE.to_owned(), s(id))])))
        .send()
        .await
        .map_err(read_failure("Scan"))?;
    let mut page = MigrationPage {
        scanned: scan.items().len(),
        next: scan
            .last_evaluated_key()
            .and_then(|key| key.get(KEY_ATTRIBUTE))
            .and_then(|id| id.as_s().ok())
            .cloned(),
        ..MigrationPage::default()
    };
    let read_bytes: usize = scan.items().iter().map(item_size).sum();
    page.read_units = u64::try_from(read_bytes.div_ceil(4096).div_ceil(2)).unwrap_or(u64::MAX);
    for item in scan.items() {
        let due = migration.deadlines.queued_at(now_ms);
        let Some(change) = Change::of(item, due)? else {
            continue;
        };
        page.write_units += change.write_units(item);
        if dry_run {
            page.rewritten += 1;
            page.checkpoints_moved += usize::from(change.checkpoint.is_some());
            continue;
        }
        match change.apply(client, table, item).await? {
            true => {
                page.rewritten += 1;
                page.checkpoints_moved += usize::from(change.checkpoint.is_some());
            }
            false => page.moved += 1,
        }
    }
    Ok(page)
}

/// What one job item needs.
#[derive(Debug)]
struct Change {
    id: JobId,
    state: JobState,
    /// The `stateShard` the item must carry, if any.
    state_shard: Option<String>,
    /// Whether the item carries a `stateShard` it must change or lose.
    fix_state_shard: bool,
    /// An inline checkpoint to move, and its writer's attempt.
    checkpoint: Option<(AttributeValue, u32)>,
    /// The `dueAt` an unfinished job written before the due index gets.
    due: Option<i64>,
    /// Whether a called-back job written before the webhook index, whose
    /// webhook is still owed, gets its `hookShard`.
    hook: bool,
}

impl Change {
    /// The change job item `item` needs; `None` for an item in the current
    /// layout, or one that is not a job's (a payload or checkpoint item).
    fn of(item: &HashMap<String, AttributeValue>, due: i64) -> Result<Option<Self>, StoreError> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let Some(id) = text(KEY_ATTRIBUTE).and_then(|id| id.parse::<JobId>().ok()) else {
            return Ok(None);
        };
        let state: JobState = text("state")
            .ok_or_else(|| StoreError::Malformed(format!("{id}: no state")))?
            .parse()
            .map_err(StoreError::Malformed)?;
        let wanted =
            (StateListing::of(state) == StateListing::StateIndex).then(|| state_shard(id, state));
        let fix_state_shard = text(STATE_SHARD_ATTRIBUTE).map(String::as_str) != wanted.as_deref();
        let attempts = item
            .get("attempts")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Only a checkpoint over the inline size moves: a smaller one is
        // where the current release keeps it too.
        let checkpoint = item
            .get(CHECKPOINT_ATTRIBUTE)
            .filter(|value| {
                value
                    .as_s()
                    .is_ok_and(|text| text.len() > INLINE_CHECKPOINT_BYTES)
            })
            .map(|value| (value.clone(), attempts));
        // Written before the due index (2026-11-27): an unfinished job due
        // a whole bound from now, as if queued now, which never fails one
        // whose message may still come.
        let due = (!state.is_finished() && !item.contains_key(DUE_ATTRIBUTE)).then_some(due);
        let hook = item.contains_key("callbackUrl")
            && !item.contains_key(HOOK_SHARD_ATTRIBUTE)
            && !delivery_settled(item);
        Ok(
            (fix_state_shard || checkpoint.is_some() || due.is_some() || hook).then_some(Self {
                id,
                state,
                state_shard: wanted,
                fix_state_shard,
                checkpoint,
                due,
                hook,
            }),
        )
    }

    /// The write units of this change to `item`.
    fn write_units(&self, item: &HashMap<String, AttributeValue>) -> u64 {
        let units = |bytes: usize| u64::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u64::MAX);
        let mut total = units(item_size(item));
        if self.fix_state_shard {
            // Out of the state index, into it, or from one partition to
            // another (a delete and a put).
            let had = item.contains_key(STATE_SHARD_ATTRIBUTE);
            total += u64::from(had) + u64::from(self.state_shard.is_some());
        }
        if let Some((checkpoint, _)) = &self.checkpoint {
            total += units(checkpoint.as_s().map_or(0, String::len) + 64);
        }
        // Into the due index; into the webhook index once finished.
        total += u64::from(self.due.is_some());
        total += u64::from(self.hook && item.contains_key(FINISHED_ATTRIBUTE));
        total
    }

    /// Makes the change, conditional on what the scan read: `false` when
    /// the job moved on since.
    async fn apply(
        &self,
        client: &Client,
        table: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<bool, StoreError> {
        if let Some((checkpoint, attempt)) = &self.checkpoint {
            let expires = item
                .get(TTL_ATTRIBUTE)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let written = save_checkpoint_request(
                client,
                table,
                self.id,
                checkpoint.clone(),
                *attempt,
                expires,
            )
            .send()
            .await;
            if let Err(e) = written {
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    // A later attempt saved a newer one: the inline one is stale.
                } else {
                    return Err(request_error("UpdateItem", e));
                }
            }
        }
        let (mut sets, mut removes) = (Vec::new(), Vec::new());
        let mut request = client
            .update_item()
            .table_name(table)
            .key(KEY_ATTRIBUTE, s(self.id.to_string()))
            .condition_expression(if self.checkpoint.is_some() {
                "#state = :state AND #checkpoint = :checkpoint"
            } else {
                "#state = :state"
            })
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(self.state.as_str()));
        if self.fix_state_shard {
            match &self.state_shard {
                Some(shard) => {
                    sets.push(format!("{STATE_SHARD_ATTRIBUTE} = :shard"));
                    request = request.expression_attribute_values(":shard", s(shard.as_str()));
                }
                None => removes.push(STATE_SHARD_ATTRIBUTE.to_owned()),
            }
        }
        if let Some(due) = self.due {
            let [(shard_name, shard), (due_name, due)] = due_attributes(self.id, due);
            sets.push(format!("{shard_name} = :dueShard, {due_name} = :due"));
            request = request
                .expression_attribute_values(":dueShard", shard)
                .expression_attribute_values(":due", due);
        }
        if self.hook {
            sets.push(format!("{HOOK_SHARD_ATTRIBUTE} = :hook"));
            request = request.expression_attribute_values(":hook", hook_shard(self.id));
        }
        if let Some((checkpoint, _)) = &self.checkpoint {
            sets.push(format!(
                "{CHECKPOINT_AT_ATTRIBUTE} = if_not_exists({CHECKPOINT_AT_ATTRIBUTE}, :zero)"
            ));
            removes.push("#checkpoint".to_owned());
            request = request
                .expression_attribute_names("#checkpoint", CHECKPOINT_ATTRIBUTE)
                .expression_attribute_values(":checkpoint", checkpoint.clone())
                .expression_attribute_values(":zero", n(0));
        }
        let mut update = String::new();
        if !sets.is_empty() {
            update.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match request.update_expression(update.trim()).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(request_error("UpdateItem", e)),
        }
    }
}

/// Whether job item `item` records its webhook `delivered` or `failed` for
/// its current final state (as [`JobRecord::current_delivery`] says of a
/// record): then it owes none.
///
/// [`JobRecord::current_delivery`]: jobline_core::job::JobRecord::current_delivery
fn delivery_settled(item: &HashMap<String, AttributeValue>) -> bool {
    let finished_at = item
        .get(FINISHED_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|at| at.parse::<i64>().ok());
    item.get("webhook")
        .and_then(|v| v.as_s().ok())
        .and_then(|text| serde_json::from_str(text).ok())
        .and_then(|value| webhook_from(&value))
        .is_some_and(|delivery| {
            Some(delivery.for_finished_at) == finished_at && delivery.state.is_final()
        })
}

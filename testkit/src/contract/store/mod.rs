//! The checks of a [`JobStore`], every role of it, grouped by the role
//! each one is about (a check may call other roles' methods to set its job
//! up): `api`, `worker`, `operator`, `sweeper`, `notifier`, and `items`
//! for what every write keeps. Each check is re-exported here, so
//! a runner calls `store::<check>` whatever its group.

use crate::testing::job;
use crate::testing::now_ms;
use jobline_core::StoreError;
use jobline_core::job::{ClaimRefusal, JobId, JobRecord, JobState, Progress};
use jobline_core::limits::MAX_ITEM_BYTES;
use jobline_core::store::{
    CancelOutcome, DISCARDED_ERROR, DeleteOutcome, DiscardOutcome, Heartbeat, ReplayOutcome,
    SHARDS, SWEPT_ERROR, StateListing, SweepOutcome,
};
use jobline_core::store::{Completion, JobStore};
use jobline_dynamodb::item::bound_error;
use serde_json::json;

mod api;
mod items;
mod notifier;
mod operator;
mod sweeper;
mod worker;

pub use api::*;
pub use items::*;
pub use notifier::*;
pub use operator::*;
pub use sweeper::*;
pub use worker::*;

/// The claim token of the checks' deliveries.
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// The claim token of another delivery.
const OTHER: &str = "fedcba9876543210fedcba9876543210";
/// An hour, in ms: the checks move time by hours and days.
const HOUR_MS: i64 = 3_600_000;

/// Thirty days from `now`: past every job's `dueAt` under any
/// [`Deadlines`](jobline_core::deadline::Deadlines) a test uses.
fn far_after(now: i64) -> i64 {
    now + 30 * 86_400_000
}

/// Whether job `id` is in the due index, due before `before_ms`.
async fn listed(store: &dyn JobStore, id: JobId, before_ms: i64) -> bool {
    in_time_index(store, id, before_ms, false).await
}

/// Whether job `id` is in the webhook index, finished before `before_ms`.
async fn owed(store: &dyn JobStore, id: JobId, before_ms: i64) -> bool {
    in_time_index(store, id, before_ms, true).await
}

/// Whether job `id` is in the due index (or, with `webhooks`, the
/// webhook index) before `before_ms`, paging through its partition.
async fn in_time_index(store: &dyn JobStore, id: JobId, before_ms: i64, webhooks: bool) -> bool {
    let mut after = None;
    loop {
        let shard = id.shard(SHARDS);
        let page = if webhooks {
            store.owed_webhooks(shard, before_ms, after, 10).await
        } else {
            store.overdue(shard, before_ms, after, 10).await
        }
        .unwrap();
        if page.jobs.iter().any(|due| due.id == id) {
            return true;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return false,
        }
    }
}

/// How a claim of job `id` at `now` by another delivery was refused.
async fn refusal(store: &dyn JobStore, id: JobId, now: i64) -> ClaimRefusal {
    match store.claim(id, now, now + 60_000, 1, OTHER).await {
        Err(StoreError::Conflict { current }) => {
            ClaimRefusal::from_current(current.as_deref(), now)
        }
        other => panic!("expected the claim to be refused, got {other:?}"),
    }
}

/// A new queued job, claimed at `now` with a one-minute lease.
async fn claimed(store: &dyn JobStore, now: i64) -> JobRecord {
    let queued = job("primes").build();
    store.create(&queued).await.unwrap();
    store
        .claim(queued.id, now, now + 60_000, 1, TOKEN)
        .await
        .unwrap()
}

/// Job `id` as stored; it must exist.
async fn stored(store: &dyn JobStore, id: JobId) -> JobRecord {
    store.get(id).await.unwrap().expect("the job exists")
}

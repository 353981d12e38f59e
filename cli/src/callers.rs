//! `jobline callers show` and `jobline callers recount`: what the callers
//! table (`CALLERS_TABLE`) counts of one caller (its unfinished jobs, which
//! its bound admits new ones against, and its uploads of the UTC day), and
//! the count of unfinished jobs set right from the caller's own jobs.
//!
//! A count drifts only by a final state's stream record relayed twice (one
//! too few) or a give-back the API could not write (one too many), and
//! each is logged (`jobline_api`'s admission). `recount` pages through the
//! caller's jobs in the owner index (every job it has in the table, its
//! finished ones included, about one read unit per 4 KB of them), so it is
//! an operator's repair, not a routine; a job accepted or finished while it
//! runs can leave the count off by that job: run it again when the caller
//! is quiet.

use jobline_core::StoreError;
use jobline_core::caller::{CallerCounts, CallerKey, CountError, utc_day};
use jobline_core::store::ApiStore;
use serde_json::{Value, json};

/// Why a caller's counts could not be read or set.
#[derive(Debug, thiserror::Error)]
pub enum CallersError {
    #[error("reading or writing the caller's count: {0}")]
    Count(#[from] CountError),
    #[error("listing the caller's jobs: {0}")]
    Store(#[from] StoreError),
}

/// What `show` prints of `owner`: its key, its count of unfinished jobs,
/// and its uploads of the UTC day of `now_ms` (zeros if it has none).
pub async fn show(
    counts: &dyn CallerCounts,
    owner: &str,
    now_ms: i64,
) -> Result<Value, CallersError> {
    let tally = counts.tally(owner).await?;
    let today = Some(tally.uploads).filter(|uploads| uploads.day == utc_day(now_ms));
    Ok(json!({
        "owner": owner,
        "key": CallerKey::of(owner).to_string(),
        "unfinished": tally.unfinished,
        "uploadsToday": {
            "uploads": today.map_or(0, |t| t.uploads),
            "bytes": today.map_or(0, |t| t.bytes),
        },
    }))
}

/// How many jobs a page of `recount`'s listing asks for.
const PAGE: usize = 100;

/// Counts `owner`'s unfinished (scheduled, queued or running) jobs in
/// `store` and sets its count in `counts` to that; answers what `show`
/// answers, with `counted`, the count it replaced.
pub async fn recount(
    store: &dyn ApiStore,
    counts: &dyn CallerCounts,
    owner: &str,
    now_ms: i64,
) -> Result<Value, CallersError> {
    let counted = counts.tally(owner).await?.unfinished;
    let mut unfinished = 0;
    let mut after = None;
    loop {
        let page = store.list(owner, after, PAGE).await?;
        unfinished += page
            .jobs
            .iter()
            .filter(|job| !job.state.is_finished())
            .count() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    counts.set_unfinished(owner, unfinished).await?;
    let mut shown = show(counts, owner, now_ms).await?;
    shown["counted"] = json!(counted);
    Ok(shown)
}

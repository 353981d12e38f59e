//! The upgrade of a table the release of 2026-12-07 wrote (before issue 21)
//! to the current layout, on moto: `tests/fixtures/table-2026-12-07.json`
//! holds that release's items for jobs in every state (queued, with a large
//! payload, running with a checkpoint, running with a cancel requested,
//! succeeded, failed and dead-lettered, retried, cancelled, discarded,
//! enqueue-failed, swept, continued with a checkpoint, replayed, called
//! back with the webhook owed and delivered), written by that release's
//! store and dumped as DynamoDB JSON. One edit by hand: the continued job's
//! checkpoint was made 600 bytes longer (that release wrote checkpoints of
//! any size inline the same way), so that one is over the inline size and
//! moves.
//!
//! The current store reads them as they are, `Migration` rewrites what
//! costs more than it should (a state index entry on every job, inline
//! checkpoints), resumably and idempotently, and afterwards every query of
//! the store finds what it should.

use aws_sdk_dynamodb::types::AttributeValue;
use jobline_core::deadline::Deadlines;
use jobline_core::store::{Completion, SHARDS};
use jobline_core::{
    ApiStore, JobId, JobState, OperatorStore, ReadStore, SweeperStore, WorkerStore,
};
use jobline_dynamodb::item::INLINE_CHECKPOINT_BYTES;
use jobline_dynamodb::migrate::{Migration, MigrationPage};
use jobline_dynamodb::{
    DUE_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE, KEY_ATTRIBUTE, SHARD_ATTRIBUTE, STATE_SHARD_ATTRIBUTE,
};
use jobline_tests::TestEnv;
use serde_json::Value;
use std::collections::HashMap;

/// When the migration runs (ms since the epoch): 2026-12-07.
const NOW: i64 = 1_796_600_000_000;

/// The fixture's items, as the old release stored them.
fn fixture() -> Vec<HashMap<String, AttributeValue>> {
    let text = include_str!("../fixtures/table-2026-12-07.json");
    let items: Vec<serde_json::Map<String, Value>> = serde_json::from_str(text).unwrap();
    items
        .into_iter()
        .map(|item| {
            item.into_iter()
                .map(|(name, value)| {
                    let (kind, v) = value.as_object().unwrap().iter().next().unwrap();
                    let value = match kind.as_str() {
                        "S" => AttributeValue::S(v.as_str().unwrap().to_owned()),
                        "N" => AttributeValue::N(v.as_str().unwrap().to_owned()),
                        "BOOL" => AttributeValue::Bool(v.as_bool().unwrap()),
                        other => panic!("no {other} in the fixture"),
                    };
                    (name, value)
                })
                .collect()
        })
        .collect()
}

async fn scan(env: &TestEnv) -> Vec<HashMap<String, AttributeValue>> {
    let output = env
        .clients
        .dynamodb
        .scan()
        .table_name(&env.table)
        .send()
        .await
        .unwrap();
    output.items().to_vec()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The fixture's job of `owner` in `state` whose payload has `upTo`.
fn job_of(items: &[HashMap<String, AttributeValue>], up_to: u64) -> JobId {
    items
        .iter()
        .find(|item| {
            text(item, "payload")
                .and_then(|p| serde_json::from_str::<Value>(p).ok())
                .is_some_and(|p| p["upTo"] == up_to)
        })
        .and_then(|item| text(item, KEY_ATTRIBUTE))
        .unwrap()
        .parse()
        .unwrap()
}

/// `migration`'s pages from where `total` stopped (its `next`; from the
/// start with none) to the end, added to `total`; and how many were run.
async fn run_on(
    migration: &Migration,
    mut total: MigrationPage,
    dry_run: bool,
) -> (MigrationPage, usize) {
    let mut pages = 0;
    loop {
        let page = migration
            .page(total.next.as_deref(), dry_run, NOW)
            .await
            .unwrap();
        total.add(page);
        pages += 1;
        if total.next.is_none() {
            return (total, pages);
        }
    }
}

/// The whole of `migration`, from the start.
async fn run(migration: &Migration, dry_run: bool) -> MigrationPage {
    run_on(migration, MigrationPage::default(), dry_run).await.0
}

#[tokio::test]
async fn a_table_of_the_previous_release_migrates_resumably_and_every_query_works() {
    jobline_tests::require_emulator!();
    let env = TestEnv::new().await;
    let mut items = fixture();
    // As releases before the due index (2026-11-27) and the webhook index
    // (2026-12-07) wrote them: a queued job with no `dueAt`, and the
    // called-back job whose webhook is owed with no `hookShard`.
    let unbounded = job_of(&items, 10);
    let unhooked = job_of(&items, 110);
    for item in &mut items {
        match text(item, KEY_ATTRIBUTE).and_then(|id| id.parse::<JobId>().ok()) {
            Some(id) if id == unbounded => {
                item.remove(DUE_ATTRIBUTE);
                item.remove(SHARD_ATTRIBUTE);
            }
            Some(id) if id == unhooked => {
                item.remove(HOOK_SHARD_ATTRIBUTE);
            }
            _ => {}
        }
    }
    for item in &items {
        env.clients
            .dynamodb
            .put_item()
            .table_name(&env.table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .unwrap();
    }
    let store = env.store();
    let jobs: Vec<JobId> = items
        .iter()
        .filter_map(|item| text(item, KEY_ATTRIBUTE)?.parse().ok())
        .collect();
    assert_eq!(jobs.len(), 15, "the fixture's jobs");
    // The new store reads the old items as they are.
    for id in &jobs {
        store.get(*id).await.unwrap().expect("an old job reads");
    }
    let old_entries = items
        .iter()
        .filter(|item| item.contains_key(STATE_SHARD_ATTRIBUTE))
        .count();
    assert_eq!(
        old_entries, 15,
        "the old release put every job in the state index"
    );

    // A dry run counts and writes nothing.
    let migration = Migration::from_sdk(&env.clients.sdk, &env.table).with_page_items(4);
    let dry = run(&migration, true).await;
    assert_eq!(
        (dry.scanned, dry.rewritten, dry.checkpoints_moved),
        (16, 10, 1)
    );
    assert_eq!(scan(&env).await.len(), 16, "nothing written");
    // Each rewrite: the item (under 1 KB, the continued job's with its
    // checkpoint too) and its state index entry's delete; the checkpoint
    // moved, its item; the due and webhook index entries added, one each.
    assert_eq!(dry.write_units, 10 + 10 + 1 + 2, "{dry:?}");

    // Interrupted after its first page, it resumes where it stopped.
    let first = migration.page(None, false, NOW).await.unwrap();
    assert!(first.next.is_some(), "more pages");
    let (rest, pages) = run_on(&migration, first, false).await;
    let pages = pages + 1;
    assert!(pages >= 4, "pages of 4 items: {pages}");
    assert_eq!(
        (rest.rewritten, rest.checkpoints_moved),
        (10, 1),
        "the resumed run did what the dry run said"
    );
    assert!(
        (16..=17).contains(&rest.scanned),
        "every item once, and maybe a checkpoint item written behind the scan: {}",
        rest.scanned
    );
    // Run again: nothing left to do (one more item now: the checkpoint).
    let again = run(&migration, false).await;
    assert_eq!((again.scanned, again.rewritten), (17, 0));

    // The layout: the state index holds failed and cancelled jobs only, no
    // job item holds a checkpoint over the inline size.
    let migrated = scan(&env).await;
    for item in migrated.iter().filter(|item| item.contains_key("state")) {
        let state: JobState = text(item, "state").unwrap().parse().unwrap();
        let indexed = matches!(state, JobState::Failed | JobState::Cancelled);
        assert_eq!(
            item.contains_key(STATE_SHARD_ATTRIBUTE),
            indexed,
            "{state}: {item:?}"
        );
        assert!(
            text(item, "checkpoint").is_none_or(|c| c.len() <= INLINE_CHECKPOINT_BYTES),
            "{item:?}"
        );
    }
    let checkpoint_items = migrated
        .iter()
        .filter(|item| text(item, KEY_ATTRIBUTE).is_some_and(|k| k.ends_with("#checkpoint")))
        .count();
    assert_eq!(checkpoint_items, 1);

    // Every query works on the migrated table.
    let store = &store;
    let listed = |state| async move {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_by_state(state, after, 3).await.unwrap();
            ids.extend(page.jobs.iter().map(|job| job.id));
            match page.next {
                Some(next) => after = Some(next),
                None => return ids,
            }
        }
    };
    let count = |state| async move { store.count_by_state(state, 100).await.unwrap().count };
    let in_state = |state: JobState| {
        items
            .iter()
            .filter(|item| text(item, "state") == Some(state.as_str()))
            .count()
    };
    for state in [
        JobState::Queued,
        JobState::Running,
        JobState::Failed,
        JobState::Cancelled,
    ] {
        assert_eq!(listed(state).await.len(), in_state(state), "{state}");
        assert_eq!(count(state).await, in_state(state), "{state}");
    }
    assert_eq!(
        store.list("alice", None, 100).await.unwrap().jobs.len(),
        4,
        "a caller's listing"
    );
    // Every entry of the due and webhook indexes, over their 16 shards.
    let mut overdue = 0;
    let mut owed = 0;
    for shard in 0..SHARDS {
        overdue += store
            .overdue(shard, i64::MAX, None, 100)
            .await
            .unwrap()
            .jobs
            .len();
        owed += store
            .owed_webhooks(shard, i64::MAX, None, 100)
            .await
            .unwrap()
            .jobs
            .len();
    }
    assert_eq!(
        overdue,
        in_state(JobState::Queued) + in_state(JobState::Running)
    );
    assert_eq!(owed, 1, "the called-back job whose webhook is owed");
    let due = env.job_item(unbounded).await;
    assert_eq!(
        due.get(DUE_ATTRIBUTE).and_then(|v| v.as_n().ok()),
        Some(&Deadlines::default().queued_at(NOW).to_string()),
        "an unfinished job with no bound is due a whole bound from the migration"
    );
    assert!(store.oldest_queued().await.unwrap().is_some());

    // The continued job resumes from the checkpoint the old release wrote
    // inline, now apart, and the running one (its lease long over) from its
    // small one, still inline.
    let continued = job_of(&items, 90);
    let claimed = store
        .claim(continued, 1_790_000_000_000, 1_790_000_060_000, 1, "new")
        .await
        .unwrap();
    assert_eq!(
        claimed.checkpoint,
        Some(serde_json::json!({"next": 999, "seen": "x".repeat(600)}))
    );
    let running = job_of(&items, 20);
    let taken = store
        .claim(running, 1_790_000_000_000, 1_790_000_060_000, 2, "new")
        .await
        .unwrap();
    assert_eq!(
        taken.checkpoint,
        Some(serde_json::json!({"next": 12345, "found": 17}))
    );
    store
        .finish(
            running,
            taken.attempts,
            "new",
            &Completion::Succeeded(serde_json::json!(1)),
            1_790_000_001_000,
        )
        .await
        .unwrap();
    assert!(!listed(JobState::Running).await.contains(&running));
    env.cleanup().await;
}

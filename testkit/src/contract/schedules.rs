//! The checks of a [`ScheduleStore`] (the schedules table): conditional
//! creates and updates, each caller's partition (owner isolation, listing,
//! count), deletes, what a fire records, and the operators' scan.
//!
//! Each check creates its schedules under owners of its own (a fresh
//! suffix), so the checks may share a store.

use crate::testing::now_ms;
use jobline_core::schedule::SchedulePage;
use jobline_core::schedule::{
    FireCounts, FireOutcome, LastFire, Overlap, REFUSAL_BYTES, ScheduleId, ScheduleRecord,
    ScheduleSpec, ScheduleStore, ScheduleStoreError, fire_job_id,
};
use serde_json::json;
use std::collections::HashSet;

/// An owner no other check uses: `name` and a random suffix.
fn owner(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A new, active schedule of `owner`: every day at 9 in Paris, `primes`,
/// no callback, overlaps allowed.
fn schedule(owner: &str) -> ScheduleRecord {
    ScheduleRecord::new(
        owner,
        ScheduleSpec {
            expression: "cron(0 9 * * ? *)".into(),
            timezone: "Europe/Paris".into(),
            job_type: "primes".into(),
            payload: json!({"upTo": 10}),
            callback_url: None,
            overlap: Overlap::Allow,
        },
        now_ms(),
    )
}

/// Creates `count` new schedules of `owner`.
async fn created(store: &dyn ScheduleStore, owner: &str, count: usize) -> Vec<ScheduleRecord> {
    let mut schedules = Vec::new();
    for _ in 0..count {
        let schedule = schedule(owner);
        store.create(&schedule).await.unwrap();
        schedules.push(schedule);
    }
    schedules
}

/// `schedule` as stored; it must exist.
async fn stored(store: &dyn ScheduleStore, schedule: &ScheduleRecord) -> ScheduleRecord {
    store
        .get(&schedule.owner, schedule.id)
        .await
        .unwrap()
        .expect("the schedule exists")
}

/// The fired outcome of `schedule`'s fire scheduled at `at`.
fn fired(schedule: &ScheduleRecord, at: i64) -> FireOutcome {
    FireOutcome::Fired(LastFire {
        scheduled_at: at,
        job_id: fire_job_id(schedule.id, at),
    })
}

/// Records `outcome` of one of `schedule`'s fires, and reads it back.
async fn after_fire(
    store: &dyn ScheduleStore,
    schedule: &ScheduleRecord,
    outcome: FireOutcome,
) -> ScheduleRecord {
    store
        .record_fire(&schedule.owner, schedule.id, &outcome)
        .await
        .unwrap();
    stored(store, schedule).await
}

/// Every id of `owner`'s listing, paging by `limit`; asserts each page's
/// size and that a page says where the next starts while more follow.
async fn listed(store: &dyn ScheduleStore, owner: &str, limit: usize) -> Vec<ScheduleId> {
    let mut ids = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = store.list(owner, after, limit).await.unwrap();
        assert!(page.schedules.len() <= limit, "{page:?}");
        for schedule in &page.schedules {
            assert_eq!(schedule.owner, owner, "another owner's schedule listed");
            ids.push(schedule.id);
        }
        match page.next {
            Some(next) => {
                assert_eq!(
                    page.schedules.last().map(|s| s.id),
                    Some(next),
                    "a page's next is its last id"
                );
                after = Some(next);
            }
            None => return ids,
        }
    }
    panic!("the listing of {owner} never ended");
}

/// `create` writes only a new key, and on a taken one returns the existing
/// schedule; a schedule reads back as written, every field.
pub async fn create_is_conditional_on_a_new_id(store: &dyn ScheduleStore) {
    let alice = owner("alice");
    let mut first = schedule(&alice);
    first.spec.callback_url = Some("https://hooks.example.com/schedules".into());
    first.spec.overlap = Overlap::Skip;
    first.spec.payload = json!({"upTo": 10, "ratio": 1.5, "tags": ["a", "é"], "none": null});
    first.paused = true;
    first.active_from += 1_000;
    store.create(&first).await.unwrap();
    assert_eq!(stored(store, &first).await, first);

    let mut rival = schedule(&alice);
    rival.id = first.id;
    match store.create(&rival).await {
        Err(ScheduleStoreError::Conflict {
            current: Some(existing),
        }) => assert_eq!(*existing, first),
        other => panic!("expected a conflict with the existing schedule, got {other:?}"),
    }
    assert_eq!(stored(store, &first).await, first);
    assert_eq!(store.get(&alice, ScheduleId::random()).await.unwrap(), None);
}

/// A schedule is reached only through its owner: another owner's get,
/// update, delete and fire of the same id find nothing, and the same id
/// under another owner is another schedule.
pub async fn a_schedule_is_reached_only_through_its_owner(store: &dyn ScheduleStore) {
    let (alice, bob) = (owner("alice"), owner("bob"));
    let hers = schedule(&alice);
    store.create(&hers).await.unwrap();

    assert_eq!(store.get(&bob, hers.id).await.unwrap(), None);
    let mut edit = hers.clone();
    edit.owner.clone_from(&bob);
    edit.version += 1;
    assert!(matches!(
        store.update(&edit).await,
        Err(ScheduleStoreError::Conflict { current: None })
    ));
    assert!(matches!(
        store.record_fire(&bob, hers.id, &fired(&hers, 1)).await,
        Err(ScheduleStoreError::Conflict { current: None })
    ));
    assert!(!store.delete(&bob, hers.id).await.unwrap());
    assert_eq!(stored(store, &hers).await, hers);

    let mut his = schedule(&bob);
    his.id = hers.id;
    his.spec.job_type = "other".into();
    store.create(&his).await.unwrap();
    assert_eq!(stored(store, &his).await, his);
    assert_eq!(stored(store, &hers).await, hers);
}

/// `list` pages through one owner's schedules by id, each once, and never
/// another owner's.
pub async fn list_pages_by_id_within_one_owner(store: &dyn ScheduleStore) {
    let (alice, bob) = (owner("alice"), owner("bob"));
    let mut hers = Vec::new();
    let mut his = Vec::new();
    for i in 0..5 {
        hers.extend(created(store, &alice, 1).await);
        if i < 3 {
            his.extend(created(store, &bob, 1).await);
        }
    }
    let mut expected: Vec<ScheduleId> = hers.iter().map(|s| s.id).collect();
    expected.sort();
    assert_eq!(listed(store, &alice, 2).await, expected);
    let mut expected: Vec<ScheduleId> = his.iter().map(|s| s.id).collect();
    expected.sort();
    assert_eq!(listed(store, &bob, 2).await, expected);
    assert_eq!(listed(store, &bob, 10).await, expected);

    let first = store.list(&alice, None, 2).await.unwrap();
    assert_eq!(first.schedules.len(), 2);
    assert_eq!(first.schedules, {
        let mut sorted = hers.clone();
        sorted.sort_by_key(|s| s.id);
        sorted.truncate(2);
        sorted
    });
    assert!(first.next.is_some(), "more follow the first page");
    let nobody = store.list(&owner("carol"), None, 2).await.unwrap();
    assert_eq!(nobody, SchedulePage::default());
}

/// `count` counts the owner's schedules only, at most `up_to`.
pub async fn count_counts_the_owners_schedules_up_to_the_bound(store: &dyn ScheduleStore) {
    let (alice, bob) = (owner("alice"), owner("bob"));
    created(store, &alice, 3).await;
    created(store, &bob, 2).await;
    assert_eq!(store.count(&alice, 10).await.unwrap(), 3);
    assert_eq!(store.count(&alice, 3).await.unwrap(), 3);
    assert_eq!(store.count(&alice, 2).await.unwrap(), 2);
    assert_eq!(store.count(&alice, 1).await.unwrap(), 1);
    assert_eq!(store.count(&alice, 0).await.unwrap(), 0);
    assert_eq!(store.count(&bob, 10).await.unwrap(), 2);
    assert_eq!(store.count(&owner("carol"), 10).await.unwrap(), 0);
}

/// `update` replaces the definition and state only at the version it
/// read: a stale one is `Conflict` with the current schedule, a missing one
/// `Conflict` with none; what fires recorded (and the creation time) stay
/// as stored.
pub async fn update_is_conditional_on_the_version_and_keeps_the_fire_record(
    store: &dyn ScheduleStore,
) {
    let alice = owner("alice");
    let mut original = schedule(&alice);
    original.spec.callback_url = Some("https://hooks.example.com/s".into());
    store.create(&original).await.unwrap();
    let at = original.active_from + 60_000;
    store
        .record_fire(&alice, original.id, &fired(&original, at))
        .await
        .unwrap();
    let refused = FireOutcome::Refused {
        scheduled_at: at + 60_000,
        reason: "the backlog is full".into(),
    };
    store
        .record_fire(&alice, original.id, &refused)
        .await
        .unwrap();
    let before = stored(store, &original).await;

    let mut edit = original.clone();
    edit.spec = ScheduleSpec {
        expression: "rate(5 minutes)".into(),
        timezone: "UTC".into(),
        job_type: "report".into(),
        payload: json!({"format": "csv"}),
        callback_url: None,
        overlap: Overlap::Skip,
    };
    edit.paused = true;
    edit.updated_at += 5;
    edit.active_from += 7;
    edit.version = 2;
    // Not the update's to change: left as stored.
    edit.created_at -= 1;
    edit.last_fire = None;
    edit.counts = FireCounts::default();
    store.update(&edit).await.unwrap();
    let expected = ScheduleRecord {
        created_at: before.created_at,
        last_fire: before.last_fire,
        counts: before.counts.clone(),
        ..edit.clone()
    };
    assert_eq!(stored(store, &original).await, expected);
    assert!(before.last_fire.is_some() && before.counts.refused == 1);

    // Another edit of version 1, written after the first: refused.
    let mut stale = original.clone();
    stale.version = 2;
    stale.paused = false;
    match store.update(&stale).await {
        Err(ScheduleStoreError::Conflict {
            current: Some(current),
        }) => assert_eq!(*current, expected),
        other => panic!("expected a conflict with the current schedule, got {other:?}"),
    }
    assert_eq!(stored(store, &original).await, expected);

    let mut resumed = expected.clone();
    resumed.paused = false;
    resumed.spec.callback_url = Some("https://hooks.example.com/again".into());
    resumed.version = 3;
    store.update(&resumed).await.unwrap();
    assert_eq!(stored(store, &original).await, resumed);

    let mut never_created = schedule(&alice);
    never_created.version = 2;
    assert!(matches!(
        store.update(&never_created).await,
        Err(ScheduleStoreError::Conflict { current: None })
    ));
    assert_eq!(
        store.get(&alice, never_created.id).await.unwrap(),
        None,
        "a refused update creates nothing"
    );
}

/// `delete` removes the schedule and says whether there was one.
pub async fn delete_reports_whether_one_existed(store: &dyn ScheduleStore) {
    let alice = owner("alice");
    let [gone, kept]: [ScheduleRecord; 2] = created(store, &alice, 2).await.try_into().unwrap();
    assert!(store.delete(&alice, gone.id).await.unwrap());
    assert_eq!(store.get(&alice, gone.id).await.unwrap(), None);
    assert!(!store.delete(&alice, gone.id).await.unwrap());
    assert!(!store.delete(&alice, ScheduleId::random()).await.unwrap());
    assert_eq!(stored(store, &kept).await, kept);
    assert_eq!(store.count(&alice, 10).await.unwrap(), 1);
}

/// A fired outcome becomes the last fire and counts; one scheduled before
/// the last fire (arriving late) counts without moving it back; the same
/// scheduled time again is a duplicate delivery and changes nothing. The
/// definition is untouched.
pub async fn a_fire_moves_the_last_fire_forward_only(store: &dyn ScheduleStore) {
    let alice = owner("alice");
    let schedule = schedule(&alice);
    store.create(&schedule).await.unwrap();
    let t = schedule.active_from;
    let fire = |at: i64| LastFire {
        scheduled_at: at,
        job_id: fire_job_id(schedule.id, at),
    };

    let after = after_fire(store, &schedule, fired(&schedule, t + 2_000)).await;
    assert_eq!(after.last_fire, Some(fire(t + 2_000)));
    assert_eq!(after.counts.fired, 1);

    let after = after_fire(store, &schedule, fired(&schedule, t + 1_000)).await;
    assert_eq!(after.last_fire, Some(fire(t + 2_000)), "never moved back");
    assert_eq!(after.counts.fired, 2, "a late fire still counts");

    let after = after_fire(store, &schedule, fired(&schedule, t + 2_000)).await;
    assert_eq!(after.last_fire, Some(fire(t + 2_000)));
    assert_eq!(after.counts.fired, 2, "a duplicate delivery counts once");

    let after = after_fire(store, &schedule, fired(&schedule, t + 3_000)).await;
    assert_eq!(after.last_fire, Some(fire(t + 3_000)));
    assert_eq!(
        after.counts,
        FireCounts {
            fired: 3,
            ..FireCounts::default()
        }
    );
    assert_eq!(
        ScheduleRecord {
            last_fire: None,
            counts: FireCounts::default(),
            ..after
        },
        schedule,
        "a fire changes nothing of the definition"
    );
}

/// Skipped and refused fires count, set when the last missed fire was
/// scheduled, and a refusal keeps its reason cut to [`REFUSAL_BYTES`] on a
/// char boundary; neither touches the last fire.
pub async fn skipped_and_refused_fires_count_and_keep_the_reason_bounded(
    store: &dyn ScheduleStore,
) {
    let alice = owner("alice");
    let schedule = schedule(&alice);
    store.create(&schedule).await.unwrap();
    let t = schedule.active_from;
    let after = after_fire(
        store,
        &schedule,
        FireOutcome::Skipped {
            scheduled_at: t + 1_000,
        },
    )
    .await;
    assert_eq!(
        after.counts,
        FireCounts {
            skipped: 1,
            last_missed_at: Some(t + 1_000),
            ..FireCounts::default()
        }
    );

    // One byte, then two-byte characters: byte REFUSAL_BYTES is inside one.
    let long = format!("x{}", "é".repeat(REFUSAL_BYTES));
    let after = after_fire(
        store,
        &schedule,
        FireOutcome::Refused {
            scheduled_at: t + 2_000,
            reason: long,
        },
    )
    .await;
    let kept = format!("x{}", "é".repeat((REFUSAL_BYTES - 1) / 2));
    assert_eq!(kept.len(), REFUSAL_BYTES - 1);
    assert_eq!(
        after.counts,
        FireCounts {
            skipped: 1,
            refused: 1,
            last_missed_at: Some(t + 2_000),
            last_refusal: Some(kept),
            ..FireCounts::default()
        }
    );

    let after = after_fire(
        store,
        &schedule,
        FireOutcome::Refused {
            scheduled_at: t + 3_000,
            reason: "the backlog is full".into(),
        },
    )
    .await;
    assert_eq!(after.counts.refused, 2);
    assert_eq!(
        after.counts.last_refusal.as_deref(),
        Some("the backlog is full")
    );

    let after = after_fire(
        store,
        &schedule,
        FireOutcome::Skipped {
            scheduled_at: t + 4_000,
        },
    )
    .await;
    assert_eq!(
        after.counts,
        FireCounts {
            fired: 0,
            skipped: 2,
            refused: 2,
            last_missed_at: Some(t + 4_000),
            last_refusal: Some("the backlog is full".into()),
        },
        "a skip keeps the last refusal's reason"
    );
    assert_eq!(after.last_fire, None);
    assert_eq!(after.version, schedule.version);
}

/// A fire of a schedule deleted meanwhile (or never created) is
/// `Conflict { current: None }`, whatever its outcome, and writes nothing.
pub async fn a_deleted_schedules_fire_is_a_conflict(store: &dyn ScheduleStore) {
    let alice = owner("alice");
    let deleted = schedule(&alice);
    store.create(&deleted).await.unwrap();
    assert!(store.delete(&alice, deleted.id).await.unwrap());
    let never_created = schedule(&alice);
    let t = deleted.active_from;
    for gone in [&deleted, &never_created] {
        let outcomes = [
            fired(gone, t + 1_000),
            FireOutcome::Skipped {
                scheduled_at: t + 1_000,
            },
            FireOutcome::Refused {
                scheduled_at: t + 1_000,
                reason: "the job type is gone".into(),
            },
        ];
        for outcome in outcomes {
            match store.record_fire(&alice, gone.id, &outcome).await {
                Err(ScheduleStoreError::Conflict { current: None }) => {}
                other => panic!("expected a conflict with none for {outcome:?}, got {other:?}"),
            }
        }
        assert_eq!(store.get(&alice, gone.id).await.unwrap(), None);
    }
    assert_eq!(store.count(&alice, 10).await.unwrap(), 0);
}

/// `list_all` pages through every owner's schedules, each once.
pub async fn list_all_pages_over_every_owner(store: &dyn ScheduleStore) {
    let mut mine = HashSet::new();
    for (name, count) in [("alice", 2), ("bob", 3), ("carol", 1)] {
        for schedule in created(store, &owner(name), count).await {
            mine.insert((schedule.owner.clone(), schedule.id));
        }
    }
    let mut seen = HashSet::new();
    let mut after = None;
    for _ in 0..10_000 {
        let (page, next) = store.list_all(after.clone(), 2).await.unwrap();
        assert!(page.len() <= 2, "{page:?}");
        for schedule in page {
            let key = (schedule.owner.clone(), schedule.id);
            assert!(seen.insert(key), "{schedule:?} listed twice");
        }
        match next {
            Some(next) => after = Some(next),
            None => {
                assert!(
                    mine.is_subset(&seen),
                    "missing: {:?}",
                    mine.difference(&seen).collect::<Vec<_>>()
                );
                return;
            }
        }
    }
    panic!("the scan never ended");
}

//! [`MemorySchedules`]: a fake of the schedules port
//! ([`ScheduleStore`]) in a map keyed as the table is, `(owner, id)`, for
//! unit tests.
//!
//! It does what the DynamoDB adapter's conditions do
//! ([`jobline_dynamodb::schedules`]): a create only of a new key, an update
//! only at the version it read, a fired outcome that moves the last fire
//! only forward (the same time again is a duplicate delivery and changes
//! nothing; an earlier one only counts), a refusal cut by the adapter's own
//! [`bound_refusal`]. The same contract suite
//! ([`crate::contract::schedules`]) runs against it and against DynamoDB on
//! the emulator, so the two cannot drift apart.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::schedule::{
    FireOutcome, ScheduleId, SchedulePage, ScheduleRecord, ScheduleStore, ScheduleStoreError,
};
use jobline_dynamodb::schedules::item::bound_refusal;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Schedules by `(owner, id)`, in the table's key order.
type Schedules = BTreeMap<(String, ScheduleId), ScheduleRecord>;

/// Schedule records in a map, with DynamoDB's conditional-write behaviour.
#[derive(Debug, Default)]
pub struct MemorySchedules {
    schedules: Mutex<Schedules>,
    failing: AtomicBool,
}

impl MemorySchedules {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a record as it is, unconditionally.
    pub fn insert(&self, schedule: ScheduleRecord) {
        lock(&self.schedules).insert((schedule.owner.clone(), schedule.id), schedule);
    }

    /// Every record, by `(owner, id)`, as it is now.
    pub fn snapshot(&self) -> Schedules {
        lock(&self.schedules).clone()
    }

    /// Makes every later call fail as if DynamoDB were unreachable.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self, operation: &'static str) -> Result<(), ScheduleStoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(ScheduleStoreError::Aws {
                operation,
                source: "the in-memory schedules are set to fail".into(),
            });
        }
        Ok(())
    }
}

/// A refusal, with the current schedule.
fn conflict(current: Option<&ScheduleRecord>) -> ScheduleStoreError {
    ScheduleStoreError::Conflict {
        current: current.map(|schedule| Box::new(schedule.clone())),
    }
}

/// `key`, owned.
fn key(owner: &str, id: ScheduleId) -> (String, ScheduleId) {
    (owner.to_owned(), id)
}

#[async_trait]
impl ScheduleStore for MemorySchedules {
    async fn create(&self, schedule: &ScheduleRecord) -> Result<(), ScheduleStoreError> {
        self.check("PutItem")?;
        let mut schedules = lock(&self.schedules);
        let key = key(&schedule.owner, schedule.id);
        if let Some(current) = schedules.get(&key) {
            return Err(conflict(Some(current)));
        }
        let mut stored = schedule.clone();
        if let Some(reason) = &stored.counts.last_refusal {
            stored.counts.last_refusal = Some(bound_refusal(reason).to_owned());
        }
        schedules.insert(key, stored);
        Ok(())
    }

    async fn get(
        &self,
        owner: &str,
        id: ScheduleId,
    ) -> Result<Option<ScheduleRecord>, ScheduleStoreError> {
        self.check("GetItem")?;
        Ok(lock(&self.schedules).get(&key(owner, id)).cloned())
    }

    async fn list(
        &self,
        owner: &str,
        after: Option<ScheduleId>,
        limit: usize,
    ) -> Result<SchedulePage, ScheduleStoreError> {
        self.check("Query")?;
        let limit = limit.max(1);
        let schedules = lock(&self.schedules);
        let mut owned: Vec<&ScheduleRecord> = schedules
            .values()
            .filter(|s| s.owner == owner && after.is_none_or(|after| s.id > after))
            .take(limit + 1)
            .collect();
        let next = (owned.len() > limit).then(|| owned[limit - 1].id);
        owned.truncate(limit);
        Ok(SchedulePage {
            schedules: owned.into_iter().cloned().collect(),
            next,
        })
    }

    async fn count(&self, owner: &str, up_to: usize) -> Result<usize, ScheduleStoreError> {
        self.check("Query")?;
        let schedules = lock(&self.schedules);
        Ok(schedules
            .keys()
            .filter(|(o, _)| o == owner)
            .take(up_to)
            .count())
    }

    async fn update(&self, schedule: &ScheduleRecord) -> Result<(), ScheduleStoreError> {
        self.check("UpdateItem")?;
        let mut schedules = lock(&self.schedules);
        match schedules.get_mut(&key(&schedule.owner, schedule.id)) {
            Some(current) if i64::from(current.version) == i64::from(schedule.version) - 1 => {
                current.spec = schedule.spec.clone();
                current.paused = schedule.paused;
                current.updated_at = schedule.updated_at;
                current.active_from = schedule.active_from;
                current.version = schedule.version;
                Ok(())
            }
            current => Err(conflict(current.as_deref())),
        }
    }

    async fn delete(&self, owner: &str, id: ScheduleId) -> Result<bool, ScheduleStoreError> {
        self.check("DeleteItem")?;
        Ok(lock(&self.schedules).remove(&key(owner, id)).is_some())
    }

    async fn record_fire(
        &self,
        owner: &str,
        id: ScheduleId,
        outcome: &FireOutcome,
    ) -> Result<(), ScheduleStoreError> {
        self.check("UpdateItem")?;
        let mut schedules = lock(&self.schedules);
        let schedule = schedules
            .get_mut(&key(owner, id))
            .ok_or(ScheduleStoreError::Conflict { current: None })?;
        let counts = &mut schedule.counts;
        match outcome {
            FireOutcome::Fired(fire) => match schedule.last_fire {
                Some(last) if last.scheduled_at == fire.scheduled_at => {}
                Some(last) if last.scheduled_at > fire.scheduled_at => counts.fired += 1,
                _ => {
                    schedule.last_fire = Some(*fire);
                    counts.fired += 1;
                }
            },
            FireOutcome::Skipped { scheduled_at } => {
                counts.skipped += 1;
                counts.last_missed_at = Some(*scheduled_at);
            }
            FireOutcome::Refused {
                scheduled_at,
                reason,
            } => {
                counts.refused += 1;
                counts.last_missed_at = Some(*scheduled_at);
                counts.last_refusal = Some(bound_refusal(reason).to_owned());
            }
        }
        Ok(())
    }

    async fn list_all(
        &self,
        after: Option<(String, ScheduleId)>,
        limit: usize,
    ) -> Result<(Vec<ScheduleRecord>, Option<(String, ScheduleId)>), ScheduleStoreError> {
        self.check("Scan")?;
        let limit = limit.max(1);
        let schedules = lock(&self.schedules);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<ScheduleRecord> = schedules
            .range((start, Bound::Unbounded))
            .map(|(_, schedule)| schedule.clone())
            .take(limit + 1)
            .collect();
        let next = (page.len() > limit).then(|| {
            let last = &page[limit - 1];
            (last.owner.clone(), last.id)
        });
        page.truncate(limit);
        Ok((page, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract suite, each check against a fresh MemorySchedules.
    mod contract_suite {
        use super::MemorySchedules;
        use crate::contract::fake_suite;

        crate::for_each_schedule_check!(fake_suite, schedules, MemorySchedules);
    }

    #[tokio::test]
    async fn a_failing_store_fails_every_call() {
        let store = MemorySchedules::new();
        store.set_failing(true);
        assert!(matches!(
            store.count("alice", 10).await,
            Err(ScheduleStoreError::Aws {
                operation: "Query",
                ..
            })
        ));
        store.set_failing(false);
        assert_eq!(store.count("alice", 10).await.unwrap(), 0);
    }
}

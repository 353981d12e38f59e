//! `MemoryCallerCounts`: each caller's count of unfinished jobs, and of
//! its uploads of the day, in maps, conditional as the callers table's
//! `UpdateItem`s are.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::caller::{CallerCounts, CallerTally, CountError, DayUploads, UploadQuota};
use std::collections::HashMap;
use std::sync::Mutex;

/// Counts by owner.
#[derive(Debug, Default)]
pub struct MemoryCallerCounts {
    counts: Mutex<HashMap<String, u64>>,
    uploads: Mutex<HashMap<String, DayUploads>>,
}

impl MemoryCallerCounts {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CallerCounts for MemoryCallerCounts {
    async fn admit(&self, owner: &str, limit: u64) -> Result<bool, CountError> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(owner.to_owned()).or_default();
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }

    async fn adjust(&self, owner: &str, delta: i64) -> Result<(), CountError> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(owner.to_owned()).or_default();
        match u64::try_from(delta) {
            Ok(up) => *count += up,
            Err(_) if *count >= delta.unsigned_abs() => *count -= delta.unsigned_abs(),
            Err(_) => {}
        }
        Ok(())
    }

    async fn tally(&self, owner: &str) -> Result<CallerTally, CountError> {
        Ok(CallerTally {
            unfinished: lock(&self.counts).get(owner).copied().unwrap_or(0),
            uploads: lock(&self.uploads).get(owner).copied().unwrap_or_default(),
        })
    }

    async fn set_unfinished(&self, owner: &str, count: u64) -> Result<(), CountError> {
        lock(&self.counts).insert(owner.to_owned(), count);
        Ok(())
    }

    async fn allow_upload(
        &self,
        owner: &str,
        day: i64,
        bytes: u64,
        quota: UploadQuota,
    ) -> Result<bool, CountError> {
        let mut uploads = lock(&self.uploads);
        let counted = uploads.entry(owner.to_owned()).or_default();
        let today = if counted.day == day {
            *counted
        } else if counted.day < day {
            DayUploads {
                day,
                ..DayUploads::default()
            }
        } else {
            // A day before the one counted: refused, as the table's
            // condition refuses to turn a caller's day back.
            return Ok(false);
        };
        if today.uploads >= quota.uploads || today.bytes.saturating_add(bytes) > quota.bytes {
            return Ok(false);
        }
        *counted = DayUploads {
            day,
            uploads: today.uploads + 1,
            bytes: today.bytes + bytes,
        };
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryCallerCounts;

    mod contract {
        use super::*;
        use crate::contract::fake_suite;

        crate::for_each_callers_check!(fake_suite, callers, MemoryCallerCounts);
    }
}

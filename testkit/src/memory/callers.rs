//! `MemoryCallerCounts`: each caller's count of unfinished jobs in a map,
//! conditional as the callers table's `UpdateItem`s are.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::caller::{CallerCounts, CountError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Counts by owner.
#[derive(Debug, Default)]
pub struct MemoryCallerCounts {
    counts: Mutex<HashMap<String, u64>>,
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

    async fn unfinished(&self, owner: &str) -> Result<u64, CountError> {
        Ok(lock(&self.counts).get(owner).copied().unwrap_or(0))
    }
}

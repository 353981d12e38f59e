//! `MemoryTimers`: a fake [`Timers`] engine in a map, by name, for unit
//! tests. It fires nothing (as the emulator); a test reads its timers and
//! fires them itself. It can be set to throttle or fail every call.

use crate::memory::store::lock;
use async_trait::async_trait;
use jobline_core::timers::{Timer, TimerError, Timers};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What every call of a [`MemoryTimers`] does instead of its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimerFault {
    #[default]
    None,
    /// `ThrottlingException`.
    Throttled,
    /// The engine cannot be reached.
    Unavailable,
}

/// Timers in a map, by name.
#[derive(Debug, Default)]
pub struct MemoryTimers {
    timers: Mutex<BTreeMap<String, Timer>>,
    fault: Mutex<TimerFault>,
}

impl MemoryTimers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every timer, by name.
    pub fn timers(&self) -> Vec<Timer> {
        lock(&self.timers).values().cloned().collect()
    }

    /// The timer named `name`, if any.
    pub fn timer(&self, name: &str) -> Option<Timer> {
        lock(&self.timers).get(name).cloned()
    }

    /// Makes every later call fail with `fault` (or work again: `None`).
    pub fn set_fault(&self, fault: TimerFault) {
        *lock(&self.fault) = fault;
    }

    fn check(&self) -> Result<(), TimerError> {
        match *lock(&self.fault) {
            TimerFault::None => Ok(()),
            TimerFault::Throttled => Err(TimerError::Throttled),
            TimerFault::Unavailable => Err(TimerError::Unavailable(
                "the in-memory timers are set to fail".to_owned(),
            )),
        }
    }
}

#[async_trait]
impl Timers for MemoryTimers {
    async fn put(&self, timer: &Timer) -> Result<(), TimerError> {
        self.check()?;
        lock(&self.timers).insert(timer.name.clone(), timer.clone());
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), TimerError> {
        self.check()?;
        lock(&self.timers).remove(name);
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Timer>, TimerError> {
        self.check()?;
        Ok(lock(&self.timers).get(name).cloned())
    }

    async fn names(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), TimerError> {
        self.check()?;
        let timers = lock(&self.timers);
        let names = timers
            .keys()
            .filter(|name| token.as_ref().is_none_or(|after| *name > after))
            .take(100)
            .cloned()
            .collect::<Vec<_>>();
        let next = (names.len() == 100).then(|| names[99].clone());
        Ok((names, next))
    }
}

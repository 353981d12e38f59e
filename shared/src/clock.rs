//! The one clock every time-dependent decision of Jobline reads: leases,
//! run limits, due bounds, backoff, retention, key refreshes, webhook retry
//! windows, the sweeper.
//!
//! [`Clock::system`] is the wall clock. [`Clock::movable`] is the wall
//! clock plus an offset that tests move forward by hours and days
//! ([`Clock::advance`]) instead of sleeping: every clone shares the offset,
//! so the API, the worker, the notifier, the sweeper and the operator tools
//! of one test stack all see the same moved time. It keeps running with the
//! wall clock in between, because the emulator's own timers (SQS visibility
//! and delays) and tokio's sleeps run on real time and cannot be moved.
//! [`Clock::at`] stands still at a given time until advanced, for unit
//! tests that state exact instants.
//!
//! Durations measured within one process (how long a call took, a
//! heartbeat's period) use [`std::time::Instant`] or tokio's timers, not
//! this clock: they are intervals, not points in time a record stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The time, in milliseconds since the Unix epoch: the wall clock, or the
/// wall clock moved by an offset the tests control. Cheap to clone; clones
/// share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Option<Arc<AtomicI64>>,
    /// Whether the clock stands still: then `offset_ms` is the time itself.
    frozen: bool,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self {
            offset_ms: None,
            frozen: false,
        }
    }

    /// The wall clock, movable forward by [`advance`](Self::advance).
    pub fn movable() -> Self {
        Self {
            offset_ms: Some(Arc::new(AtomicI64::new(0))),
            frozen: false,
        }
    }

    /// A clock standing still at `at_ms` until [`advance`](Self::advance)d.
    pub fn at(at_ms: i64) -> Self {
        Self {
            offset_ms: Some(Arc::new(AtomicI64::new(at_ms))),
            frozen: true,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let offset = self
            .offset_ms
            .as_ref()
            .map_or(0, |offset| offset.load(Ordering::SeqCst));
        if self.frozen {
            offset
        } else {
            wall_ms().saturating_add(offset)
        }
    }

    /// Seconds since the Unix epoch (rounded down).
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves the clock forward by `by`, for every clone of it.
    ///
    /// # Panics
    /// On the wall clock ([`Clock::system`]), which cannot be moved.
    pub fn advance(&self, by: Duration) {
        let offset = self
            .offset_ms
            .as_ref()
            .expect("only a Clock::movable() can be moved");
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        offset.fetch_add(by, Ordering::SeqCst);
    }

    /// How far a movable clock has been moved from the wall clock.
    pub fn offset(&self) -> Duration {
        let ms = self
            .offset_ms
            .as_ref()
            .filter(|_| !self.frozen)
            .map_or(0, |offset| offset.load(Ordering::SeqCst));
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// The time from now until `at_ms` on this clock (zero if past): what a
    /// tokio timer waits to reach a point in time a record holds.
    pub fn until(&self, at_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(at_ms.saturating_sub(self.now_ms())).unwrap_or(0))
    }
}

/// The wall clock, in milliseconds since the Unix epoch: the one place
/// Jobline reads it.
fn wall_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movable_clock_moves_every_clone_and_the_system_clock_does_not() {
        let clock = Clock::movable();
        let twin = clock.clone();
        let before = Clock::system().now_ms();
        clock.advance(Duration::from_secs(2 * 86_400));
        let moved = twin.now_ms() - before;
        assert!(
            (2 * 86_400_000..2 * 86_400_000 + 60_000).contains(&moved),
            "moved by {moved} ms"
        );
        assert_eq!(twin.offset(), Duration::from_secs(2 * 86_400));
        assert!(Clock::system().now_ms() - before < 60_000);
        assert_eq!(twin.now_secs(), twin.now_ms().div_euclid(1000));
    }

    #[test]
    fn until_is_zero_for_the_past_and_counts_on_the_moved_clock() {
        let clock = Clock::movable();
        let at = clock.now_ms() + 3_600_000;
        assert!(clock.until(at) > Duration::from_secs(3_590));
        clock.advance(Duration::from_secs(7_200));
        assert_eq!(clock.until(at), Duration::ZERO);
    }

    #[test]
    fn a_clock_at_an_instant_stands_still_until_advanced() {
        let clock = Clock::at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(500));
        assert_eq!(clock.clone().now_ms(), 1_500);
        assert_eq!(clock.now_secs(), 1);
    }

    #[test]
    #[should_panic(expected = "only a Clock::movable() can be moved")]
    fn the_system_clock_cannot_be_moved() {
        Clock::system().advance(Duration::from_secs(1));
    }
}

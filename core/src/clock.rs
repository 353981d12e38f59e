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

    /// The time now as a [`std::time::SystemTime`], for APIs that take one
    /// (SigV4 signing).
    pub fn system_time(&self) -> std::time::SystemTime {
        let ms = u64::try_from(self.now_ms()).unwrap_or(0);
        std::time::UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// The wall clock as a log line's timestamp: the log's own time, never
    /// moved (a moved clock is the system's idea of time, not the log's).
    pub fn log_time() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    /// The time from now until `at_ms` on this clock (zero if past): what a
    /// tokio timer waits to reach a point in time a record holds.
    pub fn until(&self, at_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(at_ms.saturating_sub(self.now_ms())).unwrap_or(0))
    }
}

/// The wall clock, in milliseconds since the Unix epoch: with
/// [`Clock::log_time`], the one place Jobline reads it (a test holds every
/// other source file to that).
fn wall_ms() -> i64 {
    let nanos = Clock::log_time().unix_timestamp_nanos();
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

    /// "No wall clock outside the clock": every other source file reads the
    /// time through a [`Clock`].
    #[test]
    fn no_source_file_reads_the_wall_clock_but_this_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let forbidden = ["SystemTime::now", "now_utc()", "OffsetDateTime::now_utc"];
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if path.is_dir() {
                    if !name.starts_with('.') && name != "target" && name != "node_modules" {
                        stack.push(path);
                    }
                } else if name.ends_with(".rs") && !path.ends_with("core/src/clock.rs") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if forbidden.iter().any(|f| text.contains(f)) {
                        found.push(path.strip_prefix(&root).unwrap().display().to_string());
                    }
                }
            }
        }
        assert!(found.is_empty(), "read the time through a Clock: {found:?}");
    }

    #[test]
    #[should_panic(expected = "only a Clock::movable() can be moved")]
    fn the_system_clock_cannot_be_moved() {
        Clock::system().advance(Duration::from_secs(1));
    }
}

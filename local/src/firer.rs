//! EventBridge Scheduler's part, locally: the emulator stores the timers
//! (the stack's schedule group) but fires none, so this fires them, on the
//! stack's [`Clock`], with the same rules and input as the service:
//!
//! - a recurring timer fires on its expression in its zone, as
//!   `jobline_schedule::Recurrence` computes (the parser the API validates
//!   with); a `rate(…)` counts from when the timer was written (created,
//!   changed, resumed), and fires at once, as the service's does without a
//!   `StartDate`;
//! - a one-time timer fires at its time and is then deleted
//!   (`ActionAfterCompletion` `DELETE`);
//! - a disabled timer fires nothing, and when enabled again fires from then
//!   on: no catch-up;
//! - the input's `<aws.scheduler.scheduled-time>` becomes the fire's
//!   scheduled time, RFC 3339 in UTC to the second;
//! - a fire that fails is tried again at the next tick (the service retries
//!   for up to a day).
//!
//! A tick fires every fire due since the last one, so a test that moves
//! the clock by an hour and ticks gets that hour's fires at once, instead
//! of waiting for them. [`LocalTimers`] is the [`Timers`] the local API
//! writes through: it writes the emulator and keeps what it wrote, so a
//! tick reads the emulator only for timers it has not seen (written by
//! another process) and for their names.

use futures_util::StreamExt;
use jobline_api::Api;
use jobline_core::timers::{SCHEDULED_TIME, Timer, TimerError, TimerTiming, Timers};
use jobline_core::{Clock, Metrics};
use jobline_schedule::Recurrence;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The most fires of one timer a tick computes (a clock moved by weeks
/// with `rate(1 minute)` would owe tens of thousands): the rest come at the
/// next ticks.
pub const FIRES_PER_TICK: usize = 2_000;

/// How many fires a tick runs at once.
pub const FIRE_CONCURRENCY: usize = 16;

/// How often [`Firer::run`] ticks: fires are due on whole minutes at the
/// finest, and the service fires within the minute.
pub const TICK: Duration = Duration::from_secs(1);

/// A timer as this process knows it.
#[derive(Debug, Clone)]
struct Known {
    timer: Timer,
    recurrence: Option<Recurrence>,
    /// When it was written: a `rate(…)` counts from here.
    anchor_ms: i64,
    /// Fires at or before this are computed (fired, or owed in `owed`).
    since_ms: i64,
    /// Fires computed but not yet done (a failed one waits here).
    owed: Vec<i64>,
}

impl Known {
    fn new(timer: Timer, now_ms: i64) -> Self {
        let recurrence = match &timer.timing {
            TimerTiming::Recurring {
                expression,
                timezone,
            } => Recurrence::parse(expression, timezone)
                .map_err(
                    |error| tracing::warn!(%error, timer = %timer.name, "a timer that cannot fire"),
                )
                .ok(),
            TimerTiming::Once { .. } => None,
        };
        Self {
            timer,
            recurrence,
            anchor_ms: now_ms,
            since_ms: now_ms - 1,
            owed: Vec::new(),
        }
    }

    /// Takes the fires due by `now_ms`.
    fn take_due(&mut self, now_ms: i64) -> Vec<i64> {
        if !self.timer.enabled {
            self.since_ms = self.since_ms.max(now_ms);
            return Vec::new();
        }
        let mut due = std::mem::take(&mut self.owed);
        match (&self.timer.timing, &self.recurrence) {
            (TimerTiming::Once { at_ms }, _) => {
                if *at_ms <= now_ms && due.is_empty() && self.since_ms < *at_ms {
                    due.push(*at_ms);
                    self.since_ms = *at_ms;
                }
            }
            (TimerTiming::Recurring { .. }, Some(recurrence)) => {
                let fires =
                    recurrence.fires_between(self.since_ms, now_ms, self.anchor_ms, FIRES_PER_TICK);
                self.since_ms = if fires.len() == FIRES_PER_TICK {
                    fires.last().copied().unwrap_or(now_ms)
                } else {
                    now_ms
                };
                due.extend(fires);
            }
            (TimerTiming::Recurring { .. }, None) => self.since_ms = now_ms,
        }
        due
    }
}

/// The timers the local stack writes: the emulator's, with what this
/// process wrote kept for the firer.
#[derive(Debug)]
pub struct LocalTimers {
    inner: Arc<dyn Timers>,
    clock: Clock,
    known: Mutex<HashMap<String, Known>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalTimers {
    pub fn new(inner: Arc<dyn Timers>, clock: Clock) -> Self {
        Self {
            inner,
            clock,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Brings what is known in step with the group: timers not seen yet
    /// are read, timers gone are forgotten.
    async fn refresh(&self) -> Result<(), TimerError> {
        let mut names = HashSet::new();
        let mut token = None;
        loop {
            let (page, next) = self.inner.names(token).await?;
            names.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let unseen: Vec<String> = {
            let mut known = lock(&self.known);
            known.retain(|name, _| names.contains(name));
            names
                .into_iter()
                .filter(|name| !known.contains_key(name))
                .collect()
        };
        for name in unseen {
            if let Some(timer) = self.inner.get(&name).await? {
                let now = self.clock.now_ms();
                lock(&self.known)
                    .entry(name)
                    .or_insert_with(|| Known::new(timer, now));
            }
        }
        Ok(())
    }

    /// Every fire due by `now_ms`: the timer's name and input, the
    /// scheduled time, and whether the timer is deleted after it.
    fn take_due(&self, now_ms: i64) -> Vec<DueFire> {
        let mut known = lock(&self.known);
        known
            .values_mut()
            .flat_map(|known| {
                let once = matches!(known.timer.timing, TimerTiming::Once { .. });
                let (name, input) = (known.timer.name.clone(), known.timer.input.clone());
                known
                    .take_due(now_ms)
                    .into_iter()
                    .map(move |at_ms| DueFire {
                        name: name.clone(),
                        input: input.replace(SCHEDULED_TIME, &scheduled_time(at_ms)),
                        at_ms,
                        once,
                    })
            })
            .collect()
    }

    /// A fire that failed is owed again.
    fn owe(&self, fire: &DueFire) {
        if let Some(known) = lock(&self.known).get_mut(&fire.name) {
            known.owed.push(fire.at_ms);
        }
    }
}

#[async_trait::async_trait]
impl Timers for LocalTimers {
    async fn put(&self, timer: &Timer) -> Result<(), TimerError> {
        self.inner.put(timer).await?;
        let now = self.clock.now_ms();
        lock(&self.known).insert(timer.name.clone(), Known::new(timer.clone(), now));
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), TimerError> {
        self.inner.delete(name).await?;
        lock(&self.known).remove(name);
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Timer>, TimerError> {
        self.inner.get(name).await
    }

    async fn names(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), TimerError> {
        self.inner.names(token).await
    }
}

/// `at_ms` as the service writes a scheduled time: RFC 3339, UTC, seconds.
fn scheduled_time(at_ms: i64) -> String {
    jiff::Timestamp::from_second(at_ms.div_euclid(1000))
        .map_or_else(|_| at_ms.to_string(), |at| at.to_string())
}

/// One fire to make.
#[derive(Debug, Clone)]
struct DueFire {
    name: String,
    input: String,
    at_ms: i64,
    once: bool,
}

/// What a tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Fires the fire function handled.
    pub fired: usize,
    /// Fires that failed, owed to the next tick.
    pub failed: usize,
}

/// The local stand-in for EventBridge Scheduler's firing: ticks on the
/// stack's clock and hands each fire to the fire function's library.
#[derive(Debug, Clone)]
pub struct Firer {
    timers: Arc<LocalTimers>,
    api: Arc<Api>,
    clock: Clock,
}

impl Firer {
    pub fn new(timers: Arc<LocalTimers>, api: Arc<Api>, clock: Clock) -> Self {
        Self { timers, api, clock }
    }

    /// Fires every fire due now (on the stack's clock) and not yet fired.
    pub async fn tick(&self) -> Result<TickReport, TimerError> {
        self.timers.refresh().await?;
        let due = self.timers.take_due(self.clock.now_ms());
        let results: Vec<(DueFire, bool)> = futures_util::stream::iter(due)
            .map(|fire| async move {
                let mut metrics = Metrics::new();
                let outcome = self.api.fire(&fire.input, &mut metrics).await;
                metrics.emit();
                if let Err(error) = &outcome {
                    tracing::warn!(%error, timer = %fire.name, "a fire failed; it is tried again");
                }
                (fire, outcome.is_ok())
            })
            .buffer_unordered(FIRE_CONCURRENCY)
            .collect()
            .await;
        let mut report = TickReport::default();
        for (fire, ok) in results {
            if !ok {
                report.failed += 1;
                self.timers.owe(&fire);
                continue;
            }
            report.fired += 1;
            if fire.once
                && let Err(error) = self.timers.delete(&fire.name).await
            {
                tracing::warn!(%error, timer = %fire.name, "a fired one-time timer was not deleted");
            }
        }
        Ok(report)
    }

    /// Ticks every [`TICK`] until `stop`.
    pub async fn run(self, mut stop: crate::shutdown::Shutdown) {
        loop {
            tokio::select! {
                () = stop.requested() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            match self.tick().await {
                Ok(report) if report.fired + report.failed > 0 => {
                    tracing::info!(fired = report.fired, failed = report.failed, "timers fired");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not read the timers"),
            }
        }
    }
}

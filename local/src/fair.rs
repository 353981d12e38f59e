//! SQS fair queues, modelled for the local pollers ([`FairShare`]), since
//! the emulator does not model them.
//!
//! Deployed, each job's message is sent with its caller as the message
//! group (`MessageGroupId`), and SQS itself keeps one caller's burst from
//! holding back the others' jobs: a tenant (a message group; a message
//! without one is a tenant of its own) is *noisy* while it has more than
//! 10 % of the queue's in-flight messages and at least 30 of them
//! ([`NOISY_SHARE`], [`NOISY_MIN_IN_FLIGHT`]); then consumers are handed
//! quiet tenants' messages first, whenever there are any, and a noisy
//! tenant's only when none wait (the noisy tenant with the fewest in flight
//! first). Nothing is dropped or throttled: a noisy tenant's messages only
//! wait longer. (SQS also counts a tenant noisy by its share of processing
//! time; this model counts messages in flight only.)
//!
//! Locally, the pollers of one queue share a [`FairShare`]: what they
//! receive waits in it, in arrival order, and each batch is taken from it
//! by those rules. SQS applies them to the whole queue; the local pollers
//! only to what they have received, a window of at most
//! `PollerSettings::fair_window` messages, which [`FairShare::room`] keeps.
//! A message that waited in the window longer than [`MAX_HOLD`] goes first
//! whatever its tenant, so no message outlives the visibility it was
//! received with while it waits.

use jobline_core::queue::{GROUP_ATTRIBUTE, ReceivedMessage};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A tenant is noisy above this share of the in-flight messages…
pub const NOISY_SHARE: f64 = 0.10;
/// …and with at least this many of its own in flight.
pub const NOISY_MIN_IN_FLIGHT: usize = 30;
/// The longest a received message waits in the window before it goes
/// first, whatever its tenant's share.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// A message's tenant: its group, or its own id when it has none.
fn tenant(message: &ReceivedMessage) -> String {
    message
        .attributes
        .get(GROUP_ATTRIBUTE)
        .cloned()
        .unwrap_or_else(|| format!("message:{}", message.message_id))
}

#[derive(Debug, Default)]
struct State {
    /// Received, not yet handed out, in arrival order.
    waiting: VecDeque<(ReceivedMessage, Instant)>,
    /// Handed out and not yet done, by tenant.
    in_flight: HashMap<String, usize>,
}

impl State {
    fn total_in_flight(&self) -> usize {
        self.in_flight.values().sum()
    }

    fn noisy(&self, tenant: &str) -> bool {
        let mine = self.in_flight.get(tenant).copied().unwrap_or(0);
        mine >= NOISY_MIN_IN_FLIGHT && mine as f64 > NOISY_SHARE * self.total_in_flight() as f64
    }

    /// The position of the message to hand out next.
    fn next(&self, now: Instant) -> Option<usize> {
        if let Some((_, arrived)) = self.waiting.front()
            && now.saturating_duration_since(*arrived) >= MAX_HOLD
        {
            return Some(0);
        }
        let tenants: Vec<String> = self.waiting.iter().map(|(m, _)| tenant(m)).collect();
        tenants.iter().position(|t| !self.noisy(t)).or_else(|| {
            // Every waiting tenant is noisy: the one with the fewest in flight.
            (0..tenants.len()).min_by_key(|&i| self.in_flight.get(&tenants[i]).copied())
        })
    }
}

/// The fair-queue model of one queue's pollers (see the module doc).
#[derive(Debug)]
pub struct FairShare {
    state: Mutex<State>,
    window: usize,
}

impl FairShare {
    /// A share whose window holds at most `window` received messages.
    pub fn new(window: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            window: window.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many more messages the window takes.
    pub fn room(&self) -> usize {
        self.window.saturating_sub(self.lock().waiting.len())
    }

    /// How many received messages wait.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Messages received at `now` join the window.
    pub fn arrive(&self, messages: Vec<ReceivedMessage>, now: Instant) {
        self.lock()
            .waiting
            .extend(messages.into_iter().map(|message| (message, now)));
    }

    /// Up to `max` messages to hand out at `now`, by the fair-queue rules;
    /// each counts in flight until [`done`](Self::done).
    pub fn take(&self, max: usize, now: Instant) -> Vec<ReceivedMessage> {
        let mut state = self.lock();
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(index) = state.next(now) else { break };
            let Some((message, _)) = state.waiting.remove(index) else {
                break;
            };
            *state.in_flight.entry(tenant(&message)).or_default() += 1;
            taken.push(message);
        }
        taken
    }

    /// `messages` (handed out by [`take`](Self::take)) are no longer in flight.
    pub fn done(&self, messages: &[ReceivedMessage]) {
        let mut state = self.lock();
        for message in messages {
            let key = tenant(message);
            if let Some(count) = state.in_flight.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    state.in_flight.remove(&key);
                }
            }
        }
    }

    /// Every waiting message, taken out (to give back at a stop).
    pub fn drain(&self) -> Vec<ReceivedMessage> {
        self.lock().waiting.drain(..).map(|(m, _)| m).collect()
    }
}

#[cfg(test)]
mod tests;

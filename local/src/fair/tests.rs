//! The fair-queue model in a simulation on virtual time: pollers take
//! batches of 10 from a queue where one caller has sent 1,000 jobs and
//! another, two seconds later, 10; each batch runs for a second.

use super::*;

const BATCH: usize = 10;
const JOB_MS: u64 = 1_000;
const STEP_MS: u64 = 50;

fn message(id: usize, group: &str) -> ReceivedMessage {
    ReceivedMessage {
        message_id: format!("m{id}"),
        attributes: HashMap::from([(GROUP_ATTRIBUTE.to_owned(), group.to_owned())]),
        ..ReceivedMessage::default()
    }
}

/// How a simulated queue hands out messages.
enum Order {
    /// As a plain standard queue: in arrival order.
    Arrival(VecDeque<ReceivedMessage>),
    /// As a fair queue.
    Fair(FairShare),
}

impl Order {
    fn arrive(&mut self, messages: Vec<ReceivedMessage>, now: Instant) {
        match self {
            Self::Arrival(queue) => queue.extend(messages),
            Self::Fair(share) => share.arrive(messages, now),
        }
    }

    fn take(&mut self, now: Instant) -> Vec<ReceivedMessage> {
        match self {
            Self::Arrival(queue) => (0..BATCH).map_while(|_| queue.pop_front()).collect(),
            Self::Fair(share) => share.take(BATCH, now),
        }
    }

    fn done(&self, batch: &[ReceivedMessage]) {
        if let Self::Fair(share) = self {
            share.done(batch);
        }
    }
}

/// Runs `pollers` pollers until every message is handed out; the quiet
/// caller's longest wait (arrival to hand-out), in ms.
fn quiet_callers_longest_wait(mut order: Order, pollers: usize) -> u64 {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    order.arrive((0..1_000).map(|i| message(i, "noisy")).collect(), at(0));
    let quiet_arrives = 2_000;
    let mut busy_until: Vec<(u64, Vec<ReceivedMessage>)> = vec![(0, Vec::new()); pollers];
    let mut longest = 0;
    let mut quiet_taken = 0;
    let mut now = 0;
    while quiet_taken < 10 {
        if now == quiet_arrives {
            order.arrive(
                (0..10).map(|i| message(1_000 + i, "quiet")).collect(),
                at(now),
            );
        }
        for (free_at, batch) in &mut busy_until {
            if *free_at > now {
                continue;
            }
            order.done(batch);
            *batch = order.take(at(now));
            for taken in batch.iter().filter(|m| tenant(m) == "quiet") {
                quiet_taken += 1;
                longest = longest.max(now - quiet_arrives);
                let _ = taken;
            }
            *free_at = now + JOB_MS;
        }
        now += STEP_MS;
        assert!(now < 120_000, "the simulation did not end");
    }
    longest
}

#[test]
fn a_burst_of_one_caller_does_not_hold_back_anothers_jobs() {
    // 5 pollers: 50 messages in flight, all the noisy caller's at first.
    let plain = quiet_callers_longest_wait(Order::Arrival(VecDeque::new()), 5);
    let fair = quiet_callers_longest_wait(Order::Fair(FairShare::new(2_000)), 5);
    println!(
        "the quiet caller's 10 jobs waited at most {plain} ms in a plain queue, {fair} ms in a fair one"
    );
    // The stated bound: one batch's run, until a poller is free again.
    assert!(fair <= JOB_MS, "waited {fair} ms in the fair queue");
    // Behind the whole burst otherwise: 1,000 jobs at 50 a second.
    assert!(plain >= 15_000, "waited only {plain} ms in the plain queue");
}

#[test]
fn a_caller_is_noisy_only_with_thirty_in_flight_and_over_a_tenth() {
    // 2 pollers: at most 20 in flight, so no caller is noisy, as SQS
    // documents, and the quiet caller waits behind the burst.
    let fair = quiet_callers_longest_wait(Order::Fair(FairShare::new(2_000)), 2);
    assert!(fair >= 15_000, "waited only {fair} ms with 20 in flight");

    let share = FairShare::new(100);
    let now = Instant::now();
    share.arrive((0..40).map(|i| message(i, "a")).collect(), now);
    share.arrive((40..80).map(|i| message(i, "b")).collect(), now);
    let first = share.take(29, now);
    assert!(
        first.iter().all(|m| tenant(m) == "a"),
        "under 30 in flight: arrival order"
    );
    let next = share.take(1, now);
    assert_eq!(tenant(&next[0]), "a", "the 30th of a's in flight");
    let after = share.take(5, now);
    assert!(
        after.iter().all(|m| tenant(m) == "b"),
        "a is noisy now: {after:?}"
    );
    share.done(&first);
    let again = share.take(1, now);
    assert_eq!(
        tenant(&again[0]),
        "a",
        "a quiet again once its jobs are done"
    );
}

#[test]
fn a_message_held_too_long_goes_first_whatever_its_tenant() {
    let share = FairShare::new(100);
    let start = Instant::now();
    share.arrive((0..40).map(|i| message(i, "a")).collect(), start);
    let in_flight = share.take(30, start);
    share.arrive(vec![message(99, "b")], start);
    assert_eq!(tenant(&share.take(1, start)[0]), "b");
    // a is noisy and nothing else waits: a's next, the one in flight least.
    assert_eq!(tenant(&share.take(1, start)[0]), "a");
    share.arrive(vec![message(100, "c")], start + MAX_HOLD);
    let late = share.take(1, start + MAX_HOLD);
    assert_eq!(tenant(&late[0]), "a", "held for MAX_HOLD: first");
    assert_eq!(share.waiting(), 9);
    assert_eq!(share.room(), 91);
    share.done(&in_flight);
    assert_eq!(share.drain().len(), 9);
}

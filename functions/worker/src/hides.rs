//! The claims' visibility changes of one invocation, shared: each claimed
//! record hides its message for its lease, and the claims that finish
//! close together do it in one `ChangeMessageVisibilityBatch` request
//! (up to [`SQS_MAX_BATCH_ENTRIES`]) rather than a `ChangeMessageVisibility`
//! each. A batch of 10 records at 10 at once costs one request (two when
//! some claims finish far apart), and at 8 at once one for the first 8 and
//! one or two for the records that start as slots free.
//!
//! [`ClaimHides`] lives for one invocation ([`Worker::process_batch`](crate::Worker::process_batch)).
//! A record enters its claim step ([`ClaimHides::claiming`]) just before its
//! claim, and leaves it either by putting its hide in ([`Claiming::hide`],
//! once the job is its own) or, when it will not run the job (its claim
//! refused or failed, a cancel or the run limit to record), by dropping the
//! [`Claiming`]. A hide put in waits, and the hides waiting are sent as one
//! request, by whichever of their records comes first to one of:
//!
//! - [`SQS_MAX_BATCH_ENTRIES`] hides are waiting;
//! - no record is in its claim step any more (after one yield to the
//!   runtime, so that records started in the same round, whose claims may
//!   answer at once, enter theirs first);
//! - [`WINDOW`] has passed since the record put its hide in (an interval,
//!   so on tokio's timer, as `jobline_core::clock` prescribes; tests with a
//!   paused clock advance it without sleeping).
//!
//! Only a claimed record's message is ever hidden: records still waiting
//! for a concurrency slot have not entered their claim step, and are not
//! waited for. A record's handler starts once its own hide was answered, as
//! it did after its own request, at most [`WINDOW`] (and the request) later,
//! far within its lease. It waits, rather than leaving its hide to be sent
//! later, because a job that ends at once sets its message's visibility
//! again (a retry's backoff, a dead letter's 0), which a late hide to the
//! lease would undo. The answer of each entry is its record's: an entry
//! SQS failed, or every entry of a request that failed as a whole, is
//! handled as a failed `ChangeMessageVisibility` is (logged; the queue's own
//! visibility timeout still brings the message back).
//!
//! The other visibility changes (a retry's backoff, a dead letter's 0, each
//! heartbeat's renewal) stay one request each: they happen apart in time.

use jobline_core::JobQueue;
use jobline_core::limits::SQS_MAX_BATCH_ENTRIES;
use jobline_core::queue::VisibilityChange;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// How long a hide waits for the claims still in flight to join its batch:
/// about one DynamoDB round trip in a region, so that claims sent together
/// share a request though their answers come a few ms apart. It delays a
/// handler's start at most this much, once, which its lease (seconds)
/// does not notice.
pub(crate) const WINDOW: Duration = Duration::from_millis(10);

/// Why a hide did not land.
pub(crate) type HideError = String;

/// The claims' hides of one invocation, sent together
/// ([module docs](self)).
pub(crate) struct ClaimHides {
    queue: Arc<dyn JobQueue>,
    state: Mutex<State>,
    /// Wakes the waiting hides when the last claim step ends without a hide.
    claims_over: Notify,
}

impl std::fmt::Debug for ClaimHides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimHides").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Records in their claim step.
    claiming: usize,
    /// The hides waiting to be sent, at most [`SQS_MAX_BATCH_ENTRIES`].
    waiting: Vec<Waiting>,
    /// How many batches were taken to be sent: a hide put in while it was
    /// `n` is taken once it is no longer `n`.
    taken: u64,
}

struct Waiting {
    change: VisibilityChange,
    answer: oneshot::Sender<Result<(), HideError>>,
}

/// A record in its claim step: drop it to leave the step without a hide.
#[derive(Debug)]
pub(crate) struct Claiming<'h> {
    hides: &'h ClaimHides,
}

impl ClaimHides {
    pub(crate) fn new(queue: Arc<dyn JobQueue>) -> Self {
        Self {
            queue,
            state: Mutex::default(),
            claims_over: Notify::new(),
        }
    }

    /// A record enters its claim step.
    pub(crate) fn claiming(&self) -> Claiming<'_> {
        self.lock().claiming += 1;
        Claiming { hides: self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `batch` as one request and answers each of its hides.
    async fn send(&self, batch: Vec<Waiting>) {
        let changes: Vec<VisibilityChange> = batch.iter().map(|w| w.change.clone()).collect();
        match self.queue.change_visibility_batch(&changes).await {
            Ok(failed) => {
                for waiting in batch {
                    let answer = if failed.contains(&waiting.change.receipt_handle) {
                        Err("SQS failed its entry of a ChangeMessageVisibilityBatch".to_owned())
                    } else {
                        Ok(())
                    };
                    let _ = waiting.answer.send(answer);
                }
            }
            Err(error) => {
                for waiting in batch {
                    let _ = waiting.answer.send(Err(error.to_string()));
                }
            }
        }
    }
}

impl Claiming<'_> {
    /// Leaves the claim step by hiding the message received under `receipt`
    /// for `secs`, in a batch with the other claims' hides; returns once
    /// that batch was answered.
    pub(crate) async fn hide(self, receipt: &str, secs: u32) -> Result<(), HideError> {
        let hides = self.hides;
        let (answer, mut answered) = oneshot::channel();
        let mine = {
            let mut state = hides.lock();
            state.waiting.push(Waiting {
                change: VisibilityChange {
                    receipt_handle: receipt.to_owned(),
                    secs,
                },
                answer,
            });
            state.taken
        };
        // Out of the claim step (and any hides waiting for it woken).
        drop(self);
        let until = Instant::now() + WINDOW;
        let mut yielded = false;
        loop {
            // Registered before the state is read, so no wake-up is missed.
            let claims_over = hides.claims_over.notified();
            tokio::pin!(claims_over);
            claims_over.as_mut().enable();
            let next = {
                let mut state = hides.lock();
                if state.taken != mine {
                    Next::Answer
                } else if state.waiting.len() >= SQS_MAX_BATCH_ENTRIES
                    || (state.claiming == 0 && yielded)
                    || Instant::now() >= until
                {
                    state.taken += 1;
                    Next::Send(std::mem::take(&mut state.waiting))
                } else if state.claiming == 0 {
                    Next::Yield
                } else {
                    Next::Wait
                }
            };
            match next {
                Next::Answer => break,
                Next::Send(batch) => {
                    hides.send(batch).await;
                    break;
                }
                Next::Yield => {
                    tokio::task::yield_now().await;
                    yielded = true;
                }
                Next::Wait => {
                    tokio::select! {
                        () = &mut claims_over => {}
                        () = tokio::time::sleep_until(until) => {}
                        answer = &mut answered => {
                            return answer.unwrap_or_else(|_| Err(abandoned()));
                        }
                    }
                }
            }
        }
        answered.await.unwrap_or_else(|_| Err(abandoned()))
    }
}

/// What a waiting hide does next.
enum Next {
    /// Another record took its batch: wait for the answer.
    Answer,
    /// Send the hides waiting, its own among them.
    Send(Vec<Waiting>),
    /// No claim is in flight: let the records of this round start theirs.
    Yield,
    /// Claims are in flight: wait for them to end, or for the window.
    Wait,
}

fn abandoned() -> HideError {
    "the batch request was abandoned".to_owned()
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        let mut state = self.hides.lock();
        state.claiming -= 1;
        if state.claiming == 0 && !state.waiting.is_empty() {
            self.hides.claims_over.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_testkit::memory::queue::MemoryQueue;

    fn hides(queue: &Arc<MemoryQueue>) -> ClaimHides {
        ClaimHides::new(queue.clone())
    }

    fn batch_sizes(queue: &MemoryQueue) -> Vec<usize> {
        queue.visibility_batches().iter().map(Vec::len).collect()
    }

    #[tokio::test]
    async fn a_lone_claim_hides_at_once() {
        let queue = Arc::new(MemoryQueue::new());
        let hides = hides(&queue);
        hides.claiming().hide("r", 5).await.unwrap();
        assert_eq!(queue.visibility_batches(), [vec![("r".to_owned(), 5)]]);
    }

    #[tokio::test]
    async fn hides_wait_for_the_claims_in_flight_and_go_together() {
        let queue = Arc::new(MemoryQueue::new());
        let hides = hides(&queue);
        let (first, second, third) = (hides.claiming(), hides.claiming(), hides.claiming());
        let hidden = async {
            tokio::join!(first.hide("a", 5), second.hide("b", 5), async {
                // The third claim is refused: no hide, and the others go.
                tokio::task::yield_now().await;
                drop(third);
            })
        };
        let (a, b, ()) = hidden.await;
        assert_eq!((a, b), (Ok(()), Ok(())));
        assert_eq!(batch_sizes(&queue), [2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_that_takes_long_is_not_waited_for_past_the_window() {
        let queue = Arc::new(MemoryQueue::new());
        let hides = hides(&queue);
        let slow = hides.claiming();
        let started = Instant::now();
        hides.claiming().hide("a", 5).await.unwrap();
        let waited = started.elapsed();
        assert!(WINDOW <= waited && waited < WINDOW * 2, "{waited:?}");
        slow.hide("b", 5).await.unwrap();
        assert_eq!(batch_sizes(&queue), [1, 1]);
    }

    #[tokio::test]
    async fn ten_hides_fill_a_request_and_the_next_go_in_another() {
        let queue = Arc::new(MemoryQueue::new());
        let hides = hides(&queue);
        let claims: Vec<_> = (0..12).map(|_| hides.claiming()).collect();
        let hidden = futures_util::future::join_all(
            claims
                .into_iter()
                .enumerate()
                .map(|(i, claim)| async move { claim.hide(&format!("r{i}"), 5).await }),
        )
        .await;
        assert!(hidden.iter().all(Result::is_ok), "{hidden:?}");
        assert_eq!(batch_sizes(&queue), [10, 2]);
    }

    #[tokio::test]
    async fn each_hide_gets_its_entrys_answer_or_the_requests_failure() {
        let queue = Arc::new(MemoryQueue::new());
        queue.push("body");
        let receive = jobline_core::queue::Receive {
            max_messages: 1,
            wait_secs: 0,
            visibility_secs: 30,
        };
        let gone = queue.receive(receive).await.unwrap()[0]
            .receipt_handle
            .clone();
        queue.delete(std::slice::from_ref(&gone)).await.unwrap();
        let hides = hides(&queue);
        let (one, two) = (hides.claiming(), hides.claiming());
        let (kept, lost) = tokio::join!(one.hide("r", 5), two.hide(&gone, 5));
        assert_eq!(kept, Ok(()));
        assert!(lost.unwrap_err().contains("failed its entry"));
        assert_eq!(batch_sizes(&queue), [2]);

        queue.set_failing(true);
        let (one, two) = (hides.claiming(), hides.claiming());
        let (a, b) = tokio::join!(one.hide("a", 5), two.hide("b", 5));
        for error in [a.unwrap_err(), b.unwrap_err()] {
            assert!(error.contains("set to fail"), "{error}");
        }
    }
}

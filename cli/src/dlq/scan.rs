//! The scan every DLQ command starts with: receive the whole DLQ (or up to
//! the limit) and pick the messages a [`Selection`] wants.
//!
//! Receives come in batches of 10 (SQS's cap per request) with a long-poll
//! wait of one second (a short poll samples only some SQS servers and may
//! answer empty while messages remain). A standard queue delivers at least
//! once, and a message whose visibility ran out comes back, so messages are
//! de-duplicated by message id, keeping the newest receipt handle (the only
//! one that works). The scan stops when a receive is empty, the limit is
//! reached, or a receive brings nothing new; it holds everything it received
//! hidden until it ends, extending the hold while it runs.

use super::{DeadBody, DeadLetter, DeadLetterQueue, DlqError, Selection, Tally};
use jobline_core::queue::{Receive, ReceivedMessage};
use jobline_core::{JobMessage, StoreError};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Instant;

/// SQS returns at most 10 messages per receive.
const RECEIVE_BATCH: usize = 10;
/// Long-poll wait per receive, so an empty answer means an empty queue.
const RECEIVE_WAIT_SECS: i32 = 1;

/// The messages a scan holds hidden, in the order received.
#[derive(Debug)]
pub(super) struct Scan {
    pub selected: Vec<DeadLetter>,
    pub unselected: Vec<ReceivedMessage>,
    /// When the hold on every message received ends (at the earliest).
    pub held_until: Instant,
    /// The passed-over and limit counts; `not_attempted` is for the work.
    pub tally: Tally,
}

/// A received message while a scan runs.
enum Scanned {
    Selected(DeadLetter),
    /// The filters do not match it.
    PassedOver(ReceivedMessage),
    /// Received after the limit was reached; not looked at.
    BeyondLimit(ReceivedMessage),
}

impl Scanned {
    fn message(&self) -> &ReceivedMessage {
        match self {
            Self::Selected(letter) => &letter.message,
            Self::PassedOver(message) | Self::BeyondLimit(message) => message,
        }
    }

    fn message_mut(&mut self) -> &mut ReceivedMessage {
        match self {
            Self::Selected(letter) => &mut letter.message,
            Self::PassedOver(message) | Self::BeyondLimit(message) => message,
        }
    }
}

impl DeadLetterQueue<'_> {
    /// Receives the whole DLQ (or up to the limit) and reads the job of each
    /// message that may be selected. On an error, everything received is made
    /// visible again.
    pub(super) async fn scan(&self, selection: &Selection) -> Result<Scan, DlqError> {
        let mut scanned: Vec<Scanned> = Vec::new();
        let mut by_message_id: HashMap<String, usize> = HashMap::new();
        let mut selected = 0;
        let limit = selection.limit.map_or(usize::MAX, NonZeroUsize::get);
        let mut held_until = Instant::now() + self.hold();
        while selected < limit {
            let received = scanned
                .iter()
                .map(|entry| entry.message().receipt_handle.as_str());
            if let Err(error) = self.keep_hidden(received, &mut held_until).await {
                return Err(self.abort(&scanned, error.into()).await);
            }
            let wanted = if selection.is_filtered() {
                RECEIVE_BATCH
            } else {
                RECEIVE_BATCH.min(limit - selected)
            };
            let request = Receive {
                max_messages: i32::try_from(wanted).unwrap_or(10),
                wait_secs: RECEIVE_WAIT_SECS,
                visibility_secs: i32::try_from(self.hold_secs).unwrap_or(i32::MAX),
            };
            let batch = match self.dlq.receive(request).await {
                Ok(batch) => batch,
                Err(error) => return Err(self.abort(&scanned, error.into()).await),
            };
            let mut new_messages = 0;
            for message in batch {
                if let Some(&index) = by_message_id.get(&message.message_id) {
                    // Received again: only the newest receipt handle works.
                    *scanned[index].message_mut() = message;
                    continue;
                }
                new_messages += 1;
                by_message_id.insert(message.message_id.clone(), scanned.len());
                let entry = if selected < limit {
                    match self.classify(message, selection).await {
                        Ok(entry) => entry,
                        Err((message, error)) => {
                            scanned.push(Scanned::PassedOver(message));
                            return Err(self.abort(&scanned, error.into()).await);
                        }
                    }
                } else {
                    Scanned::BeyondLimit(message)
                };
                if matches!(entry, Scanned::Selected(_)) {
                    selected += 1;
                }
                scanned.push(entry);
            }
            if new_messages == 0 {
                break;
            }
        }
        let mut scan = Scan {
            selected: Vec::new(),
            unselected: Vec::new(),
            held_until,
            tally: Tally {
                filters: selection.filter_flags(),
                limit_reached: selection.limit.filter(|_| selected == limit),
                ..Tally::default()
            },
        };
        for entry in scanned {
            match entry {
                Scanned::Selected(letter) => scan.selected.push(letter),
                Scanned::PassedOver(message) => {
                    scan.tally.passed_over += 1;
                    scan.unselected.push(message);
                }
                Scanned::BeyondLimit(message) => {
                    scan.tally.beyond_limit += 1;
                    scan.unselected.push(message);
                }
            }
        }
        Ok(scan)
    }

    /// Decodes a message and, when the selection may want it, reads its job.
    async fn classify(
        &self,
        message: ReceivedMessage,
        selection: &Selection,
    ) -> Result<Scanned, (ReceivedMessage, StoreError)> {
        let job_id = match JobMessage::decode(&message.body) {
            Ok(decoded) => decoded.job_id,
            Err(malformed) if !selection.is_filtered() => {
                return Ok(Scanned::Selected(DeadLetter {
                    message,
                    body: DeadBody::Malformed(malformed.to_string()),
                }));
            }
            Err(_) => return Ok(Scanned::PassedOver(message)),
        };
        if !selection.wants_job(job_id) {
            return Ok(Scanned::PassedOver(message));
        }
        let record = match self.store.get(job_id).await {
            Ok(record) => record,
            Err(error) => return Err((message, error)),
        };
        if !selection.wants_type(record.as_ref()) {
            return Ok(Scanned::PassedOver(message));
        }
        Ok(Scanned::Selected(DeadLetter {
            message,
            body: DeadBody::Job {
                job_id,
                record: record.map(Box::new),
            },
        }))
    }

    /// Makes everything a failed scan received visible again.
    async fn abort(&self, scanned: &[Scanned], error: DlqError) -> DlqError {
        for entry in scanned {
            self.make_visible(&entry.message().receipt_handle).await;
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::ReplayReport;
    use crate::dlq::fixtures::*;
    use jobline_core::{JobId, JobState};

    #[tokio::test]
    async fn filters_and_limit_select_the_right_messages() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let primes: Vec<JobId> = (0..3)
            .map(|_| insert(&store, "primes", JobState::Failed, None))
            .collect();
        let csv = insert(&store, "csv-stats", JobState::Failed, None);
        dlq.push("junk");
        for id in primes.iter().chain([&csv]) {
            push_job(&dlq, *id);
        }
        let replay = |selection: Selection| {
            let tools = tools(&dlq, &queue, &store);
            async move { tools.replay(&selection, true).await.unwrap() }
        };
        let selected = |report: ReplayReport| -> Vec<Option<JobId>> {
            report.entries.iter().map(|e| e.job_id).collect()
        };

        let by_id = replay(Selection {
            job_ids: vec![primes[1], csv],
            ..Selection::default()
        })
        .await;
        assert_eq!(selected(by_id), [Some(primes[1]), Some(csv)]);

        let by_type = replay(Selection {
            job_types: vec!["csv-stats".into()],
            ..Selection::default()
        })
        .await;
        assert_eq!(selected(by_type), [Some(csv)]);

        let both = replay(Selection {
            job_ids: vec![primes[0], csv],
            job_types: vec!["primes".into()],
            ..Selection::default()
        })
        .await;
        assert_eq!(selected(both), [Some(primes[0])]);

        let limited = replay(Selection::all(limit(2))).await;
        assert_eq!(
            selected(limited),
            [None, Some(primes[0])],
            "malformed counts"
        );

        let filtered_and_limited = replay(Selection {
            job_types: vec!["primes".into()],
            limit: limit(2),
            ..Selection::default()
        })
        .await;
        assert_eq!(
            selected(filtered_and_limited),
            [Some(primes[0]), Some(primes[1])]
        );
        assert!(
            all_visible(&dlq),
            "unselected messages are made visible again"
        );
        assert_eq!(dlq.contents().len(), 5);

        // A real replay with a filter touches only the selected job.
        let report = tools(&dlq, &queue, &store)
            .replay(
                &Selection {
                    job_ids: vec![primes[2]],
                    ..Selection::default()
                },
                false,
            )
            .await
            .unwrap();
        assert_eq!(report.replayed(), 1);
        assert_eq!(queue.sent(), [JobMessage::new(primes[2])]);
        assert_eq!(dlq.contents().len(), 4);
        assert!(all_visible(&dlq));
        assert_eq!(record(&store, primes[0]).state, JobState::Failed);
        assert_eq!(store.writes(), 1, "only the real replay's requeue");
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn a_scan_counts_what_it_passed_over_and_what_lay_beyond_the_limit() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        dlq.push("junk");
        let primes: Vec<JobId> = (0..3)
            .map(|_| insert(&store, "primes", JobState::Failed, None))
            .collect();
        for id in &primes {
            push_job(&dlq, *id);
        }
        push_job(&dlq, insert(&store, "csv-stats", JobState::Failed, None));
        let selection = Selection {
            job_types: vec!["primes".into()],
            limit: limit(1),
            ..Selection::default()
        };

        let scan = tools(&dlq, &queue, &store).scan(&selection).await.unwrap();

        let selected: Vec<_> = scan.selected.iter().map(DeadLetter::job_id).collect();
        assert_eq!(selected, [Some(primes[0])]);
        assert_eq!(scan.unselected.len(), 4);
        assert_eq!(
            scan.tally,
            Tally {
                passed_over: 1,
                filters: "--type primes".into(),
                limit_reached: limit(1),
                beyond_limit: 3,
                not_attempted: 0,
            },
            "the junk did not match; the rest came after the limit"
        );
        assert!(
            dlq.contents().iter().all(|(_, visible)| !visible),
            "a scan holds everything it received"
        );
    }

    #[tokio::test]
    async fn a_scan_that_fails_makes_everything_visible_again() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        dlq.push("junk");
        push_job(&dlq, insert(&store, "primes", JobState::Failed, None));
        store.set_failing(true);

        let error = tools(&dlq, &queue, &store)
            .scan(&Selection::default())
            .await
            .unwrap_err();

        assert!(matches!(error, DlqError::Store(_)), "{error:?}");
        assert!(all_visible(&dlq));
        assert_eq!(dlq.contents().len(), 2);
        assert_only_made_visible(&[&dlq]);
    }
}

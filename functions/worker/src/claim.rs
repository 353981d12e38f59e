//! Claiming a job for one delivery: the conditional claim (and the replay
//! a console redrive calls for), the short lease and the message's
//! visibility that follows it (set with the invocation's other claims,
//! [`crate::hides`]), and what a refused claim means: a duplicate
//! of a finished job (acknowledged), a job a live attempt holds (put off
//! until its lease ends, and never dead-lettered), a record not written yet
//! or gone. A record there is no time left to start goes on as a new
//! message ([`Worker::send_again`]).

use crate::delivery::Delivery;
use crate::hides::Claiming;
use crate::outcome::visibility_unchanged;
use crate::{Disposition, Worker, heartbeat};
use jobline_core::job::ClaimRefusal;
use jobline_core::limits::SQS_MAX_DELAY_SECS;
use jobline_core::{JobId, JobMessage, JobRecord, Metric, StoreError};
use std::time::Duration;

/// How many times the claim of a message's last delivery is tried before
/// the delivery gives up ([`Worker::claim`]).
pub(crate) const LAST_DELIVERY_CLAIM_TRIES: u32 = 3;

impl Worker {
    /// A record that must not count toward the DLQ (there is no time left
    /// to start it, or it is a duplicate of a running job on its last
    /// delivery): sent again as a new message (receive count 1) and
    /// acknowledged, its outcome `sent`. The new message may wait out a
    /// whole retention with its deliveries counted afresh, so the job's time
    /// bound is renewed first; if that or the send fails, the record is
    /// reported failed instead (a finished or missing job needs no renewal).
    pub(crate) async fn send_again(
        &self,
        delivery: &mut Delivery<'_>,
        message: &JobMessage,
        sent: &'static str,
    ) -> Disposition {
        match self
            .store
            .renew_due(message.job_id, self.clock.now_ms())
            .await
        {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(error) => {
                tracing::warn!(%error, jobId = %message.job_id, "could not renew a late job's time bound");
                delivery.outcome = "not-started";
                return self.retry_later(delivery, None).await;
            }
        }
        match self.queue.send(message).await {
            Ok(_) => {
                delivery.outcome = sent;
                Disposition::Acknowledged
            }
            Err(error) => {
                tracing::warn!(%error, messageId = delivery.message_id(), "could not send a late record again");
                delivery.outcome = "not-started";
                Disposition::Retry
            }
        }
    }

    /// How long a claim or a heartbeat leases its job
    /// ([`heartbeat::lease_ms`]).
    pub(crate) fn lease_ms(&self) -> i64 {
        heartbeat::lease_ms(self.heartbeat_period())
    }

    pub(crate) fn heartbeat_period(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.heartbeat_secs.max(1)))
    }

    /// Hides the message until just after the lease ending at
    /// `lease_until_ms`: if the worker dies, the message comes back once
    /// another delivery may claim the job. Ends the claim step: the hide
    /// goes in one request with those of the invocation's other claims that
    /// end close to it ([`crate::hides`]), and a failed entry is handled as
    /// a failed [`set_visibility`](Self::set_visibility) is.
    pub(crate) async fn hide_for_lease(
        &self,
        delivery: &Delivery<'_>,
        claiming: Claiming<'_>,
        lease_until_ms: i64,
    ) {
        let Some(receipt) = delivery.record.receipt_handle.as_deref() else {
            return;
        };
        let secs = heartbeat::lease_visibility_secs(&self.clock, lease_until_ms);
        let secs = self.visibility_secs(delivery, secs);
        if let Err(error) = claiming.hide(receipt, secs).await {
            visibility_unchanged(delivery, &error);
        }
    }

    /// One claim of job `id` by `delivery`, leasing it from now: the time
    /// of the claim, the end of its lease, and what the store answered.
    pub(crate) async fn try_claim(
        &self,
        delivery: &Delivery<'_>,
        id: JobId,
    ) -> (i64, i64, Result<JobRecord, StoreError>) {
        let now = self.clock.now_ms();
        let lease_until_ms = now.saturating_add(self.lease_ms());
        let claimed = self
            .store
            .claim(
                id,
                now,
                lease_until_ms,
                delivery.receive_count,
                &delivery.token,
            )
            .await;
        (now, lease_until_ms, claimed)
    }

    /// Claims job `id` for this delivery, in its claim step (`claiming`,
    /// handed back with the job and the end of its lease; it ends as soon
    /// as the claim is refused or fails). A redrive of the job's dead
    /// letter replays it first; anything else that refuses the claim
    /// decides the record's disposition instead.
    ///
    /// On the message's last delivery a claim that could not reach the
    /// store is tried again at once, up to [`LAST_DELIVERY_CLAIM_TRIES`]
    /// times in all: given up, that delivery would take the message to the
    /// DLQ with the job unclaimed, left to the sweeper at its time bound
    /// (days away). A try whose write landed with its answer lost is found
    /// by the next, which returns the job ([`WorkerStore::claim`] is
    /// idempotent for one delivery). Earlier deliveries leave it to the
    /// next one, as SQS would.
    ///
    /// [`WorkerStore::claim`]: jobline_core::WorkerStore::claim
    pub(crate) async fn claim<'h>(
        &self,
        delivery: &mut Delivery<'_>,
        id: JobId,
        claiming: Claiming<'h>,
    ) -> Result<(JobRecord, i64, Claiming<'h>), Disposition> {
        let (mut now, mut lease_until_ms, mut claimed) = self.try_claim(delivery, id).await;
        let mut tries = 1;
        while tries < LAST_DELIVERY_CLAIM_TRIES
            && delivery.receive_count >= self.config.max_receive_count
            && matches!(claimed, Err(StoreError::Aws { .. }))
        {
            if let Err(error) = &claimed {
                tracing::warn!(%error, jobId = %id, messageId = delivery.message_id(), tries, "claim failed on the last delivery; trying again");
            }
            tries += 1;
            (now, lease_until_ms, claimed) = self.try_claim(delivery, id).await;
        }
        if let Err(StoreError::Conflict { current: Some(job) }) = &claimed
            && delivery
                .sent_at_ms
                .is_some_and(|sent| job.redriven_by(sent))
        {
            if let Err(error) = self.store.replay(id, self.clock.now_ms()).await {
                drop(claiming);
                tracing::warn!(%error, jobId = %id, messageId = delivery.message_id(), "could not replay a redriven job");
                delivery.outcome = "replay-failed";
                return Err(self.retry_later(delivery, None).await);
            }
            tracing::debug!(jobId = %id, messageId = delivery.message_id(), "a redriven message replays its dead-lettered job");
            (now, lease_until_ms, claimed) = self.try_claim(delivery, id).await;
        }
        let error = match claimed {
            Ok(job) => return Ok((job, lease_until_ms, claiming)),
            Err(error) => error,
        };
        // No hide to wait for: the other claims' hides need not wait for
        // what follows.
        drop(claiming);
        match error {
            StoreError::Conflict { current } => {
                Err(self.refused(delivery, current.as_deref(), now).await)
            }
            error @ StoreError::Invalid { .. } => {
                // No retry can make the claim valid: leave the job as it is.
                tracing::error!(%error, jobId = %id, messageId = delivery.message_id(), "the store refused the job's claim as invalid; dropping the message");
                delivery.outcome = "unclaimable";
                Err(Disposition::Acknowledged)
            }
            error => {
                tracing::warn!(%error, jobId = %id, messageId = delivery.message_id(), "claim failed");
                delivery.outcome = "claim-failed";
                Err(self.retry_later(delivery, None).await)
            }
        }
    }

    /// Decides what a refused claim means, from the item DynamoDB returned.
    pub(crate) async fn refused(
        &self,
        delivery: &mut Delivery<'_>,
        current: Option<&JobRecord>,
        now: i64,
    ) -> Disposition {
        delivery.job_type = current.map(|job| job.job_type.clone());
        delivery.attempt = current.map(|job| job.attempts);
        match ClaimRefusal::from_current(current, now) {
            ClaimRefusal::Finished(state) => {
                tracing::debug!(%state, "duplicate delivery of a finished job");
                delivery.outcome = "duplicate";
                let job_type = current.map_or("unknown", |job| job.job_type.as_str());
                delivery
                    .metrics
                    .count(job_type, Metric::DuplicateDeliveries);
                Disposition::Acknowledged
            }
            // A duplicate of a job a live attempt holds is no failure of
            // the job: on its last delivery it goes on as a new message
            // rather than to the DLQ (whose alarm would fire for a job
            // that is fine), until it finds the job finished.
            ClaimRefusal::Leased { .. }
                if delivery.receive_count >= self.config.max_receive_count =>
            {
                let Some(job_id) = delivery.job_id else {
                    return self.retry_later(delivery, None).await;
                };
                self.send_again(delivery, &delivery.message(job_id), "duplicate-carried-on")
                    .await
            }
            ClaimRefusal::Leased { until_ms } => {
                delivery.outcome = "leased";
                let secs = u32::try_from((until_ms - now + 999) / 1000).unwrap_or(u32::MAX);
                self.retry_later(delivery, Some(secs)).await
            }
            // The API sends a message only once its record is written, so no
            // record means it expired or was never written (a replayed dead
            // letter of a deleted job). One more delivery, for safety; a second
            // that still finds nothing is acknowledged: nothing to run.
            ClaimRefusal::Missing if delivery.receive_count >= 2 => {
                delivery.outcome = "missing";
                Disposition::Acknowledged
            }
            ClaimRefusal::Missing => {
                delivery.outcome = "not-yet-written";
                self.retry_later(delivery, None).await
            }
            ClaimRefusal::Raced => {
                delivery.outcome = "raced";
                self.retry_later(delivery, None).await
            }
            // Early (a timer may fire up to a minute before its time): sent
            // again, delayed until the job is due, and never run early.
            ClaimRefusal::NotYetDue { run_at } => {
                let secs = u32::try_from((run_at - now + 999) / 1000)
                    .unwrap_or(u32::MAX)
                    .clamp(1, SQS_MAX_DELAY_SECS);
                let Some(job_id) = delivery.job_id else {
                    return self.retry_later(delivery, Some(secs)).await;
                };
                match self
                    .queue
                    .send_delayed(&delivery.message(job_id), secs)
                    .await
                {
                    Ok(_) => {
                        delivery.outcome = "early";
                        Disposition::Acknowledged
                    }
                    Err(error) => {
                        tracing::warn!(%error, jobId = %job_id, "could not delay an early message");
                        delivery.outcome = "early";
                        self.retry_later(delivery, Some(secs)).await
                    }
                }
            }
        }
    }
}

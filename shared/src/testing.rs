//! Builders of job records and requests for tests (this crate's tests and
//! feature `memory`), so a test states only what matters to it:
//! `job("primes").payload(json!({"upTo": 10})).owner("bob").state(JobState::Running).build()`.

use crate::config::DEFAULT_RETENTION_DAYS;
use crate::job::{JobId, JobRecord, JobRequest, JobState, now_ms};
use serde_json::{Value, json};

/// A request for `job_type` with `payload`.
pub fn request(job_type: &str, payload: Value) -> JobRequest {
    JobRequest {
        job_type: job_type.to_owned(),
        payload,
        callback_url: None,
    }
}

/// A builder of a `queued` job of `job_type`: a random id, owner `alice`,
/// payload `{}`, created now, kept for [`DEFAULT_RETENTION_DAYS`].
pub fn job(job_type: &str) -> JobBuilder {
    JobBuilder(JobRecord::new_queued(
        JobId::random(),
        "alice",
        &request(job_type, json!({})),
        now_ms(),
        DEFAULT_RETENTION_DAYS,
    ))
}

/// A job record being built; [`build`](Self::build) fingerprints the final
/// type and payload.
#[derive(Debug, Clone)]
pub struct JobBuilder(JobRecord);

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $type:ty => $field:ident = $value:expr;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, $name: $type) -> Self {
                self.0.$field = $value;
                self
            }
        )*
    };
}

impl JobBuilder {
    setters! {
        id: JobId => id = id;
        owner: &str => owner = owner.to_owned();
        payload: Value => payload = payload;
        state: JobState => state = state;
        created_at: i64 => created_at = created_at;
        started_at: i64 => started_at = Some(started_at);
        finished_at: i64 => finished_at = Some(finished_at);
        attempts: u32 => attempts = attempts;
        /// A lease until this time (ms).
        lease_until: i64 => lease_expires_at = Some(lease_until);
        /// The token of the delivery that claimed it.
        claim_token: &str => claim_token = Some(claim_token.to_owned());
        result: Value => result = Some(result);
        error: &str => error = Some(error.to_owned());
        dead_lettered: bool => dead_lettered = dead_lettered;
        enqueue_failed: bool => enqueue_failed = enqueue_failed;
        discarded: bool => discarded = discarded;
        replays: u32 => replays = replays;
        callback_url: &str => callback_url = Some(callback_url.to_owned());
        /// When the TTL may delete the job (seconds since the epoch).
        expires_at: i64 => expires_at = expires_at;
    }

    /// The record.
    pub fn build(self) -> JobRecord {
        let mut job = self.0;
        job.fingerprint = request(&job.job_type, job.payload.clone()).fingerprint();
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_jobs_are_fingerprinted_by_their_final_payload() {
        let built = job("primes").payload(json!({"upTo": 7})).build();
        let expected = JobRecord::new_queued(
            built.id,
            "alice",
            &request("primes", json!({"upTo": 7})),
            built.created_at,
            DEFAULT_RETENTION_DAYS,
        );
        assert_eq!(built, expected);

        let running = job("primes")
            .owner("bob")
            .state(JobState::Running)
            .attempts(2)
            .lease_until(99)
            .build();
        assert_eq!(
            (running.owner.as_str(), running.state, running.attempts),
            ("bob", JobState::Running, 2)
        );
        assert_eq!(running.lease_expires_at, Some(99));
    }
}

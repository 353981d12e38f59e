//! Builders of job records and requests for tests (this crate's tests and
//! feature `memory`), so a test states only what matters to it:
//! `job("primes").payload(json!({"upTo": 10})).owner("bob").state(JobState::Running).build()`.

use jobline_core::clock::Clock;
use jobline_core::config::DEFAULT_RETENTION_DAYS;
use jobline_core::job::{JobId, JobRecord, JobRequest, JobState};
use serde_json::{Value, json};

/// The wall clock's time now, in milliseconds since the Unix epoch: what a
/// test that does not move time stamps its records with.
pub fn now_ms() -> i64 {
    Clock::system().now_ms()
}

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
        /// When the current run started (the run limit counts from it).
        run_started_at: i64 => run_started_at = Some(run_started_at);
        /// A client asked to cancel it while it ran.
        cancel_requested: bool => cancel_requested = cancel_requested;
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

pub use receiver::receiver;

/// A webhook receiver on loopback for tests.
pub mod receiver {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// One request the receiver got: its headers (lower-cased) and body.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub headers: HashMap<String, String>,
        pub body: String,
    }

    /// What a receiver got so far, shared with its task.
    pub type Log = Arc<Mutex<Vec<Received>>>;

    /// A receiver on 127.0.0.1 that answers each request with the next of
    /// `statuses` (the last one from then on), one connection per request,
    /// and keeps what it got; its URL (`http://127.0.0.1:PORT/hooks`).
    pub async fn receiver(statuses: Vec<u16>) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let got: Log = Arc::default();
        let kept = Arc::clone(&got);
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(received) = read_request(&mut stream).await else {
                    continue;
                };
                kept.lock().expect("the log").push(received);
                let status = statuses[n.min(statuses.len() - 1)];
                n += 1;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (url, got)
    }

    /// Reads one request's head and its `content-length` body.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let read = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            data.extend_from_slice(&buf[..read]);
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let headers: HashMap<String, String> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let read = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
                data.extend_from_slice(&buf[..read]);
            }
            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).to_string();
            return Some(Received { headers, body });
        }
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

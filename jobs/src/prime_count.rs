//! `prime-count`: counts the primes up to a bound far larger than one
//! invocation can sieve, in chunks (a segmented sieve), reporting progress
//! and saving a checkpoint after each chunk. When its attempt is cancelled
//! (the invocation's deadline is near, or its client cancelled it) it
//! yields with [`JobError::Continue`], and the next invocation resumes from
//! the checkpoint: the built-in example of a long job.

use async_trait::async_trait;
use jobline_core::job_types::{JobContext, JobError, JobHandler, payload_field, payload_u64};
use serde_json::{Value, json};
use std::sync::Arc;

/// `{"upTo": N, "chunk"?: C, "chunksPerRun"?: K}` →
/// `{"upTo": N, "count": …, "largest": …}`.
#[derive(Debug, Clone, Copy)]
pub struct PrimeCount;

/// The largest bound accepted: a trillion (the base primes up to its square
/// root take under 1 MB; the run takes hours, across continuations).
pub const MAX_UP_TO: u64 = 1_000_000_000_000;

/// The numbers sieved per chunk unless `chunk` says otherwise: 4 Mi (4 MiB
/// of sieve, tens of milliseconds), so the job stops within one chunk of
/// its cancellation.
pub const DEFAULT_CHUNK: u64 = 1 << 22;

/// The largest `chunk` accepted (16 MiB of sieve).
pub const MAX_CHUNK: u64 = 1 << 24;

/// The smallest `chunk` accepted.
pub const MIN_CHUNK: u64 = 1_000;

/// The most `chunksPerRun` accepted.
pub const MAX_CHUNKS_PER_RUN: u64 = 1_000_000;

/// Where a count stands: the next number to sieve, and what was found below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    next: u64,
    count: u64,
    largest: Option<u64>,
}

impl Tally {
    const START: Self = Self {
        next: 0,
        count: 0,
        largest: None,
    };

    fn to_json(self) -> Value {
        json!({"next": self.next, "count": self.count, "largest": self.largest})
    }

    /// The tally a checkpoint holds; `None` if it is not one of ours.
    fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            next: value.get("next")?.as_u64()?,
            count: value.get("count")?.as_u64()?,
            largest: match value.get("largest")? {
                Value::Null => None,
                largest => Some(largest.as_u64()?),
            },
        })
    }
}

/// The primes up to `limit`, by a plain sieve.
fn base_primes(limit: u64) -> Vec<u64> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    for i in 2..=limit {
        if composite[i] {
            continue;
        }
        primes.push(i as u64);
        let mut multiple = i.saturating_mul(i);
        while multiple <= limit {
            composite[multiple] = true;
            multiple += i;
        }
    }
    primes
}

/// The primes in `lo..hi` (`base` holding every prime up to √(hi − 1)):
/// their count and the largest.
fn count_segment(lo: u64, hi: u64, base: &[u64]) -> (u64, Option<u64>) {
    let lo = lo.max(2);
    if hi <= lo {
        return (0, None);
    }
    let len = usize::try_from(hi - lo).unwrap_or(usize::MAX);
    let mut composite = vec![false; len];
    for &p in base {
        if p.saturating_mul(p) >= hi {
            break;
        }
        let mut multiple = (lo.div_ceil(p) * p).max(p * p);
        while multiple < hi {
            composite[(multiple - lo) as usize] = true;
            multiple += p;
        }
    }
    let mut count = 0;
    let mut largest = None;
    for (offset, is_composite) in composite.iter().enumerate() {
        if !is_composite {
            count += 1;
            largest = Some(lo + offset as u64);
        }
    }
    (count, largest)
}

/// Reads `payload.<name>` as an integer from `min` to `max`, or `default`
/// when absent.
fn optional_u64(
    payload: &Value,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, String> {
    if payload_field(payload, name).is_err() {
        return Ok(default);
    }
    payload_u64(payload, name, max)
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| format!("payload.{name} must be an integer from {min} to {max}"))
}

/// The payload's settings: the bound, the chunk size, and the chunks per run.
fn settings(payload: &Value) -> Result<(u64, u64, u64), String> {
    Ok((
        payload_u64(payload, "upTo", MAX_UP_TO)?,
        optional_u64(payload, "chunk", MIN_CHUNK, MAX_CHUNK, DEFAULT_CHUNK)?,
        optional_u64(
            payload,
            "chunksPerRun",
            1,
            MAX_CHUNKS_PER_RUN,
            MAX_CHUNKS_PER_RUN,
        )?,
    ))
}

#[async_trait]
impl JobHandler for PrimeCount {
    fn name(&self) -> &str {
        "prime-count"
    }

    /// `upTo` up to 10^12; optional `chunk` (numbers per chunk,
    /// 1000 to 16 Mi) and `chunksPerRun` (yield after this
    /// many chunks even with time left: a way to see continuations).
    fn validate(&self, payload: &Value) -> Result<(), String> {
        settings(payload).map(drop)
    }

    /// The largest chunk's sieve and the base primes, plus the runtime's share.
    fn peak_memory_bytes(&self) -> u64 {
        MAX_CHUNK + 8 * 80_000 + jobline_core::job_types::DEFAULT_PEAK_MEMORY_BYTES
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let (up_to, chunk, chunks_per_run) = settings(&payload).map_err(JobError::Permanent)?;
        let mut tally = match ctx.checkpoint() {
            None => Tally::START,
            Some(saved) => Tally::from_json(saved).ok_or_else(|| {
                JobError::Permanent("the job's checkpoint is not a prime count's".to_owned())
            })?,
        };
        let root = up_to.isqrt();
        let base = Arc::new(
            tokio::task::spawn_blocking(move || base_primes(root))
                .await
                .map_err(|_| JobError::Retryable("the sieve task failed".to_owned()))?,
        );
        let mut chunks = 0;
        while tally.next <= up_to {
            if ctx.is_cancelled() || chunks == chunks_per_run {
                return Err(JobError::Continue);
            }
            let (lo, hi) = (tally.next, tally.next.saturating_add(chunk).min(up_to + 1));
            let base = Arc::clone(&base);
            let (count, largest) =
                tokio::task::spawn_blocking(move || count_segment(lo, hi, &base))
                    .await
                    .map_err(|_| JobError::Retryable("the sieve task failed".to_owned()))?;
            tally = Tally {
                next: hi,
                count: tally.count + count,
                largest: largest.or(tally.largest),
            };
            chunks += 1;
            ctx.save_checkpoint(tally.to_json())?;
            ctx.progress(
                hi as f64 / (up_to as f64 + 1.0),
                &format!("sieved {hi} of {}", up_to + 1),
            );
        }
        Ok(json!({ "upTo": up_to, "count": tally.count, "largest": tally.largest }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primes::sieve;
    use crate::test_context;
    use jobline_core::job_types::{JobContext, Reports};

    #[test]
    fn segments_count_what_the_plain_sieve_counts() {
        let base = base_primes(1_000);
        for (lo, hi) in [
            (0, 2),
            (0, 3),
            (0, 100),
            (2, 1_000),
            (97, 98),
            (500_000, 1_000_001),
        ] {
            let whole_hi = sieve(hi - 1, || false).unwrap();
            let whole_lo = if lo == 0 {
                (0, None)
            } else {
                sieve(lo - 1, || false).unwrap()
            };
            let (count, largest) = count_segment(lo, hi, &base);
            assert_eq!(count, whole_hi.0 - whole_lo.0, "{lo}..{hi}");
            if count > 0 {
                assert_eq!(largest, whole_hi.1, "{lo}..{hi}");
            }
        }
    }

    /// Runs the job to the end, one continuation after another, each from
    /// the checkpoint the last one saved, as the worker does.
    async fn run_to_end(payload: Value) -> (Value, usize) {
        let mut checkpoint = None;
        for runs in 1.. {
            let reports = Reports::new();
            let ctx = test_context(runs as u32)
                .resuming_from(checkpoint.clone())
                .reporting_to(reports.clone());
            let outcome = PrimeCount.run(&ctx, payload.clone()).await;
            let written = reports.take();
            assert!(written.progress.is_some(), "every run reports progress");
            match outcome {
                Ok(result) => return (result, runs),
                Err(JobError::Continue) => checkpoint = written.checkpoint,
                Err(other) => panic!("{other}"),
            }
        }
        unreachable!()
    }

    #[tokio::test]
    async fn yields_after_its_chunks_and_resumes_to_the_right_count() {
        let (result, runs) =
            run_to_end(json!({"upTo": 100_000, "chunk": 10_000, "chunksPerRun": 3})).await;
        assert_eq!(
            result,
            json!({"upTo": 100_000, "count": 9_592, "largest": 99_991})
        );
        assert_eq!(runs, 4, "ten chunks, three a run");
        let (whole, runs) = run_to_end(json!({"upTo": 100_000})).await;
        assert_eq!((whole, runs), (result, 1));
    }

    #[tokio::test]
    async fn a_cancelled_run_yields_at_once() {
        let ctx: JobContext = test_context(1);
        ctx.cancel.cancel();
        let outcome = PrimeCount.run(&ctx, json!({"upTo": MAX_UP_TO})).await;
        assert_eq!(outcome, Err(JobError::Continue));
    }

    #[test]
    fn settings_are_bounded_and_named() {
        assert!(PrimeCount.validate(&json!({"upTo": MAX_UP_TO})).is_ok());
        assert!(
            PrimeCount
                .validate(&json!({"upTo": MAX_UP_TO + 1}))
                .is_err()
        );
        let message = PrimeCount
            .validate(&json!({"upTo": 10, "chunk": 5}))
            .unwrap_err();
        assert!(
            message.contains("payload.chunk") && message.contains("1000"),
            "{message}"
        );
        assert!(
            PrimeCount
                .validate(&json!({"upTo": 10, "chunksPerRun": 0}))
                .is_err()
        );
        assert!(
            PrimeCount
                .validate(&json!({"upTo": 10, "chunksPerRun": 2}))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_foreign_checkpoint_fails_the_job() {
        let ctx = test_context(1).resuming_from(Some(json!({"cursor": "x"})));
        let outcome = PrimeCount.run(&ctx, json!({"upTo": 10})).await;
        assert!(matches!(outcome, Err(JobError::Permanent(_))));
    }
}

//! The backlog bound: above `MAX_BACKLOG` messages in the queue, new
//! submissions are refused with 429 instead of piling up work that would wait
//! for hours (and expire with its records).
//!
//! The depth is SQS's `GetQueueAttributes` (approximate counts, which SQS
//! itself updates with a lag: [`JobQueue::counts`]), read at most once per [`DEPTH_CACHE`] per
//! Lambda instance, so the bound costs one call every few seconds and no
//! latency on the other submissions. A failed read lets submissions through:
//! the bound protects the system, it must not become an outage of its own.

use async_trait::async_trait;
use jobline_core::{JobQueue, QueueError};
use jobline_sqs::SqsJobQueue;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long one depth reading is trusted.
pub const DEPTH_CACHE: Duration = Duration::from_secs(5);

/// How many messages a queue holds, approximately.
#[async_trait]
pub trait QueueDepth: Send + Sync + std::fmt::Debug {
    async fn depth(&self) -> Result<u64, QueueError>;
}

/// The depth of an SQS queue: its visible, in-flight (running or backing
/// off before a retry) and delayed messages, all of them work not yet done.
#[async_trait]
impl QueueDepth for SqsJobQueue {
    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self.counts().await?.total())
    }
}

/// The bound, with the last reading.
#[derive(Debug)]
pub struct Backlog {
    depth: Arc<dyn QueueDepth>,
    limit: u64,
    cache_for: Duration,
    /// When the last reading was taken, and its depth (`None`: it failed).
    last: Mutex<Option<(Instant, Option<u64>)>>,
}

impl Backlog {
    /// Refuses above `limit` messages, reading `depth` at most once per `cache_for`.
    pub fn new(depth: Arc<dyn QueueDepth>, limit: u64, cache_for: Duration) -> Self {
        Self {
            depth,
            limit,
            cache_for,
            last: Mutex::new(None),
        }
    }

    /// Whether the queue holds more than the limit.
    pub async fn is_full(&self) -> bool {
        let cached = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let depth = match cached {
            Some((at, depth)) if at.elapsed() < self.cache_for => depth,
            _ => {
                let depth = match self.depth.depth().await {
                    Ok(depth) => Some(depth),
                    Err(error) => {
                        tracing::warn!(%error, "the queue depth could not be read; not bounding the backlog");
                        None
                    }
                };
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), depth));
                depth
            }
        };
        tracing::debug!(depth, limit = self.limit, "backlog");
        depth.is_some_and(|depth| depth > self.limit)
    }
}

/// A queue depth set by tests.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    pub struct FakeDepth {
        pub depth: AtomicU64,
        pub failing: std::sync::atomic::AtomicBool,
        pub reads: AtomicUsize,
    }

    impl FakeDepth {
        pub fn new(depth: u64) -> Arc<Self> {
            let fake = Self::default();
            fake.depth.store(depth, Ordering::SeqCst);
            Arc::new(fake)
        }
    }

    #[async_trait]
    impl QueueDepth for FakeDepth {
        async fn depth(&self) -> Result<u64, QueueError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(QueueError::Aws {
                    operation: "GetQueueAttributes",
                    source: "unreachable".into(),
                });
            }
            Ok(self.depth.load(Ordering::SeqCst))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeDepth;
    use super::*;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn full_only_above_the_limit_and_read_once_per_period() {
        let depth = FakeDepth::new(10);
        let backlog = Backlog::new(depth.clone(), 10, Duration::from_secs(60));
        assert!(!backlog.is_full().await, "at the limit is not above it");
        depth.depth.store(11, Ordering::SeqCst);
        assert!(!backlog.is_full().await, "the cached reading still holds");
        assert_eq!(depth.reads.load(Ordering::SeqCst), 1);

        let fresh = Backlog::new(depth.clone(), 10, Duration::ZERO);
        assert!(fresh.is_full().await);
        depth.depth.store(3, Ordering::SeqCst);
        assert!(!fresh.is_full().await);
        assert_eq!(depth.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreadable_depth_lets_submissions_through() {
        let depth = FakeDepth::new(1_000);
        depth.failing.store(true, Ordering::SeqCst);
        let backlog = Backlog::new(depth.clone(), 10, Duration::from_secs(60));
        assert!(!backlog.is_full().await);
        assert!(!backlog.is_full().await);
        assert_eq!(
            depth.reads.load(Ordering::SeqCst),
            1,
            "failures are cached too"
        );
    }
}

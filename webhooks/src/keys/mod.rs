//! The master key each caller's webhook signing secret is derived from
//! ([`caller_secret`]): the [`KeySource`] port, and its adapters.
//!
//! - [`RefreshingKeys`]: keys read from a [`KeyLoader`] and kept for
//!   [`REFRESH_INTERVAL`], then read again; [`SecretsManagerKeys`] is it
//!   over the key kept in AWS Secrets Manager (never in code, configuration
//!   or logs);
//! - [`FixedKeys`]: a key given in code, for unit tests.
//!
//! A rotation keeps the previous master key (Secrets Manager's
//! `AWSPREVIOUS`) beside the current one: events are signed with both
//! callers' secrets, as Standard Webhooks allows, so a receiver that has
//! either verifies them while it switches. For that to hold, every function
//! must see the rotation soon: keys read once for the life of an execution
//! environment (hours, under steady traffic) would leave a notifier signing
//! with the old key alone long after callers were handed the new secret.
//! So the keys are read again once [`REFRESH_INTERVAL`] has passed on the
//! source's [`Clock`], and on demand ([`KeySource::reread`]) when a receiver
//! refuses a signature: the notifier then tells a rotation it had not seen
//! from a receiver that is simply wrong. A read that fails keeps the last
//! keys read (logged at `warn`) and is tried again after
//! [`REFRESH_RETRY`]; only a source that was never read fails.

#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;

#[cfg(feature = "secrets-manager")]
pub use secrets_manager::{SecretsManagerKeys, SecretsManagerSecret};

use super::signing::{WebhookSecret, caller_secret};
use async_trait::async_trait;
use jobline_core::Clock;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long keys are used before they are read again: at most this long
/// after a rotation, a function still signs with the old key alone (and the
/// API still hands out secrets of the old key). Five minutes keeps a
/// receiver's switch within minutes of the rotation, while the reads cost
/// next to nothing: two `GetSecretValue` calls per execution environment
/// every five minutes, about 17,000 a month for one that is always warm
/// (under $0.10 at $0.05 per 10,000).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// How long the last keys are used after a read failed before the next
/// try: soon enough to see a rotation within a minute of the source's
/// return, and not on every delivery while it is down (each failed read
/// can take the SDK's whole retry budget, during which deliveries wait).
pub const REFRESH_RETRY: Duration = Duration::from_secs(30);

/// The master keys: the current one, and the previous one during a rotation.
#[derive(Clone)]
pub struct MasterKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl MasterKeys {
    pub fn new(current: impl Into<Vec<u8>>, previous: Option<Vec<u8>>) -> Self {
        Self {
            current: current.into(),
            previous,
        }
    }

    /// The secret caller `owner` verifies its events with, from the current
    /// key: what `GET /webhook-secret` hands out.
    pub fn caller_secret(&self, owner: &str) -> WebhookSecret {
        caller_secret(&self.current, owner)
    }

    /// Whether `other` has the same current key: if not, a rotation (or a
    /// rollback) happened between the two reads.
    pub fn same_current_key(&self, other: &Self) -> bool {
        self.current == other.current
    }

    /// The secrets an event of `owner` is signed with: the current key's,
    /// then the previous key's during a rotation.
    pub fn signing_secrets(&self, owner: &str) -> Vec<WebhookSecret> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|key| caller_secret(key, owner))
            .collect()
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &"redacted")
            .field("previous", &self.previous.as_ref().map(|_| "redacted"))
            .finish()
    }
}

/// Why the master keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not read the webhook master key: {0}")]
    Unavailable(String),
    #[error("the webhook master key has {0} bytes; it needs at least {MIN_MASTER_KEY_BYTES}")]
    TooShort(usize),
}

/// The shortest master key accepted (the template generates 64 characters).
pub const MIN_MASTER_KEY_BYTES: usize = 32;

/// Where the master keys come from.
#[async_trait]
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The keys to sign with now: no older than the source promises
    /// ([`REFRESH_INTERVAL`] for [`RefreshingKeys`]).
    async fn keys(&self) -> Result<MasterKeys, KeyError>;

    /// The keys as they are now, read after this call began (unless a read
    /// that began after it has already finished), and used from then on:
    /// what a rejected signature is checked against. Fails if they cannot
    /// be read, even if older keys are at hand. A source whose keys never
    /// change answers [`keys`](Self::keys).
    async fn reread(&self) -> Result<MasterKeys, KeyError> {
        self.keys().await
    }
}

/// Reads the master keys from where they are kept, anew on each call.
#[async_trait]
pub trait KeyLoader: Send + Sync + fmt::Debug {
    async fn load(&self) -> Result<MasterKeys, KeyError>;
}

/// Keys from a [`KeyLoader`], kept for [`REFRESH_INTERVAL`] on its clock
/// (see the module's documentation). One read at a time: callers that find
/// the keys due wait for the read under way rather than start another.
#[derive(Debug)]
pub struct RefreshingKeys<L> {
    loader: L,
    clock: Clock,
    state: tokio::sync::Mutex<Cache>,
    /// Reads started so far: tells [`KeySource::reread`] whether the keys
    /// at hand were read after it was called.
    reads: AtomicU64,
}

/// What [`RefreshingKeys`] holds between calls.
#[derive(Debug, Default)]
struct Cache {
    /// The last keys read, and the number of the read that got them.
    keys: Option<(MasterKeys, u64)>,
    /// When to read again, on the clock, in milliseconds.
    due_ms: i64,
}

impl<L: KeyLoader> RefreshingKeys<L> {
    /// Keys from `loader`, first read on first use, timed on the wall clock.
    pub fn of(loader: L) -> Self {
        Self {
            loader,
            clock: Clock::system(),
            state: tokio::sync::Mutex::new(Cache::default()),
            reads: AtomicU64::new(0),
        }
    }

    /// Times the refreshes on `clock` (a test's, moved instead of waited).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Reads the keys into `cache`; a failure keeps the keys it has, for
    /// [`REFRESH_RETRY`], and is returned.
    async fn read(&self, cache: &mut Cache) -> Result<MasterKeys, KeyError> {
        let number = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let started_ms = self.clock.now_ms();
        let after = |interval: Duration| {
            started_ms.saturating_add(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX))
        };
        match self.loader.load().await {
            Ok(keys) => {
                cache.keys = Some((keys.clone(), number));
                cache.due_ms = after(REFRESH_INTERVAL);
                Ok(keys)
            }
            Err(error) => {
                if cache.keys.is_some() {
                    cache.due_ms = after(REFRESH_RETRY);
                }
                Err(error)
            }
        }
    }
}

#[async_trait]
impl<L: KeyLoader> KeySource for RefreshingKeys<L> {
    async fn keys(&self) -> Result<MasterKeys, KeyError> {
        let mut cache = self.state.lock().await;
        if let Some((keys, _)) = &cache.keys
            && self.clock.now_ms() < cache.due_ms
        {
            return Ok(keys.clone());
        }
        match self.read(&mut cache).await {
            Ok(keys) => Ok(keys),
            Err(error) => match &cache.keys {
                Some((keys, _)) => {
                    tracing::warn!(
                        %error,
                        retry_secs = REFRESH_RETRY.as_secs(),
                        "could not read the webhook master keys again; using the last ones read"
                    );
                    Ok(keys.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn reread(&self) -> Result<MasterKeys, KeyError> {
        let asked = self.reads.load(Ordering::SeqCst);
        let mut cache = self.state.lock().await;
        // A read numbered past `asked` began after this call did, and the
        // lock says it has finished.
        if let Some((keys, number)) = &cache.keys
            && *number > asked
        {
            return Ok(keys.clone());
        }
        self.read(&mut cache).await
    }
}

/// Keys given in code.
#[derive(Debug, Clone)]
pub struct FixedKeys(pub MasterKeys);

#[async_trait]
impl KeySource for FixedKeys {
    async fn keys(&self) -> Result<MasterKeys, KeyError> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A loader whose answer the test sets, counting its reads.
    #[derive(Debug, Clone, Default)]
    struct Loader {
        answer: Arc<Mutex<Option<MasterKeys>>>,
        reads: Arc<AtomicU64>,
    }

    impl Loader {
        fn set(&self, answer: Option<MasterKeys>) {
            *self.answer.lock().unwrap() = answer;
        }

        fn reads(&self) -> u64 {
            self.reads.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeyLoader for Loader {
        async fn load(&self) -> Result<MasterKeys, KeyError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            // A read takes a while: others queue behind it meanwhile.
            tokio::task::yield_now().await;
            self.answer
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| KeyError::Unavailable("down".into()))
        }
    }

    fn key(byte: u8) -> MasterKeys {
        MasterKeys::new(vec![byte; 32], None)
    }

    fn is(keys: &MasterKeys, byte: u8) -> bool {
        keys.same_current_key(&key(byte))
    }

    #[tokio::test]
    async fn keys_are_read_again_once_the_interval_has_passed() {
        let loader = Loader::default();
        loader.set(Some(key(1)));
        let clock = Clock::at(1_000_000);
        let keys = RefreshingKeys::of(loader.clone()).with_clock(clock.clone());
        assert!(is(&keys.keys().await.unwrap(), 1));
        assert_eq!(loader.reads(), 1);

        // A rotation: unseen until the interval has passed, then used.
        loader.set(Some(MasterKeys::new(vec![2; 32], Some(vec![1; 32]))));
        clock.advance(REFRESH_INTERVAL - Duration::from_millis(1));
        assert!(is(&keys.keys().await.unwrap(), 1));
        assert_eq!(loader.reads(), 1, "kept within the interval");
        clock.advance(Duration::from_millis(1));
        let rotated = keys.keys().await.unwrap();
        assert!(is(&rotated, 2));
        assert_eq!(rotated.signing_secrets("alice").len(), 2);
        assert_eq!(loader.reads(), 2);
        assert!(is(&keys.keys().await.unwrap(), 2));
        assert_eq!(loader.reads(), 2);
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_last_keys_and_is_tried_again_later() {
        let loader = Loader::default();
        let clock = Clock::at(0);
        let keys = RefreshingKeys::of(loader.clone()).with_clock(clock.clone());
        // Never read: the failure is the answer, and the next call tries again.
        assert!(matches!(keys.keys().await, Err(KeyError::Unavailable(_))));
        assert!(keys.keys().await.is_err());
        assert_eq!(loader.reads(), 2);

        loader.set(Some(key(1)));
        assert!(is(&keys.keys().await.unwrap(), 1));
        loader.set(None);
        clock.advance(REFRESH_INTERVAL);
        assert!(is(&keys.keys().await.unwrap(), 1), "the last good keys");
        assert_eq!(loader.reads(), 4);
        clock.advance(REFRESH_RETRY - Duration::from_millis(1));
        assert!(is(&keys.keys().await.unwrap(), 1));
        assert_eq!(loader.reads(), 4, "not tried on every call");
        loader.set(Some(key(2)));
        clock.advance(Duration::from_millis(1));
        assert!(is(&keys.keys().await.unwrap(), 2));
        assert_eq!(loader.reads(), 5);
    }

    #[tokio::test]
    async fn a_reread_reads_now_and_the_keys_it_gets_are_kept() {
        let loader = Loader::default();
        loader.set(Some(key(1)));
        let clock = Clock::at(0);
        let keys = RefreshingKeys::of(loader.clone()).with_clock(clock.clone());
        assert!(is(&keys.keys().await.unwrap(), 1));
        loader.set(Some(key(2)));
        assert!(is(&keys.reread().await.unwrap(), 2));
        assert_eq!(loader.reads(), 2);
        assert!(is(&keys.keys().await.unwrap(), 2), "kept");
        assert_eq!(loader.reads(), 2);
        // Each reread reads: none began after it.
        assert!(is(&keys.reread().await.unwrap(), 2));
        assert_eq!(loader.reads(), 3);
        // A failed reread fails, and keys() still has the last good ones.
        loader.set(None);
        assert!(keys.reread().await.is_err());
        assert!(is(&keys.keys().await.unwrap(), 2));
        // The fixed keys never change: reread is keys.
        let fixed = FixedKeys(key(7));
        assert!(is(&fixed.reread().await.unwrap(), 7));
    }

    #[tokio::test]
    async fn concurrent_rereads_share_one_read_that_began_after_them() {
        let loader = Loader::default();
        loader.set(Some(key(1)));
        let clock = Clock::at(0);
        let keys = RefreshingKeys::of(loader.clone()).with_clock(clock.clone());
        keys.keys().await.unwrap();
        assert_eq!(loader.reads(), 1);
        loader.set(Some(key(2)));
        clock.advance(REFRESH_INTERVAL);
        // A refresh under way when the rereads begin does not answer them
        // (it may have read before what they check); one read after it does,
        // for all of them.
        let refresh = async { keys.keys().await.map(|_| ()) };
        let rereads = futures_util::future::join_all((0..8).map(|_| keys.reread()));
        let (refreshed, reread) = futures_util::future::join(refresh, rereads).await;
        refreshed.unwrap();
        assert!(reread.iter().all(|k| is(k.as_ref().unwrap(), 2)));
        assert_eq!(loader.reads(), 3, "the refresh, and one read for all eight");
    }
}

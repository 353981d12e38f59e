//! [`CallerKey`]: a caller's short, opaque key, the first 16 bytes of the
//! SHA-256 of its owner identity (an IAM ARN or a JWT issuer and subject,
//! which may be long and hold any character, and are no one else's
//! business). It names the caller wherever AWS takes a short key: the
//! fair-queue message group of its jobs' messages (SQS takes at most 128
//! characters), the prefix of its uploads, the key of its counters.
//!
//! And [`CallerCounts`], what is counted of each caller: its unfinished
//! jobs, and its uploads of the current UTC day ([`UploadQuota`]).

use sha2::{Digest, Sha256};

/// A caller's key; shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerKey([u8; 16]);

impl CallerKey {
    /// The key of `owner` (a job's `owner`).
    pub fn of(owner: &str) -> Self {
        let digest = Sha256::digest(owner.as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }
}

impl std::fmt::Display for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl std::str::FromStr for CallerKey {
    type Err = String;

    /// Reads the 32 hex digits [`Display`](std::fmt::Display) writes.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || "not a caller key".to_owned();
        if text.len() != 32 || !text.is_ascii() {
            return Err(invalid());
        }
        let mut key = [0; 16];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_short_stable_and_reads_back() {
        let key = CallerKey::of("arn:aws:iam::123456789012:user/alice");
        assert_eq!(key.to_string().len(), 32);
        assert_eq!(key, CallerKey::of("arn:aws:iam::123456789012:user/alice"));
        assert_ne!(key, CallerKey::of("arn:aws:iam::123456789012:user/bob"));
        assert_eq!(key.to_string().parse::<CallerKey>(), Ok(key));
        assert!("xyz".parse::<CallerKey>().is_err());
    }

    #[test]
    fn a_utc_day_starts_at_midnight_utc() {
        // 2027-03-02T23:59:59.999Z and the next millisecond.
        let last = 1_804_031_999_999;
        assert_eq!(utc_day(last) + 1, utc_day(last + 1));
        assert_eq!(until_next_utc_day(last), 1);
        assert_eq!(until_next_utc_day(last + 1), DAY_MS);
        assert_eq!(utc_day(-1), -1, "before the epoch, still whole days");
    }
}

/// Why a caller's count could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB {operation} of a caller's count failed: {source}")]
pub struct CountError {
    pub operation: &'static str,
    #[source]
    pub source: crate::error::BoxError,
}

/// The most one caller may upload in a UTC day: links issued, and bytes
/// declared in them. An upload link lives a day at most, and an upload no
/// job names expires a day later, so this bounds what a caller keeps in
/// the bucket that no job asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadQuota {
    pub uploads: u64,
    pub bytes: u64,
}

/// The UTC day of instant `ms` (milliseconds since the epoch), as days
/// since the epoch: what an [`UploadQuota`] counts by.
pub fn utc_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The milliseconds from `ms` to the start of the next UTC day, when a
/// caller's [`UploadQuota`] starts again.
pub fn until_next_utc_day(ms: i64) -> i64 {
    DAY_MS - ms.rem_euclid(DAY_MS)
}

const DAY_MS: i64 = 86_400_000;

/// What is counted of one caller (`jobline callers show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerTally {
    /// Its unfinished jobs, as counted.
    pub unfinished: u64,
    /// Its uploads of the last UTC day it had any.
    pub uploads: DayUploads,
}

/// A caller's uploads of one UTC day: how many links, how many bytes
/// declared in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUploads {
    /// The day ([`utc_day`]); 0 before a caller's first upload.
    pub day: i64,
    pub uploads: u64,
    pub bytes: u64,
}

/// Each caller's counts (`CALLERS_TABLE`). Its unfinished jobs: the API
/// admits a new job only while its caller is under its bound
/// ([`admit`](Self::admit), one conditional write, so concurrent
/// submissions cannot pass the bound together); what follows a final state
/// (the notifier's relay, off the jobs table's stream) counts it down, and
/// a replay up again ([`adjust`](Self::adjust)). And its uploads of the
/// day ([`allow_upload`](Self::allow_upload)), also conditional writes.
#[async_trait::async_trait]
pub trait CallerCounts: Send + Sync + std::fmt::Debug {
    /// Counts one more unfinished job of `owner`, unless it has `limit`
    /// already: then `Ok(false)`, and nothing is counted.
    async fn admit(&self, owner: &str, limit: u64) -> Result<bool, CountError>;

    /// Adds `delta` to `owner`'s count: -1 for a job that finished (never
    /// below 0), +1 for one replayed.
    async fn adjust(&self, owner: &str, delta: i64) -> Result<(), CountError>;

    /// What is counted of `owner` (zeros for a caller never counted).
    async fn tally(&self, owner: &str) -> Result<CallerTally, CountError>;

    /// Sets `owner`'s count of unfinished jobs to `count`: an operator's
    /// repair of a count that drifted (`jobline callers recount`).
    async fn set_unfinished(&self, owner: &str, count: u64) -> Result<(), CountError>;

    /// Counts one more upload of `bytes` on UTC day `day` ([`utc_day`])
    /// for `owner`, unless it would pass `quota` that day: then
    /// `Ok(false)`, and nothing is counted. A new day starts from zero.
    async fn allow_upload(
        &self,
        owner: &str,
        day: i64,
        bytes: u64,
        quota: UploadQuota,
    ) -> Result<bool, CountError>;
}

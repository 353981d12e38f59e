//! The master key each caller's webhook signing secret is derived from
//! ([`caller_secret`]): the [`KeySource`] port, and its adapters.
//!
//! - [`secrets_manager`]: [`SecretsManagerKeys`], the key kept in AWS
//!   Secrets Manager (never in code, configuration or logs), read once per
//!   process;
//! - [`FixedKeys`]: a key given in code, for unit tests.
//!
//! A rotation keeps the previous master key (Secrets Manager's
//! `AWSPREVIOUS`) beside the current one: events are signed with both
//! callers' secrets, as Standard Webhooks allows, so a receiver that has
//! either verifies them while it switches.

pub mod secrets_manager;

pub use secrets_manager::SecretsManagerKeys;

use super::signing::{WebhookSecret, caller_secret};
use async_trait::async_trait;
use std::fmt;

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
    async fn keys(&self) -> Result<MasterKeys, KeyError>;
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

    #[test]
    fn a_rotation_signs_with_both_keys_current_first() {
        let old = b"o".repeat(32);
        let new = b"n".repeat(32);
        let rotating = MasterKeys::new(new.clone(), Some(old.clone()));
        let whsec = |secrets: Vec<WebhookSecret>| -> Vec<String> {
            secrets.iter().map(WebhookSecret::to_whsec).collect()
        };
        assert_eq!(
            whsec(rotating.signing_secrets("alice")),
            whsec(vec![
                caller_secret(&new, "alice"),
                caller_secret(&old, "alice")
            ])
        );
        assert_eq!(
            rotating.caller_secret("alice").to_whsec(),
            caller_secret(&new, "alice").to_whsec()
        );
        assert_eq!(MasterKeys::new(new, None).signing_secrets("alice").len(), 1);
        assert!(!format!("{rotating:?}").contains("nnnn"), "never printed");
    }
}

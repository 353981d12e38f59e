//! The master keys in AWS Secrets Manager: the secret's `AWSCURRENT`
//! version, and its `AWSPREVIOUS` one if it has been rotated.
//! [`SecretsManagerSecret`] reads them on each call; [`SecretsManagerKeys`]
//! is what the functions use, the secret behind [`RefreshingKeys`], read on
//! first use and again every [`REFRESH_INTERVAL`](super::REFRESH_INTERVAL),
//! so a rotation reaches every function within that interval (not within
//! the hours an execution environment may live), and signing with both keys
//! covers the overlap.

use super::{KeyError, KeyLoader, MIN_MASTER_KEY_BYTES, MasterKeys, RefreshingKeys};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

/// The master keys kept in a Secrets Manager secret, refreshed.
pub type SecretsManagerKeys = RefreshingKeys<SecretsManagerSecret>;

impl SecretsManagerKeys {
    /// The keys of the secret `secret_id` (a name or an ARN), read on first
    /// use and refreshed on the wall clock ([`RefreshingKeys::with_clock`]
    /// sets another).
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self::of(SecretsManagerSecret {
            client,
            secret_id: secret_id.into(),
        })
    }

    /// The keys of the secret `secret_id`, over a client of `sdk`.
    pub fn from_sdk(sdk: &aws_types::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), secret_id)
    }
}

/// The Secrets Manager secret `secret_id`, read anew on each
/// [`KeyLoader::load`].
#[derive(Debug)]
pub struct SecretsManagerSecret {
    client: Client,
    secret_id: String,
}

impl SecretsManagerSecret {
    /// The secret string of version `stage`, if the secret has one.
    async fn version(&self, stage: &str) -> Result<Option<Vec<u8>>, KeyError> {
        match self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await
        {
            Ok(output) => Ok(output.secret_string.map(String::into_bytes)),
            Err(error)
                if stage != "AWSCURRENT"
                    && error.as_service_error().and_then(|e| e.code())
                        == Some("ResourceNotFoundException") =>
            {
                Ok(None)
            }
            Err(error) => Err(KeyError::Unavailable(
                aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string(),
            )),
        }
    }
}

#[async_trait]
impl KeyLoader for SecretsManagerSecret {
    async fn load(&self) -> Result<MasterKeys, KeyError> {
        let current = self
            .version("AWSCURRENT")
            .await?
            .ok_or_else(|| KeyError::Unavailable("the secret has no string value".into()))?;
        if current.len() < MIN_MASTER_KEY_BYTES {
            return Err(KeyError::TooShort(current.len()));
        }
        let previous = self.version("AWSPREVIOUS").await?;
        Ok(MasterKeys::new(current, previous))
    }
}
